"""Hostile and malformed inference requests, over HTTP (JSON and the binary extension) and gRPC,
against `ferry serve` in a subprocess.

Each case must be refused with a 4xx / INVALID_ARGUMENT whose message names the field at fault,
leave the server ready, and (every request here is under 1 kB) raise the server's peak memory
by less than 50 MiB.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import struct
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
import numpy as np
import pytest
from conftest import build_registry
from serve_process import start_serve

from ferry.serve.grpc.generated import inference_pb2 as pb
from ferry.serve.grpc.generated import inference_pb2_grpc as pb_grpc
from ferry.serve.rest import codec

MEMORY_LIMIT_KIB = 50 * 1024
ROW = [5.1, 3.5, 1.4, 0.2]
ROW_RAW = np.array(ROW, dtype=np.float32).tobytes()
AGE_RAW = np.array([70.0], dtype=np.float32).tobytes()
Tensor = pb.ModelInferRequest.InferInputTensor


# ---- the request table ----------------------------------------------------------------------

@dataclass(frozen=True)
class Http:
    """One HTTP inference request: a body for /v2/models/{model}/infer and its headers."""

    model: str
    body: bytes
    headers: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Case:
    """A bad request in the forms that can carry it, and what its error message must say."""

    id: str
    expect: tuple[str, ...]
    http: Http | None = None
    grpc: pb.ModelInferRequest | None = None

    def param(self) -> Any:
        return pytest.param(self, id=self.id)


def x_input(data: Any, datatype: str = "FP32", shape: list[Any] | None = None,
            **extra: Any) -> dict[str, Any]:
    return {"name": "X", "datatype": datatype, "shape": shape or [1, 4], "data": data, **extra}


def json_request(inputs: list[dict[str, Any]], model: str = "iris", **document: Any) -> Http:
    return Http(model, json.dumps({"inputs": inputs, **document}).encode(),
                {"Content-Type": "application/json"})


def churn_json(plan: Any) -> Http:
    return json_request([{"name": "age", "datatype": "FP32", "shape": [1, 1], "data": [70]},
                         {"name": "plan", "datatype": "BYTES", "shape": [1, 1], "data": plan}],
                        "churn")


def binary_request(inputs: list[dict[str, Any]], chunks: list[bytes], model: str = "iris",
                   **document: Any) -> Http:
    header = json.dumps({"inputs": inputs, **document}).encode()
    return Http(model, header + b"".join(chunks),
                {"Content-Type": "application/octet-stream",
                 "Inference-Header-Content-Length": str(len(header))})


def sized(name: str, datatype: str, shape: list[int], size: Any) -> dict[str, Any]:
    return {"name": name, "datatype": datatype, "shape": shape,
            "parameters": {"binary_data_size": size}}


def churn_binary(plan_raw: bytes) -> Http:
    return binary_request([sized("age", "FP32", [1, 1], 4),
                           sized("plan", "BYTES", [1, 1], len(plan_raw))],
                          [AGE_RAW, plan_raw], "churn")


def raw_header(model: str, body: bytes, length: str) -> Http:
    return Http(model, body, {"Content-Type": "application/octet-stream",
                              "Inference-Header-Content-Length": length})


def elements(*values: bytes, lengths: list[int] | None = None) -> bytes:
    """BYTES raw data: each element a 4-byte little-endian length (or the one given), then it."""
    sizes = lengths or [len(v) for v in values]
    return b"".join(struct.pack("<I", n) + v for n, v in zip(sizes, values, strict=True))


def grpc_request(model: str, inputs: list[Tensor], raw: list[bytes] | None = None,
                 outputs: list[str] | None = None) -> pb.ModelInferRequest:
    return pb.ModelInferRequest(
        model_name=model, inputs=inputs, raw_input_contents=raw or [],
        outputs=[pb.ModelInferRequest.InferRequestedOutputTensor(name=n) for n in outputs or []])


def tensor(name: str, datatype: str, shape: list[int], **contents: Any) -> Tensor:
    typed = {"contents": pb.InferTensorContents(**contents)} if contents else {}
    return Tensor(name=name, datatype=datatype, shape=shape, **typed)


def churn_grpc(plan_raw: bytes) -> pb.ModelInferRequest:
    return grpc_request("churn", [tensor("age", "FP32", [1, 1]), tensor("plan", "BYTES", [1, 1])],
                        [AGE_RAW, plan_raw])


def nested(levels: int, value: Any) -> Any:
    for _ in range(levels):
        value = [value]
    return value


ZERO_BY_HUGE = [0, 2**62]
SEVENTY_DIMS = [1] * 70
CASES = [
    # BYTES data given as numbers or other non-strings (a number once became bytes(n))
    Case("bytes-data-integer", ("'plan'", "string"), http=churn_json([300000000])),
    Case("bytes-data-bool", ("'plan'", "string"), http=churn_json([True])),
    Case("bytes-data-object", ("'plan'", "string"), http=churn_json([{"a": 1}])),
    Case("bytes-data-ragged", ("'plan'", "string"), http=churn_json([["a", "b"], ["c"]])),
    # invalid UTF-8 in a BYTES input of a model that takes text
    Case("bytes-not-utf8", ("'plan'", "UTF-8"), http=churn_binary(elements(b"\xff\xfe")),
         grpc=churn_grpc(elements(b"\xff\xfe"))),
    Case("bytes-contents-not-utf8", ("'plan'", "UTF-8"), grpc=grpc_request("churn", [
        tensor("age", "FP32", [1, 1], fp32_contents=[70.0]),
        tensor("plan", "BYTES", [1, 1], bytes_contents=[b"\xc3"])])),
    # BYTES element lengths that run past the data
    Case("bytes-length-past-end", ("'plan'", "past the end"),
         http=churn_binary(elements(b"ab", lengths=[2**31])),
         grpc=churn_grpc(elements(b"ab", lengths=[2**31]))),
    Case("bytes-count-past-data", ("'plan'",), grpc=grpc_request(
        "churn", [tensor("age", "FP32", [1, 1]), tensor("plan", "BYTES", [2**40, 1])],
        [AGE_RAW, b"\0\0\0\0"])),
    # shapes
    Case("shape-bool", ("'X'", "shape"), http=json_request([x_input(ROW, shape=[True, 4])])),
    Case("shape-zero-by-huge", ("'X'", "shape"),
         http=json_request([x_input([], shape=ZERO_BY_HUGE)]),
         grpc=grpc_request("iris", [tensor("X", "FP32", ZERO_BY_HUGE)], [b""])),
    Case("shape-seventy-dims", ("'X'", "shape"),
         http=json_request([x_input(nested(69, [1.0]), shape=SEVENTY_DIMS)]),
         grpc=grpc_request("iris", [tensor("X", "FP32", SEVENTY_DIMS)], [b"\0\0\0\0"])),
    Case("shape-huge-little-data", ("'X'",),
         http=json_request([x_input(ROW, shape=[10**9, 10**9])]),
         grpc=grpc_request("iris", [tensor("X", "FP32", [2**40, 4])], [ROW_RAW])),
    Case("shape-huge-typed", ("'X'",), grpc=grpc_request(
        "iris", [tensor("X", "FP32", [2**31, 4], fp32_contents=ROW)])),
    # names given twice
    Case("duplicate-input", ("'X'", "more than once"),
         http=json_request([x_input(ROW), x_input(ROW)]),
         grpc=grpc_request("iris", [tensor("X", "FP32", [1, 4])] * 2, [ROW_RAW] * 2)),
    Case("duplicate-output", ("'label'", "more than once"),
         http=json_request([x_input(ROW)], outputs=[{"name": "label"}, {"name": "label"}]),
         grpc=grpc_request("iris", [tensor("X", "FP32", [1, 4])], [ROW_RAW],
                           ["label", "label"])),
    # numeric JSON data that numpy would convert silently
    Case("null-in-fp32", ("'X'", "null"), http=json_request([x_input([5.1, None, 1.4, 0.2])])),
    Case("null-nested", ("'X'", "null"), http=json_request([x_input([[5.1, None, 1.4, 0.2]])])),
    Case("strings-in-fp32", ("'X'", "string"),
         http=json_request([x_input(["5.1", "3.5", "1.4", "0.2"])])),
    Case("booleans-in-fp32", ("'X'", "boolean"),
         http=json_request([x_input([True, False, True, False])])),
    Case("numbers-in-bool", ("'X'", "true or false"),
         http=json_request([x_input([1, 0, 1, 0], "BOOL")])),
    Case("fraction-in-int32", ("'X'", "integer"),
         http=json_request([x_input([1.5, 1, 1, 1], "INT32")])),
    Case("int8-out-of-range", ("'X'", "INT8"),
         http=json_request([x_input([300, 1, 1, 1], "INT8")]),
         grpc=grpc_request("iris", [tensor("X", "INT8", [1, 4], int_contents=[300, 1, 1, 1])])),
    Case("uint8-negative", ("'X'", "UINT8"),
         http=json_request([x_input([-1, 1, 1, 1], "UINT8")])),
    Case("ragged-lists", ("'X'", "same length"),
         http=json_request([x_input([[1, 2, 3, 4], [1, 2, 3]], shape=[2, 4])])),
    Case("deep-nesting", ("'X'",), http=json_request([x_input(nested(80, 1.0), shape=[1])])),
    Case("data-scalar-string", ("'X'", "string"), http=json_request([x_input("1,2,3,4")])),
    # document fields of the wrong type
    Case("id-object", ("'id'",), http=json_request([x_input(ROW)], id={"a": 1})),
    Case("parameters-list", ("parameters",), http=json_request([x_input(ROW)], parameters=[1])),
    Case("parameter-object", ("parameters", "'nested'"),
         http=json_request([x_input(ROW)], parameters={"nested": {"a": 1}})),
    Case("binary-output-flag-string", ("binary_data_output",),
         http=json_request([x_input(ROW)], parameters={"binary_data_output": "yes"})),
    Case("binary-data-flag-number", ("'label'", "binary_data"), http=json_request(
        [x_input(ROW)], outputs=[{"name": "label", "parameters": {"binary_data": 1}}])),
    Case("parameter-null", ("parameters", "'x'"),
         http=json_request([x_input(ROW, parameters={"x": None})])),
    Case("inputs-not-list", ("inputs",), http=Http("iris", b'{"inputs": {"X": 1}}')),
    Case("empty-name", ("name",), http=json_request([{**x_input(ROW), "name": ""}])),
    Case("unknown-datatype", ("'X'", "FP33"), http=json_request([x_input(ROW, "FP33")]),
         grpc=grpc_request("iris", [tensor("X", "FP33", [1, 4])], [ROW_RAW])),
    # the binary extension's sizes and header length
    Case("binary-size-negative", ("binary_data_size",),
         http=binary_request([sized("X", "FP32", [1, 4], -1)], [ROW_RAW])),
    Case("binary-size-huge", ("binary_data_size",),
         http=binary_request([sized("X", "FP32", [1, 4], 2**62)], [ROW_RAW])),
    Case("binary-size-bool", ("binary_data_size",),
         http=binary_request([sized("X", "BOOL", [1], True)], [b"\x01"])),
    Case("header-length-past-body", ("Inference-Header-Content-Length",),
         http=raw_header("iris", b'{"inputs": []}', "5000")),
    Case("header-length-negative", ("Inference-Header-Content-Length",),
         http=raw_header("iris", b'{"inputs": []}', "-1")),
    Case("header-length-5000-digits", ("Inference-Header-Content-Length",),
         http=raw_header("iris", b'{"inputs": []}', "9" * 5000)),
    Case("raw-body-odd-size", ("'X'",), http=raw_header("iris", b"\0" * 7, "0")),
    # Triton features ferry does not offer, named rather than ignored
    Case("shared-memory-input", ("'X'", "shared memory"), http=json_request([
        {**sized("X", "FP32", [1, 4], 0),
         "parameters": {"shared_memory_region": "r", "shared_memory_byte_size": 16}}])),
    Case("classification-output", ("'label'", "classification"), http=json_request(
        [x_input(ROW)], outputs=[{"name": "label", "parameters": {"classification": 2}}])),
    # gRPC typed contents
    Case("contents-wrong-field", ("'X'", "fp32_contents", "int_contents"),
         grpc=grpc_request("iris", [tensor("X", "INT32", [1, 4], fp32_contents=ROW)])),
    Case("contents-with-raw", ("contents field must not be specified when using"
                               " raw_input_contents for 'age' for model 'churn'",),
         grpc=grpc_request("churn", [tensor("age", "FP32", [1, 1], fp32_contents=[70.0]),
                                     tensor("plan", "BYTES", [1, 1])], [AGE_RAW])),
]


# ---- the server -----------------------------------------------------------------------------

@dataclass
class Server:
    pid: int
    http_port: int
    stub: pb_grpc.GRPCInferenceServiceStub

    def post(self, request: Http) -> tuple[int, str]:
        connection = http.client.HTTPConnection("127.0.0.1", self.http_port, timeout=30)
        try:
            connection.request("POST", f"/v2/models/{request.model}/infer", body=request.body,
                               headers=request.headers)
            response = connection.getresponse()
            return response.status, response.read().decode(errors="replace")
        finally:
            connection.close()

    def http_ready(self) -> bool:
        connection = http.client.HTTPConnection("127.0.0.1", self.http_port, timeout=30)
        try:
            connection.request("GET", "/v2/health/ready")
            return connection.getresponse().status == 200
        finally:
            connection.close()

    def grpc_ready(self) -> bool:
        try:
            return bool(self.stub.ServerReady(pb.ServerReadyRequest(), timeout=30).ready)
        except grpc.RpcError:
            return False

    def peak_kib(self) -> int:
        """The server's peak resident memory (VmHWM) in KiB."""
        status = Path(f"/proc/{self.pid}/status").read_text()
        line = next(row for row in status.splitlines() if row.startswith("VmHWM:"))
        return int(line.split()[1])

    def reset_peak(self) -> None:
        """Start the peak again from the current resident memory, where Linux allows it."""
        with contextlib.suppress(OSError):
            Path(f"/proc/{self.pid}/clear_refs").write_text("5")


def _warm_up(server: Server) -> None:
    """Valid requests of every kind the cases use, so that lazy allocations happen first."""
    for _ in range(3):
        assert server.post(json_request([x_input(ROW)]))[0] == 200
        assert server.post(churn_json([["basic"]]))[0] == 200
        assert server.post(churn_binary(elements(b"pro")))[0] == 200
        server.stub.ModelInfer(grpc_request("iris", [tensor("X", "FP32", [1, 4])], [ROW_RAW]),
                               timeout=30)
        server.stub.ModelInfer(churn_grpc(elements(b"team")), timeout=30)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    home = tmp_path_factory.mktemp("bad_input")
    registry, _ = build_registry(home)
    served = start_serve(home, "iris", "churn", "--no-access-log",
                         FERRY_REGISTRY_URL=registry.url or "",
                         FERRY_ARTIFACTS_URL=registry.artifacts_url or "")
    channel = grpc.insecure_channel(f"127.0.0.1:{served.grpc_port}")
    try:
        running = Server(served.process.pid, served.http_port,
                         pb_grpc.GRPCInferenceServiceStub(channel))
        served.wait_for(running.grpc_ready, "the gRPC server answering ready")
        _warm_up(running)
        yield running
    finally:
        channel.close()
        served.stop()


# ---- the tests ------------------------------------------------------------------------------

def _assert_names_the_field(message: str, case: Case) -> None:
    for expected in case.expect:
        assert expected in message, f"{case.id}: {expected!r} not in {message!r}"


@pytest.mark.parametrize("case", [c.param() for c in CASES if c.http])
def test_http_refuses_with_400_naming_the_field(server: Server, case: Case) -> None:
    assert case.http is not None and len(case.http.body) < 1024
    server.reset_peak()
    before = server.peak_kib()

    status, body = server.post(case.http)

    assert 400 <= status < 500, (status, body)
    _assert_names_the_field(json.loads(body)["error"], case)
    assert server.http_ready()
    assert server.peak_kib() - before < MEMORY_LIMIT_KIB


@pytest.mark.parametrize("case", [c.param() for c in CASES if c.grpc])
def test_grpc_refuses_with_invalid_argument_naming_the_field(server: Server, case: Case) -> None:
    assert case.grpc is not None and case.grpc.ByteSize() < 1024
    server.reset_peak()
    before = server.peak_kib()

    with pytest.raises(grpc.RpcError) as info:
        server.stub.ModelInfer(case.grpc, timeout=30)

    error: Any = info.value
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT, error.details()
    _assert_names_the_field(error.details(), case)
    assert server.grpc_ready()
    assert server.peak_kib() - before < MEMORY_LIMIT_KIB


@pytest.mark.parametrize(("datatype", "data", "expected"), [
    ("FP32", [[1, 2.5]], np.array([[1.0, 2.5]], dtype=np.float32)),
    ("FP16", [0.5, -2], np.array([0.5, -2.0], dtype=np.float16)),
    ("FP64", [1e300, 0], np.array([1e300, 0.0])),
    ("INT8", [-128, 127], np.array([-128, 127], dtype=np.int8)),
    ("UINT8", [[0], [255]], np.array([[0], [255]], dtype=np.uint8)),
    ("INT64", [2**63 - 1, -(2**63)], np.array([2**63 - 1, -(2**63)], dtype=np.int64)),
    ("UINT64", [2**64 - 1, 0], np.array([2**64 - 1, 0], dtype=np.uint64)),
    ("BOOL", [True, False], np.array([True, False])),
    ("INT32", [], np.zeros(0, dtype=np.int32)),
    ("FP32", 7, np.array([7.0], dtype=np.float32)),
    ("BYTES", [["caf\u00e9", ""]], np.array([["caf\u00e9".encode(), b""]], dtype=object)),
    ("BYTES", "one", np.array([b"one"], dtype=object)),
])
def test_what_the_checks_refuse_is_only_what_is_bad(datatype: str, data: Any,
                                                    expected: np.ndarray) -> None:
    """The JSON checks above must not cost valid data: every datatype still decodes exactly."""
    document = {"inputs": [{"name": "t", "datatype": datatype, "shape": list(expected.shape),
                            "data": data}], "id": "r", "parameters": {"binary_data_output": True}}
    request = codec.decode_request(json.dumps(document).encode())
    decoded = request.inputs[0].data
    assert decoded.dtype == expected.dtype and decoded.shape == expected.shape
    assert decoded.tolist() == expected.tolist()
    assert (request.id, request.parameters) == ("r", {"binary_data_output": True})
