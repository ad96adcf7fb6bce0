"""`ferry traffic` and `ferry log` over what a real server captured (request counts, statuses,
error rate, datatype mix, percentiles, filters, exit codes), and the report's arithmetic on
events of known times and latencies."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from sklearn.compose import ColumnTransformer
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler
from typer.testing import CliRunner

import ferry
from ferry.cli import app
from ferry.errors import InvalidInputError
from ferry.monitor.capture.settings import CaptureSettings
from ferry.monitor.events import InferenceEvent, TensorInfo
from ferry.monitor.store import MemoryStore
from ferry.registry import Registry
from ferry.serve.batching import BatchSettings
from ferry.serve.server import serve_in_thread
from ferry.serve.settings import ServeSettings

CHURN_OK, CHURN_BAD = 6, 2


def churn_model() -> tuple[Pipeline, pd.DataFrame]:
    rng = np.random.default_rng(0)
    frame = pd.DataFrame({"age": rng.integers(18, 80, 200).astype(float),
                          "plan": rng.choice(["basic", "pro", "team"], 200)})
    target = np.where((frame.age > 45) | (frame.plan == "basic"), "churn", "stay")
    prep = ColumnTransformer([("num", StandardScaler(), ["age"]),
                              ("cat", OneHotEncoder(handle_unknown="ignore"), ["plan"])])
    return Pipeline([("prep", prep), ("clf", LogisticRegression())]).fit(frame, target), frame


def build(root: Path) -> Registry:
    registry = Registry(f"sqlite:///{root / 'registry.db'}", artifacts_url=str(root / "art"))
    x, y = load_iris(return_X_y=True)
    for c in (1.0, 0.01):
        ferry.register(LogisticRegression(C=c, max_iter=500).fit(x, y), "iris",
                       sample=x.astype(np.float32), registry=registry)
    registry.set_alias("iris", "production", 1)
    model, frame = churn_model()
    ferry.register(model, "churn", sample=frame, registry=registry)
    return registry


def post(url: str, document: Any) -> int:
    request = urllib.request.Request(url, json.dumps(document).encode(),
                                     {"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return int(response.status)
    except urllib.error.HTTPError as error:
        return int(error.code)


def churn_body(i: int, rows: int = 2) -> dict[str, Any]:
    return {"id": f"churn-{i}", "inputs": [
        {"name": "age", "datatype": "FP32", "shape": [rows, 1], "data": [30.0 + i] * rows},
        {"name": "plan", "datatype": "BYTES", "shape": [rows, 1], "data": ["pro"] * rows}]}


def iris_body(i: int) -> dict[str, Any]:
    return {"id": f"iris-{i}", "inputs": [{"name": "X", "datatype": "FP32", "shape": [1, 4],
                                           "data": [5.1, 3.5, 1.4, 0.2]}]}


@pytest.fixture(scope="module")
def captured(tmp_path_factory: pytest.TempPathFactory) -> tuple[Registry, str]:
    """Traffic captured into an embedded store: churn 6 ok and 2 refused, iris 3 requests
    to @production (version 1) and 2 to version 2. Returns the registry and the store URL."""
    root = tmp_path_factory.mktemp("traffic")
    registry, store_url = build(root), f"sqlite:///{root / 'monitoring.db'}"
    settings = ServeSettings(batching=BatchSettings(), grpc_port=None,
                             capture=CaptureSettings(store_url=store_url, flush_interval_s=0.05))
    running = serve_in_thread([], registry=registry, settings=settings, grpc_port=None)
    base = running.http_url + "/v2/models"
    try:
        codes = [post(f"{base}/churn/infer", churn_body(i)) for i in range(CHURN_OK)]
        bad = churn_body(CHURN_OK)
        bad["inputs"][0]["datatype"] = "FP64"  # refused: age is FP32
        codes += [post(f"{base}/churn/infer", {**bad, "id": f"churn-bad-{i}"})
                  for i in range(CHURN_BAD)]
        codes += [post(f"{base}/iris/versions/production/infer", iris_body(i)) for i in range(3)]
        codes += [post(f"{base}/iris/versions/2/infer", iris_body(i)) for i in range(3, 5)]
    finally:
        running.stop()  # writes what the capture still holds
    assert codes == [200] * CHURN_OK + [400] * CHURN_BAD + [200] * 5
    return registry, store_url


@pytest.fixture
def environment(captured: tuple[Registry, str], monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    registry, store_url = captured
    monkeypatch.setenv("FERRY_MONITORING_URL", store_url)
    monkeypatch.setenv("FERRY_REGISTRY_URL", registry.url or "")
    monkeypatch.setenv("FERRY_ARTIFACTS_URL", registry.artifacts_url or "")
    yield


def ferry_cli(*args: str) -> tuple[int, Any, str]:
    result = CliRunner().invoke(app, list(args), prog_name="ferry")
    out = json.loads(result.stdout) if result.exit_code == 0 and "--json" in args else \
        result.stdout
    return result.exit_code, out, " ".join(result.stderr.split())


@pytest.mark.usefixtures("environment")
def test_traffic_counts_statuses_errors_and_datatypes() -> None:
    code, report, err = ferry_cli("traffic", "churn", "--json")

    assert code == 0, err
    assert report["requests"] == CHURN_OK + CHURN_BAD
    assert report["statuses"] == {"ok": CHURN_OK, "invalid_input": CHURN_BAD}
    assert report["error_rate"] == pytest.approx(CHURN_BAD / (CHURN_OK + CHURN_BAD))
    # one of each per answered request; the capture keeps no tensors of a refused one
    assert report["datatypes"] == {"FP32": CHURN_OK, "BYTES": CHURN_OK}
    latency = report["latency"]
    assert 0 < latency["p50_ms"] <= latency["p95_ms"] <= latency["p99_ms"]
    assert report["request_bytes"]["mean"] > 100 and report["response_bytes"]["p95"] > 0


@pytest.mark.usefixtures("environment")
def test_traffic_buckets_cover_the_span_and_hold_every_request() -> None:
    code, report, err = ferry_cli("traffic", "churn", "--since", "2h", "--bucket", "10m",
                                  "--json")

    assert code == 0, err
    assert len(report["buckets"]) == 12 and report["bucket_s"] == 600
    assert sum(b["requests"] for b in report["buckets"]) == CHURN_OK + CHURN_BAD
    assert sum(b["errors"] for b in report["buckets"]) == CHURN_BAD
    assert report["per_second"] == pytest.approx((CHURN_OK + CHURN_BAD) / 7200)


@pytest.mark.usefixtures("environment")
@pytest.mark.parametrize(("uri", "requests"), [("iris", 5), ("iris@production", 3),
                                               ("iris:2", 2), ("nobody", 0)])
def test_traffic_of_a_version_or_alias(uri: str, requests: int) -> None:
    code, report, err = ferry_cli("traffic", uri, "--json")
    assert code == 0, err
    assert report["requests"] == requests


@pytest.mark.usefixtures("environment")
def test_traffic_for_people_is_a_table() -> None:
    code, out, err = ferry_cli("traffic", "churn")
    assert code == 0, err
    assert "churn (every version)" in out and "latency p50 / p95 / p99 ms" in out
    assert "ok 6, invalid_input 2" in out


@pytest.mark.usefixtures("environment")
def test_log_lists_requests_oldest_first_with_their_fields() -> None:
    code, rows, err = ferry_cli("log", "churn", "--json")

    assert code == 0, err
    assert [r["request_id"] for r in rows[:CHURN_OK]] == [f"churn-{i}" for i in range(CHURN_OK)]
    assert [r["status"] for r in rows[CHURN_OK:]] == ["invalid_input"] * CHURN_BAD
    first = rows[0]
    assert (first["version"], first["protocol"], first["status"], first["batch_size"]) == (
        1, "rest", "ok", 2)
    assert first["latency_ms"] > 0 and first["request_bytes"] > 0
    assert first["response_bytes"] > 0 and first["alias"] is None


@pytest.mark.usefixtures("environment")
def test_log_filters_by_status_limit_and_alias() -> None:
    _, failed, _ = ferry_cli("log", "churn", "--status", "invalid_input", "--json")
    assert [r["status"] for r in failed] == ["invalid_input"] * CHURN_BAD

    _, newest, _ = ferry_cli("log", "churn", "--status", "ok", "--limit", "2", "--json")
    assert [r["request_id"] for r in newest] == ["churn-4", "churn-5"]

    _, production, _ = ferry_cli("log", "iris@production", "--json")
    assert [r["alias"] for r in production] == ["production"] * 3

    code, out, _ = ferry_cli("log", "iris", "--limit", "1")
    assert code == 0 and "iris-4" in out and "iris-3" not in out


@pytest.mark.usefixtures("environment")
@pytest.mark.parametrize(("args", "named"), [
    (["traffic", "churn", "--since", "1hour"], "--since"),
    (["traffic", "churn", "--since", "-1h"], "--since"),
    (["traffic", "churn", "--bucket", "0m"], "--bucket"),
    (["traffic", "churn", "--since", "30d", "--bucket", "1s"], "--bucket"),
    (["traffic", "no such model"], "model name"),
    (["log", "churn", "--since", "yesterday"], "--since"),
    (["log", "churn", "--status", "fine"], "--status"),
    (["log", "churn", "--limit", "0"], "--limit"),
])
def test_bad_flags_exit_2_naming_the_flag(args: list[str], named: str) -> None:
    code, _, err = ferry_cli(*args)
    assert code == 2
    assert named in err


def test_an_alias_that_does_not_exist_exits_1(environment: None) -> None:
    assert ferry_cli("traffic", "iris@nowhere", "--json")[0] == 1


# -- the report's arithmetic, on events of known times ---------------------------------------

NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)


def event(i: int, status: str = "ok", minutes_ago: float = 1.0) -> InferenceEvent:
    """Request `i` took i ms, sent 100 * i bytes and got 10 back."""
    return InferenceEvent(
        ts=NOW - timedelta(minutes=minutes_ago), request_id=f"e{i}", model="m", version=1,
        alias=None, protocol="rest", status=status,
        error_type=None if status == "ok" else status, latency_s=i / 1000, queue_s=0.0,
        compute_s=0.0, batch_size=1, request_bytes=100 * i, response_bytes=10,
        inputs=(TensorInfo("a", "FP32", (1, 2)), TensorInfo("b", "BYTES", (1, 1))),
        outputs=())


def test_percentiles_sizes_and_buckets_of_known_events() -> None:
    store = MemoryStore()
    store.append_events([event(i, "ok" if i <= 90 else "timeout", minutes_ago=(i % 3) + 0.5)
                         for i in range(1, 101)])
    store.append_events([event(0, minutes_ago=120)])  # before the span

    report = ferry.traffic("m", since="1h", bucket="1m", store=store, now=NOW)

    assert report.requests == 100
    assert report.per_second == pytest.approx(100 / 3600)
    assert (report.latency.p50_ms, report.latency.p95_ms, report.latency.p99_ms) == \
        pytest.approx((50.5, 95.05, 99.01))  # type: ignore[union-attr]
    assert report.request_bytes.mean == pytest.approx(5050)  # type: ignore[union-attr]
    assert report.statuses == {"ok": 90, "timeout": 10} and report.error_rate == 0.1
    assert report.datatypes == {"FP32": 100, "BYTES": 100}
    counts = [b.requests for b in report.buckets]
    assert len(counts) == 60 and counts[-3:] == [33, 34, 33] and sum(counts[:-3]) == 0
    assert report.buckets[-1].per_second == pytest.approx(33 / 60)


def test_an_empty_span_is_a_report_of_nothing() -> None:
    report = ferry.traffic("m", since="10m", bucket="5m", store=MemoryStore(), now=NOW)
    assert report.requests == 0 and report.latency is None and report.error_rate == 0
    assert [b.requests for b in report.buckets] == [0, 0]
    assert report.to_dict()["buckets"][0]["start"] == (NOW - timedelta(minutes=10)).isoformat()


def test_the_python_api_refuses_bad_spans_by_name() -> None:
    with pytest.raises(InvalidInputError, match="since"):
        ferry.traffic("m", since="soon", store=MemoryStore())
    with pytest.raises(InvalidInputError, match="bucket"):
        ferry.traffic("m", since=timedelta(days=365), bucket="1s", store=MemoryStore())
    with pytest.raises(InvalidInputError, match="status"):
        ferry.request_log("m", status="fine", store=MemoryStore())
