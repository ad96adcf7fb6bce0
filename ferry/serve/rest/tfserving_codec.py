"""TensorFlow Serving's predict bodies <-> the data plane's types (`ferry.serve.types`).

    row format      {"instances": [row, ...]}      ->  {"predictions": [row, ...]}
    column format   {"inputs": tensor | {name: tensor}}  ->  {"outputs": tensor | {name: tensor}}

A row is the value of the model's one input, or an object of values by input name; row values
are stacked into the input's tensor and fitted to its shape from the model's metadata (a scalar
per row fills a `[-1, 1]` input). An answer row is the one output's value, or an object of
values by output name. Binary strings travel as `{"b64": "..."}` (outputs named `*_bytes` are
answered so). NaN and +-Infinity are JSON tokens both ways, as TF Serving writes them: orjson
refuses them, so a body that holds them is read, and an answer that holds them is written, by
the standard library's `json`.
"""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

import numpy as np
import orjson

from ferry.errors import InvalidInputError
from ferry.serve.datatypes import BYTES
from ferry.serve.rest.json_tensors import from_json, json_type
from ferry.serve.types import InferenceRequest, InferenceResponse, InferInput, TensorMetadata
from ferry.signature import DYNAMIC

B64 = "b64"
BINARY_OUTPUT_SUFFIX = "_bytes"
"""TF Serving answers an output whose name ends so as base64."""
DEFAULT_SIGNATURE = "serving_default"
SIGNATURE_FIELD = "signature_name"
_SAME_SHAPE = "every row must have the same shape (nested lists of equal lengths, at most 64 deep)"


class Format(StrEnum):
    """How the request gave its tensors; the answer comes back the same way."""

    ROWS = "instances"
    COLUMNS = "inputs"


@dataclass(frozen=True, slots=True)
class PredictCall:
    """A decoded predict body: the data plane's request and the format to answer in."""

    format: Format
    request: InferenceRequest


def loads(body: bytes) -> Any:
    """The JSON body; NaN, Infinity and -Infinity are allowed (TF Serving takes them)."""
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        problem = exc
    try:
        return json.loads(body)
    except (ValueError, RecursionError):
        raise InvalidInputError(f"invalid JSON body: {problem}") from None


def decode_predict(document: Any, inputs: tuple[TensorMetadata, ...]) -> PredictCall:
    """The request in a predict body, its tensors shaped for the model's `inputs`."""
    if not isinstance(document, dict):
        raise InvalidInputError("the body must be a JSON object with 'instances' (rows) or"
                                " 'inputs' (columns)")
    _check_signature(document.get(SIGNATURE_FIELD))
    given = [f for f in Format if f.value in document]
    if len(given) != 1:
        raise InvalidInputError("give the tensors in exactly one of 'instances' (rows) or"
                                f" 'inputs' (columns), got {len(given)} of them")
    form = given[0]
    values = (_row_columns(document[form], inputs) if form == Format.ROWS
              else _columns(document[form], inputs))
    by_name = {meta.name: meta for meta in inputs}
    tensors = [_input(_known(by_name, name), value) for name, value in values.items()]
    return PredictCall(form, InferenceRequest(inputs=tensors))


def _check_signature(name: Any) -> None:
    """ferry's versions have one signature, TF Serving's default."""
    if name is None or name in ("", DEFAULT_SIGNATURE):
        return
    shown = repr(name) if isinstance(name, str) else json_type(name)
    raise InvalidInputError(f"{SIGNATURE_FIELD}: serving signature name {shown:.80} not found"
                            f" in signature def: the model has only {DEFAULT_SIGNATURE!r}")


def _row_columns(instances: Any, inputs: tuple[TensorMetadata, ...]) -> dict[str, list[Any]]:
    """Each input's list of row values."""
    if not isinstance(instances, list) or not instances:
        raise InvalidInputError("'instances' must be a non-empty list: one value, or one object"
                                " of values by input name, per row")
    first = instances[0]
    if not _named(first, inputs):
        return {_single(inputs, Format.ROWS).name: instances}
    for index, row in enumerate(instances):
        if not isinstance(row, dict) or row.keys() != first.keys():
            raise InvalidInputError(_row_problem(index, row, first))
    return {name: [row[name] for row in instances] for name in first}


def _row_problem(index: int, row: Any, first: dict[str, Any]) -> str:
    if not isinstance(row, dict):
        return f"instances[{index}] must be an object of values by input name, as instances[0]"
    missing = [name for name in first if name not in row]
    if missing:
        return (f"instances[{index}] has no input {missing[0]!r:.80}: every row names the same"
                " inputs")
    extra = next(name for name in row if name not in first)
    return f"instances[{index}] has input {extra!r:.80}, which instances[0] has not"


def _columns(tensors: Any, inputs: tuple[TensorMetadata, ...]) -> dict[str, Any]:
    if not _named(tensors, inputs):
        return {_single(inputs, Format.COLUMNS).name: tensors}
    if not tensors:
        raise InvalidInputError("'inputs' is an empty object: give each input's tensor by name")
    return dict(tensors)


def _named(value: Any, inputs: tuple[TensorMetadata, ...]) -> bool:
    """Whether `value` is an object of values by input name (not one `{"b64": ...}` value)."""
    return isinstance(value, dict) and not (
        value.keys() == {B64} and all(meta.name != B64 for meta in inputs))


def _single(inputs: tuple[TensorMetadata, ...], form: Format) -> TensorMetadata:
    if len(inputs) == 1:
        return inputs[0]
    names = ", ".join(meta.name for meta in inputs)
    raise InvalidInputError(f"'{form}': the model takes {len(inputs)} inputs ({names}): give"
                            " each by name, {\"" + inputs[0].name + "\": ..., ...}")


def _known(by_name: dict[str, TensorMetadata], name: str) -> TensorMetadata:
    meta = by_name.get(name)
    if meta is None:
        raise InvalidInputError(f"unknown input {name!r:.80}: the model takes"
                                f" {', '.join(by_name)}")
    return meta


def _input(meta: TensorMetadata, value: Any) -> InferInput:
    data = _fitted(_tensor(value, meta), meta.shape)
    return InferInput(meta.name, meta.datatype, tuple(data.shape), data)


def _tensor(value: Any, meta: TensorMetadata) -> np.ndarray:
    """The JSON value as the input's datatype, checked as the V2 JSON path checks it."""
    if meta.datatype == BYTES:
        return _strings(value, meta.name)
    try:
        found = np.asarray(value)
    except ValueError:
        raise InvalidInputError(f"input {meta.name!r}: {_SAME_SHAPE}") from None
    return from_json(found, meta.datatype, found.shape, meta.name)


def _fitted(data: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """`data` reshaped to the input's fixed row shape when only sizes of 1 differ
    (a scalar per row for `[-1, 1]`); anything else is left for the model's shape check."""
    wanted = shape[1:]
    if data.ndim == 0 or not shape or data.shape[1:] == wanted or DYNAMIC in wanted:
        return data
    if _without_ones(data.shape[1:]) != _without_ones(wanted):
        return data
    return data.reshape((data.shape[0], *wanted))


def _without_ones(sizes: tuple[int, ...]) -> list[int]:
    return [size for size in sizes if size != 1]


def _strings(value: Any, name: str) -> np.ndarray:
    """BYTES data: text (UTF-8) or `{"b64": ...}` (raw bytes) elements only."""
    try:
        values = np.asarray(value, dtype=object)
    except ValueError:
        raise InvalidInputError(f"input {name!r}: {_SAME_SHAPE}") from None
    out = np.empty(values.shape, dtype=object)
    flat = out.reshape(-1)
    for index, item in enumerate(values.flat):
        flat[index] = _binary(item, name, index)
    return out


def _binary(item: Any, name: str, index: int) -> bytes:
    if isinstance(item, str):
        try:
            return item.encode()
        except UnicodeEncodeError:
            raise InvalidInputError(f"input {name!r}: element {index} is not valid Unicode"
                                    " text (a lone surrogate)") from None
    if isinstance(item, dict) and item.keys() == {B64} and isinstance(item[B64], str):
        try:
            return base64.b64decode(item[B64], validate=True)
        except ValueError:
            raise InvalidInputError(f"input {name!r}: element {index}: 'b64' is not valid"
                                    " base64") from None
    raise InvalidInputError(f"input {name!r}: element {index} must be a string or"
                            f" {{\"b64\": \"...\"}}, got {json_type(item)} ({_SAME_SHAPE})")


def encode_answer(response: InferenceResponse, form: Format) -> bytes:
    """The answer in the request's format."""
    values = {output.name: _values(output.name, output.data) for output in response.outputs}
    if form == Format.ROWS:
        document = {"predictions": _rows(values)}
    else:
        document = {"outputs": next(iter(values.values())) if len(values) == 1 else values}
    return _dumps(document, all(_finite(value) for value in values.values()))


def _values(name: str, data: np.ndarray) -> Any:
    """An output as orjson writes it: numeric arrays as they are, BYTES as nested lists."""
    if data.dtype != object:
        return data
    as_b64 = name.endswith(BINARY_OUTPUT_SUFFIX)
    return np.vectorize(lambda v: _text(v, as_b64), otypes=[object])(data).tolist()


def _text(value: Any, as_b64: bool) -> Any:
    raw = value if isinstance(value, bytes) else str(value).encode()
    if as_b64:
        return {B64: base64.b64encode(raw).decode()}
    return raw.decode(errors="replace")


def _rows(values: dict[str, Any]) -> Any:
    """One value per row, or one object per row with several outputs."""
    if len(values) == 1:
        return next(iter(values.values()))
    counts = {name: len(value) if np.ndim(value) else 0 for name, value in values.items()}
    if len(set(counts.values())) != 1:
        raise InvalidInputError(f"the outputs do not share a row count ({counts}): ask in the"
                                " column format ('inputs') instead")
    columns = {name: _indexable(value) for name, value in values.items()}
    return [{name: column[row] for name, column in columns.items()}
            for row in range(next(iter(counts.values())))]


def _indexable(value: Any) -> Any:
    """Rows whose items orjson can write: it takes no numpy integer scalars such as
    `numpy.longlong`, so one-dimensional integers and booleans become Python's."""
    if isinstance(value, np.ndarray) and value.ndim == 1 and value.dtype.kind != "f":
        return value.tolist()
    return value


def _dumps(document: dict[str, Any], finite: bool) -> bytes:
    """orjson, unless a float is not finite: orjson writes null where TF Serving writes NaN."""
    if finite:
        return orjson.dumps(document, option=orjson.OPT_SERIALIZE_NUMPY)
    return json.dumps(document, default=_plain).encode()


def _finite(value: Any) -> bool:
    return not (isinstance(value, np.ndarray) and value.dtype.kind == "f") or bool(
        np.isfinite(value).all())


def _plain(value: Any) -> Any:
    """numpy values for the standard library's `json`; floats narrower than 64 bits by their
    shortest text, as orjson writes them (0.1, not 0.10000000149011612)."""
    if not isinstance(value, np.ndarray | np.generic):
        raise TypeError(f"{type(value).__name__} is not JSON")
    if value.dtype.kind == "f" and value.dtype.itemsize < 8:
        value = np.asarray(value).astype(str).astype(np.float64)
    return value.tolist()


__all__ = ["Format", "PredictCall", "decode_predict", "encode_answer", "loads"]
