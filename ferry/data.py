"""Tabular data in and out: samples as Parquet, input files as CSV, Parquet or JSON.

A DataFrame sample is stored as it is. An array sample of rank 2 becomes columns `f0..fN`;
an array of higher rank (images) becomes one list column `tensor` with its shape in the
schema metadata, so it reads back to the same array. A sample of named tensors (one array per
model input, as a dict) becomes one list column per input, with every shape and dtype in the
schema metadata, and reads back to the same dict.
"""

from __future__ import annotations

import hashlib
import io
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from ferry.errors import InvalidInputError, SampleMismatchError, one_line

TENSOR_COLUMN = "tensor"
SHAPE_KEY = b"ferry.shape"
DTYPE_KEY = b"ferry.dtype"
TENSORS_KEY = b"ferry.tensors"
"""Schema metadata of a named-tensor sample: `{input: {"shape": [...], "dtype": "..."}}`."""
INPUT_SUFFIXES = (".csv", ".parquet", ".pq", ".json", ".jsonl")
ARRAY_SUFFIX = ".npy"
NAMED_ARRAYS_SUFFIX = ".npz"

NamedTensors = dict[str, np.ndarray]
"""A sample with one array per model input, by input name; the first axis is the batch."""
AnySample = pd.DataFrame | np.ndarray | NamedTensors


def as_sample(data: Any) -> AnySample:
    """A DataFrame, an ndarray or named tensors from any accepted sample type."""
    if isinstance(data, pd.DataFrame | np.ndarray):
        return data
    if isinstance(data, pa.Table):
        return data.to_pandas()
    if isinstance(data, list | tuple):
        return np.asarray(data)
    if isinstance(data, Mapping):
        return named_tensors(data)
    raise InvalidInputError(
        f"cannot use a {type(data).__name__} as sample: pass a DataFrame, an array, a"
        " pyarrow Table or a dict of arrays, one per model input"
    )


def named_tensors(data: Mapping[Any, Any]) -> NamedTensors:
    """`data` as one array per input name, checked to have the same number of rows."""
    if not data:
        raise SampleMismatchError("the sample has no arrays: give one array per model input")
    tensors = {str(name): np.asarray(values) for name, values in data.items()}
    rows = {name: len(array) if array.ndim else None for name, array in tensors.items()}
    if None in rows.values() or len(set(rows.values())) > 1:
        raise SampleMismatchError(
            f"the sample's arrays have rows {rows}: give every input the same number of rows"
            " along its first axis")
    return tensors


def sample_rows(data: AnySample) -> int:
    """How many rows (batch entries) `data` holds."""
    if isinstance(data, dict):
        return len(next(iter(data.values())))
    return len(data)


def head(data: AnySample, rows: int) -> AnySample:
    if isinstance(data, dict):
        return {name: array[:rows] for name, array in data.items()}
    return data.iloc[:rows] if isinstance(data, pd.DataFrame) else data[:rows]


def sample_to_parquet(data: AnySample) -> bytes:
    buffer = io.BytesIO()
    pq.write_table(_to_table(data), buffer)
    return buffer.getvalue()


def sample_from_parquet(payload: bytes) -> AnySample:
    table = pq.read_table(io.BytesIO(payload))
    metadata = table.schema.metadata or {}
    if TENSORS_KEY in metadata:
        return _tensors_from_table(table, json.loads(metadata[TENSORS_KEY]))
    if SHAPE_KEY in metadata:
        shape = tuple(json.loads(metadata[SHAPE_KEY]))
        return _column_array(table, TENSOR_COLUMN, shape, metadata[DTYPE_KEY].decode())
    frame = table.to_pandas()
    if metadata.get(b"ferry.array") == b"1":
        return frame.to_numpy()
    return frame


def _column_array(table: pa.Table, column: str, shape: Any, dtype: str) -> np.ndarray:
    """A list column of `table` back to the array it was written from."""
    flat = table.column(column).combine_chunks().flatten().to_numpy(zero_copy_only=False)
    return flat.astype(dtype).reshape(tuple(shape))


def _tensors_from_table(table: pa.Table, specs: dict[str, Any]) -> NamedTensors:
    return {name: _column_array(table, name, spec["shape"], spec["dtype"])
            for name, spec in specs.items()}


def _rows_column(array: np.ndarray) -> pa.FixedSizeListArray:
    """One list per row of `array`, holding the row's values flattened."""
    rows = array.reshape(len(array), -1)
    return pa.FixedSizeListArray.from_arrays(pa.array(rows.reshape(-1)), rows.shape[1])


def _tensors_table(tensors: NamedTensors) -> pa.Table:
    specs = {name: {"shape": list(array.shape), "dtype": str(array.dtype)}
             for name, array in tensors.items()}
    table = pa.table({name: _rows_column(array) for name, array in tensors.items()})
    return table.replace_schema_metadata({TENSORS_KEY: json.dumps(specs).encode()})


def _to_table(data: AnySample) -> pa.Table:
    if isinstance(data, dict):
        return _tensors_table(data)
    if isinstance(data, pd.DataFrame):
        frame = data.copy()
        frame.columns = [str(c) for c in frame.columns]
        return pa.Table.from_pandas(frame, preserve_index=False)
    if data.ndim == 2:
        table = pa.Table.from_pandas(
            pd.DataFrame(data, columns=[f"f{i}" for i in range(data.shape[1])]),
            preserve_index=False)
        return table.replace_schema_metadata({**(table.schema.metadata or {}),
                                              b"ferry.array": b"1"})
    return pa.table({TENSOR_COLUMN: _rows_column(data)}).replace_schema_metadata(
        {SHAPE_KEY: json.dumps(list(data.shape)).encode(), DTYPE_KEY: str(data.dtype).encode()})


def fingerprint(data: AnySample) -> str:
    """A sha256 over the data's values and column names, to tell training sets apart."""
    digest = hashlib.sha256()
    if isinstance(data, pd.DataFrame):
        digest.update(json.dumps([str(c) for c in data.columns]).encode())
        digest.update(pd.util.hash_pandas_object(data, index=False).to_numpy().tobytes())
    elif isinstance(data, dict):
        for name, array in data.items():
            digest.update(name.encode())
            _digest_array(digest, array)
    else:
        _digest_array(digest, data)
    return digest.hexdigest()


def _digest_array(digest: Any, array: np.ndarray) -> None:
    digest.update(str(array.shape).encode())
    values = array.astype(str) if array.dtype == object else array
    digest.update(np.ascontiguousarray(values).tobytes())


def read_table_file(path: Path) -> pd.DataFrame:
    """Rows from a CSV, Parquet or JSON file (records, or a list of lists)."""
    if not path.exists():
        raise InvalidInputError(f"no such file: {path}")
    suffix = path.suffix.lower()
    try:
        if suffix == ".csv":
            return pd.read_csv(path)
        if suffix in (".parquet", ".pq"):
            return pd.read_parquet(path)
        if suffix in (".json", ".jsonl"):
            return _read_json(path)
    except (ValueError, OSError, pa.ArrowException, pd.errors.ParserError) as exc:
        raise InvalidInputError(f"cannot read {path.name}: {one_line(exc)}") from exc
    raise InvalidInputError(
        f"cannot read {path.name}: use a file ending in {', '.join(INPUT_SUFFIXES)}"
    )


def read_sample_file(path: Path) -> AnySample:
    """A sample from a table file, an array from a `.npy` file, or one array per model input
    from an `.npz` file (arrays named after the inputs); never a pickle."""
    suffix = path.suffix.lower()
    if suffix not in (ARRAY_SUFFIX, NAMED_ARRAYS_SUFFIX):
        return read_table_file(path)
    if not path.exists():
        raise InvalidInputError(f"no such file: {path}")
    try:
        if suffix == ARRAY_SUFFIX:
            return np.asarray(np.load(path, allow_pickle=False))
        with np.load(path, allow_pickle=False) as arrays:
            return named_tensors({name: arrays[name] for name in arrays.files})
    except (ValueError, OSError) as exc:
        raise InvalidInputError(f"cannot read {path.name}: {one_line(exc)}") from exc


def _read_json(path: Path) -> pd.DataFrame:
    if path.suffix.lower() == ".jsonl":
        return pd.read_json(path, lines=True)
    payload = json.loads(path.read_text())
    if isinstance(payload, dict) and "instances" in payload:
        payload = payload["instances"]
    if isinstance(payload, dict) and "dataframe_split" in payload:
        split = payload["dataframe_split"]
        return pd.DataFrame(split["data"], columns=split.get("columns"))
    if isinstance(payload, list) and payload and isinstance(payload[0], list):
        return pd.DataFrame(payload, columns=[f"f{i}" for i in range(len(payload[0]))])
    return pd.DataFrame(payload)


def write_table_file(frame: pd.DataFrame, path: Path) -> None:
    suffix = path.suffix.lower()
    if suffix == ".csv":
        frame.to_csv(path, index=False)
    elif suffix in (".parquet", ".pq"):
        frame.to_parquet(path, index=False)
    elif suffix == ".json":
        path.write_text(frame.to_json(orient="records"))
    else:
        raise InvalidInputError(f"cannot write {path.name}: use .csv, .parquet or .json")

