"""`ferry bench` against a bare V2 server (FastAPI + onnxruntime in a subprocess, see
v2_target.py), and its request encoders against tritonclient's own."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import typer
from skl2onnx import to_onnx
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression
from typer.testing import CliRunner

from ferry.cli.bench import register
from ferry.errors import InvalidInputError
from ferry.loadtest.bodies import binary_body, grpc_body, json_body, make_batches
from ferry.loadtest.httpclient import dechunk
from ferry.loadtest.metadata import TensorSpec
from ferry.loadtest.report import table_rows
from ferry.loadtest.results import StepResult, StepSamples, best_step, mark_targets, summarize
from ferry.loadtest.runner import LoadPlan, run_plan
from ferry.loadtest.target import Target, server_location, transport_factory

HERE = Path(__file__).parent
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
QUICK = ["--warmup", "0.3", "--duration", "1"]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class V2Server:
    url: str
    grpc_address: str
    pid: int


@pytest.fixture(scope="module")
def v2_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[V2Server]:
    """The iris LogisticRegression as ONNX, served by v2_target.py on free local ports."""
    X, y = load_iris(return_X_y=True)
    model = LogisticRegression(max_iter=500).fit(X, y)
    path = tmp_path_factory.mktemp("v2") / "iris.onnx"
    path.write_bytes(to_onnx(model, X[:1].astype(np.float32),
                             options={"zipmap": False}).SerializeToString())
    http_port, grpc_port = free_port(), free_port()
    env = {**os.environ, "MODEL_PATH": str(path), "MODEL_NAME": "iris",
           "GRPC_PORT": str(grpc_port)}
    process = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "--app-dir", str(HERE), "v2_target:app",
         "--host", "127.0.0.1", "--port", str(http_port), "--no-access-log",
         "--log-level", "warning"], env=env, stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE)
    url = f"http://127.0.0.1:{http_port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                urllib.request.urlopen(f"{url}/v2/health/ready", timeout=1).close()
                break
            except OSError:
                if process.poll() is not None or time.monotonic() > deadline:
                    err = process.stderr.read().decode() if process.stderr else ""
                    pytest.fail(f"the V2 test server did not start: {err[-2000:]}")
                time.sleep(0.1)
        yield V2Server(url, f"127.0.0.1:{grpc_port}", process.pid)
    finally:
        process.terminate()
        process.wait(timeout=10)


def bench(*args: str) -> tuple[int, str, str]:
    app = typer.Typer(pretty_exceptions_enable=False, add_completion=False)
    register(app)

    @app.command("other")
    def other() -> None:  # a second command, so typer keeps "bench" as a sub-command
        """Unused."""

    result = CliRunner().invoke(app, ["bench", *args])
    return result.exit_code, result.stdout, result.stderr


def one_error_line(stderr: str) -> str:
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert len(lines) == 1, stderr
    assert "Traceback" not in stderr
    return lines[0]


def test_sweep_writes_json_and_plot_and_picks_a_step(v2_server: V2Server,
                                                    tmp_path: Path) -> None:
    out_json, out_png = tmp_path / "run.json", tmp_path / "run.png"
    code, out, err = bench(v2_server.url, "--model", "iris", "--concurrency", "1,4", *QUICK,
                           "--latency-target-ms", "1000", "--output", str(out_json),
                           "--plot", str(out_png), "--server-pid", str(v2_server.pid))
    assert code == 0, err
    report = json.loads(out_json.read_text())
    steps = report["steps"]
    assert [s["level"] for s in steps] == [1, 4]
    for step in steps:
        assert step["requests"] > 0
        assert step["error_count"] == 0 and step["errors"] == {}
        assert step["p50_ms"] <= step["p90_ms"] <= step["p99_ms"] <= step["max_ms"]
        assert step["req_s"] == pytest.approx(step["requests"] / 1.0)
        assert step["server_cpu_us_per_req"] > 0
    assert report["model"]["inputs"] == [{"name": "X", "datatype": "FP32", "shape": [-1, 4]}]
    assert report["settings"]["mode"] == "concurrency"
    assert report["best"]["level"] == max(steps, key=lambda s: s["req_s"])["level"]
    assert "highest throughput with p99 <= 1000 ms" in out
    assert "c=4" in out and "srv µs/req" in out
    assert out_png.read_bytes()[:8] == PNG_MAGIC


def test_fixed_rate_sends_on_schedule(v2_server: V2Server, tmp_path: Path) -> None:
    out_json = tmp_path / "rate.json"
    code, out, err = bench(v2_server.url, "--model", "iris", "--rate", "50", *QUICK,
                           "--output", str(out_json))
    assert code == 0, err
    (step,) = json.loads(out_json.read_text())["steps"]
    assert step["mode"] == "rate"
    assert 48 <= step["sent"] <= 52
    assert step["dropped"] == 0 and step["error_count"] == 0
    assert step["requests"] == step["sent"]
    assert "50/s" in out


@pytest.mark.parametrize("transport", [["--binary", "--rows", "8"],
                                       ["--protocol", "grpc", "--rows", "3"]])
def test_binary_and_grpc_transports(v2_server: V2Server, tmp_path: Path,
                                    transport: list[str]) -> None:
    target = v2_server.grpc_address if "grpc" in transport else v2_server.url
    out_json = tmp_path / "run.json"
    code, _, err = bench(target, "--model", "iris", *transport, "--concurrency", "2",
                         "--warmup", "0.2", "--duration", "0.5", "--output", str(out_json))
    assert code == 0, err
    (step,) = json.loads(out_json.read_text())["steps"]
    assert step["requests"] > 0 and step["error_count"] == 0
    assert step["rows_per_request"] == int(transport[-1])


def test_errors_by_status_drops_and_the_time_limit(v2_server: V2Server) -> None:
    batches = make_batches([IRIS], rows=1, pool=4)
    wrong = transport_factory(Target("http", v2_server.url, "nope"), [IRIS], batches, 5.0)
    plan = LoadPlan("concurrency", (2,), warmup_s=0.1, duration_s=0.4, rows_per_request=1,
                    pool_size=len(batches))
    (step,) = run_plan(wrong, plan).results
    assert step.requests == 0 and step.p50_ms is None
    assert set(step.errors) == {"404"} and step.error_count > 0
    assert step.error_samples[0].startswith("HTTP 404")
    assert table_rows([step])[0][4] == "-"

    right = transport_factory(Target("http", v2_server.url, "iris"), [IRIS], batches, 5.0)
    flood = LoadPlan("rate", (5000,), warmup_s=0.1, duration_s=0.4, rows_per_request=1,
                     pool_size=len(batches), max_inflight=1)
    (step,) = run_plan(right, flood).results
    assert step.dropped and step.dropped > 0
    assert abs((step.sent or 0) + step.dropped - 2000) <= 2
    assert step.requests == step.sent

    bounded = LoadPlan("concurrency", (1, 2), warmup_s=0.0, duration_s=0.2, rows_per_request=1,
                       pool_size=len(batches), grace_s=0.1, time_limit_s=0.35)
    outcome = run_plan(right, bounded)
    assert [r.level for r in outcome.results] == [1] and outcome.skipped == [2]


def test_unreachable_target_is_one_line_exit_1() -> None:
    code, _, err = bench(f"http://127.0.0.1:{free_port()}", "--model", "iris", *QUICK)
    assert code == 1
    assert "cannot reach" in one_error_line(err)
    code, _, err = bench(f"127.0.0.1:{free_port()}", "--protocol", "grpc", "--model", "iris")
    assert code == 1
    assert "cannot reach" in one_error_line(err)


def test_unknown_model_is_one_line_exit_1(v2_server: V2Server) -> None:
    code, _, err = bench(v2_server.url, "--model", "nope", *QUICK)
    assert code == 1
    assert "'nope' not found" in one_error_line(err)
    code, _, err = bench(v2_server.grpc_address, "--protocol", "grpc", "--model", "nope")
    assert code == 1
    assert "'nope' not found" in one_error_line(err)


@pytest.mark.parametrize("args, message", [
    (["--concurrency", "0"], "--concurrency values"),
    (["--concurrency", "1,x"], "invalid --concurrency"),
    (["--concurrency", "1", "--rate", "5"], "not both"),
    (["--protocol", "udp"], "unknown protocol"),
    (["--duration", "0"], "--duration must be"),
    (["--latency-percentile", "p42"], "--latency-percentile"),
])
def test_bad_options_are_one_line_exit_2(args: list[str], message: str) -> None:
    code, _, err = bench("http://127.0.0.1:9", "--model", "iris", *args)
    assert code == 2
    assert message in one_error_line(err)


def test_registry_uri_needs_the_ferry_server(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "ferry.serve.server", None)  # as if not written yet
    code, _, err = bench("iris@production", *QUICK)
    assert code == 1
    assert "serving a registry URI needs the ferry server" in one_error_line(err)


def test_server_location_tells_urls_addresses_and_registry_uris_apart() -> None:
    assert server_location("http://127.0.0.1:8000/", "http") == "http://127.0.0.1:8000"
    assert server_location("127.0.0.1:8000", "http") == "http://127.0.0.1:8000"
    assert server_location("localhost:8001", "grpc") == "localhost:8001"
    assert server_location("grpc://127.0.0.1:8001", "grpc") == "127.0.0.1:8001"
    assert server_location("iris:3", "http") is None
    assert server_location("iris@production", "grpc") is None
    assert server_location("models:/iris:3", "grpc") is None
    with pytest.raises(InvalidInputError):
        server_location("http://127.0.0.1:8000", "grpc")


def result(level: float, req_s: float, p99: float, errors: int = 0) -> StepResult:
    samples = StepSamples(latencies=[p99 / 1e3] * 10)
    samples.errors["500"] += errors
    step = summarize("concurrency", level, 1.0, 1, samples)
    step.req_s = req_s
    return step


def test_latency_target_picks_the_fastest_step_that_met_it() -> None:
    steps = [result(1, 100, 2.0), result(8, 400, 4.0), result(32, 900, 20.0),
             result(16, 800, 3.0, errors=1)]
    mark_targets(steps, 5.0, "p99")
    assert [s.met_target for s in steps] == [True, True, False, False]
    best = best_step(steps)
    assert best is not None and best.level == 8
    mark_targets(steps, 1.0, "p99")
    assert best_step(steps) is None


IRIS = TensorSpec("X", "FP32", (-1, 4))
MIXED = [IRIS, TensorSpec("mask", "BOOL", (-1, 2)), TensorSpec("ids", "INT64", (-1,))]


def triton_inputs(specs: list[TensorSpec], batch: list[np.ndarray], module: Any,
                  binary: bool) -> list[Any]:
    inputs = []
    for spec, array in zip(specs, batch, strict=True):
        item = module.InferInput(spec.name, list(array.shape), spec.datatype)
        if module.__name__.endswith("http"):
            item.set_data_from_numpy(array, binary_data=binary)
        else:
            item.set_data_from_numpy(array)
        inputs.append(item)
    return inputs


def test_binary_body_matches_tritonclient_and_decodes_back() -> None:
    import tritonclient.http as triton_http

    batch = make_batches(MIXED, rows=3, pool=1, seed=1)[0]
    body, header_length = binary_body(MIXED, batch)
    expected, expected_length = triton_http.InferenceServerClient.generate_request_body(
        triton_inputs(MIXED, batch, triton_http, binary=True))
    assert json.loads(body[:header_length]) == json.loads(expected[:expected_length])
    assert body[header_length:] == expected[expected_length:]
    header, offset = json.loads(body[:header_length]), header_length
    for item, array in zip(header["inputs"], batch, strict=True):
        size = item["parameters"]["binary_data_size"]
        dtype = {"FP32": "<f4", "BOOL": "?", "INT64": "<i8"}[item["datatype"]]
        decoded = np.frombuffer(body[offset:offset + size], dtype).reshape(item["shape"])
        np.testing.assert_array_equal(decoded, array)
        offset += size
    assert offset == len(body)
    assert header["parameters"] == {"binary_data_output": True}


def test_json_body_matches_tritonclient() -> None:
    import tritonclient.http as triton_http

    batch = make_batches(MIXED, rows=2, pool=1, seed=2)[0]
    expected, length = triton_http.InferenceServerClient.generate_request_body(
        triton_inputs(MIXED, batch, triton_http, binary=False))
    assert length is None  # tritonclient also asks for binary outputs; we ask for JSON ones
    assert json.loads(json_body(MIXED, batch)) == {"inputs": json.loads(expected)["inputs"]}


def test_grpc_body_matches_tritonclient() -> None:
    import tritonclient.grpc as triton_grpc
    from tritonclient.grpc import _utils, service_pb2

    batch = make_batches(MIXED, rows=5, pool=1, seed=3)[0]
    ours = service_pb2.ModelInferRequest.FromString(grpc_body("iris", "2", MIXED, batch))
    theirs = _utils._get_inference_request(
        model_name="iris", inputs=triton_inputs(MIXED, batch, triton_grpc, binary=True),
        model_version="2", request_id="", outputs=None, sequence_id=0, sequence_start=False,
        sequence_end=False, priority=0, timeout=None, parameters=None)
    assert ours == theirs
    assert list(ours.inputs[0].shape) == [5, 4]
    np.testing.assert_array_equal(
        np.frombuffer(ours.raw_input_contents[0], "<f4").reshape(5, 4), batch[0])


def test_batches_from_data_rows_and_fixed_seed() -> None:
    data = np.arange(40, dtype=np.float64).reshape(10, 4)
    batches = make_batches([IRIS], rows=4, pool=3, data=data)
    assert [b[0].dtype for b in batches] == [np.float32] * 3
    np.testing.assert_array_equal(batches[2][0], data[[8, 9, 0, 1]])
    again = make_batches([IRIS], rows=2, pool=2, seed=7)
    np.testing.assert_array_equal(again[1][0], make_batches([IRIS], 2, 2, seed=7)[1][0])
    with pytest.raises(InvalidInputError, match="values per row"):
        make_batches([IRIS], rows=2, pool=1, data=np.zeros((5, 3)))


def test_dechunk() -> None:
    payload = b"4\r\nWiki\r\n5;ext=1\r\npedia\r\n0\r\nTrailer: x\r\n\r\nNEXT"
    assert dechunk(payload, 0) == (b"Wikipedia", len(payload) - 4)
    assert dechunk(payload[:12], 0) is None
