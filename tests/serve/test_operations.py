"""Hot reload under load, overload answered with 503, graceful shutdown."""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
from conftest import Served, SlowOrFailing, build_registry
from sklearn.datasets import load_iris

import ferry
from ferry.serve.batching import BatchSettings
from ferry.serve.server import serve_in_thread
from ferry.serve.settings import ServeSettings

RELOAD_DEADLINE_S = 2.0
BODY = {"inputs": [{"name": "X", "shape": [1, 4], "datatype": "FP32", "data": [5, 3, 1, 0.2]}]}


@pytest.fixture
def fresh(tmp_path: Path) -> Served:
    registry, x = build_registry(tmp_path)
    running = serve_in_thread(["iris@production", "fragile"], registry=registry, grpc_port=None,
                              settings=ServeSettings(poll_interval_s=0.2))
    served = Served(running, registry, x)
    yield served  # type: ignore[misc]
    running.stop()


def test_alias_move_from_another_process_switches_within_2s_without_errors(
        fresh: Served, tmp_path: Path) -> None:
    stop, results = threading.Event(), []

    def load_loop() -> None:
        while not stop.is_set():
            status, body = fresh.post_json("/v2/models/iris/versions/production/infer", BODY)
            results.append((time.monotonic(), status, body.get("model_version")))

    env = {**os.environ, "FERRY_REGISTRY_URL": fresh.registry.url or "",
           "FERRY_ARTIFACTS_URL": fresh.registry.artifacts_url or ""}
    with ThreadPoolExecutor(4) as pool:
        for _ in range(4):
            pool.submit(load_loop)
        time.sleep(0.5)
        moved_at = time.monotonic()
        subprocess.run([sys.executable, "-m", "ferry", "alias", "set", "iris", "production", "2"],
                       check=True, env=env, capture_output=True, timeout=120)
        moved_done = time.monotonic()
        deadline = moved_done + RELOAD_DEADLINE_S + 1.0
        while time.monotonic() < deadline and not any(
                v == "2" and t > moved_done for t, _, v in results):
            time.sleep(0.05)
        time.sleep(0.5)
        stop.set()

    assert results, "no request was sent"
    assert all(status == 200 for _, status, _ in results), {s for _, s, _ in results}
    first_new = min(t for t, _, v in results if v == "2")
    assert first_new - moved_done <= RELOAD_DEADLINE_S
    assert all(v == "1" for t, _, v in results if t < moved_at)
    assert all(v == "2" for t, _, v in results if t > first_new + 0.3)


def test_overload_is_503_with_retry_after_and_memory_stays_flat(tmp_path: Path) -> None:
    registry, x = build_registry(tmp_path)
    slow = SlowOrFailing(delay=0.2).fit(x, x[:, 0])
    ferry.register(slow, "slow", sample=x[:5], force=True, registry=registry)
    settings = ServeSettings(batching=BatchSettings(max_batch_size=1, max_queue_size=2))
    running = serve_in_thread(["slow"], registry=registry, grpc_port=None, settings=settings)
    served = Served(running, registry, x)
    try:
        def burst() -> list[tuple[int, dict[str, str]]]:
            with ThreadPoolExecutor(16) as pool:
                futures = [pool.submit(served.request, "POST", "/v2/models/slow/infer",
                                       json.dumps(BODY).encode()) for _ in range(32)]
                return [(f.result()[0], f.result()[1]) for f in futures]

        first = burst()
        rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        for _ in range(3):
            later = burst()
        rss_after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    finally:
        running.stop()

    statuses = [s for s, _ in first + later]
    assert 200 in statuses and 503 in statuses
    assert set(statuses) <= {200, 503}
    assert all(h.get("retry-after") == "1" for s, h in first + later if s == 503)
    assert rss_after - rss_before < 20 * 1024  # KiB: the refused requests left nothing behind


def test_graceful_shutdown_finishes_in_flight_requests(tmp_path: Path) -> None:
    registry, x = build_registry(tmp_path)
    ferry.register(SlowOrFailing(delay=0.5).fit(x, x[:, 0]), "slow", sample=x[:5], force=True,
                   registry=registry)
    running = serve_in_thread(["slow"], registry=registry, grpc_port=None)
    served = Served(running, registry, x)
    with ThreadPoolExecutor(2) as pool:
        pending = pool.submit(served.post_json, "/v2/models/slow/infer", BODY)
        time.sleep(0.2)
        running.stop()
        status, body = pending.result(timeout=10)

    assert status == 200
    np.testing.assert_allclose(body["outputs"][0]["data"], [9.2], rtol=1e-5)


def test_serve_command_serves_the_registry(tmp_path: Path) -> None:
    x, y = load_iris(return_X_y=True)
    from sklearn.linear_model import LogisticRegression

    home = tmp_path / "home"
    env = {**os.environ, "FERRY_HOME": str(home)}
    registry = ferry.Registry(f"sqlite:///{home / 'registry.db'}",
                              artifacts_url=str(home / "artifacts"))
    ferry.register(LogisticRegression(max_iter=500).fit(x, y), "iris", sample=x.astype("float32"),
                   registry=registry)
    port = _free_port()
    process = subprocess.Popen([sys.executable, "-m", "ferry", "serve", "--http-port", str(port),
                                "--grpc-port", "-1"], env=env, stderr=subprocess.PIPE, text=True)
    try:
        status, body = _wait_for(lambda: _get(port, "/v2/models/iris"))
        assert status == 200 and body["name"] == "iris"
    finally:
        process.terminate()
        _, stderr = process.communicate(timeout=30)
    assert process.returncode in (0, -15)
    assert '"path":"/v2/models/iris"' in stderr  # the access log line


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _get(port: int, path: str) -> tuple[int, dict[str, object]]:
    import http.client

    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    connection.request("GET", path)
    response = connection.getresponse()
    return response.status, json.loads(response.read())


def _wait_for(call, timeout_s: float = 60.0):  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            return call()
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


def test_two_worker_processes_share_the_port(tmp_path: Path) -> None:
    from sklearn.linear_model import LogisticRegression

    x, y = load_iris(return_X_y=True)
    home = tmp_path / "home"
    registry = ferry.Registry(f"sqlite:///{home / 'registry.db'}",
                              artifacts_url=str(home / "artifacts"))
    ferry.register(LogisticRegression(max_iter=500).fit(x, y), "iris", sample=x.astype("float32"),
                   registry=registry)
    port, grpc_port = _free_port(), _free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "ferry", "serve", "--http-port", str(port), "--grpc-port",
         str(grpc_port), "--workers", "2", "--no-access-log"],
        env={**os.environ, "FERRY_HOME": str(home)}, stderr=subprocess.PIPE, text=True)
    try:
        _wait_for(lambda: _get(port, "/v2/models/iris"))
        deadline = time.monotonic() + 60
        while len(_children(process.pid)) < 2 and time.monotonic() < deadline:
            time.sleep(0.2)
        statuses = [_get(port, "/v2/models/iris")[0] for _ in range(40)]
        workers = _children(process.pid)
        import tritonclient.grpc as triton_grpc

        grpc_ready = triton_grpc.InferenceServerClient(f"127.0.0.1:{grpc_port}").is_model_ready(
            "iris")
    finally:
        process.terminate()
        _, stderr = process.communicate(timeout=60)

    assert statuses == [200] * 40
    assert grpc_ready
    assert len(workers) >= 2  # two workers on one port under a supervisor that serves nothing
    assert "Failed to bind" not in stderr


def _children(pid: int) -> list[int]:
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as stat:
                    if int(stat.read().rsplit(")", 1)[1].split()[1]) == pid:
                        found.append(int(entry))
            except (OSError, ValueError, IndexError):
                continue
    return found
