"""gRPC messages <-> data plane types.

A `ModelInferRequest` carries its tensors either as typed `contents` on each input or as
`raw_input_contents` (one little-endian, row-major blob per input, in the inputs' order; a
BYTES element is a 4-byte little-endian length then its bytes), never both. tritonclient
sends raw contents. The response always answers in `raw_output_contents`, as Triton does:
clients index into it whatever form their request took.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, MutableMapping
from typing import Any

import numpy as np

from ferry.errors import InvalidInputError
from ferry.serve.datatypes import BYTES, numpy_dtype
from ferry.serve.grpc.generated import inference_pb2 as pb
from ferry.serve.tensors import checked_shape, from_raw, to_raw
from ferry.serve.types import (
    InferenceRequest,
    InferenceResponse,
    InferInput,
    InferOutput,
    Parameters,
    RequestedOutput,
)

_INT64 = (-(2**63), 2**63 - 1)
_UINT64_MAX = 2**64 - 1

# The InferTensorContents field of each datatype, and the numpy type that field holds.
_CONTENTS: dict[str, tuple[str, np.dtype[Any]]] = {
    "BOOL": ("bool_contents", np.dtype(np.bool_)),
    "INT8": ("int_contents", np.dtype(np.int32)),
    "INT16": ("int_contents", np.dtype(np.int32)),
    "INT32": ("int_contents", np.dtype(np.int32)),
    "INT64": ("int64_contents", np.dtype(np.int64)),
    "UINT8": ("uint_contents", np.dtype(np.uint32)),
    "UINT16": ("uint_contents", np.dtype(np.uint32)),
    "UINT32": ("uint_contents", np.dtype(np.uint32)),
    "UINT64": ("uint64_contents", np.dtype(np.uint64)),
    "FP32": ("fp32_contents", np.dtype(np.float32)),
    "FP64": ("fp64_contents", np.dtype(np.float64)),
    BYTES: ("bytes_contents", np.dtype(object)),
}
_PARAMETER_FIELDS = "bool_param, int64_param, string_param, double_param or uint64_param"
SHARED_MEMORY = "shared_memory_region"
CLASSIFICATION = "classification"


def model_of(name: str, version: str, field: str = "model_name") -> tuple[str, str | None]:
    """The model name and version of a request; an empty version means the server's choice."""
    if not name:
        raise InvalidInputError(f"{field} must name a served model")
    return name, version or None


# ---- requests -------------------------------------------------------------------------------

def decode_request(message: pb.ModelInferRequest) -> InferenceRequest:
    """The data plane's request from a ModelInferRequest, checked field by field."""
    if not message.inputs:
        raise InvalidInputError("'inputs' must be a non-empty list of tensors")
    raw = message.raw_input_contents
    for position, tensor in enumerate(message.inputs):
        _check_carrier(tensor, position, message.model_name, bool(raw))
    if raw and len(raw) != len(message.inputs):
        raise InvalidInputError(
            f"raw_input_contents has {len(raw)} entries for {len(message.inputs)} inputs:"
            " raw_input_contents[i] must hold the bytes of inputs[i]")
    inputs = [_input(tensor, position, raw[position] if raw else None)
              for position, tensor in enumerate(message.inputs)]
    return InferenceRequest(inputs=inputs, outputs=_outputs(message.outputs),
                            id=message.id or None,
                            parameters=decode_parameters(message.parameters, "parameters"))


def _check_carrier(tensor: pb.ModelInferRequest.InferInputTensor, position: int, model: str,
                   raw: bool) -> None:
    """Each input comes in typed contents or raw_input_contents (not shared memory, not both),
    refused in Triton's words, which clients match."""
    name = tensor.name or f"inputs[{position}]"
    if SHARED_MEMORY in tensor.parameters:
        raise InvalidInputError(f"input {name!r}: shared memory is not supported: send the"
                                " tensor in raw_input_contents")
    if raw and tensor.HasField("contents"):
        raise InvalidInputError(
            f"contents field must not be specified when using raw_input_contents for '{name}'"
            f" for model '{model}': send every input in raw_input_contents, or every one in"
            " typed contents")


def _input(tensor: pb.ModelInferRequest.InferInputTensor, position: int,
           raw: bytes | None) -> InferInput:
    name = tensor.name
    if not name:
        raise InvalidInputError(f"inputs[{position}].name must be a non-empty string")
    datatype = tensor.datatype
    try:
        numpy_dtype(datatype)
    except InvalidInputError as exc:
        raise InvalidInputError(f"input {name!r}: {exc}") from None
    shape = checked_shape(tensor.shape, name)
    parameters = decode_parameters(tensor.parameters, f"inputs[{position}].parameters")
    data = (_from_contents(tensor.contents, datatype, shape, name) if raw is None
            else from_raw(raw, datatype, shape, name))
    return InferInput(name, datatype, shape, data, parameters)


def _from_contents(contents: pb.InferTensorContents, datatype: str, shape: tuple[int, ...],
                   name: str) -> np.ndarray:
    if datatype not in _CONTENTS:
        raise InvalidInputError(f"input {name!r}: {datatype} has no typed contents field:"
                                " send it in raw_input_contents")
    field, wire_dtype = _CONTENTS[datatype]
    _check_contents_field(contents, field, datatype, name)
    values = getattr(contents, field)
    count = math.prod(shape)
    if len(values) != count:
        raise InvalidInputError(f"input {name!r}: {len(values)} values in contents.{field} do"
                                f" not fill shape {list(shape)} of {datatype}")
    if datatype == BYTES:
        out = np.empty(count, dtype=object)
        out[:] = list(values)
        return out.reshape(shape)
    return _narrowed(np.fromiter(values, dtype=wire_dtype, count=count), datatype, field,
                     name).reshape(shape)


def _check_contents_field(contents: pb.InferTensorContents, field: str, datatype: str,
                          name: str) -> None:
    others = [described.name for described, _ in contents.ListFields() if described.name != field]
    if others:
        raise InvalidInputError(f"input {name!r}: {datatype} data go in contents.{field}, not"
                                f" contents.{others[0]}")


def _narrowed(wide: np.ndarray, datatype: str, field: str, name: str) -> np.ndarray:
    """Typed values in the input's datatype (INT8 travels as int32), refused out of range."""
    dtype = numpy_dtype(datatype)
    array = wide.astype(dtype)
    if dtype != wide.dtype and not np.array_equal(array, wide):
        raise InvalidInputError(f"input {name!r}: contents.{field} holds values out of the"
                                f" range of {datatype}")
    return array


def _outputs(requested: Iterable[pb.ModelInferRequest.InferRequestedOutputTensor],
             ) -> list[RequestedOutput] | None:
    outputs = []
    for position, output in enumerate(requested):
        if not output.name:
            raise InvalidInputError(f"outputs[{position}].name must be a non-empty string")
        parameters = decode_parameters(output.parameters, f"outputs[{position}].parameters")
        if SHARED_MEMORY in parameters:
            raise InvalidInputError(f"output {output.name!r}: shared memory is not supported")
        if CLASSIFICATION in parameters:
            raise InvalidInputError(f"output {output.name!r}: the classification extension is"
                                    " not supported: ask for the output without class_count")
        outputs.append(RequestedOutput(output.name, parameters))
    return outputs or None


# ---- parameters -----------------------------------------------------------------------------

def decode_parameters(parameters: Mapping[str, pb.InferParameter | pb.ModelRepositoryParameter],
                      where: str) -> Parameters:
    """A parameters dict from an InferParameter (or a repository load's
    ModelRepositoryParameter) map; each value is the oneof field that is set."""
    out: Parameters = {}
    for key, parameter in parameters.items():
        choice = parameter.WhichOneof("parameter_choice")
        if choice is None:
            raise InvalidInputError(f"{where}[{key!r}] has no value: set {_PARAMETER_FIELDS}")
        out[key] = getattr(parameter, choice)
    return out


def encode_parameters(values: Mapping[str, Any],
                      target: MutableMapping[str, pb.InferParameter]) -> None:
    """Fill an InferParameter map from a dict of bool, int, float or str (None is left out)."""
    for key, value in values.items():
        if value is not None:
            _set_parameter(target[key], key, value)


def _set_parameter(parameter: pb.InferParameter, key: str, value: Any) -> None:
    if isinstance(value, bool | np.bool_):
        parameter.bool_param = bool(value)
    elif isinstance(value, int | np.integer):
        number = int(value)
        if _INT64[0] <= number <= _INT64[1]:
            parameter.int64_param = number
        elif 0 <= number <= _UINT64_MAX:
            parameter.uint64_param = number
        else:
            raise ValueError(f"parameter {key!r}: {number} does not fit in 64 bits")
    elif isinstance(value, float | np.floating):
        parameter.double_param = float(value)
    elif isinstance(value, str):
        parameter.string_param = value
    else:
        raise TypeError(f"parameter {key!r}: a {type(value).__name__} has no InferParameter"
                        " type (bool, int, float or str)")


# ---- responses ------------------------------------------------------------------------------

def encode_response(response: InferenceResponse,
                    request: InferenceRequest) -> pb.ModelInferResponse:
    """The ModelInferResponse for `request`: its requested outputs in its order, each in
    `raw_output_contents` as Triton answers, whatever form the request's inputs took."""
    request_id = response.id if response.id is not None else request.id
    message = pb.ModelInferResponse(model_name=response.model_name,
                                    model_version=response.model_version,
                                    id=request_id or "")
    encode_parameters(response.parameters, message.parameters)
    for output in _selected(response.outputs, request.outputs):
        tensor = message.outputs.add(name=output.name, datatype=output.datatype,
                                     shape=[int(d) for d in output.shape])
        encode_parameters(output.parameters, tensor.parameters)
        message.raw_output_contents.append(to_raw(output.datatype, output.data))
    return message


def _selected(outputs: list[InferOutput],
              requested: list[RequestedOutput] | None) -> list[InferOutput]:
    if not requested:
        return outputs
    by_name = {output.name: output for output in outputs}
    return [by_name[r.name] for r in requested if r.name in by_name]
