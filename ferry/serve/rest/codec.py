"""REST bodies <-> data plane types: V2 JSON (nested or flat data) and Triton's binary tensor
extension (a JSON header of `Inference-Header-Content-Length` bytes, then raw tensors)."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import orjson

from ferry.errors import InvalidInputError
from ferry.serve.datatypes import BYTES, numpy_dtype
from ferry.serve.rest.json_tensors import from_json, json_type
from ferry.serve.tensors import checked_shape, from_raw, to_raw
from ferry.serve.types import (
    InferenceRequest,
    InferenceResponse,
    InferInput,
    InferOutput,
    RequestedOutput,
    TensorMetadata,
)

BINARY_SIZE = "binary_data_size"
BINARY_OUTPUT = "binary_data_output"
BINARY_DATA = "binary_data"
SHARED_MEMORY = "shared_memory_region"
CLASSIFICATION = "classification"


def loads(body: bytes | memoryview) -> Any:
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise InvalidInputError(f"invalid JSON body: {exc}") from exc


def decode_request(body: bytes, header_length: int | None = None,
                   single_input: TensorMetadata | None = None) -> InferenceRequest:
    """An inference request from a JSON body, or a JSON header followed by binary tensors."""
    if header_length == 0:
        return _raw_request(body, single_input)
    if header_length is not None and not 0 < header_length <= len(body):
        raise InvalidInputError(
            f"Inference-Header-Content-Length {header_length} does not fit a body of"
            f" {len(body)} bytes")
    view = memoryview(body)
    document = loads(view[:header_length] if header_length else body)
    binary = view[header_length:] if header_length else view[:0]
    if not isinstance(document, dict):
        raise InvalidInputError("the request body must be a JSON object with 'inputs'")
    return _request(document, binary)


def _request(document: dict[str, Any], binary: memoryview) -> InferenceRequest:
    inputs = document.get("inputs")
    if not isinstance(inputs, list) or not inputs:
        raise InvalidInputError("'inputs' must be a non-empty list of tensors")
    offset, decoded = 0, []
    for position, item in enumerate(inputs):
        tensor, offset = _input(item, position, binary, offset)
        decoded.append(tensor)
    if offset != len(binary):
        raise InvalidInputError(
            f"{len(binary) - offset} bytes of binary data follow the tensors that use them")
    parameters = _parameters(document.get("parameters"))
    _flag(parameters, BINARY_OUTPUT, "parameters")
    return InferenceRequest(inputs=decoded, outputs=_outputs(document.get("outputs")),
                            id=_request_id(document.get("id")), parameters=parameters)


def _request_id(value: Any) -> str | None:
    if value is None or isinstance(value, str):
        return value
    raise InvalidInputError(f"'id' must be a string, got {json_type(value)}")


def _input(item: Any, position: int, binary: memoryview,
           offset: int) -> tuple[InferInput, int]:
    if not isinstance(item, dict):
        raise InvalidInputError(f"inputs[{position}] must be an object")
    name, datatype, shape = _tensor_header(item, position)
    parameters = _parameters(item.get("parameters"), "input", name)
    if SHARED_MEMORY in parameters:
        raise InvalidInputError(f"input {name!r}: shared memory is not supported: send the"
                                " tensor in 'data' or as binary data")
    if BINARY_SIZE in parameters:
        size = _binary_size(parameters[BINARY_SIZE], name, len(binary) - offset)
        data = from_raw(binary[offset:offset + size], datatype, shape, name)
        return InferInput(name, datatype, shape, data, parameters), offset + size
    if "data" not in item:
        raise InvalidInputError(f"input {name!r} has neither 'data' nor binary_data_size")
    return InferInput(name, datatype, shape, from_json(item["data"], datatype, shape, name),
                      parameters), offset


def _binary_size(size: Any, name: str, left: int) -> int:
    if type(size) is not int or not 0 <= size <= left:
        raise InvalidInputError(f"input {name!r}: binary_data_size must be a number of bytes"
                                f" from 0 to the {left} bytes of binary data left, got"
                                f" {size!r:.40}")
    return size


def _tensor_header(item: dict[str, Any], position: int) -> tuple[str, str, tuple[int, ...]]:
    name, datatype, shape = item.get("name"), item.get("datatype"), item.get("shape")
    if not isinstance(name, str) or not name:
        raise InvalidInputError(f"inputs[{position}].name must be a non-empty string")
    if not isinstance(datatype, str):
        raise InvalidInputError(f"input {name!r}: 'datatype' must be a string such as FP32")
    try:
        numpy_dtype(datatype)
    except InvalidInputError as exc:
        raise InvalidInputError(f"input {name!r}: {exc}") from None
    if not isinstance(shape, list):
        raise InvalidInputError(f"input {name!r}: 'shape' must be a list of sizes >= 0")
    return name, datatype, checked_shape(shape, name)


def _raw_request(body: bytes, single_input: TensorMetadata | None) -> InferenceRequest:
    if single_input is None:
        raise InvalidInputError("a raw binary request (header length 0) needs a model with"
                                " exactly one input")
    shape = list(single_input.shape)
    element = 1 if single_input.datatype == BYTES else numpy_dtype(single_input.datatype).itemsize
    known = math.prod([d for d in shape[1:] if d > 0] or [1])
    shape = [1, *[d if d > 0 else len(body) // (element * known) for d in shape[1:]]]
    data = from_raw(memoryview(body), single_input.datatype, tuple(shape), single_input.name)
    return InferenceRequest(inputs=[InferInput(single_input.name, single_input.datatype,
                                               tuple(shape), data)],
                            parameters={BINARY_OUTPUT: True})


def _outputs(value: Any) -> list[RequestedOutput] | None:
    if value is None:
        return None
    if not isinstance(value, list):
        raise InvalidInputError("'outputs' must be a list of {\"name\": ...} objects")
    return [_output(item, position) for position, item in enumerate(value)]


def _output(item: Any, position: int) -> RequestedOutput:
    if not isinstance(item, dict) or not isinstance(item.get("name"), str) or not item["name"]:
        raise InvalidInputError(f"outputs[{position}] must be an object with a 'name'")
    name = item["name"]
    parameters = _parameters(item.get("parameters"), "output", name)
    if SHARED_MEMORY in parameters:
        raise InvalidInputError(f"output {name!r}: shared memory is not supported")
    if CLASSIFICATION in parameters:
        raise InvalidInputError(f"output {name!r}: the classification extension is not"
                                " supported: ask for the output without 'classification'")
    _flag(parameters, BINARY_DATA, f"output {name!r}: parameters")
    return RequestedOutput(name, parameters)


def _parameters(value: Any, tensor: str = "", name: str = "") -> dict[str, Any]:
    """A parameters object (of the request, or of the `tensor` "input" or "output" `name`):
    its values strings, numbers or booleans, as Triton takes them."""
    if value is None:
        return {}
    where = f"{tensor} {name!r}: parameters" if tensor else "parameters"
    if not isinstance(value, dict):
        raise InvalidInputError(f"{where} must be an object")
    for key, item in value.items():
        if not isinstance(item, str | int | float):
            raise InvalidInputError(f"{where}[{key!r}] must be a string, number or boolean,"
                                    f" got {json_type(item)}")
    return value


def _flag(parameters: dict[str, Any], key: str, where: str) -> None:
    if key in parameters and not isinstance(parameters[key], bool):
        raise InvalidInputError(f"{where}[{key!r}] must be true or false, got"
                                f" {json_type(parameters[key])}")


def encode_response(response: InferenceResponse,
                    request: InferenceRequest) -> tuple[bytes, int | None]:
    """The response body and, when it carries binary tensors, the JSON header's length."""
    binary_all = bool(request.parameters.get(BINARY_OUTPUT, False))
    asked = {o.name: o.parameters for o in request.outputs or []}
    header: dict[str, Any] = {"model_name": response.model_name,
                              "model_version": response.model_version}
    if response.id is not None:
        header["id"] = response.id
    outputs, chunks = [], []
    for output in response.outputs:
        binary = bool(asked.get(output.name, {}).get(BINARY_DATA, binary_all))
        entry: dict[str, Any] = {"name": output.name, "datatype": output.datatype,
                                 "shape": list(output.shape)}
        if binary:
            chunk = to_raw(output.datatype, output.data)
            entry["parameters"] = {BINARY_SIZE: len(chunk)}
            chunks.append(chunk)
        else:
            entry["data"] = _json_data(output)
        outputs.append(entry)
    header["outputs"] = outputs
    text = orjson.dumps(header, option=orjson.OPT_SERIALIZE_NUMPY)
    if not chunks:
        return text, None
    return b"".join([text, *chunks]), len(text)


def _json_data(output: InferOutput) -> Any:
    if output.datatype == BYTES:
        return [v.decode(errors="replace") if isinstance(v, bytes) else str(v)
                for v in output.data.reshape(-1)]
    flat = output.data.reshape(-1)
    return flat if flat.flags.c_contiguous else np.ascontiguousarray(flat)


def dumps(document: Any) -> bytes:
    return orjson.dumps(document, option=orjson.OPT_SERIALIZE_NUMPY)
