"""The server judges drift on a schedule (`--drift-every`): each served version with a
reference profile, on the rows its capture sampled since the last run; the verdicts are
Prometheus gauges on /metrics and results in the monitoring store."""

from __future__ import annotations

import inspect
import json
import math
import re
import threading
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.datasets import load_breast_cancer
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import train_test_split
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from typer.testing import CliRunner

import ferry
import ferry.cli.serve
from ferry.cli import app
from ferry.errors import InvalidInputError
from ferry.monitor.capture.settings import CaptureSettings
from ferry.monitor.durations import parse_duration
from ferry.registry import Registry
from ferry.serve.server import RunningServer, serve_in_thread
from ferry.serve.settings import ServeSettings

EVERY_S = 0.3
SAMPLE = re.compile(r'^(ferry_\w+)\{(.*)\} (\S+)$')


def rows_body(rows: np.ndarray) -> bytes:
    return json.dumps({"inputs": [{"name": "X", "datatype": "FP32", "shape": list(rows.shape),
                                   "data": rows.ravel().tolist()}]}).encode()


def post(running: RunningServer, path: str, body: bytes) -> None:
    request = urllib.request.Request(running.http_url + path, body,
                                     {"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=30) as response:
        assert response.status == 200


def gauges(running: RunningServer) -> dict[tuple[str, frozenset[str]], float]:
    """Every `ferry_*` sample on /metrics by name and labels."""
    with urllib.request.urlopen(running.http_url + "/metrics", timeout=30) as response:
        text = response.read().decode()
    samples = (SAMPLE.match(line) for line in text.splitlines())
    return {(m[1], frozenset(m[2].split(","))): float(m[3]) for m in samples if m}


def labels(**values: str) -> frozenset[str]:
    return frozenset(f'{key}="{value}"' for key, value in values.items())


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[RunningServer, pd.DataFrame, pd.DataFrame]]:
    """bc:1 and bc:2 (the same model) served with a drift run every `EVERY_S` seconds."""
    x, y = load_breast_cancer(return_X_y=True, as_frame=True)
    reference, held_out, y_reference, _ = train_test_split(x, y, test_size=0.5,
                                                           random_state=2)
    registry = Registry(f"sqlite:///{tmp_path / 'registry.db'}",
                        artifacts_url=str(tmp_path / "art"))
    model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000))
    model.fit(reference, y_reference)
    for _ in range(2):
        ferry.register(model, "bc", sample=reference, registry=registry)
    settings = ServeSettings(capture=CaptureSettings(store_url="memory://",
                                                     flush_interval_s=0.05,
                                                     sample_rows_per_s=100_000),
                             drift_every_s=EVERY_S)
    running = serve_in_thread(["bc:1", "bc:2"], grpc_port=None, registry=registry,
                              settings=settings)
    yield running, reference, held_out
    running.stop()


def test_the_schedule_sets_the_drift_gauges_and_stores_results(
        served: tuple[RunningServer, pd.DataFrame, pd.DataFrame]) -> None:
    running, reference, held_out = served
    same = held_out.to_numpy(np.float32)
    shifted = (held_out + reference.std()).to_numpy(np.float32)  # every column 1 std up
    stop = threading.Event()

    def send() -> None:  # enough rows in every interval: 100 per version every 0.05 s
        rng = np.random.default_rng(0)
        while not stop.is_set():
            rows = slice(start := int(rng.integers(0, len(same) - 100)), start + 100)
            post(running, "/v2/models/bc/versions/1/infer", rows_body(same[rows]))
            post(running, "/v2/models/bc/versions/2/infer", rows_body(shifted[rows]))
            time.sleep(0.05)

    sender = threading.Thread(target=send)
    sender.start()
    try:
        seen = _until_drift_detected(running, "2")
    finally:
        stop.set()
        sender.join(timeout=30)
    v1, v2 = labels(model="bc", version="1"), labels(model="bc", version="2")
    assert seen[("ferry_drift_detected", v1)] == 0.0
    assert seen[("ferry_model_age_seconds", v2)] > 0
    radius = labels(model="bc", version="2", feature="mean radius", method="ks")
    assert seen[("ferry_drift_score", radius)] > 0.1
    scores = [key for key in seen if key[0] == "ferry_drift_score" and key[1] >= v2]
    assert len(scores) == 33  # 30 features and 3 outputs, from the profile
    results = running.server.capture.store.results("bc", 2)
    assert any(r.kind == "dataset" and r.verdict == "drift" for r in results)


def _until_drift_detected(running: RunningServer, version: str,
                          timeout_s: float = 30.0) -> dict[tuple[str, frozenset[str]], float]:
    deadline = time.monotonic() + timeout_s
    key = ("ferry_drift_detected", labels(model="bc", version=version))
    while time.monotonic() < deadline:
        seen = gauges(running)
        score = [v for k, v in seen.items() if k[0] == "ferry_drift_score"]
        if seen.get(key) == 1.0 and not any(math.isnan(v) for v in score):
            return seen
        time.sleep(EVERY_S / 3)
    raise AssertionError(f"ferry_drift_detected never reached 1: {gauges(running)}")


def test_drift_every_is_validated_and_zero_turns_it_off() -> None:
    with pytest.raises(InvalidInputError, match="drift_every_s"):
        ServeSettings(drift_every_s=-1)
    assert ServeSettings(drift_every_s=0).drift_every_s == 0

    result = CliRunner().invoke(app, ["serve", "--drift-every", "5x"])
    assert result.exit_code == 2 and "--drift-every" in result.stderr


def test_the_cli_default_is_the_servers() -> None:
    default = inspect.signature(ferry.cli.serve.serve).parameters["drift_every"].default
    seconds = parse_duration(default, "--drift-every").total_seconds()
    assert seconds == ServeSettings().drift_every_s
