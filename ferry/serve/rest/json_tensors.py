"""Tensors from the `data` of a V2 JSON input, checked as Triton checks them.

numpy converts more than the protocol allows, silently: `null` becomes NaN, `"1.5"` and `true`
become numbers, `1.5` becomes the integer 1, any string becomes True, and `bytes(n)` of a
number given as BYTES data is n zero bytes. Here the data are read by numpy once without a
type, and the kind it finds must fit the datatype before anything is converted: numbers for
floats, integers for integer types (in range), true/false for BOOL, strings for BYTES.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from ferry.errors import InvalidInputError
from ferry.serve.datatypes import BYTES, DATATYPES, numpy_dtype

_ACCEPTED_KINDS = {"b": "b", "i": "iu", "u": "iu", "f": "iuf"}
"""numpy kinds of the data as read without a type, accepted for each kind of datatype."""
_EXPECTED = {"b": "true or false", "i": "integers", "u": "integers", "f": "numbers"}
_FOUND = {"b": "booleans", "i": "integers", "u": "integers",
          "f": "decimal numbers (such as 1.5 or 1.0)", "U": "strings", "S": "strings"}
_NUMERIC = {datatype: (numpy_dtype(datatype), _ACCEPTED_KINDS[numpy_dtype(datatype).kind])
            for datatype in DATATYPES if datatype != BYTES}
"""Each numeric datatype's numpy type and the kinds of data it takes, looked up once."""
_SHAPE_HINT = "'data' must be a flat list of values or nested lists of the same length"


def from_json(data: Any, datatype: str, shape: tuple[int, ...], name: str) -> np.ndarray:
    """The tensor of an input's JSON `data`, nested or flat, checked against its shape."""
    array = _strings(data, name) if datatype == BYTES else _numbers(data, datatype, name)
    if array.size != math.prod(shape):
        raise InvalidInputError(f"input {name!r}: {array.size} values do not fill shape"
                                f" {list(shape)}")
    return array.reshape(shape)


def json_type(value: Any) -> str:
    """What a JSON value is, in the words of an error message."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    return "a list" if isinstance(value, list) else "an object"


def _numbers(data: Any, datatype: str, name: str) -> np.ndarray:
    dtype, accepted = _NUMERIC[datatype]
    try:
        found = np.asarray(data)
    except ValueError as exc:
        raise InvalidInputError(f"input {name!r}: {_SHAPE_HINT}, at most 64 deep: {exc}") from None
    if found.dtype.kind not in accepted and found.size and not _wide_integers(data, dtype):
        raise InvalidInputError(f"input {name!r}: data is not {datatype}: expected"
                                f" {_EXPECTED[dtype.kind]}, got {_found(found)}")
    if dtype.kind == "f" or found.dtype == dtype:
        return found.astype(dtype, copy=False)
    return _integers(data, dtype, datatype, name)


def _integers(data: Any, dtype: np.dtype[Any], datatype: str, name: str) -> np.ndarray:
    """Integer (or BOOL) data in another type: numpy refuses a Python int out of its range."""
    try:
        return np.asarray(data, dtype=dtype)
    except OverflowError as exc:
        raise InvalidInputError(f"input {name!r}: data is not {datatype}: a value is out of"
                                f" its range ({exc})") from None


def _wide_integers(data: Any, dtype: np.dtype[Any]) -> bool:
    """Integers for an integer type that numpy read as floats (it does when values above
    2**63 meet others), checked element by element: the rare path only."""
    return dtype.kind in "iu" and all(
        type(value) is int for value in np.asarray(data, dtype=object).flat)


def _found(found: np.ndarray) -> str:
    if found.dtype.kind != "O":
        return _FOUND.get(found.dtype.kind, str(found.dtype))
    kinds = {json_type(value) for value in found.flat}
    return "null" if "null" in kinds else " and ".join(sorted(kinds))


def _strings(data: Any, name: str) -> np.ndarray:
    """BYTES data: strings only (a number here once became that many zero bytes)."""
    try:
        values = np.asarray(data if isinstance(data, list) else [data], dtype=object)
    except ValueError as exc:
        raise InvalidInputError(f"input {name!r}: {_SHAPE_HINT}, at most 64 deep: {exc}") from None
    out = np.empty(values.shape, dtype=object)
    flat = out.reshape(-1)
    for index, value in enumerate(values.flat):
        if not isinstance(value, str):
            raise InvalidInputError(
                f"input {name!r}: BYTES data must be strings (nested in lists of the same"
                f" length), got {json_type(value)} at element {index}; write 300 as \"300\"")
        flat[index] = value.encode()
    return out
