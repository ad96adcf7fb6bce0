"""Capture: one event per inference request and a sample of its rows, in the monitoring store,
off the request path; drops counted, never blocking; flushed at shutdown; a SIGKILL loses at
most the last flush interval."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import tritonclient.grpc as triton_grpc
import tritonclient.http as triton_http
from conftest import build_registry
from scipy import stats
from serve_process import start_serve

from ferry.monitor.capture.queue import Capture
from ferry.monitor.capture.sampler import GivenRows, Sampler
from ferry.monitor.capture.settings import CaptureSettings
from ferry.monitor.store import MemoryStore, open_store
from ferry.registry import Registry
from ferry.serve.batching import BatchSettings, DynamicBatcher, QueuedRequest
from ferry.serve.capture import RecorderCapture
from ferry.serve.server import RunningServer, serve_in_thread
from ferry.serve.settings import ServeSettings
from ferry.signature import Signature, TensorSpec

MEMORY = "memory://"


def serve(registry: Registry, capture: CaptureSettings) -> RunningServer:
    settings = ServeSettings(batching=BatchSettings(), capture=capture)
    return serve_in_thread([], registry=registry, settings=settings)


def iris_row(x: np.ndarray, i: int) -> dict[str, Any]:
    return {"inputs": [{"name": "X", "datatype": "FP32", "shape": [1, 4],
                        "data": x[i].tolist()}], "id": f"req-{i}"}


@pytest.fixture(scope="module")
def iris(tmp_path_factory: pytest.TempPathFactory) -> tuple[Registry, np.ndarray]:
    return build_registry(tmp_path_factory.mktemp("capture"))


def post(running: RunningServer, path: str, document: Any) -> int:
    client = triton_http.InferenceServerClient(running.http_url.removeprefix("http://"))
    response = client._post(path, json.dumps(document), None, None)  # raw V2 JSON body
    return int(response.status_code)


def test_every_request_becomes_one_event_with_its_fields(
        iris: tuple[Registry, np.ndarray]) -> None:
    registry, x = iris
    running = serve(registry, CaptureSettings(store_url=MEMORY))
    try:
        for i in range(5):
            assert post(running, "v2/models/iris/versions/production/infer", iris_row(x, i)) == 200
        grpc = triton_grpc.InferenceServerClient(running.grpc_address)
        tensor = triton_grpc.InferInput("X", [3, 4], "FP32")
        tensor.set_data_from_numpy(x[:3])
        grpc.infer("iris", [tensor], model_version="2", request_id="grpc-1")
        wrong_name = {"inputs": [{"name": "Z", "datatype": "FP32", "shape": [1, 4],
                                  "data": x[0].tolist()}], "id": "bad-1"}
        assert post(running, "v2/models/iris/infer", wrong_name) == 400
    finally:
        running.stop()
    store = running.server.capture.store
    events = store.events("iris").to_pylist()
    assert len(events) == 7
    by_id = {e["request_id"]: e for e in events}
    first = by_id["req-0"]
    assert (first["model"], first["version"], first["alias"], first["protocol"],
            first["status"]) == ("iris", 1, "production", "rest", "ok")
    assert first["latency_s"] > 0 and first["batch_size"] >= 1 and first["request_bytes"] > 0
    assert by_id["grpc-1"]["protocol"] == "grpc" and by_id["grpc-1"]["version"] == 2
    assert by_id["grpc-1"]["alias"] is None
    failed = [e for e in events if e["status"] != "ok"]
    assert len(failed) == 1 and failed[0]["error_type"] == failed[0]["status"]
    assert failed[0]["request_id"] == "bad-1"  # the client's id, though refused
    rows = store.samples("iris", 1).to_pylist()
    assert len(rows) == 5
    assert {"output:label", "output:probabilities[0]"} <= set(rows[0])


def test_a_full_queue_drops_and_counts_never_blocks(iris: tuple[Registry, np.ndarray]) -> None:
    registry, x = iris
    capture = CaptureSettings(store_url=MEMORY, queue_size=4, flush_interval_s=60.0,
                              flush_events=10_000)
    running = serve(registry, capture)
    try:
        for i in range(10):
            assert post(running, "v2/models/iris/infer", iris_row(x, i)) == 200
        running.server.metrics.flush()
        exposition = running.server.metrics.exposition().decode()
    finally:
        running.stop()
    assert 'ferry_capture_dropped_total{reason="queue_full"} 6.0' in exposition
    assert len(running.server.capture.store.events("iris")) == 4  # the queued ones, at close


def test_capture_under_load_loses_nothing_when_the_queue_has_room(
        iris: tuple[Registry, np.ndarray]) -> None:
    registry, x = iris
    running = serve(registry, CaptureSettings(store_url=MEMORY, flush_interval_s=0.05,
                                              sample_rows_per_s=50))
    started = time.time()
    try:
        with ThreadPoolExecutor(16) as pool:
            codes = list(pool.map(lambda i: post(running, "v2/models/iris/infer",
                                                 iris_row(x, i % len(x))), range(600)))
    finally:
        running.stop()
    seconds = int(time.time()) - int(started) + 1
    assert codes == [200] * 600
    store = running.server.capture.store
    assert len(store.events("iris")) == 600
    sampled = store.samples("iris", 1)
    assert 50 <= len(sampled) <= 50 * seconds


def test_rows_sampled_from_one_model_call_keep_their_request_ids_and_row_numbers() -> None:
    """The sampler takes rows from whole model calls: each kept row is named by the request
    it came from and its row there, whatever the other requests of its call; a request
    without an id gets one made up, the one its event will carry."""
    store = MemoryStore()
    capture = RecorderCapture(Capture(store, CaptureSettings(sample_rows_per_s=10_000,
                                                             flush_interval_s=60)))
    signature = Signature(inputs=(TensorSpec("x", "float32", (-1, 2)),),
                          outputs=(TensorSpec("y", "float32", (-1, 2)),))
    batcher = DynamicBatcher(lambda arrays: {"y": arrays["x"] * 2}, BatchSettings(),
                             sample=capture.batch_sampler("m", 1, signature))
    queued = asyncio.run(_one_call(batcher))
    capture.close()
    sampled = store.samples("m", 1).to_pylist()
    assert {q.timing.batch_rows for q in queued if q.timing} == {len(sampled)} == {31}
    unnamed = queued[-1].request_id
    assert unnamed and unnamed not in {f"m-{i}" for i in range(15)}
    for row in sampled:
        i = int(row["request_id"].removeprefix("m-")) if row["request_id"] != unnamed else 15
        assert (row["x[0]"], row["x[1]"], row["output:y[0]"]) == (i, row["row"], 2 * i)


async def _one_call(batcher: DynamicBatcher) -> list[QueuedRequest]:
    """16 requests of 1 to 3 rows, queued before the batcher runs: one model call. Request i
    sends rows [i, r] and has id m-i, but the last has none."""
    queued = [batcher.enqueue_request(
        {"x": np.array([[i, r] for r in range(1 + i % 3)], dtype=np.float32)}, 1 + i % 3,
        request_id=f"m-{i}" if i < 15 else "") for i in range(16)]
    await asyncio.gather(*(q.future for q in queued))
    return queued


def test_rows_of_requests_the_server_does_not_record_are_not_sampled(
        iris: tuple[Registry, np.ndarray]) -> None:
    """`/predict` is not recorded: its rows would name a request no event has."""
    registry, x = iris
    running = serve(registry, CaptureSettings(store_url=MEMORY))
    try:
        assert post(running, "v2/models/iris/predict", {"instances": x[:3].tolist()}) == 200
        assert post(running, "v2/models/iris/infer", iris_row(x, 0)) == 200
    finally:
        running.stop()
    store = running.server.capture.store
    assert store.samples("iris", 1)["request_id"].to_pylist() == ["req-0"]


def test_no_capture_records_nothing(iris: tuple[Registry, np.ndarray]) -> None:
    registry, x = iris
    running = serve(registry, CaptureSettings(enabled=False))
    try:
        assert post(running, "v2/models/iris/infer", iris_row(x, 0)) == 200
        assert running.server.capture is None
    finally:
        running.stop()


def test_sigkill_loses_at_most_the_last_flush_interval(tmp_path: Path) -> None:
    registry, x = build_registry(tmp_path)
    home = Path(os.environ["FERRY_HOME"])  # the test's own, where open_store(None) looks
    served = start_serve(home, "iris", "--grpc-port", "-1", "--no-access-log",
                         FERRY_REGISTRY_URL=registry.url or "",
                         FERRY_ARTIFACTS_URL=registry.artifacts_url or "")
    try:
        for i in range(30):
            body = json.dumps(iris_row(x, i)).encode()
            assert served.request("POST", "/v2/models/iris/infer", body)[0] == 200
        time.sleep(2.5)  # more than two flush intervals (1 s)
    finally:
        served.process.send_signal(signal.SIGKILL)
        served.process.wait(timeout=30)
    store = open_store(None)
    try:
        assert len(store.events("iris")) == 30
    finally:
        store.close()


def test_sampler_keeps_every_row_up_to_the_cap_then_a_uniform_reservoir() -> None:
    sampler = Sampler(per_second=100, seed=0)
    for i in range(5):
        sampler.add("m", 1, _rows(f"a{i}", 1000.2, 10))
    assert _kept(sampler.take(1005.0, final=False)) == 50  # under the cap: everything
    for i in range(100):
        sampler.add("m", 1, _rows(f"b{i}", 2000.5, 10))
    assert sampler.take(2000.9, final=False) == []  # the second has not ended
    sampled = sampler.take(2001.0, final=False)
    assert _kept(sampled) == 100  # over the cap: exactly the cap, drawn from the whole second
    values = np.concatenate([s.columns["x"] for s in sampled])
    assert values.min() < 100 and values.max() >= 900  # early and late rows both kept
    sampler.add("m", 1, _rows("c", 3000.1, 3))
    assert _kept(sampler.take(3000.2, final=True)) == 3  # shutdown takes the open second


def test_past_the_cap_every_row_of_a_second_is_equally_likely_to_be_kept() -> None:
    """The reservoir's jumps (algorithm L) keep a uniform sample: over 100 seconds of 5,000
    rows each, the kept rows spread evenly over the second's ten stretches of 500."""
    sampler, kept = Sampler(per_second=100, seed=7), np.zeros(10)
    for second in range(100):
        for i in range(500):
            sampler.add("m", 1, _rows(f"r{i}", second + 0.5, 10))
        for sample in sampler.take(second + 1.0, final=False):
            kept += np.bincount(np.asarray(sample.columns["x"]) // 500, minlength=10)
    assert kept.sum() == 100 * 100
    assert stats.chisquare(kept).pvalue > 0.001


def test_rows_of_different_shapes_in_one_second_are_kept_apart() -> None:
    """Rows whose tensors differ in shape share the second's slots but not its buffers: a
    slot that a row of the other shape replaced is written with that row only."""
    sampler = Sampler(per_second=20, seed=3)
    for i in range(200):
        width = 1 + i % 2
        values = np.full((1, width), float(i))
        sampler.add("m", 1, GivenRows(10.5, f"r{i}", {"x": values}))
    blocks = sampler.take(11.0, final=False)
    assert sorted(np.shape(b.columns["x"])[1] for b in blocks) == [1, 2]
    assert sum(len(b.row_requests or []) for b in blocks) == 20
    for block in blocks:
        values = np.asarray(block.columns["x"])
        assert [f"r{int(v)}" for v in values[:, 0]] == list(block.row_requests or [])
        assert {int(v) % 2 for v in values[:, 0]} == {values.shape[1] - 1}


def _rows(request_id: str, ended: float, count: int) -> GivenRows:
    start = int(request_id[1:]) * count if request_id[1:].isdigit() else 0
    return GivenRows(ended, request_id, {"x": np.arange(start, start + count)})


def _kept(samples: list[Any]) -> int:
    return sum(len(s.columns["x"]) for s in samples)


def test_settings_refuse_nonsense() -> None:
    with pytest.raises(ValueError, match="queue_size"):
        CaptureSettings(queue_size=0)
    with pytest.raises(ValueError, match="flush_interval_s"):
        replace(CaptureSettings(), flush_interval_s=0)


def test_each_event_lists_its_requests_tensors_as_they_were_sent_and_answered(
        iris: tuple[Registry, np.ndarray]) -> None:
    """Through both transports: each event's inputs and outputs with the shapes of its own
    request (1 or 3 rows), only the outputs it asked for, none for a refused request."""
    registry, x = iris
    running = serve(registry, CaptureSettings(store_url=MEMORY))
    try:
        assert post(running, "v2/models/iris/infer", iris_row(x, 0)) == 200
        three = {"inputs": [{"name": "X", "datatype": "FP32", "shape": [3, 4],
                             "data": x[:3].ravel().tolist()}],
                 "outputs": [{"name": "label"}], "id": "label-only"}
        assert post(running, "v2/models/iris/infer", three) == 200
        grpc = triton_grpc.InferenceServerClient(running.grpc_address)
        tensor = triton_grpc.InferInput("X", [2, 4], "FP32")
        tensor.set_data_from_numpy(x[:2])
        grpc.infer("iris", [tensor], request_id="grpc-2")
        wide = {"inputs": [{"name": "X", "datatype": "FP32", "shape": [1, 5],
                            "data": [0.0] * 5}], "id": "too-wide"}
        assert post(running, "v2/models/iris/infer", wide) == 400
    finally:
        running.stop()
    events = {e["request_id"]: e for e in running.server.capture.store.events("iris").to_pylist()}

    def tensors(request_id: str, kind: str) -> list[tuple[str, str, list[int]]]:
        return [(t["name"], t["datatype"], t["shape"]) for t in events[request_id][kind]]

    assert tensors("req-0", "inputs") == [("X", "FP32", [1, 4])]
    assert tensors("req-0", "outputs") == [("label", "INT64", [1]),
                                           ("probabilities", "FP32", [1, 3])]
    assert tensors("label-only", "inputs") == [("X", "FP32", [3, 4])]
    assert tensors("label-only", "outputs") == [("label", "INT64", [3])]
    assert tensors("grpc-2", "inputs") == [("X", "FP32", [2, 4])]
    assert tensors("grpc-2", "outputs") == [("label", "INT64", [2]),
                                            ("probabilities", "FP32", [2, 3])]
    assert tensors("too-wide", "outputs") == []
