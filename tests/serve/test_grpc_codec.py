"""The gRPC codec against tritonclient.grpc: its request builders in, its result reader out,
and our proto's field numbers against Triton's descriptor."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

tritonclient_grpc = pytest.importorskip("tritonclient.grpc")

from google.protobuf.descriptor import Descriptor  # noqa: E402
from tritonclient.grpc import InferInput, InferRequestedOutput, InferResult  # noqa: E402
from tritonclient.grpc import model_config_pb2 as model_config  # noqa: E402
from tritonclient.grpc import service_pb2 as triton  # noqa: E402
from tritonclient.grpc._utils import _get_inference_request  # noqa: E402

from ferry.errors import InvalidInputError  # noqa: E402
from ferry.serve.grpc import codec  # noqa: E402
from ferry.serve.grpc.generated import inference_pb2 as pb  # noqa: E402
from ferry.serve.types import (  # noqa: E402
    InferenceRequest,
    InferenceResponse,
    InferOutput,
    RequestedOutput,
)

ARRAYS: dict[str, tuple[str, np.ndarray]] = {
    "f32": ("FP32", np.array([[1.5, -2.0, 3.25], [0.0, 1e-3, -7.0]], dtype=np.float32)),
    "i64": ("INT64", np.array([[2**40, -3], [0, 7]], dtype=np.int64)),
    "flag": ("BOOL", np.array([True, False, True])),
    "text": ("BYTES", np.array([[b"hello", b""], ["caf\u00e9".encode(), b"\x00\xff"]],
                               dtype=object)),
    "half": ("FP16", np.array([0.5, -1.0], dtype=np.float16)),
    "u8": ("UINT8", np.array([0, 255], dtype=np.uint8)),
}


def triton_request(arrays: dict[str, tuple[str, np.ndarray]], outputs: list[Any] | None = None,
                   **kwargs: Any) -> pb.ModelInferRequest:
    """What tritonclient.grpc.InferenceServerClient.infer puts on the wire, read by our stubs."""
    inputs = [InferInput(name, list(array.shape), datatype).set_data_from_numpy(array)
              for name, (datatype, array) in arrays.items()]
    options = {"model_version": "", "request_id": "", "sequence_id": 0, "sequence_start": False,
               "sequence_end": False, "priority": 0, "timeout": None, "parameters": None}
    options.update(kwargs)
    message = _get_inference_request(model_name="m", inputs=inputs, outputs=outputs,
                                     **options)
    return pb.ModelInferRequest.FromString(message.SerializeToString())


def as_triton_result(message: pb.ModelInferResponse) -> InferResult:
    return InferResult(triton.ModelInferResponse.FromString(message.SerializeToString()))


def response_of(*outputs: tuple[str, str, np.ndarray], **kwargs: Any) -> InferenceResponse:
    return InferenceResponse("m", "3", [InferOutput(name, datatype, array.shape, array)
                                        for name, datatype, array in outputs], **kwargs)


# ---- the proto is Triton's ------------------------------------------------------------------

def _fields(descriptor: Descriptor) -> dict[str, tuple[int, int, bool, str | None]]:
    return {f.name: (f.number, f.type, f.is_repeated,
                     f.message_type.full_name if f.message_type else None)
            for f in descriptor.fields}


def _assert_same_message(ours: Descriptor, theirs: Descriptor, allowed_extra: set[str]) -> None:
    mine = _fields(ours)
    for name in allowed_extra:
        mine.pop(name, None)
    assert mine == _fields(theirs), ours.full_name
    assert {n.name for n in ours.nested_types} >= {n.name for n in theirs.nested_types}
    for nested in theirs.nested_types:
        _assert_same_message(ours.nested_types_by_name[nested.name], nested, set())


SUBSETS = {"ModelStatistics", "ModelConfig", "ModelInput", "ModelOutput", "ModelInstanceGroup",
           "ModelQueuePolicy", "ModelDynamicBatching"}
"""Messages of which ferry declares only the fields it fills (each with Triton's number)."""


def _tritons(name: str) -> Descriptor:
    if name in triton.DESCRIPTOR.message_types_by_name:
        return triton.DESCRIPTOR.message_types_by_name[name]
    return model_config.DESCRIPTOR.message_types_by_name[name]


@pytest.mark.parametrize("name", sorted(set(pb.DESCRIPTOR.message_types_by_name) - SUBSETS))
def test_every_message_matches_tritons_descriptor(name: str) -> None:
    extra = {"properties"} if name == "ModelMetadataResponse" else set()  # OIP-only field 6
    _assert_same_message(pb.DESCRIPTOR.message_types_by_name[name], _tritons(name), extra)


@pytest.mark.parametrize("name", sorted(SUBSETS))
def test_subset_messages_use_tritons_field_numbers_and_types(name: str) -> None:
    mine, theirs = _fields(pb.DESCRIPTOR.message_types_by_name[name]), _fields(_tritons(name))
    assert mine
    assert {field: theirs[field] for field in mine} == mine


def test_data_types_are_tritons() -> None:
    ours = {v.name: v.number for v in pb.DESCRIPTOR.enum_types_by_name["DataType"].values}
    assert ours == {v.name: v.number
                    for v in model_config.DESCRIPTOR.enum_types_by_name["DataType"].values}


def test_every_rpc_matches_tritons_service() -> None:
    ours = pb.DESCRIPTOR.services_by_name["GRPCInferenceService"]
    theirs = triton.DESCRIPTOR.services_by_name["GRPCInferenceService"]
    assert ours.full_name == theirs.full_name == "inference.GRPCInferenceService"
    assert len(ours.methods) == 11
    for method in ours.methods:
        twin = theirs.methods_by_name[method.name]
        assert (method.input_type.full_name, method.output_type.full_name) == (
            twin.input_type.full_name, twin.output_type.full_name)
        assert not method.client_streaming and not method.server_streaming


# ---- requests -------------------------------------------------------------------------------

def test_raw_request_from_tritonclient_decodes_every_datatype() -> None:
    message = triton_request(ARRAYS, request_id="req-1")
    request = codec.decode_request(message)
    assert request.id == "req-1"
    assert request.outputs is None
    assert [i.name for i in request.inputs] == list(ARRAYS)
    for decoded in request.inputs:
        datatype, expected = ARRAYS[decoded.name]
        assert decoded.datatype == datatype
        assert decoded.shape == expected.shape
        assert decoded.data.shape == expected.shape
        if datatype == "BYTES":
            assert decoded.data.dtype == object
            assert decoded.data.tolist() == expected.tolist()
        else:
            assert decoded.data.dtype == expected.dtype
            np.testing.assert_array_equal(decoded.data, expected)


def test_raw_empty_tensors() -> None:
    arrays = {"none": ("FP32", np.zeros((0, 3), dtype=np.float32)),
              "nothing": ("BYTES", np.zeros((0,), dtype=object))}
    request = codec.decode_request(triton_request(arrays))
    assert [i.data.shape for i in request.inputs] == [(0, 3), (0,)]


def test_parameters_and_requested_outputs_from_tritonclient() -> None:
    message = triton_request(
        {"f32": ARRAYS["f32"]}, outputs=[InferRequestedOutput("b"), InferRequestedOutput("a")],
        sequence_id=7, sequence_start=True, priority=2, timeout=1500,
        parameters={"mode": "fast", "strict": False, "top": 5, "ratio": 0.25})
    request = codec.decode_request(message)
    assert request.parameters == {"sequence_id": 7, "sequence_start": True,
                                  "sequence_end": False, "priority": 2, "timeout": 1500,
                                  "mode": "fast", "strict": False, "top": 5, "ratio": 0.25}
    assert [(o.name, o.parameters) for o in request.outputs or []] == [("b", {}), ("a", {})]


def test_typed_contents_decode() -> None:
    message = pb.ModelInferRequest(model_name="m", id="")
    specs: list[tuple[str, str, list[int], dict[str, Any]]] = [
        ("a", "FP32", [2, 2], {"fp32_contents": [1.0, 2.5, -3.0, 4.0]}),
        ("b", "INT8", [3], {"int_contents": [-128, 0, 127]}),
        ("c", "UINT16", [2], {"uint_contents": [0, 65535]}),
        ("d", "INT64", [1, 2], {"int64_contents": [-(2**62), 5]}),
        ("e", "UINT64", [1], {"uint64_contents": [2**64 - 1]}),
        ("f", "FP64", [2], {"fp64_contents": [0.1, -0.2]}),
        ("g", "BOOL", [2], {"bool_contents": [True, False]}),
        ("h", "BYTES", [2, 1], {"bytes_contents": [b"x", b"yz"]}),
    ]
    for name, datatype, shape, contents in specs:
        message.inputs.add(name=name, datatype=datatype, shape=shape,
                           contents=pb.InferTensorContents(**contents))
    request = codec.decode_request(message)
    assert request.id is None
    for decoded, (_, datatype, shape, contents) in zip(request.inputs, specs, strict=True):
        assert decoded.shape == tuple(shape) == decoded.data.shape
        assert decoded.data.dtype == (object if datatype == "BYTES" else
                                      np.dtype(datatype.lower().replace("fp", "float")))
        expected = next(iter(contents.values()))
        assert decoded.data.reshape(-1).tolist() == pytest.approx(expected)


def _one_input(datatype: str, shape: list[int], contents: pb.InferTensorContents | None = None,
               raw: list[bytes] | None = None) -> pb.ModelInferRequest:
    message = pb.ModelInferRequest(model_name="m", raw_input_contents=raw or [])
    tensor = message.inputs.add(name="x", datatype=datatype, shape=shape)
    if contents is not None:
        tensor.contents.CopyFrom(contents)
    return message


@pytest.mark.parametrize(("message", "match"), [
    (_one_input("FP32", [1], pb.InferTensorContents(fp32_contents=[1.0]), [b"\0\0\0\0"]),
     "contents field must not be specified when using raw_input_contents for 'x' for model"
     " 'm'"),
    (_one_input("FP32", [2], raw=[b"\0" * 7]), "7 bytes do not hold shape"),
    (_one_input("INT64", [1], raw=[b"\0" * 4]), "4 bytes do not hold shape"),
    (_one_input("FP33", [1], raw=[b"\0" * 4]), "unknown datatype 'FP33'"),
    (_one_input("FP32", [-1], raw=[b""]), "'shape' must be a list of sizes >= 0"),
    (_one_input("FP32", [3], pb.InferTensorContents(fp32_contents=[1.0, 2.0])),
     "2 values in contents.fp32_contents do not fill shape"),
    (_one_input("INT32", [1], pb.InferTensorContents(fp32_contents=[1.0])),
     "INT32 data go in contents.int_contents, not contents.fp32_contents"),
    (_one_input("INT32", [1], pb.InferTensorContents(int_contents=[1], fp32_contents=[1.0])),
     "not contents.fp32_contents"),
    (_one_input("INT8", [1], pb.InferTensorContents(int_contents=[300])),
     "out of the range of INT8"),
    (_one_input("FP16", [1], pb.InferTensorContents(fp32_contents=[1.0])),
     "FP16 has no typed contents field"),
    (_one_input("BYTES", [2], raw=[b"\x01\0\0\0a"]), "cannot hold 2 BYTES elements"),
    (_one_input("BYTES", [1], raw=[b"\x05\0\0\0ab"]),
     "BYTES element 0 of 5 bytes runs past the end of the 6 bytes"),
    (_one_input("BYTES", [2], raw=[b"\xff\xff\xff\xff" + b"\0" * 4]), "runs past the end"),
    (_one_input("FP32", [0, 2**62], raw=[b""]), "describes more than 2\\*\\*60 elements"),
    (_one_input("FP32", [1] * 65, raw=[b"\0" * 4]), "'shape' has 65 dimensions"),
    (_one_input("FP32", [2**40, 4], raw=[b"\0" * 16]), "16 bytes do not hold shape"),
    (_one_input("FP32", [2**31, 4], pb.InferTensorContents(fp32_contents=[1.0])),
     "1 values in contents.fp32_contents do not fill shape"),
    (_one_input("BYTES", [1], raw=[b"\x01\0\0\0ab"]), "1 extra bytes"),
    (_one_input("FP32", [1]), "do not fill shape"),
    (pb.ModelInferRequest(model_name="m"), "'inputs' must be a non-empty list"),
], ids=["mixed", "fp32-bytes", "int64-bytes", "datatype", "shape", "count", "wrong-field",
        "two-fields", "range", "fp16-typed", "bytes-count", "bytes-short", "bytes-huge-length",
        "zero-by-huge", "too-many-dims", "huge-shape-raw", "huge-shape-typed", "bytes-extra",
        "no-data", "no-inputs"])
def test_bad_requests_are_invalid_input(message: pb.ModelInferRequest, match: str) -> None:
    with pytest.raises(InvalidInputError, match=match):
        codec.decode_request(message)


def test_raw_contents_must_cover_every_input() -> None:
    message = triton_request({"f32": ARRAYS["f32"], "u8": ARRAYS["u8"]})
    del message.raw_input_contents[1]
    with pytest.raises(InvalidInputError, match="1 entries for 2 inputs"):
        codec.decode_request(message)


def test_unnamed_input_and_unset_parameter_are_invalid() -> None:
    message = _one_input("FP32", [0], raw=[b""])
    message.inputs[0].name = ""
    with pytest.raises(InvalidInputError, match=r"inputs\[0\]\.name"):
        codec.decode_request(message)
    message = _one_input("FP32", [0], raw=[b""])
    message.parameters["empty"].CopyFrom(pb.InferParameter())
    with pytest.raises(InvalidInputError, match=r"parameters\['empty'\] has no value"):
        codec.decode_request(message)


def test_unsupported_triton_features_are_named() -> None:
    shm = InferInput("x", [1], "FP32").set_shared_memory("region", 4)
    message = pb.ModelInferRequest.FromString(_get_inference_request(
        "m", [shm], "", "", None, 0, False, False, 0, None, None).SerializeToString())
    with pytest.raises(InvalidInputError, match="shared memory is not supported"):
        codec.decode_request(message)
    message = triton_request({"f32": ARRAYS["f32"]}, outputs=[InferRequestedOutput("p", 3)])
    with pytest.raises(InvalidInputError, match="classification extension"):
        codec.decode_request(message)


def test_model_of() -> None:
    assert codec.model_of("m", "") == ("m", None)
    assert codec.model_of("m", "2") == ("m", "2")
    with pytest.raises(InvalidInputError, match="model_name"):
        codec.model_of("", "1")


# ---- responses ------------------------------------------------------------------------------

def test_raw_response_reads_back_with_tritonclient() -> None:
    outputs = [(name, datatype, array) for name, (datatype, array) in ARRAYS.items()]
    request = codec.decode_request(triton_request({"f32": ARRAYS["f32"]}, request_id="abc"))
    message = codec.encode_response(response_of(*outputs, id="abc"), request)
    assert len(message.raw_output_contents) == len(outputs)
    result = as_triton_result(message)
    response = result.get_response()
    assert (response.model_name, response.model_version, response.id) == ("m", "3", "abc")
    for name, datatype, expected in outputs:
        got = result.as_numpy(name)
        assert result.get_output(name).datatype == datatype
        assert got.shape == expected.shape
        if datatype == "BYTES":
            assert got.tolist() == expected.tolist()
        else:
            assert got.dtype == expected.dtype
            np.testing.assert_array_equal(got, expected)


def test_requested_outputs_choose_and_order_the_outputs() -> None:
    a, b, c = (np.arange(3, dtype=np.int32) + k for k in range(3))
    request = InferenceRequest([], [RequestedOutput("c"), RequestedOutput("a")], id="q")
    message = codec.encode_response(response_of(("a", "INT32", a), ("b", "INT32", b),
                                                ("c", "INT32", c)), request)
    assert [o.name for o in message.outputs] == ["c", "a"]
    assert message.id == "q"  # the request's id when the model leaves it out
    result = as_triton_result(message)
    np.testing.assert_array_equal(result.as_numpy("c"), c)
    np.testing.assert_array_equal(result.as_numpy("a"), a)


def test_a_typed_request_is_answered_in_raw_output_contents() -> None:
    """Triton always answers raw; its explicit-contents example reads raw_output_contents[i]
    with np.frombuffer after sending int_contents."""
    message = pb.ModelInferRequest(model_name="simple")
    message.inputs.add(name="INPUT0", datatype="INT32", shape=[1, 16],
                       contents=pb.InferTensorContents(int_contents=range(16)))
    request = codec.decode_request(message)
    total = request.inputs[0].data + 1
    words = np.array(["a", "bc"], dtype=object)
    half = np.array([1.0, 0.5], dtype=np.float16)
    answer = codec.encode_response(response_of(("OUTPUT0", "INT32", total),
                                               ("w", "BYTES", words), ("h", "FP16", half)),
                                   request)
    assert len(answer.raw_output_contents) == 3
    assert not any(output.HasField("contents") for output in answer.outputs)
    sums = np.frombuffer(answer.raw_output_contents[0], dtype=np.int32)
    assert np.resize(sums, list(answer.outputs[0].shape)).tolist() == [list(range(1, 17))]
    result = as_triton_result(answer)
    assert result.as_numpy("w").tolist() == [b"a", b"bc"]
    np.testing.assert_array_equal(result.as_numpy("h"), half)


def test_bytes_outputs_that_are_not_text_are_sent_as_their_text() -> None:
    labels = np.array([3, b"raw", "caf\u00e9"], dtype=object)
    answer = codec.encode_response(response_of(("l", "BYTES", labels)), InferenceRequest([]))
    assert as_triton_result(answer).as_numpy("l").tolist() == [b"3", b"raw",
                                                               "caf\u00e9".encode()]


def test_output_is_cast_to_its_declared_datatype() -> None:
    message = codec.encode_response(
        response_of(("p", "FP32", np.array([0.25, 0.75], dtype=np.float64))),
        InferenceRequest([]))
    got = as_triton_result(message).as_numpy("p")
    assert got.dtype == np.float32 and got.tolist() == [0.25, 0.75]


def test_parameters_round_trip() -> None:
    values = {"flag": True, "count": np.int64(-3), "big": 2**63 + 1, "ratio": np.float32(0.5),
              "label": "x", "skipped": None}
    response = response_of(("o", "BOOL", np.array([True])), parameters=values)
    response.outputs[0].parameters = {"unit": "cm"}
    message = codec.encode_response(response, InferenceRequest([]))
    decoded = codec.decode_parameters(message.parameters, "parameters")
    assert decoded == {"flag": True, "count": -3, "big": 2**63 + 1, "ratio": 0.5, "label": "x"}
    assert message.parameters["big"].WhichOneof("parameter_choice") == "uint64_param"
    assert codec.decode_parameters(message.outputs[0].parameters, "p") == {"unit": "cm"}
    with pytest.raises(TypeError, match="'blob'"):
        codec.encode_parameters({"blob": b"x"}, pb.ModelInferResponse().parameters)
    with pytest.raises(ValueError, match="64 bits"):
        codec.encode_parameters({"huge": 2**64}, pb.ModelInferResponse().parameters)
