"""Tabular data in and out: samples as Parquet, input files as CSV, Parquet or JSON.

A DataFrame sample is stored as it is. An array sample of rank 2 becomes columns `f0..fN`;
an array of higher rank (images) becomes one list column `tensor` with its shape in the
schema metadata, so it reads back to the same array.
"""

from __future__ import annotations

import hashlib
import io
import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from ferry.errors import InvalidInputError, one_line

TENSOR_COLUMN = "tensor"
SHAPE_KEY = b"ferry.shape"
DTYPE_KEY = b"ferry.dtype"
INPUT_SUFFIXES = (".csv", ".parquet", ".pq", ".json", ".jsonl")
ARRAY_SUFFIX = ".npy"


def as_sample(data: Any) -> pd.DataFrame | np.ndarray:
    """A DataFrame or an ndarray from any accepted sample type."""
    if isinstance(data, pd.DataFrame | np.ndarray):
        return data
    if isinstance(data, pa.Table):
        return data.to_pandas()
    if isinstance(data, list | tuple):
        return np.asarray(data)
    raise InvalidInputError(
        f"cannot use a {type(data).__name__} as sample: pass a DataFrame, an array or a"
        " pyarrow Table"
    )


def head(data: pd.DataFrame | np.ndarray, rows: int) -> pd.DataFrame | np.ndarray:
    return data.iloc[:rows] if isinstance(data, pd.DataFrame) else data[:rows]


def sample_to_parquet(data: pd.DataFrame | np.ndarray) -> bytes:
    buffer = io.BytesIO()
    pq.write_table(_to_table(data), buffer)
    return buffer.getvalue()


def sample_from_parquet(payload: bytes) -> pd.DataFrame | np.ndarray:
    table = pq.read_table(io.BytesIO(payload))
    metadata = table.schema.metadata or {}
    if SHAPE_KEY in metadata:
        shape = tuple(json.loads(metadata[SHAPE_KEY]))
        flat = np.asarray(table.column(TENSOR_COLUMN).combine_chunks().flatten())
        return flat.astype(metadata[DTYPE_KEY].decode()).reshape(shape)
    frame = table.to_pandas()
    if metadata.get(b"ferry.array") == b"1":
        return frame.to_numpy()
    return frame


def _to_table(data: pd.DataFrame | np.ndarray) -> pa.Table:
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
    rows = data.reshape(len(data), -1)
    column = pa.FixedSizeListArray.from_arrays(pa.array(rows.reshape(-1)), rows.shape[1])
    return pa.table({TENSOR_COLUMN: column}).replace_schema_metadata(
        {SHAPE_KEY: json.dumps(list(data.shape)).encode(), DTYPE_KEY: str(data.dtype).encode()})


def fingerprint(data: pd.DataFrame | np.ndarray) -> str:
    """A sha256 over the data's values and column names, to tell training sets apart."""
    digest = hashlib.sha256()
    if isinstance(data, pd.DataFrame):
        digest.update(json.dumps([str(c) for c in data.columns]).encode())
        digest.update(pd.util.hash_pandas_object(data, index=False).to_numpy().tobytes())
    else:
        digest.update(str(data.shape).encode())
        digest.update(np.ascontiguousarray(data).tobytes())
    return digest.hexdigest()


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


def read_sample_file(path: Path) -> pd.DataFrame | np.ndarray:
    """A sample from a table file, or an array from a `.npy` file (never a pickle)."""
    if path.suffix.lower() != ARRAY_SUFFIX:
        return read_table_file(path)
    try:
        return np.asarray(np.load(path, allow_pickle=False))
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

