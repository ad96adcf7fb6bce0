"""Triton's own clients against ferry: tritonclient (http, http.aio, grpc, grpc.aio) calling
Triton's example models (`triton_models`) the way Triton's example programs do."""

from __future__ import annotations

import asyncio
import gzip
import http.client
import json
import queue
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from types import ModuleType
from typing import Any

import grpc
import numpy as np
import pytest
import tritonclient.grpc as grpcclient
import tritonclient.grpc.aio as grpcaio
import tritonclient.http as httpclient
import tritonclient.http.aio as httpaio
from triton_models import BUILDERS, register_examples
from tritonclient.grpc import model_config_pb2, service_pb2, service_pb2_grpc
from tritonclient.utils import InferenceServerException, deserialize_bytes_tensor

from ferry.registry import Registry
from ferry.serve.server import RunningServer, serve_in_thread
from ferry.serve.settings import ServeSettings

CONTROLLED = "simple_extra_1"
"""The model the model-control tests load, unload and override (no other test uses it)."""
MODELS = (*BUILDERS, CONTROLLED)
FIRST = np.arange(16, dtype=np.int32).reshape(1, 16)
SECOND = np.full((1, 16), -1, dtype=np.int32)
PROTOCOLS = ("http", "grpc")


@dataclass
class TritonServed:
    running: RunningServer

    @property
    def http_address(self) -> str:
        return self.running.http_url.removeprefix("http://")

    def client(self, protocol: str) -> Any:
        if protocol == "http":
            return httpclient.InferenceServerClient(self.http_address)
        return grpcclient.InferenceServerClient(self.running.grpc_address)

    def stub(self) -> service_pb2_grpc.GRPCInferenceServiceStub:
        channel = grpc.insecure_channel(self.running.grpc_address)
        return service_pb2_grpc.GRPCInferenceServiceStub(channel)


@pytest.fixture(scope="module")
def triton(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TritonServed]:
    root = tmp_path_factory.mktemp("triton")
    registry = Registry(f"sqlite:///{root / 'registry.db'}", artifacts_url=str(root / "art"))
    register_examples(registry, MODELS)
    settings = ServeSettings(poll_interval_s=0.2, admin_token=None, access_log=False)
    running = serve_in_thread([], registry=registry, settings=settings)
    yield TritonServed(running)
    running.stop()


def module_of(protocol: str) -> ModuleType:
    return httpclient if protocol == "http" else grpcclient


def pair(module: ModuleType, first: np.ndarray, second: np.ndarray,
         datatype: str = "INT32") -> list[Any]:
    """INPUT0 and INPUT1 of `module`'s InferInput, holding `first` and `second`."""
    tensors = []
    for name, values in (("INPUT0", first), ("INPUT1", second)):
        tensor = module.InferInput(name, list(values.shape), datatype)
        tensor.set_data_from_numpy(values)
        tensors.append(tensor)
    return tensors


def assert_sum_and_difference(result: Any, first: np.ndarray, second: np.ndarray) -> None:
    np.testing.assert_array_equal(result.as_numpy("OUTPUT0"), first + second)
    np.testing.assert_array_equal(result.as_numpy("OUTPUT1"), first - second)
    assert result.as_numpy("OUTPUT0").dtype == first.dtype


def error_message(call: Any) -> str:
    with pytest.raises(InferenceServerException) as raised:
        call()
    return str(raised.value.message())


# -- health and metadata -------------------------------------------------------------------

@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_health_and_model_readiness(triton: TritonServed, protocol: str) -> None:
    client = triton.client(protocol)
    assert client.is_server_live()
    assert client.is_server_ready()
    assert client.is_model_ready("simple")
    assert not client.is_model_ready("wrong_model_name")


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_model_metadata_has_the_examples_tensors(triton: TritonServed, protocol: str) -> None:
    client = triton.client(protocol)
    metadata = client.get_model_metadata("simple", **as_json(protocol))
    assert metadata["name"] == "simple"
    shapes = {tensor["name"]: (tensor["datatype"], [int(d) for d in tensor["shape"]])
              for tensor in metadata["inputs"] + metadata["outputs"]}
    assert shapes == {name: ("INT32", [-1, 16])
                      for name in ("INPUT0", "INPUT1", "OUTPUT0", "OUTPUT1")}


def as_json(protocol: str) -> dict[str, bool]:
    return {"as_json": True} if protocol == "grpc" else {}


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_server_metadata_lists_statistics_and_configuration(triton: TritonServed,
                                                            protocol: str) -> None:
    metadata = triton.client(protocol).get_server_metadata(**as_json(protocol))
    assert {"statistics", "model_configuration", "model_repository"} <= set(
        metadata["extensions"])


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_unknown_model_uses_tritons_phrase(triton: TritonServed, protocol: str) -> None:
    client = triton.client(protocol)
    inputs = pair(module_of(protocol), FIRST, SECOND)
    infer = error_message(lambda: client.infer("wrong_model_name", inputs))
    metadata = error_message(lambda: client.get_model_metadata("wrong_model_name"))
    assert infer.startswith("Request for unknown model")
    assert "Request for unknown model" in metadata


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_bad_version_string_uses_tritons_phrase(triton: TritonServed, protocol: str) -> None:
    client = triton.client(protocol)
    inputs = pair(module_of(protocol), FIRST, SECOND)
    message = error_message(
        lambda: client.infer("simple", inputs, model_version="wrong_specification"))
    assert ("failed to get model version from specified version string"
            " 'wrong_specification'") in message


# -- inference: sync, async, asyncio ------------------------------------------------------

@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_infer_sums_and_subtracts(triton: TritonServed, protocol: str) -> None:
    module = module_of(protocol)
    outputs = [module.InferRequestedOutput("OUTPUT0"), module.InferRequestedOutput("OUTPUT1")]
    result = triton.client(protocol).infer("simple", pair(module, FIRST, SECOND),
                                           outputs=outputs, request_id="r-7")
    assert_sum_and_difference(result, FIRST, SECOND)
    assert result.get_response(**as_json(protocol))["id"] == "r-7"


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_infer_without_requested_outputs_returns_both(triton: TritonServed,
                                                      protocol: str) -> None:
    result = triton.client(protocol).infer("simple", pair(module_of(protocol), FIRST, SECOND))
    assert_sum_and_difference(result, FIRST, SECOND)


def test_http_json_and_binary_tensors_mix(triton: TritonServed) -> None:
    inputs = pair(httpclient, FIRST, SECOND)
    inputs[0].set_data_from_numpy(FIRST, binary_data=False)
    outputs = [httpclient.InferRequestedOutput("OUTPUT0", binary_data=True),
               httpclient.InferRequestedOutput("OUTPUT1", binary_data=False)]
    result = triton.client("http").infer("simple", inputs, outputs=outputs)
    assert_sum_and_difference(result, FIRST, SECOND)
    assert result.get_output("OUTPUT1")["data"] == (FIRST - SECOND).ravel().tolist()


@pytest.mark.parametrize(("model", "datatype", "dtype"), [
    ("simple_int8", "INT8", np.int8), ("simple_uint8", "UINT8", np.uint8),
    ("simple_fp32", "FP32", np.float32)])
@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_each_datatype_keeps_its_type_over_a_batch(triton: TritonServed, protocol: str,
                                                   model: str, datatype: str,
                                                   dtype: type[np.generic]) -> None:
    first = np.arange(32).reshape(2, 16).astype(dtype) + 2
    second = np.full((2, 16), 2, dtype=dtype)
    inputs = pair(module_of(protocol), first, second, datatype)
    assert_sum_and_difference(triton.client(protocol).infer(model, inputs), first, second)


def test_http_async_infer(triton: TritonServed) -> None:
    client = httpclient.InferenceServerClient(triton.http_address, concurrency=2)
    batches = [FIRST, FIRST + 100]
    pending = [client.async_infer("simple", pair(httpclient, rows, SECOND)) for rows in batches]
    for rows, request in zip(batches, pending, strict=True):
        assert_sum_and_difference(request.get_result(), rows, SECOND)


def test_grpc_async_infer_calls_back(triton: TritonServed) -> None:
    answers: queue.Queue[Any] = queue.Queue()
    triton.client("grpc").async_infer(
        "simple", pair(grpcclient, FIRST, SECOND),
        callback=lambda result, error: answers.put(error or result))
    answer = answers.get(timeout=10)
    if isinstance(answer, InferenceServerException):
        raise answer
    assert_sum_and_difference(answer, FIRST, SECOND)


def test_http_asyncio_client_infers_concurrently(triton: TritonServed) -> None:
    async def two_requests() -> list[Any]:
        client = httpaio.InferenceServerClient(triton.http_address)
        try:
            return list(await asyncio.gather(
                *(client.infer("simple", pair(httpaio, FIRST + n, SECOND)) for n in (0, 9))))
        finally:
            await client.close()

    for offset, result in zip((0, 9), asyncio.run(two_requests()), strict=True):
        assert_sum_and_difference(result, FIRST + offset, SECOND)


def test_grpc_asyncio_client_infers_concurrently(triton: TritonServed) -> None:
    async def two_requests() -> list[Any]:
        async with grpcaio.InferenceServerClient(triton.running.grpc_address) as client:
            return list(await asyncio.gather(
                *(client.infer("simple", pair(grpcaio, FIRST + n, SECOND)) for n in (0, 9))))

    for offset, result in zip((0, 9), asyncio.run(two_requests()), strict=True):
        assert_sum_and_difference(result, FIRST + offset, SECOND)


# -- strings --------------------------------------------------------------------------------

def decimal_text(values: np.ndarray) -> np.ndarray:
    return np.array([str(v).encode() for v in values.ravel()], dtype=object).reshape(
        values.shape)


@pytest.mark.parametrize(("protocol", "binary"), [("http", True), ("http", False),
                                                  ("grpc", True)])
def test_string_model_answers_in_decimal_text(triton: TritonServed, protocol: str,
                                              binary: bool) -> None:
    module = module_of(protocol)
    inputs = pair(module, decimal_text(FIRST), decimal_text(SECOND), "BYTES")
    if protocol == "http":
        for tensor, values in zip(inputs, (FIRST, SECOND), strict=True):
            tensor.set_data_from_numpy(decimal_text(values), binary_data=binary)
    result = triton.client(protocol).infer("simple_string", inputs)
    as_ints = np.vectorize(int)
    np.testing.assert_array_equal(as_ints(result.as_numpy("OUTPUT0")), FIRST + SECOND)
    np.testing.assert_array_equal(as_ints(result.as_numpy("OUTPUT1")), FIRST - SECOND)


@pytest.mark.parametrize("value", [b"he\x00llo", b"\x00\x01\x02\x03"])
@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_identity_returns_bytes_unchanged(triton: TritonServed, protocol: str,
                                          value: bytes) -> None:
    values = np.array([value] * 16, dtype=object).reshape(1, 16)
    tensor = module_of(protocol).InferInput("INPUT0", [1, 16], "BYTES")
    tensor.set_data_from_numpy(values)
    result = triton.client(protocol).infer("simple_identity", [tensor])
    np.testing.assert_array_equal(result.as_numpy("OUTPUT0"), values)


def test_int32_identity_over_a_ragged_width(triton: TritonServed) -> None:
    values = np.arange(15, dtype=np.int32).reshape(3, 5)
    for protocol in PROTOCOLS:
        tensor = module_of(protocol).InferInput("INPUT0", [3, 5], "INT32")
        tensor.set_data_from_numpy(values)
        result = triton.client(protocol).infer("custom_identity_int32", [tensor])
        np.testing.assert_array_equal(result.as_numpy("OUTPUT0"), values)


# -- gRPC with explicit (typed) contents, as grpc_explicit_*_content_client.py sends ------

def typed_request(model: str, datatype: str, field: str,
                  values: tuple[list[Any], list[Any]]) -> service_pb2.ModelInferRequest:
    request = service_pb2.ModelInferRequest(model_name=model)
    for name, data in zip(("INPUT0", "INPUT1"), values, strict=True):
        tensor = request.inputs.add(name=name, datatype=datatype, shape=[1, len(data)])
        getattr(tensor.contents, field).extend(data)
    return request


@pytest.mark.parametrize(("model", "datatype", "field", "dtype"), [
    ("simple", "INT32", "int_contents", np.int32),
    ("simple_int8", "INT8", "int_contents", np.int8),
    ("simple_uint8", "UINT8", "uint_contents", np.uint8),
    ("simple_fp32", "FP32", "fp32_contents", np.float32)])
def test_typed_contents_are_answered_in_raw_output_contents(
        triton: TritonServed, model: str, datatype: str, field: str,
        dtype: type[np.generic]) -> None:
    first, second = list(range(2, 18)), [1] * 16
    response = triton.stub().ModelInfer(typed_request(model, datatype, field, (first, second)))
    assert [output.name for output in response.outputs] == ["OUTPUT0", "OUTPUT1"]
    assert not any(output.HasField("contents") for output in response.outputs)
    decoded = [np.frombuffer(raw, dtype=dtype) for raw in response.raw_output_contents]
    np.testing.assert_array_equal(decoded[0], np.add(first, second).astype(dtype))
    np.testing.assert_array_equal(decoded[1], np.subtract(first, second).astype(dtype))


def test_typed_bytes_contents_are_answered_in_raw_output_contents(
        triton: TritonServed) -> None:
    text = ([str(i).encode() for i in range(16)], [b"1"] * 16)
    request = typed_request("simple_string", "BYTES", "bytes_contents", text)
    response = triton.stub().ModelInfer(request)
    decoded = [deserialize_bytes_tensor(raw) for raw in response.raw_output_contents]
    assert [int(v) for v in decoded[0]] == [i + 1 for i in range(16)]
    assert [int(v) for v in decoded[1]] == [i - 1 for i in range(16)]


def test_raw_and_typed_contents_together_use_tritons_phrase(triton: TritonServed) -> None:
    request = typed_request("simple", "INT32", "int_contents", (list(range(16)), [1] * 16))
    request.raw_input_contents.append(np.arange(8, dtype=np.int32).tobytes())
    with pytest.raises(grpc.RpcError) as raised:
        triton.stub().ModelInfer(request)
    assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert ("contents field must not be specified when using raw_input_contents for"
            " 'INPUT0' for model 'simple'") in str(raised.value.details())


# -- compression ----------------------------------------------------------------------------

@pytest.mark.parametrize("algorithm", ["gzip", "deflate"])
def test_http_compressed_requests_and_responses(triton: TritonServed, algorithm: str) -> None:
    result = triton.client("http").infer(
        "simple", pair(httpclient, FIRST, SECOND), request_compression_algorithm=algorithm,
        response_compression_algorithm=algorithm)
    assert_sum_and_difference(result, FIRST, SECOND)


def test_http_asyncio_compressed_request(triton: TritonServed) -> None:
    async def compressed() -> Any:
        client = httpaio.InferenceServerClient(triton.http_address)
        try:
            return await client.infer("simple", pair(httpaio, FIRST, SECOND),
                                      request_compression_algorithm="gzip",
                                      response_compression_algorithm="deflate")
        finally:
            await client.close()

    assert_sum_and_difference(asyncio.run(compressed()), FIRST, SECOND)


@pytest.mark.parametrize(("encoding", "decompress"), [
    ("gzip", gzip.decompress), ("deflate", zlib.decompress)])
def test_http_response_is_compressed_when_accepted(triton: TritonServed, encoding: str,
                                                   decompress: Any) -> None:
    """Responses over `MIN_COMPRESSED_BYTES` (40 rows here) are compressed when asked."""
    host, port = triton.http_address.split(":")
    first, second = np.repeat(FIRST, 40, axis=0), np.repeat(SECOND, 40, axis=0)
    body = json.dumps({"inputs": [
        {"name": name, "datatype": "INT32", "shape": [40, 16], "data": values.ravel().tolist()}
        for name, values in (("INPUT0", first), ("INPUT1", second))]})
    connection = http.client.HTTPConnection(host, int(port), timeout=30)
    connection.request("POST", "/v2/models/simple/infer", body=body,
                       headers={"Content-Type": "application/json", "Accept-Encoding": encoding})
    response = connection.getresponse()
    assert (response.status, response.getheader("Content-Encoding")) == (200, encoding)
    answer = json.loads(decompress(response.read()))
    connection.close()
    assert answer["outputs"][0]["data"] == (first + second).ravel().tolist()


@pytest.mark.parametrize("algorithm", ["gzip", "deflate"])
def test_grpc_compressed_calls(triton: TritonServed, algorithm: str) -> None:
    result = triton.client("grpc").infer("simple", pair(grpcclient, FIRST, SECOND),
                                         compression_algorithm=algorithm)
    assert_sum_and_difference(result, FIRST, SECOND)


# -- statistics -----------------------------------------------------------------------------

def model_stats(triton: TritonServed, protocol: str, model: str) -> dict[str, Any]:
    stats = triton.client(protocol).get_inference_statistics(model, **as_json(protocol))
    assert len(stats["model_stats"]) == 1
    return dict(stats["model_stats"][0])


def counts(stats: dict[str, Any]) -> tuple[int, int]:
    """(successful requests, inferences): gRPC's JSON gives 64-bit counts as strings."""
    return int(stats["inference_stats"]["success"]["count"]), int(stats["inference_count"])


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_statistics_count_what_was_sent(triton: TritonServed, protocol: str) -> None:
    before = counts(model_stats(triton, protocol, "simple_uint8"))
    rows = np.ones((2, 16), dtype=np.uint8)
    for client_protocol in PROTOCOLS:
        inputs = pair(module_of(client_protocol), rows, rows, "UINT8")
        triton.client(client_protocol).infer("simple_uint8", inputs)
    after = model_stats(triton, protocol, "simple_uint8")
    assert counts(after) == (before[0] + 2, before[1] + 4)
    assert int(after["last_inference"]) > 0 and int(after["execution_count"]) >= 1


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_statistics_have_tritons_sections(triton: TritonServed, protocol: str) -> None:
    triton.client(protocol).infer("simple", pair(module_of(protocol), FIRST, SECOND))
    stats = model_stats(triton, protocol, "simple")
    assert (stats["name"], stats["version"]) == ("simple", "1")
    sections = stats["inference_stats"]
    for name in ("success", "fail", "queue", "compute_input", "compute_infer",
                 "compute_output"):
        assert set(sections[name]) >= {"count", "ns"}, name
    assert int(sections["compute_infer"]["ns"]) > 0
    assert any(int(batch["batch_size"]) == 1 for batch in stats["batch_stats"])


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_statistics_of_every_model_and_of_an_unknown_one(triton: TritonServed,
                                                         protocol: str) -> None:
    client = triton.client(protocol)
    every = client.get_inference_statistics(**as_json(protocol))["model_stats"]
    assert {stats["name"] for stats in every} >= set(BUILDERS)
    message = error_message(lambda: client.get_inference_statistics("wrong_model_name"))
    assert "Request for unknown model" in message


# -- model configuration --------------------------------------------------------------------

def config_of(triton: TritonServed, protocol: str, model: str) -> dict[str, Any]:
    answer = triton.client(protocol).get_model_config(model, **as_json(protocol))
    return dict(answer["config"] if protocol == "grpc" else answer)


def tensors_of(config: dict[str, Any], key: str) -> dict[str, tuple[str, list[int]]]:
    return {t["name"]: (t["data_type"], [int(d) for d in t["dims"]]) for t in config[key]}


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_model_config_describes_the_onnx_model(triton: TritonServed, protocol: str) -> None:
    config = config_of(triton, protocol, "simple")
    assert config["name"] == "simple"
    assert "onnx" in config.get("platform", "") + config.get("backend", "")
    assert int(config["max_batch_size"]) > 0
    assert tensors_of(config, "input") == {n: ("TYPE_INT32", [16]) for n in ("INPUT0", "INPUT1")}
    assert tensors_of(config, "output") == {
        n: ("TYPE_INT32", [16]) for n in ("OUTPUT0", "OUTPUT1")}


@pytest.mark.parametrize(("model", "data_type", "dims"), [
    ("simple_string", "TYPE_STRING", [16]), ("simple_int8", "TYPE_INT8", [16]),
    ("simple_fp32", "TYPE_FP32", [16]), ("custom_identity_int32", "TYPE_INT32", [-1])])
def test_model_config_types_and_dims_without_batch_axis(triton: TritonServed, model: str,
                                                        data_type: str,
                                                        dims: list[int]) -> None:
    assert tensors_of(config_of(triton, "http", model), "input")["INPUT0"] == (data_type, dims)


def test_grpc_model_config_is_tritons_message(triton: TritonServed) -> None:
    config = triton.client("grpc").get_model_config("simple").config
    assert isinstance(config, model_config_pb2.ModelConfig)
    assert config.name == "simple"
    assert [t.data_type for t in config.input] == [model_config_pb2.TYPE_INT32] * 2
    assert [list(t.dims) for t in config.output] == [[16], [16]]


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_model_config_of_an_unknown_model(triton: TritonServed, protocol: str) -> None:
    client = triton.client(protocol)
    message = error_message(lambda: client.get_model_config("wrong_model_name"))
    assert "Request for unknown model" in message


# -- model control: repository index, load, unload, config override -----------------------

@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_repository_index_lists_every_model(triton: TritonServed, protocol: str) -> None:
    index = triton.client(protocol).get_model_repository_index(**as_json(protocol))
    entries = index["models"] if protocol == "grpc" else index
    assert sorted({entry["name"] for entry in entries}) == sorted(MODELS)


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_unload_then_load(triton: TritonServed, protocol: str) -> None:
    client = triton.client(protocol)
    client.unload_model(CONTROLLED)
    assert not client.is_model_ready(CONTROLLED)
    client.load_model(CONTROLLED)
    assert client.is_model_ready(CONTROLLED)
    result = client.infer(CONTROLLED, pair(module_of(protocol), FIRST, SECOND))
    assert_sum_and_difference(result, FIRST, SECOND)


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_load_with_a_max_batch_size_override(triton: TritonServed, protocol: str) -> None:
    client = triton.client(protocol)
    client.load_model(CONTROLLED, config='{"max_batch_size": "16"}')
    assert int(config_of(triton, protocol, CONTROLLED)["max_batch_size"]) == 16
    rows = np.ones((16, 16), dtype=np.int32)
    assert_sum_and_difference(client.infer(CONTROLLED, pair(module_of(protocol), rows, rows)),
                              rows, rows)
    client.load_model(CONTROLLED)
    assert int(config_of(triton, protocol, CONTROLLED)["max_batch_size"]) != 16


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_load_with_a_dynamic_batching_override(triton: TritonServed, protocol: str) -> None:
    client = triton.client(protocol)
    override = {"dynamic_batching": {"max_queue_delay_microseconds": 700,
                                     "preferred_batch_size": [4, 8]}}
    client.load_model(CONTROLLED, config=json.dumps(override))
    batching = config_of(triton, protocol, CONTROLLED)["dynamic_batching"]
    client.load_model(CONTROLLED)
    assert int(batching["max_queue_delay_microseconds"]) == 700
    assert [int(size) for size in batching["preferred_batch_size"]] == [4, 8]


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_load_refusals_use_tritons_phrase(triton: TritonServed, protocol: str) -> None:
    client = triton.client(protocol)
    malformed = '"parameters": {"config": {{"max_batch_size": "16"}}}'
    bad_config = error_message(lambda: client.load_model(CONTROLLED, config=malformed))
    unknown = error_message(lambda: client.load_model("wrong_model_name"))
    assert "failed to load" in bad_config and "failed to load" in unknown
    assert client.is_model_ready(CONTROLLED)


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_file_overrides_are_refused_as_bad_input(triton: TritonServed, protocol: str) -> None:
    client = triton.client(protocol)
    with pytest.raises(InferenceServerException) as raised:
        client.load_model(CONTROLLED, config="{}", files={"file:1/model.onnx": b"onnx"})
    assert raised.value.status() in ("400", "StatusCode.INVALID_ARGUMENT")
    assert "failed to load" in str(raised.value.message())
    assert client.is_server_live() and client.is_model_ready(CONTROLLED)
