"""`ferry bench`: stress an Open Inference Protocol server (ferry's perf_analyzer).

TARGET is an http(s):// URL of any V2 server (name the model with --model), a HOST:PORT with
--protocol grpc, or a registry URI (`iris@production`), which is served in-process first.
The load generator (`ferry.loadtest`) is imported when the command runs, not at start-up.
"""

from __future__ import annotations

import contextlib
import importlib.util
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from ferry.cli.output import (
    FAILURE_EXIT_CODE,
    JsonFlag,
    UsageError,
    command_line,
    fail,
    handles_errors,
    print_json,
    print_table,
    stderr,
    stdout,
)

if TYPE_CHECKING:
    from ferry.loadtest import RunOutcome, StepResult, Target
    from ferry.loadtest.metadata import ModelInfo

MAX_STEPS = 32
MAX_CONCURRENCY = 1024
MAX_RATE = 100_000.0
MAX_DURATION_S = 300.0
MAX_WARMUP_S = 60.0
DEFAULT_CONCURRENCY = ("1", "8", "32")
NEEDS_SERVER = "serving a registry URI needs the ferry server"


@dataclass(frozen=True)
class BenchOptions:
    """`ferry bench`'s options as typed (see the command's help for each)."""

    target: str
    model: str | None
    model_version: str | None
    protocol: str
    binary: bool
    rows: int
    concurrency: list[str] | None
    rate: list[str] | None
    warmup: float
    duration: float
    latency_target_ms: float | None
    latency_percentile: str
    json_output: bool
    output: Path | None
    plot: Path | None
    server_pid: int | None
    data: Path | None
    seed: int
    pool: int
    timeout: float
    max_inflight: int
    time_limit: float


@dataclass(frozen=True)
class BenchRun:
    """What one `ferry bench` measured, and with which settings."""

    target: Target
    in_process: bool
    info: ModelInfo
    outcome: RunOutcome
    title: str
    best: StepResult | None
    settings: dict[str, Any]


def _levels(values: Sequence[str], what: str, integer: bool, upper: float) -> tuple[float, ...]:
    """Step levels from repeated options, each of which may also list values with commas."""
    texts = [v.strip() for value in values for v in value.split(",") if v.strip()]
    try:
        levels = tuple(int(v) if integer else float(v) for v in texts)
    except ValueError:
        raise UsageError(f"invalid --{what} {','.join(values)!r}: give numbers, e.g."
                         f" --{what} 1 --{what} 8 (or 1,8)") from None
    if not levels or len(levels) > MAX_STEPS:
        raise UsageError(f"--{what} takes 1 to {MAX_STEPS} values")
    if any(not 0 < v <= upper for v in levels):
        raise UsageError(f"--{what} values must be above 0 and at most {upper:g}")
    return tuple(float(v) for v in levels)


def _check_range(name: str, value: float, low: float, high: float) -> None:
    if not low <= value <= high:
        raise UsageError(f"--{name} must be between {low:g} and {high:g}, not {value:g}")


def _check_file_options(options: dict[str, Path | None]) -> None:
    for option, path in options.items():
        if path is not None and not path.parent.is_dir():
            raise UsageError(f"--{option} {path}: no such directory {path.parent}")
    if options.get("plot") is not None and importlib.util.find_spec("matplotlib") is None:
        raise UsageError("--plot needs matplotlib: pip install matplotlib")


@contextlib.contextmanager
def _served(uri: str) -> Iterator[Any]:
    """Serve a registry URI in-process with ferry's server for the length of the run."""
    try:
        from ferry.serve.server import serve_in_thread
    except ImportError as exc:
        if exc.name not in (None, "ferry.serve", "ferry.serve.server"):
            raise
        fail(NEEDS_SERVER, FAILURE_EXIT_CODE)
    with stderr.status(f"starting ferry's server for {uri}..."):
        running = serve_in_thread([uri], host="127.0.0.1", http_port=0, grpc_port=0)
    try:
        yield running
    finally:
        running.stop()


def _target(text: str, location: str | None, protocol: str, model: str | None,
            version: str | None, binary: bool, stack: contextlib.ExitStack) -> Target:
    """The target to load; a registry URI (`location` None) is served here first."""
    from ferry.loadtest import Target

    if location is None:
        from ferry.uri import ModelURI

        uri = ModelURI.parse(text)
        running = stack.enter_context(_served(text))
        location = running.grpc_address if protocol == "grpc" else running.http_url
        if model is None and version is None:  # ferry's server takes an alias as a version
            version = str(uri.version) if uri.version is not None else uri.alias
        model = model or uri.name
    return Target(protocol, str(location), str(model), version, binary)


def _check_model(text: str, location: str | None, protocol: str, model: str | None) -> None:
    if location is not None and not model:
        hint = (" (a registry version over gRPC is models:/NAME:VERSION)"
                if protocol == "grpc" else "")
        raise UsageError(f"name the model to load on {text} with --model NAME{hint}")


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
    binary: Annotated[bool, typer.Option(help="HTTP: send tensors with Triton's binary"
                                         " extension instead of JSON.")] = False,
    rows: Annotated[int, typer.Option(help="Rows per request (the batch dimension).")] = 1,
    concurrency: Annotated[list[str] | None, typer.Option(
        help="Closed-loop sweep: concurrent requests of one step; repeat for more steps"
             " (default 1, 8 and 32).")] = None,
    rate: Annotated[list[str] | None, typer.Option(
        help="Open-loop step: requests per second; repeat for more steps.")] = None,
    warmup: Annotated[float, typer.Option(help="Seconds before measuring, per step.")] = 2.0,
    duration: Annotated[float, typer.Option(help="Seconds measured, per step.")] = 10.0,
    latency_target_ms: Annotated[float | None, typer.Option(help="Report the best step with"
                                                            " latency at most this.")] = None,
    latency_percentile: Annotated[str, typer.Option(help="p50, p90 or p99.")] = "p99",
    json_output: JsonFlag = False,
    output: Annotated[Path | None, typer.Option("--output", "-o", help="Also write every step"
                                                " and the settings to this JSON file.")
                      ] = None,
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
    options = BenchOptions(**locals())
    with command_line():
        location, levels = _checked_options(options)
    run = _run(options, location, levels)
    if output is not None:
        from ferry.loadtest.report import write_json

        write_json(output, _report(run))
    if plot is not None and run.outcome.results:
        from ferry.loadtest.report import write_plot

        write_plot(plot, run.outcome.results, run.title, latency_target_ms, latency_percentile)
    if json_output:
        print_json(_report(run))
    else:
        _show(run, options)


def _checked_options(options: BenchOptions) -> tuple[str | None, tuple[float, ...]]:
    """Every option checked; the server's location (None for a registry URI) and the steps."""
    from ferry.loadtest import server_location
    from ferry.loadtest.procstat import process_exists
    from ferry.loadtest.results import PERCENTILES

    if options.concurrency is not None and options.rate is not None:
        raise UsageError("give --concurrency (closed loop) or --rate (open loop), not both")
    levels = (_levels(options.rate, "rate", False, MAX_RATE) if options.rate is not None
              else _levels(options.concurrency or DEFAULT_CONCURRENCY, "concurrency", True,
                           MAX_CONCURRENCY))
    if options.latency_percentile not in PERCENTILES:
        raise UsageError(f"--latency-percentile must be one of {', '.join(PERCENTILES)}")
    if options.binary and options.protocol == "grpc":
        raise UsageError("--binary is for --protocol http (gRPC always sends raw bytes)")
    _check_ranges(options)
    if options.server_pid is not None and not process_exists(options.server_pid):
        raise UsageError(f"no process with id {options.server_pid} (--server-pid)")
    _check_file_options({"output": options.output, "plot": options.plot})
    location = server_location(options.target, options.protocol)
    _check_model(options.target, location, options.protocol, options.model)
    return location, levels


def _check_ranges(options: BenchOptions) -> None:
    for name, low, high in (("rows", 1, 1_000_000), ("warmup", 0, MAX_WARMUP_S),
                            ("duration", 0.1, MAX_DURATION_S), ("pool", 1, 4096),
                            ("timeout", 0.001, 600), ("max_inflight", 1, 4096),
                            ("time_limit", 1, 24 * 3600)):
        _check_range(name.replace("_", "-"), getattr(options, name), low, high)
    if options.latency_target_ms is not None and options.latency_target_ms <= 0:
        raise UsageError("--latency-target-ms must be above 0")


def _run(options: BenchOptions, location: str | None, levels: tuple[float, ...]) -> BenchRun:
    from ferry.loadtest import LoadPlan, best_step, discover, mark_targets, run_plan
    from ferry.loadtest import transport_factory as transports
    from ferry.loadtest.bodies import load_rows, make_batches, rows_per_request

    rows_data = load_rows(options.data) if options.data is not None else None
    with contextlib.ExitStack() as stack:
        where = _target(options.target, location, options.protocol, options.model,
                        options.model_version, options.binary, stack)
        info = discover(where)
        batches = make_batches(info.inputs, options.rows, options.pool, options.seed,
                               rows_data)
        per_request = rows_per_request(info.inputs, options.rows)
        plan = LoadPlan(mode="rate" if options.rate is not None else "concurrency",
                        levels=levels, warmup_s=options.warmup,
                        duration_s=options.duration, rows_per_request=per_request,
                        pool_size=len(batches), time_limit_s=options.time_limit,
                        max_inflight=options.max_inflight,
                        grace_s=min(options.timeout, 2.0), server_pid=options.server_pid,
                        client_cpu=location is not None)
        title = (f"{where.model}, {where.encoding}, {per_request}"
                 f" row{'s' if per_request > 1 else ''}/request")
        _announce(title, where, plan, location is None)
        outcome = run_plan(transports(where, info.inputs, batches, options.timeout), plan,
                           _on_step)
    best = None
    if options.latency_target_ms is not None:
        mark_targets(outcome.results, options.latency_target_ms,
                     options.latency_percentile)
        best = best_step(outcome.results)
    settings = _settings(options, where, plan, location is None)
    return BenchRun(where, location is None, info, outcome, title, best, settings)


def _announce(title: str, where: Target, plan: Any, in_process: bool) -> None:
    stderr.print(f"ferry bench: {title} at {where.location}; {len(plan.levels)} step(s) of"
                 f" {plan.warmup_s:g}+{plan.duration_s:g} s", highlight=False, soft_wrap=True)
    if in_process:
        stderr.print("note: the server runs in this process and shares its CPU with the"
                     " load generator", highlight=False, soft_wrap=True)


def _settings(options: BenchOptions, where: Target, plan: Any,
              in_process: bool) -> dict[str, Any]:
    return {"target": options.target, "location": where.location,
            "protocol": options.protocol, "encoding": where.encoding, "model": where.model,
            "model_version": where.version, "in_process_server": in_process,
            "mode": plan.mode, "levels": list(plan.levels), "rows": options.rows,
            "rows_per_request": plan.rows_per_request, "warmup_s": plan.warmup_s,
            "duration_s": plan.duration_s, "latency_target_ms": options.latency_target_ms,
            "latency_percentile": options.latency_percentile,
            "server_pid": options.server_pid,
            "data": str(options.data) if options.data else None,
            "seed": options.seed, "pool": plan.pool_size, "timeout_s": options.timeout,
            "max_inflight": plan.max_inflight, "time_limit_s": plan.time_limit_s}


def _report(run: BenchRun) -> dict[str, Any]:
    from ferry.loadtest.report import report_dict

    return report_dict(run.settings, run.info.to_dict(), run.outcome.results,
                       run.outcome.skipped, run.best)


def _show(run: BenchRun, options: BenchOptions) -> None:
    """The table, the verdict and the errors, for people."""
    from ferry.loadtest.report import error_lines, table_columns, table_rows, table_title, verdict

    results = run.outcome.results
    _print_table(table_title(run.title), table_columns(results), table_rows(results))
    if run.outcome.skipped:
        stdout.print(f"skipped {len(run.outcome.skipped)} step(s) to stay within --time-limit"
                     f" {options.time_limit:g} s", highlight=False, soft_wrap=True)
    if options.latency_target_ms is not None:
        stdout.print(verdict(run.best, options.latency_target_ms,
                             options.latency_percentile), highlight=False, soft_wrap=True)
    for line in error_lines(results):
        stdout.print(line, highlight=False, markup=False, soft_wrap=True)


def register(app: typer.Typer) -> None:
    """Add `bench` to the `ferry` command line."""
    app.command("bench")(bench)

