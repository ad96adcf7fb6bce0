"""Request bodies, built once before the load starts so sending costs no encoding.

Tensors come from seeded random numbers or from the rows of a data file (.npy, .csv, .parquet,
.json), shaped after the model metadata with the batch dimension set to the rows per request.
Three encodings:

- `json_body`: the V2 REST inference request, `data` flat and row-major.
- `binary_body`: Triton's binary tensor extension: the JSON header (each input with
  `parameters.binary_data_size`, the request with `binary_data_output: true`) followed by
  the raw little-endian tensor bytes in input order; the header's length goes in the
  `Inference-Header-Content-Length` HTTP header.
- `grpc_body`: a serialized V2 gRPC `ModelInferRequest` with the tensors in `raw_input_contents`.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from ferry.errors import InvalidInputError
from ferry.loadtest.metadata import TensorSpec, grpc_modules

DATATYPES: dict[str, np.dtype] = {
    "BOOL": np.dtype(np.bool_), "UINT8": np.dtype("<u1"), "UINT16": np.dtype("<u2"),
    "UINT32": np.dtype("<u4"), "UINT64": np.dtype("<u8"), "INT8": np.dtype("<i1"),
    "INT16": np.dtype("<i2"), "INT32": np.dtype("<i4"), "INT64": np.dtype("<i8"),
    "FP16": np.dtype("<f2"), "FP32": np.dtype("<f4"), "FP64": np.dtype("<f8"),
}
"""V2 datatypes ferry bench can generate, as little-endian numpy dtypes."""

MAX_POOL_BYTES = 256 * 1024 * 1024
"""Raw tensor bytes kept for pre-built bodies; the pool shrinks to stay under this."""

Batch = list[np.ndarray]
"""The arrays of one request, one per model input, in metadata order."""


def request_shape(spec: TensorSpec, rows: int) -> tuple[int, ...]:
    """The shape to send: a variable first dimension becomes `rows`; fixed dims stay."""
    shape = list(spec.shape)
    if shape and shape[0] < 0:
        shape[0] = rows
    if any(d < 0 for d in shape):
        raise InvalidInputError(f"input {spec.name!r} has shape {list(spec.shape)}: ferry bench"
                                " can only vary the first (batch) dimension")
    return tuple(shape)


def rows_per_request(inputs: Sequence[TensorSpec], rows: int) -> int:
    """How many rows one request carries (the first dimension of the first input)."""
    shape = request_shape(inputs[0], rows)
    return shape[0] if shape else 1


def dtype_of(spec: TensorSpec) -> np.dtype:
    try:
        return DATATYPES[spec.datatype]
    except KeyError:
        raise InvalidInputError(f"input {spec.name!r} has datatype {spec.datatype}: ferry bench"
                                f" generates {', '.join(DATATYPES)}") from None


def load_rows(path: Path) -> np.ndarray:
    """Rows from a data file as a 2-D or higher array (first axis = rows)."""
    from ferry.data import read_sample_file

    data = read_sample_file(path)
    try:
        array = np.asarray(data.to_numpy() if hasattr(data, "to_numpy") else data)
        array = array.astype(np.float64) if array.dtype == object else array
    except (TypeError, ValueError) as exc:
        raise InvalidInputError(f"{path.name} has non-numeric values: {exc}") from exc
    if array.ndim < 1 or len(array) == 0:
        raise InvalidInputError(f"{path.name} has no rows")
    return array.reshape(len(array), -1) if array.ndim == 1 else array


def make_batches(inputs: Sequence[TensorSpec], rows: int, pool: int, seed: int = 0,
                 data: np.ndarray | None = None) -> list[Batch]:
    """`pool` distinct requests' worth of arrays (fewer if they would not fit in memory)."""
    shapes = [request_shape(spec, rows) for spec in inputs]
    dtypes = [dtype_of(spec) for spec in inputs]
    one = sum(int(np.prod(s)) * d.itemsize for s, d in zip(shapes, dtypes, strict=True))
    if one > MAX_POOL_BYTES:
        raise InvalidInputError(f"one request would carry {one / 2**20:.0f} MiB of tensors:"
                                " lower --rows")
    pool = max(1, min(pool, MAX_POOL_BYTES // max(one, 1)))
    if data is not None:
        return _from_data(inputs, shapes, dtypes, pool, data)
    rng = np.random.default_rng(seed)
    return [[_random(rng, s, d) for s, d in zip(shapes, dtypes, strict=True)]
            for _ in range(pool)]


def _random(rng: np.random.Generator, shape: tuple[int, ...], dtype: np.dtype) -> np.ndarray:
    if dtype.kind == "f":
        return rng.standard_normal(shape).astype(dtype)
    if dtype.kind == "b":
        return rng.random(shape) < 0.5
    return rng.integers(0, 10, size=shape).astype(dtype)


def _from_data(inputs: Sequence[TensorSpec], shapes: list[tuple[int, ...]],
               dtypes: list[np.dtype], pool: int, data: np.ndarray) -> list[Batch]:
    if len(inputs) != 1:
        raise InvalidInputError(f"the model has {len(inputs)} inputs; a data file can feed only"
                                " a single-input model (leave out --data)")
    shape, dtype = shapes[0], dtypes[0]
    if len(shape) < 1:
        raise InvalidInputError(f"input {inputs[0].name!r} is a scalar; leave out --data")
    per_row = int(np.prod(shape[1:]))
    if int(np.prod(data.shape[1:])) != per_row:
        raise InvalidInputError(f"the data file has {int(np.prod(data.shape[1:]))} values per row;"
                                f" input {inputs[0].name!r} takes {per_row} ({list(shape[1:])})")
    rows = data.reshape(len(data), *shape[1:]).astype(dtype)
    count = shape[0]
    return [[rows[(np.arange(count) + i * count) % len(rows)]] for i in range(pool)]


def json_body(inputs: Sequence[TensorSpec], batch: Batch) -> bytes:
    """A V2 REST inference request with the tensors as flat JSON lists."""
    return json.dumps({"inputs": [
        {"name": spec.name, "shape": list(array.shape), "datatype": spec.datatype,
         "data": array.ravel().tolist()}
        for spec, array in zip(inputs, batch, strict=True)]}, separators=(",", ":")).encode()


def binary_body(inputs: Sequence[TensorSpec], batch: Batch) -> tuple[bytes, int]:
    """(body, JSON header length) for the binary tensor extension, outputs asked as binary."""
    raw = [raw_bytes(spec, array) for spec, array in zip(inputs, batch, strict=True)]
    header = json.dumps({
        "inputs": [{"name": spec.name, "shape": list(array.shape), "datatype": spec.datatype,
                    "parameters": {"binary_data_size": len(data)}}
                   for spec, array, data in zip(inputs, batch, raw, strict=True)],
        "parameters": {"binary_data_output": True}}, separators=(",", ":")).encode()
    return header + b"".join(raw), len(header)


def grpc_body(model: str, version: str | None, inputs: Sequence[TensorSpec],
              batch: Batch) -> bytes:
    """A serialized `inference.ModelInferRequest` with `raw_input_contents`."""
    pb, _ = grpc_modules()
    request = pb.ModelInferRequest(model_name=model, model_version=version or "")
    for spec, array in zip(inputs, batch, strict=True):
        request.inputs.add(name=spec.name, datatype=spec.datatype, shape=list(array.shape))
        request.raw_input_contents.append(raw_bytes(spec, array))
    return bytes(request.SerializeToString())


def raw_bytes(spec: TensorSpec, array: np.ndarray) -> bytes:
    """Row-major little-endian bytes of `array` as `spec.datatype` (BOOL: one byte each)."""
    return np.ascontiguousarray(array, dtype=dtype_of(spec)).tobytes()
