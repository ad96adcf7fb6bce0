"""What a trivial Python step costs the server: throughput and latency at concurrency 32 (1-row
JSON requests) of a version whose preprocess step returns its batch unchanged, against the
same model without the step, measured in the same run.

    .venv/bin/python bench/steps/steps_bench.py [--seconds 10] [--rounds 3] [--out DIR]

A fresh temporary FERRY_HOME gets one scikit-learn classifier (StandardScaler +
LogisticRegression on load_breast_cancer, 30 float32 features) registered twice: as `plain`,
and as `steps` with `preprocess=identity` (`bench_steps.py`: a top-level function, since ferry
stores its source). The model's compute is small, so the Python layer dominates. Each round
serves `plain`, then `steps` (plain, steps, plain, steps, ...): a fresh `ferry serve` each
time, pinned to core 0 (`bench/pinned_server.py`), with the same flags for both:
`--trust-code` (harmless for `plain`), `--no-capture` (capture's own cost is
`bench/monitor/capture_cost.py`'s), no access log, no gRPC, default dynamic batching. `ferry
bench`, pinned to core 1, drives each: 32 concurrent connections, 1-row JSON requests, 2 s
warm-up, `--seconds` measured, and the server's CPU time per request (`--server-pid`). After
each load the server's `/metrics` gives the mean seconds per batched call of each stage
(`ferry_stage_duration_seconds`: preprocess and compute, for `steps`).

The figures are the medians over rounds of the per-round ratios (steps / plain). Goal: the step
costs at most 1.3x, i.e. a throughput ratio of at least 1 / 1.3 (0.77). Writes summary.json
and summary.md to `--out` (default bench/out/steps).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import urllib.request
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "bench"))
from pinned_server import start_pinned_server  # noqa: E402
from processor import processor  # noqa: E402

BIN = Path(sys.executable).parent
KINDS = ("plain", "steps")
"""The two registered models, and the order they are measured in each round."""
SERVE_FLAGS = ("--trust-code", "--no-capture")
CONCURRENCY = 32
WARMUP_S = 2.0
GOAL_COST = 1.3
"""The most a trivial step may cost: plain throughput / steps throughput."""
STAGE_LINE = re.compile(r'^ferry_stage_duration_seconds_(sum|count)\{(?P<labels>[^}]*)\}'
                        r' (?P<value>\S+)$')


def register_models(env: dict[str, str]) -> None:
    """`plain` and `steps` (the same fitted classifier) in the registry `env` points at."""
    import numpy as np
    from bench_steps import identity
    from sklearn.datasets import load_breast_cancer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    import ferry
    from ferry.registry import Registry
    from ferry.settings import Settings

    x, y = load_breast_cancer(return_X_y=True)
    x = x.astype(np.float32)
    model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000)).fit(x, y)
    settings = Settings.from_env(env)
    registry = Registry(settings.registry_url, artifacts_url=settings.artifacts_url)
    try:
        ferry.register(model, "plain", sample=x, registry=registry)
        ferry.register(model, "steps", sample=x, raw_sample=x, preprocess=identity,
                       registry=registry)
    finally:
        registry.close()


def load(env: dict[str, str], port: int, model: str, server_pid: int,
         seconds: float) -> dict[str, Any]:
    """`ferry bench`'s figures for one closed-loop step at `CONCURRENCY` (client on core 1)."""
    args = ["taskset", "-c", "1", str(BIN / "ferry"), "bench", f"http://127.0.0.1:{port}",
            "--model", model, "--concurrency", str(CONCURRENCY), "--rows", "1",
            "--warmup", str(WARMUP_S), "--duration", str(seconds),
            "--server-pid", str(server_pid), "--json"]
    done = subprocess.run(args, env=env, capture_output=True, text=True, check=True)
    step = json.loads(done.stdout)["steps"][0]
    return {"req_s": round(step["req_s"], 1), "p50_ms": round(step["p50_ms"], 3),
            "p99_ms": round(step["p99_ms"], 3), "error_count": step["error_count"],
            "server_cpu_us_per_req": round(step["server_cpu_us_per_req"], 1)}


def stage_means_us(port: int, model: str) -> dict[str, float]:
    """Mean µs per batched call of each stage of `model`, from the server's `/metrics`."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as answer:
        text = answer.read().decode()
    totals: dict[str, dict[str, float]] = {}
    for line in text.splitlines():
        match = STAGE_LINE.match(line)
        if match is None or f'model="{model}"' not in match["labels"]:
            continue
        stage = re.search(r'stage="([^"]+)"', match["labels"])
        if stage is not None:
            totals.setdefault(stage[1], {})[match[1]] = float(match["value"])
    return {stage: round(t["sum"] / t["count"] * 1e6, 1)
            for stage, t in totals.items() if t.get("count")}


def measure(env: dict[str, str], model: str, seconds: float) -> dict[str, Any]:
    """One fresh server for `model` under load: its figures and stage means."""
    process, port = start_pinned_server(model, env, *SERVE_FLAGS, ready_within_s=60)
    try:
        figures = load(env, port, model, process.pid, seconds)
        return figures | {"stage_mean_us": stage_means_us(port, model)}
    finally:
        process.terminate()
        process.wait(timeout=60)


def one_round(env: dict[str, str], seconds: float) -> dict[str, Any]:
    """`plain` then `steps`, and the ratios steps / plain."""
    figures: dict[str, Any] = {kind: measure(env, kind, seconds) for kind in KINDS}
    plain, steps = figures["plain"], figures["steps"]
    figures["ratio"] = {key: round(steps[key] / plain[key], 3)
                        for key in ("req_s", "p50_ms", "p99_ms")}
    figures["step_cpu_us_per_req"] = round(steps["server_cpu_us_per_req"]
                                           - plain["server_cpu_us_per_req"], 1)
    return figures


def summarize(rounds: list[dict[str, Any]], seconds: float) -> dict[str, Any]:
    """Medians over rounds of each model's figures and of the per-round ratios."""
    def median(values: list[float]) -> float:
        return round(statistics.median(values), 3)

    medians = {kind: {key: median([r[kind][key] for r in rounds])
                      for key in ("req_s", "p50_ms", "p99_ms", "server_cpu_us_per_req")}
               for kind in KINDS}
    ratio = {key: median([r["ratio"][key] for r in rounds]) for key in ("req_s", "p50_ms",
                                                                         "p99_ms")}
    return {"processor": processor(), "cpus": os.cpu_count(), "load_average": os.getloadavg(),
            "cpu_pressure": cpu_pressure(), "seconds": seconds, "concurrency": CONCURRENCY,
            "serve_flags": list(SERVE_FLAGS), "medians": medians, "ratio": ratio,
            "step_cpu_us_per_req": median([r["step_cpu_us_per_req"] for r in rounds]),
            "errors": sum(r[kind]["error_count"] for r in rounds for kind in KINDS),
            "goal_met": ratio["req_s"] >= 1 / GOAL_COST, "rounds": rounds}


def cpu_pressure() -> str:
    """The kernel's CPU pressure: other work on the machine, which these figures depend on."""
    try:
        return Path("/proc/pressure/cpu").read_text().splitlines()[0]
    except OSError:
        return "unknown"


def markdown(summary: dict[str, Any]) -> str:
    """The summary as the table RESULTS.md shows."""
    medians, ratio = summary["medians"], summary["ratio"]
    rows = [f"| {kind} | {m['req_s']:,.0f} | {m['p50_ms']:.2f} | {m['p99_ms']:.2f} |"
            f" {m['server_cpu_us_per_req']:.0f} |" for kind, m in medians.items()]
    return "\n".join([
        f"Processor: {summary['processor']}; {summary['cpus']} CPUs; load average"
        f" {', '.join(f'{v:.2f}' for v in summary['load_average'])}.",
        f"{len(summary['rounds'])} rounds of {summary['seconds']:g} s, concurrency"
        f" {summary['concurrency']}, 1-row JSON, `ferry serve {' '.join(summary['serve_flags'])}`.",
        "", "| model | req/s | p50 ms | p99 ms | server CPU µs/req |", "|---|---:|---:|---:|---:|",
        *rows, "",
        f"Ratios steps / plain (median of rounds): throughput {ratio['req_s']:.3f}, p50"
        f" {ratio['p50_ms']:.3f}, p99 {ratio['p99_ms']:.3f}; the step's server CPU"
        f" {summary['step_cpu_us_per_req']:.0f} µs/req; goal (throughput >= 1/{GOAL_COST})"
        f" {'met' if summary['goal_met'] else 'NOT met'}; errors {summary['errors']}.", ""])


def write(out: Path, summary: dict[str, Any]) -> None:
    out.mkdir(parents=True, exist_ok=True)
    (out / "summary.json").write_text(json.dumps(summary, indent=2))
    (out / "summary.md").write_text(markdown(summary))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=10.0, help="measured per load")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "out" / "steps")
    args = parser.parse_args()
    if args.rounds < 1 or args.seconds <= 0:
        parser.error("--rounds must be at least 1 and --seconds positive")
    with tempfile.TemporaryDirectory(prefix="ferry-steps-bench-") as home:
        os.environ["FERRY_HOME"] = home
        for name in ("FERRY_REGISTRY_URL", "FERRY_ARTIFACTS_URL", "FERRY_MONITORING_URL"):
            os.environ.pop(name, None)
        env = dict(os.environ)
        register_models(env)
        rounds = []
        for _ in range(args.rounds):
            rounds.append(one_round(env, args.seconds))
            print(json.dumps(rounds[-1]), flush=True)
    summary = summarize(rounds, args.seconds)
    write(args.out, summary)
    print(markdown(summary))


if __name__ == "__main__":
    main()
