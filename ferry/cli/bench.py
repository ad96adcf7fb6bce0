"""`ferry bench`: stress an Open Inference Protocol server (ferry's perf_analyzer).

TARGET is an http(s):// URL of any V2 server (name the model with --model), a HOST:PORT with
--protocol grpc, or a registry URI (`iris@production`), which is served in-process first.
"""

from __future__ import annotations

import contextlib
import importlib.util
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Any

import typer

from ferry.cli.output import fail, handles_errors, print_table, stderr, stdout
from ferry.errors import InvalidInputError
from ferry.loadtest import (
    LoadPlan,
    StepResult,
    Target,
    best_step,
    discover,
    mark_targets,
    run_plan,
    server_location,
    transport_factory,
)
from ferry.loadtest.bodies import load_rows, make_batches, rows_per_request
from ferry.loadtest.procstat import process_exists
from ferry.loadtest.report import (
    error_lines,
    report_dict,
    table_columns,
    table_rows,
    table_title,
    verdict,
    write_json,
)
from ferry.loadtest.results import PERCENTILES

MAX_STEPS = 32
MAX_CONCURRENCY = 1024
MAX_RATE = 100_000.0
MAX_DURATION_S = 300.0
MAX_WARMUP_S = 60.0
NEEDS_SERVER = "serving a registry URI needs the ferry server"


def _levels(text: str, what: str, integer: bool, upper: float) -> tuple[float, ...]:
    try:
        values = tuple(int(v) if integer else float(v) for v in text.split(",") if v.strip())
    except ValueError:
        raise InvalidInputError(f"invalid --{what} {text!r}: give numbers separated by commas,"
                                " e.g. 1,8,32") from None
    if not values or len(values) > MAX_STEPS:
        raise InvalidInputError(f"--{what} takes 1 to {MAX_STEPS} values")
    if any(not 0 < v <= upper for v in values):
        raise InvalidInputError(f"--{what} values must be above 0 and at most {upper:g}")
    return tuple(float(v) for v in values)


def _check_range(name: str, value: float, low: float, high: float) -> None:
    if not low <= value <= high:
        raise InvalidInputError(f"--{name} must be between {low:g} and {high:g}, not {value:g}")


@contextlib.contextmanager
def _served(uri: str) -> Iterator[Any]:
    """Serve a registry URI in-process with ferry's server for the length of the run."""
    try:
        from ferry.serve.server import serve_in_thread
    except ImportError as exc:
        if exc.name not in (None, "ferry.serve", "ferry.serve.server"):
            raise
        fail(NEEDS_SERVER)
    with stderr.status(f"starting ferry's server for {uri}..."):
        running = serve_in_thread([uri], host="127.0.0.1", http_port=0, grpc_port=0)
    try:
        yield running
    finally:
        running.stop()


def _target(text: str, protocol: str, model: str | None, version: str | None, binary: bool,
            stack: contextlib.ExitStack) -> tuple[Target, bool]:
    """The target to load, and whether ferry's server runs in this process."""
    location = server_location(text, protocol)
    in_process = location is None
    if location is None:
        from ferry.uri import ModelURI

        uri = ModelURI.parse(text)
        running = stack.enter_context(_served(text))
        location = running.grpc_address if protocol == "grpc" else running.http_url
        if model is None and version is None:  # ferry's server takes an alias as a version
            version = str(uri.version) if uri.version is not None else uri.alias
        model = model or uri.name
    if not model:
        hint = (" (a registry version over gRPC is models:/NAME:VERSION)"
                if protocol == "grpc" else "")
        raise InvalidInputError(f"name the model to load on {text} with --model NAME{hint}")
    return Target(protocol, str(location), model, version, binary), in_process


def _print_table(title: str, columns: list[str], rows: list[list[str]]) -> None:
    """`print_table`, widened when stdout is not a terminal so no cell is cut short."""
    widths = [max([len(c), *(len(row[i]) for row in rows)]) for i, c in enumerate(columns)]
    needed = max(sum(w + 3 for w in widths) + 1, len(title))
    if stdout.is_terminal or needed <= stdout.width:
        print_table(title, columns, rows)
        return
    width = stdout.width
    stdout.width = needed
    try:
        print_table(title, columns, rows)
    finally:
        stdout.width = width


def _on_step(result: StepResult) -> None:
    stderr.print(f"  {result.label}: {result.req_s:,.1f} req/s, p99 {result.p99_ms or 0:.2f} ms,"
                 f" errors {result.error_count}", highlight=False, soft_wrap=True)


@handles_errors
def bench(
    target: Annotated[str, typer.Argument(help="http(s)://HOST:PORT of a V2 server, HOST:PORT"
                                          " with --protocol grpc, or a registry URI"
                                          " (NAME@ALIAS, NAME:VERSION) to serve here.")],
    model: Annotated[str | None, typer.Option("--model", "-m", help="Model name on the"
                                              " server (default: the URI's name).")] = None,
    model_version: Annotated[str | None, typer.Option(help="Model version on the server.")
                             ] = None,
    protocol: Annotated[str, typer.Option(help="http or grpc.")] = "http",
    binary: Annotated[bool, typer.Option("--binary", help="HTTP: send tensors with Triton's"
                                         " binary extension instead of JSON.")] = False,
    rows: Annotated[int, typer.Option(help="Rows per request (the batch dimension).")] = 1,
    concurrency: Annotated[str | None, typer.Option(help="Closed-loop sweep: concurrent"
                                                    " requests per step (default 1,8,32).")
                           ] = None,
    rate: Annotated[str | None, typer.Option(help="Open-loop steps: requests per second,"
                                             " e.g. 100,500.")] = None,
    warmup: Annotated[float, typer.Option(help="Seconds before measuring, per step.")] = 2.0,
    duration: Annotated[float, typer.Option(help="Seconds measured, per step.")] = 10.0,
    latency_target_ms: Annotated[float | None, typer.Option(help="Report the best step with"
                                                            " latency at most this.")] = None,
    latency_percentile: Annotated[str, typer.Option(help="p50, p90 or p99.")] = "p99",
    json_path: Annotated[Path | None, typer.Option("--json", help="Write every step and the"
                                                   " settings as JSON.")] = None,
    plot: Annotated[Path | None, typer.Option(help="Write a PNG plot.")] = None,
    server_pid: Annotated[int | None, typer.Option(help="Report this process tree's CPU µs"
                                                   " per request.")] = None,
    data: Annotated[Path | None, typer.Option(help="Rows to send: .npy, .csv, .parquet, .json"
                                              " (default: seeded random normal).")] = None,
    seed: Annotated[int, typer.Option(help="Seed of the random rows.")] = 0,
    pool: Annotated[int, typer.Option(help="Distinct pre-built request bodies.")] = 64,
    timeout: Annotated[float, typer.Option(help="Request timeout, seconds.")] = 10.0,
    max_inflight: Annotated[int, typer.Option(help="Open loop: most requests outstanding;"
                                              " sends beyond are dropped.")] = 256,
    time_limit: Annotated[float, typer.Option(help="Hard limit on the whole run, seconds;"
                                              " steps that would pass it are skipped.")
                          ] = 600.0,
) -> None:
    """Stress a V2 inference server: throughput and latency per concurrency or rate step."""
    if concurrency is not None and rate is not None:
        raise InvalidInputError("give --concurrency (closed loop) or --rate (open loop), not both")
    mode = "rate" if rate is not None else "concurrency"
    levels = (_levels(rate, "rate", False, MAX_RATE) if rate is not None else
              _levels(concurrency or "1,8,32", "concurrency", True, MAX_CONCURRENCY))
    if latency_percentile not in PERCENTILES:
        raise InvalidInputError(f"--latency-percentile must be one of {', '.join(PERCENTILES)}")
    if binary and protocol == "grpc":
        raise InvalidInputError("--binary is for --protocol http (gRPC always sends raw bytes)")
    for name, value, low, high in (("rows", rows, 1, 1_000_000), ("warmup", warmup, 0,
                                   MAX_WARMUP_S), ("duration", duration, 0.1, MAX_DURATION_S),
                                   ("pool", pool, 1, 4096), ("timeout", timeout, 0.001, 600),
                                   ("max-inflight", max_inflight, 1, 4096),
                                   ("time-limit", time_limit, 1, 24 * 3600)):
        _check_range(name, value, low, high)
    if latency_target_ms is not None and latency_target_ms <= 0:
        raise InvalidInputError("--latency-target-ms must be above 0")
    if server_pid is not None and not process_exists(server_pid):
        raise InvalidInputError(f"no process with id {server_pid} (--server-pid)")
    for option, path in (("json", json_path), ("plot", plot)):
        if path is not None and not path.parent.is_dir():
            raise InvalidInputError(f"--{option} {path}: no such directory {path.parent}")
    if plot is not None and importlib.util.find_spec("matplotlib") is None:
        raise InvalidInputError("--plot needs matplotlib: pip install matplotlib")
    rows_data = load_rows(data) if data is not None else None
    with contextlib.ExitStack() as stack:
        where, in_process = _target(target, protocol, model, model_version, binary, stack)
        info = discover(where)
        batches = make_batches(info.inputs, rows, pool, seed, rows_data)
        per_request = rows_per_request(info.inputs, rows)
        plan = LoadPlan(mode=mode, levels=levels, warmup_s=warmup, duration_s=duration,
                        rows_per_request=per_request, pool_size=len(batches),
                        time_limit_s=time_limit, max_inflight=max_inflight,
                        grace_s=min(timeout, 2.0), server_pid=server_pid,
                        client_cpu=not in_process)
        title = (f"{where.model}, {where.encoding}, {per_request}"
                 f" row{'s' if per_request > 1 else ''}/request")
        stderr.print(f"ferry bench: {title} at {where.location}; {len(levels)} step(s) of"
                     f" {warmup:g}+{duration:g} s", highlight=False, soft_wrap=True)
        if in_process:
            stderr.print("note: the server runs in this process and shares its CPU with the"
                         " load generator", highlight=False, soft_wrap=True)
        outcome = run_plan(transport_factory(where, info.inputs, batches, timeout), plan,
                           _on_step)
    best = None
    if latency_target_ms is not None:
        mark_targets(outcome.results, latency_target_ms, latency_percentile)
        best = best_step(outcome.results)
    _print_table(table_title(title), table_columns(outcome.results),
                 table_rows(outcome.results))
    if outcome.skipped:
        stdout.print(f"skipped {len(outcome.skipped)} step(s) to stay within --time-limit"
                     f" {time_limit:g} s", highlight=False, soft_wrap=True)
    if latency_target_ms is not None:
        stdout.print(verdict(best, latency_target_ms, latency_percentile), highlight=False,
                     soft_wrap=True)
    for line in error_lines(outcome.results):
        stdout.print(line, highlight=False, markup=False, soft_wrap=True)
    settings = {"target": target, "location": where.location, "protocol": protocol,
                "encoding": where.encoding, "model": where.model, "model_version": where.version,
                "in_process_server": in_process, "mode": mode, "levels": list(levels),
                "rows": rows, "rows_per_request": per_request, "warmup_s": warmup,
                "duration_s": duration, "latency_target_ms": latency_target_ms,
                "latency_percentile": latency_percentile, "server_pid": server_pid,
                "data": str(data) if data else None, "seed": seed, "pool": len(batches),
                "timeout_s": timeout, "max_inflight": max_inflight, "time_limit_s": time_limit}
    if json_path is not None:
        write_json(json_path, report_dict(settings, info.to_dict(), outcome.results,
                                          outcome.skipped, best))
    if plot is not None and outcome.results:
        from ferry.loadtest.report import write_plot

        write_plot(plot, outcome.results, title, latency_target_ms, latency_percentile)


def register(app: typer.Typer) -> None:
    """Add `bench` to the `ferry` command line."""
    app.command("bench")(bench)
