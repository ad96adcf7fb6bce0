"""`ferry serve` as a process: SIGTERM finishes every call in flight on both protocols, its
stderr is JSON lines, and `--workers N` reports metrics that add up over the workers."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest
import tritonclient.grpc as triton_grpc
from conftest import SlowOrFailing
from serve_process import STARTUP_S, ServeProcess, start_serve

import ferry
from ferry.serve.tally import FLUSH_INTERVAL_S

ROW = [5.0, 3.0, 1.0, 0.2]
BODY = json.dumps({"inputs": [{"name": "X", "shape": [1, 4], "datatype": "FP32",
                               "data": ROW}]}).encode()
MODEL_DELAY_S = 0.25


def slow_registry(home: Path) -> None:
    registry = ferry.Registry(f"sqlite:///{home / 'registry.db'}",
                              artifacts_url=str(home / "artifacts"))
    x = np.ones((5, 4), dtype=np.float32)
    ferry.register(SlowOrFailing(MODEL_DELAY_S).fit(x, x[:, 0]), "slow", sample=x, force=True,
                   registry=registry)


def grpc_call(address: str) -> float:
    client = triton_grpc.InferenceServerClient(address)
    tensor = triton_grpc.InferInput("X", [1, 4], "FP32")
    tensor.set_data_from_numpy(np.array([ROW], dtype=np.float32))
    result = client.infer("slow", [tensor])
    name = result.get_response().outputs[0].name
    return float(result.as_numpy(name).reshape(-1)[0])


def http_call(served: ServeProcess) -> float:
    status, body = served.request("POST", "/v2/models/slow/infer", BODY)
    assert status == 200, body
    return float(json.loads(body)["outputs"][0]["data"][0])


def metric_sum(text: str, name: str, **labels: str) -> float:
    total = 0.0
    for line in text.splitlines():
        if line.startswith(name + "{") and all(f'{k}="{v}"' in line for k, v in labels.items()):
            total += float(line.rsplit(" ", 1)[1])
    return total


def in_flight(served: ServeProcess) -> float:
    return metric_sum(served.request("GET", "/metrics")[1].decode(), "ferry_inflight_requests")


@dataclass
class ShutdownRun:
    answers: list[Future[float]]
    in_flight_at_sigterm: float
    late: dict[str, str]
    """What a new call got on each protocol once the shutdown had begun."""
    returncode: int
    lines: list[str]


def late_calls(served: ServeProcess) -> dict[str, str]:
    late = {}
    for protocol, call in (("http", lambda: http_call(served)),
                           ("grpc", lambda: grpc_call(f"127.0.0.1:{served.grpc_port}"))):
        try:
            late[protocol] = f"answered {call()}"
        except Exception as exc:
            late[protocol] = f"refused: {exc}"
    return late


@pytest.fixture(scope="module")
def shutdown_run(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ShutdownRun]:
    """A server with its access log on: 16 gRPC and 8 HTTP calls in flight on a slow model
    (2 rows per batch, so about 3 s of work), and SIGTERM once every one has arrived."""
    home = tmp_path_factory.mktemp("shutdown") / "home"
    slow_registry(home)
    served = start_serve(home, "slow", "--max-batch-size", "2")
    try:
        with ThreadPoolExecutor(24) as pool:
            answers = [pool.submit(grpc_call, f"127.0.0.1:{served.grpc_port}")
                       for _ in range(16)]
            answers += [pool.submit(http_call, served) for _ in range(8)]
            served.wait_for(lambda: in_flight(served) + sum(a.done() for a in answers)
                            == len(answers), "every call reaching the server")
            in_flight_at_sigterm = in_flight(served)
            served.process.send_signal(signal.SIGTERM)
            time.sleep(0.3)
            late = late_calls(served)
            for answer in answers:
                answer.exception(timeout=60)
        returncode = served.process.wait(timeout=60)
    finally:
        served.process.kill()
    yield ShutdownRun(answers, in_flight_at_sigterm, late, returncode, served.all_lines())


def test_sigterm_finishes_every_call_in_flight_on_both_protocols(
        shutdown_run: ShutdownRun) -> None:
    assert shutdown_run.in_flight_at_sigterm >= 10
    failures = [str(a.exception()) for a in shutdown_run.answers if a.exception() is not None]
    assert not failures, failures
    assert all(abs(a.result() - sum(ROW)) < 1e-5 for a in shutdown_run.answers)
    assert shutdown_run.returncode == 0, "\n".join(shutdown_run.lines)


def test_after_sigterm_new_calls_are_refused_on_both_protocols(
        shutdown_run: ShutdownRun) -> None:
    assert all(outcome.startswith("refused") for outcome in shutdown_run.late.values()), \
        shutdown_run.late


def test_stderr_is_json_lines_with_a_utc_timestamp(shutdown_run: ShutdownRun) -> None:
    records = [json.loads(line) for line in shutdown_run.lines]  # every line, not only some

    now = datetime.now(UTC)
    for record in records:
        written = datetime.fromisoformat(record["ts"])
        assert record["ts"].endswith("Z") and len(record["ts"]) == len("2025-01-01T00:00:00.000Z")
        assert now - timedelta(minutes=10) < written <= now
    infer = [r for r in records if r.get("model") == "slow"]
    assert {r["protocol"] for r in infer} == {"http", "grpc"}
    assert len(infer) == 24
    assert any(r.get("logger") == "ferry.serve" for r in records)  # the server's own lines


def test_metrics_add_up_across_workers(tmp_path: Path) -> None:
    home, scratch = tmp_path / "home", tmp_path / "scratch"
    scratch.mkdir()
    slow_registry(home)
    served = start_serve(home, "--workers", "2", "--no-access-log", TMPDIR=str(scratch))
    try:
        served.wait_for(lambda: sum("serving slow" in line for line in served.lines) == 2,
                        "both workers serving")
        requests = 40
        with ThreadPoolExecutor(8) as pool:  # a new connection each: SO_REUSEPORT spreads them
            answers = list(pool.map(lambda _: http_call(served), range(requests)))
        time.sleep(2 * FLUSH_INTERVAL_S)  # each worker adds its tallies to the shared files
        scrapes = [served.request("GET", "/metrics")[1].decode() for _ in range(6)]
        returncode = served.stop()
    finally:
        served.process.kill()

    assert len(answers) == requests
    counted = [metric_sum(text, "ferry_inference_requests_total", model="slow", status="200")
               for text in scrapes]
    assert counted == [requests] * len(scrapes)
    assert all(metric_sum(t, "ferry_inflight_requests") == 0 for t in scrapes)
    assert returncode == 0, "\n".join(served.lines)
    assert not list(scratch.glob("ferry-metrics-*"))  # the workers' metric files are gone


def test_workers_that_cannot_start_stop_the_server(tmp_path: Path) -> None:
    home = tmp_path / "home"
    slow_registry(home)
    with socket.socket() as taken:  # a port held without SO_REUSEPORT: the workers cannot bind
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        process = subprocess.run(
            [sys.executable, "-m", "ferry", "serve", "--http-port", str(port), "--grpc-port",
             "-1", "--workers", "2"], env={**os.environ, "FERRY_HOME": str(home)},
            capture_output=True, text=True, timeout=STARTUP_S)

    assert process.returncode == 1, process.stderr
    assert "soon after it started" in process.stderr
