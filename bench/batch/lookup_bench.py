"""Stored-prediction lookups: requests per second and latency of `GET
/v2/models/{name}/predictions/{key}` over 1M stored keys, on one server core at concurrency 8,
against the same server's `GET /v2/health/ready` measured in the same run.

    .venv/bin/python bench/batch/lookup_bench.py --out bench/out/lookup [--duration 10]

A fresh FERRY_HOME gets a LogisticRegression (8 features, two classes) and a batch run over
1,000,000 rows keyed by an integer `id` into the embedded warehouse (DuckDB). `ferry serve`
runs pinned to core 0 (`taskset -c 0`, no access log, no gRPC); the first lookup loads the
run's rows (timed). A client process of this script, pinned to core 1, keeps 8 keep-alive
connections busy (one request in flight on each) for a 2 s warm-up and `--duration` s
measured, with ferry's load-generator connection (`ferry.loadtest.httpclient`). `--rounds`
rounds measure the baseline (`/v2/health/ready`) and lookups of random stored keys, the
order alternating; a last step POSTs 10 random keys a request. Each step reports
requests/s, p50/p99 latency (client side) and the server's CPU time per request (from /proc);
the summary holds the medians over rounds and the median per-round ratio of lookups to the
baseline. Goal (issue 13): lookups at least 3,000 requests/s with p99 under 5 ms.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "bench"))
from pinned_server import start_pinned_server  # noqa: E402
from processor import processor  # noqa: E402

MODEL = "lookup"
ROWS = 1_000_000
FEATURES = 8
CONCURRENCY = 8
WARMUP_S = 2.0
PROBES = 50_000
"""Pre-built requests per scenario, sent in turn (random stored keys)."""
POST_KEYS = 10


def key_of(row: int) -> int:
    """The stored keys are not 0..n-1: every seventh number from 1,000,003."""
    return 1_000_003 + 7 * row


def prepare(home: Path) -> dict[str, Any]:
    """Register the model and batch-score 1M rows into the warehouse (in this process)."""
    os.environ["FERRY_HOME"] = str(home)
    import numpy as np
    import pandas as pd
    from sklearn.linear_model import LogisticRegression

    import ferry
    from ferry.batch import batch

    rng = np.random.default_rng(0)
    frame = pd.DataFrame(rng.normal(size=(ROWS, FEATURES)).astype(np.float32),
                         columns=[f"x{i}" for i in range(FEATURES)])
    target = (frame.x0 + frame.x1 > 0).astype(int)
    ferry.register(LogisticRegression().fit(frame[:20_000], target[:20_000]), MODEL,
                   sample=frame.head(100))
    frame.insert(0, "id", key_of(np.arange(ROWS)))
    frame.to_parquet(home / "input.parquet", row_group_size=100_000)
    started = time.perf_counter()
    run = batch(MODEL, str(home / "input.parquet"), key="id", workers=2)
    return {"rows": run.rows, "run_id": run.id, "batch_s": round(time.perf_counter() - started, 1)}


def serve(env: dict[str, str]) -> tuple[subprocess.Popen[bytes], int]:
    return start_pinned_server(MODEL, env)


def first_lookup_s(port: int) -> float:
    """The first lookup, which loads the run's 1M rows from the warehouse."""
    started = time.perf_counter()
    url = f"http://127.0.0.1:{port}/v2/models/{MODEL}/predictions/{key_of(17)}"
    with urllib.request.urlopen(url, timeout=120) as answer:
        json.loads(answer.read())
    return time.perf_counter() - started


def requests_for(scenario: str, port: int) -> list[bytes]:
    """`PROBES` pre-encoded requests of a scenario (random stored keys for lookups)."""
    import random

    rng = random.Random(0)
    host = f"Host: 127.0.0.1:{port}\r\n"
    if scenario == "ready":
        return [f"GET /v2/health/ready HTTP/1.1\r\n{host}\r\n".encode()]
    if scenario == "get":
        return [f"GET /v2/models/{MODEL}/predictions/{key_of(rng.randrange(ROWS))} HTTP/1.1"
                f"\r\n{host}\r\n".encode() for _ in range(PROBES)]
    requests = []
    for _ in range(PROBES // 10):
        body = json.dumps({"keys": [key_of(rng.randrange(ROWS)) for _ in range(POST_KEYS)]})
        requests.append(f"POST /v2/models/{MODEL}/predictions HTTP/1.1\r\n{host}"
                        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
                        f"{body}".encode())
    return requests


def cpu_seconds(pid: int) -> float:
    """User plus system CPU time of a process, all its threads (/proc/PID/stat)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def drive(requests: list[bytes], at: int, port: int, until: float, measure_from: float,
                latencies: list[float], errors: list[int]) -> None:
    """One connection, from request `at` on: the next request as soon as the last is
    answered."""
    from ferry.loadtest.httpclient import HttpConnection

    loop = asyncio.get_running_loop()
    _, connection = await loop.create_connection(HttpConnection, "127.0.0.1", port)
    while (now := time.perf_counter()) < until:
        status, _ = await connection.request(requests[at % len(requests)], 30.0)
        at += 1
        done = time.perf_counter()
        if now >= measure_from:
            latencies.append(done - now)
            if status != 200:
                errors.append(status)
    connection.close()


async def load(scenario: str, port: int, duration: float, server_pid: int) -> dict[str, Any]:
    requests = requests_for(scenario, port)
    latencies: list[float] = []
    errors: list[int] = []
    start = time.perf_counter()
    measure_from, until = start + WARMUP_S, start + WARMUP_S + duration
    tasks = [asyncio.create_task(drive(requests, i * len(requests) // CONCURRENCY, port, until,
                                       measure_from, latencies, errors))
             for i in range(CONCURRENCY)]
    await asyncio.sleep(WARMUP_S)
    cpu_before = cpu_seconds(server_pid)
    await asyncio.gather(*tasks)
    busy = cpu_seconds(server_pid) - cpu_before
    latencies.sort()
    count = len(latencies)
    return {"scenario": scenario, "requests": count, "req_s": round(count / duration),
            "p50_ms": round(latencies[count // 2] * 1000, 3),
            "p99_ms": round(latencies[int(count * 0.99)] * 1000, 3),
            "errors": len(errors), "server_cpu_us_per_request": round(busy / count * 1e6, 1)}


def client(port: int, duration: float, server_pid: int, scenarios: list[str]) -> None:
    """(The client process, on core 1.) Each scenario in turn; one JSON line each."""
    os.sched_setaffinity(0, {1})
    try:
        import uvloop
        runner = uvloop.run
    except ImportError:
        runner = asyncio.run
    for scenario in scenarios:
        print(json.dumps(runner(load(scenario, port, duration, server_pid))), flush=True)


def drive_rounds(env: dict[str, str], port: int, pid: int, duration: float,
                 rounds: int) -> list[dict[str, Any]]:
    """`rounds` of the baseline and the lookups, the order alternating; then the POSTs."""
    results = []
    for index in range(rounds + 1):
        scenarios = (["post"] if index == rounds
                     else ["ready", "get"] if index % 2 == 0 else ["get", "ready"])
        done = subprocess.run([sys.executable, __file__, "--client", str(port), "--duration",
                               str(duration), "--server-pid", str(pid), "--scenarios",
                               ",".join(scenarios)], env=env, capture_output=True, text=True,
                              check=True)
        results += [{"round": index, **json.loads(line)} for line in done.stdout.splitlines()]
        print(done.stdout, end="", flush=True)
    return results


def rss_mb(pid: int) -> int:
    status = Path(f"/proc/{pid}/status").read_text().splitlines()
    return int(next(line.split()[1] for line in status if line.startswith("VmRSS"))) // 1024


def measure(env: dict[str, str], duration: float, rounds: int) -> dict[str, Any]:
    process, port = serve(env)
    try:
        before_mb = rss_mb(process.pid)
        loaded_s = first_lookup_s(port)
        steps = drive_rounds(env, port, process.pid, duration, rounds)
        return {"first_lookup_s": round(loaded_s, 2), "server_rss_mb_before": before_mb,
                "server_rss_mb_after": rss_mb(process.pid), "steps": steps}
    finally:
        process.terminate()
        process.wait(timeout=60)


def cpu_pressure() -> str:
    """The kernel's CPU pressure (share of time some task waited for a CPU): other work on
    the machine, which these figures, the p99 above all, depend on."""
    try:
        return Path("/proc/pressure/cpu").read_text().splitlines()[0]
    except OSError:
        return "unknown"


def summary(prepared: dict[str, Any], measured: dict[str, Any]) -> dict[str, Any]:
    """Medians over rounds: each scenario's figures, and the per-round ratios of the lookups
    to the baseline."""
    steps = measured["steps"]
    by_round = {(s["round"], s["scenario"]): s for s in steps}
    rounds = sorted({s["round"] for s in steps if s["scenario"] == "get"})
    figures = {scenario: {k: statistics.median(s[k] for s in steps if s["scenario"] == scenario)
                          for k in ("req_s", "p50_ms", "p99_ms", "server_cpu_us_per_request")}
               for scenario in ("ready", "get", "post")}
    ratio = {k: round(statistics.median(by_round[r, "get"][k] / by_round[r, "ready"][k]
                                        for r in rounds), 2) for k in ("req_s", "p99_ms")}
    return {"processor": processor(), "cpus": os.cpu_count(), "load_average": os.getloadavg(),
            "cpu_pressure": cpu_pressure(),
            **prepared, **{k: v for k, v in measured.items() if k != "steps"},
            "medians": figures, "get_vs_ready": ratio, "steps": steps,
            "goal_met": figures["get"]["req_s"] >= 3000 and figures["get"]["p99_ms"] < 5}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "out" / "lookup")
    parser.add_argument("--duration", type=float, default=10.0)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--client", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--server-pid", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--scenarios", default="ready,get,post", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.client:
        client(args.client, args.duration, args.server_pid, args.scenarios.split(","))
        return
    home = (args.out / "home").resolve()
    if home.exists():
        raise SystemExit(f"{home} exists: give a fresh --out")
    home.mkdir(parents=True)
    prepared = prepare(home)
    print(json.dumps(prepared), flush=True)
    env = {**os.environ, "FERRY_HOME": str(home)}
    result = summary(prepared, measure(env, args.duration, args.rounds))
    (args.out / "summary.json").write_text(json.dumps(result, indent=2))
    print(json.dumps({k: v for k, v in result.items() if k != "steps"}, indent=2))


if __name__ == "__main__":
    main()
