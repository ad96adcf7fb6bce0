"""Raw tensor bytes, as both transports carry them: Triton's binary REST extension and gRPC's
`raw_input_contents` / `raw_output_contents` use the same layout (little-endian, row-major,
unpadded; BYTES elements each prefixed by a 4-byte little-endian length)."""

from __future__ import annotations

import math
import struct
from collections.abc import Sequence
from typing import Any

import numpy as np

from ferry.errors import InvalidInputError
from ferry.serve.datatypes import BYTES, numpy_dtype, to_bytes_array

_LENGTH = struct.Struct("<I")
MAX_DIMENSIONS = 64
"""numpy's limit on a tensor's rank."""
MAX_ELEMENTS = 2**60
"""The most elements a shape may describe (numpy refuses larger arrays, even empty ones)."""


def checked_shape(shape: Sequence[Any], name: str) -> tuple[int, ...]:
    """A client's shape as sizes, refused (naming the input) unless every size is an integer
    >= 0 (not a boolean), there are at most 64 of them and they describe a possible array."""
    elements = 1
    for size in shape:  # a loop, not all(): this runs on every request
        if type(size) is not int or size < 0:
            raise InvalidInputError(f"input {name!r}: 'shape' must be a list of sizes >= 0"
                                    f" (integers, not booleans), got {_shown(shape)}")
        elements *= size or 1
    if len(shape) > MAX_DIMENSIONS:
        raise InvalidInputError(f"input {name!r}: 'shape' has {len(shape)} dimensions; at most"
                                f" {MAX_DIMENSIONS} are supported")
    if elements > MAX_ELEMENTS:
        raise InvalidInputError(f"input {name!r}: 'shape' {_shown(shape)} describes more than"
                                " 2**60 elements, more than any tensor can hold")
    return tuple(shape)


def _shown(shape: Sequence[Any]) -> str:
    return repr(list(shape)) if len(shape) <= 8 else f"a list of {len(shape)} values"


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
        out[index], offset = _bytes_element(raw, offset, index, name)
    if offset != len(raw):
        raise InvalidInputError(f"input {name!r}: BYTES data has {len(raw) - offset} extra bytes"
                                f" after its {count} elements")
    return out


def _bytes_element(raw: memoryview, offset: int, index: int, name: str) -> tuple[bytes, int]:
    """The BYTES element whose length prefix is at `offset`, and the offset after it."""
    if offset + _LENGTH.size > len(raw):
        raise InvalidInputError(f"input {name!r}: BYTES data ends after {index} elements")
    (length,) = _LENGTH.unpack_from(raw, offset)
    start, end = offset + _LENGTH.size, offset + _LENGTH.size + length
    if end > len(raw):
        raise InvalidInputError(
            f"input {name!r}: BYTES element {index} of {length} bytes runs past the end of the"
            f" {len(raw)} bytes of data: each element is a 4-byte little-endian length, then"
            " that many bytes")
    return bytes(raw[start:end]), end
