"""Raw tensor bytes, as both transports carry them: Triton's binary REST extension and gRPC's
`raw_input_contents` / `raw_output_contents` use the same layout (little-endian, row-major,
unpadded; BYTES elements each prefixed by a 4-byte little-endian length)."""

from __future__ import annotations

import math
import struct

import numpy as np

from ferry.errors import InvalidInputError
from ferry.serve.datatypes import BYTES, numpy_dtype, to_bytes_array

_LENGTH = struct.Struct("<I")


def from_raw(raw: bytes | memoryview, datatype: str, shape: tuple[int, ...],
             name: str) -> np.ndarray:
    """The tensor held by `raw`, checked against its shape (a read-only view where possible)."""
    view, count = memoryview(raw), math.prod(shape)
    if datatype == BYTES:
        return _bytes_elements(view, count, name).reshape(shape)
    dtype = numpy_dtype(datatype)
    if len(view) != count * dtype.itemsize:
        raise InvalidInputError(f"input {name!r}: {len(view)} bytes do not hold shape"
                                f" {list(shape)} of {datatype}")
    return np.frombuffer(view, dtype=dtype.newbyteorder("<")).reshape(shape)


def to_raw(datatype: str, data: np.ndarray) -> bytes:
    """A tensor's raw bytes."""
    if datatype == BYTES:
        return b"".join(_LENGTH.pack(len(v)) + v for v in to_bytes_array(data))
    dtype = numpy_dtype(datatype).newbyteorder("<")
    return np.ascontiguousarray(data, dtype=dtype).tobytes()


def _bytes_elements(raw: memoryview, count: int, name: str) -> np.ndarray:
    if count * _LENGTH.size > len(raw):
        raise InvalidInputError(f"input {name!r}: {len(raw)} bytes cannot hold {count} BYTES"
                                " elements")
    out, offset = np.empty(count, dtype=object), 0
    for index in range(count):
        if offset + _LENGTH.size > len(raw):
            raise InvalidInputError(f"input {name!r}: BYTES data ends after {index} elements")
        (length,) = _LENGTH.unpack_from(raw, offset)
        out[index] = bytes(raw[offset + _LENGTH.size:offset + _LENGTH.size + length])
        offset += _LENGTH.size + length
    if offset != len(raw):
        raise InvalidInputError(f"input {name!r}: BYTES data has {len(raw) - offset} extra bytes")
    return out
