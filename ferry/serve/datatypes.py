"""Open Inference Protocol datatypes and their numpy equivalents."""

from __future__ import annotations

from typing import Any

import numpy as np

from ferry.errors import InvalidInputError

BYTES = "BYTES"

_TO_NUMPY: dict[str, np.dtype[Any]] = {
    "BOOL": np.dtype(np.bool_),
    "UINT8": np.dtype(np.uint8),
    "UINT16": np.dtype(np.uint16),
    "UINT32": np.dtype(np.uint32),
    "UINT64": np.dtype(np.uint64),
    "INT8": np.dtype(np.int8),
    "INT16": np.dtype(np.int16),
    "INT32": np.dtype(np.int32),
    "INT64": np.dtype(np.int64),
    "FP16": np.dtype(np.float16),
    "FP32": np.dtype(np.float32),
    "FP64": np.dtype(np.float64),
    BYTES: np.dtype(object),
}
_FROM_SIGNATURE = {"bool": "BOOL", "uint8": "UINT8", "uint16": "UINT16", "uint32": "UINT32",
                   "uint64": "UINT64", "int8": "INT8", "int16": "INT16", "int32": "INT32",
                   "int64": "INT64", "float16": "FP16", "float32": "FP32", "float64": "FP64",
                   "string": BYTES}
_FROM_NUMPY = {v: k for k, v in _TO_NUMPY.items() if k != BYTES}

DATATYPES = tuple(_TO_NUMPY)


def numpy_dtype(datatype: str) -> np.dtype[Any]:
    try:
        return _TO_NUMPY[datatype]
    except KeyError:
        raise InvalidInputError(
            f"unknown datatype {datatype!r}: use one of {', '.join(DATATYPES)}"
        ) from None


def from_signature(dtype: str) -> str:
    """The OIP datatype of a signature dtype (`float32` -> `FP32`, `string` -> `BYTES`)."""
    return _FROM_SIGNATURE.get(dtype, BYTES)


def from_numpy(dtype: np.dtype[Any]) -> str:
    if dtype.kind in "OUS":
        return BYTES
    try:
        return _FROM_NUMPY[dtype]
    except KeyError:
        raise InvalidInputError(f"numpy dtype {dtype} has no protocol datatype") from None


def element_size(datatype: str) -> int:
    """Bytes per element of a fixed-size datatype (BYTES has none)."""
    return int(numpy_dtype(datatype).itemsize)


def to_bytes_array(values: Any) -> np.ndarray:
    """A flat object array of `bytes` from a model's BYTES output: bytes stay, strings are
    encoded as UTF-8, anything else (a number, a label object) as its text. (Never `bytes(n)`:
    that is n zero bytes.) Request data are checked by the codecs, not converted here."""
    flat = np.asarray(values, dtype=object).reshape(-1)
    out = np.empty(flat.shape, dtype=object)
    for i, value in enumerate(flat):
        out[i] = _as_bytes(value)
    return out


def _as_bytes(value: Any) -> bytes:
    if isinstance(value, bytes):
        return value
    if isinstance(value, bytearray | memoryview):
        return bytes(value)
    return str(value).encode()
