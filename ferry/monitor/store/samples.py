"""Sampled rows as Arrow tables: how every store turns `SampledRows` into chunks, keeps them
as Arrow IPC bytes, and answers `samples()` with labels joined on.

A chunk holds the rows of one model version from one append (or from merging several small
chunks): `ts`, `request_id`, `row`, then the columns in the order they first came. A column
of numbers stays numbers (NaN kept apart from null), strings and Python objects become Arrow
strings or numbers with None as null, and a column with more than one axis becomes an Arrow
fixed-shape tensor (`to_numpy_ndarray()` gives it back). Labels are JSON text, joined on
(request_id, row) when read.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import orjson
import pyarrow as pa
import pyarrow.compute as pc

from ferry.errors import InvalidInputError, one_line
from ferry.monitor.events import SampledRows
from ferry.monitor.store.chunks import by_time, in_range
from ferry.monitor.store.records import TIMESTAMP, to_micros

RESERVED_COLUMNS = ("ts", "request_id", "row", "label")
"""The store's own columns of a samples table; no sampled column may take these names."""
SAMPLES_SCHEMA = pa.schema([("ts", TIMESTAMP), ("request_id", pa.string()),
                            ("row", pa.int64())])
KEY_SEPARATOR = "\x1f"

VersionKey = tuple[str, int]
StoredLabel = tuple[str, int, str]
"""(request_id, row, label as JSON)."""


def chunks_by_version(samples: Sequence[SampledRows]) -> dict[VersionKey, pa.Table]:
    """One table per model version, each row of every sample in it; versions with no rows
    are left out."""
    groups: dict[VersionKey, list[pa.Table]] = defaultdict(list)
    for sample in samples:
        groups[sample.model, sample.version].append(sampled_table(sample))
    tables = {key: concat(parts) for key, parts in groups.items()}
    return {key: table for key, table in tables.items() if table.num_rows}


def sampled_table(sample: SampledRows) -> pa.Table:
    arrays = {name: column_array(name, values) for name, values in sample.columns.items()}
    rows = _common_length(arrays)
    ts = pa.scalar(to_micros(sample.ts, "sample ts"), pa.int64()).cast(TIMESTAMP)
    own = [pa.repeat(ts, rows), *_row_keys(sample, rows)]
    return pa.Table.from_arrays([*own, *arrays.values()],
                                names=[*SAMPLES_SCHEMA.names, *arrays])


def _row_keys(sample: SampledRows, rows: int) -> list[pa.Array]:
    """Each row's request id and its row number in that request."""
    if sample.row_requests is None:
        return [pa.repeat(pa.scalar(sample.request_id, pa.string()), rows),
                pa.array(np.arange(rows, dtype=np.int64))]
    numbers = sample.row_numbers if sample.row_numbers is not None else [0] * rows
    if len(sample.row_requests) != rows or len(numbers) != rows:
        raise InvalidInputError(f"sampled rows: {rows} rows but {len(sample.row_requests)}"
                                f" request ids and {len(numbers)} row numbers")
    return [pa.array(sample.row_requests, pa.string()), pa.array(numbers, pa.int64())]


def column_array(name: str, values: Any) -> pa.Array:
    """One sampled column as Arrow; the first axis is the row."""
    if name in RESERVED_COLUMNS:
        raise InvalidInputError(f"sampled column {name!r} takes a name the store keeps for "
                                f"itself ({', '.join(RESERVED_COLUMNS)}); rename it")
    array = np.asarray(values)
    try:
        if array.ndim > 1:
            return pa.FixedShapeTensorArray.from_numpy_ndarray(np.ascontiguousarray(array))
        if array.ndim == 1:
            return pa.array(array, from_pandas=array.dtype == object)
    except (pa.ArrowException, ValueError, TypeError) as exc:
        raise InvalidInputError(f"sampled column {name!r}: {one_line(exc)}") from exc
    raise InvalidInputError(f"sampled column {name!r} must have a row axis, got a scalar")


def _common_length(arrays: Mapping[str, pa.Array]) -> int:
    lengths = {name: len(array) for name, array in arrays.items()}
    if len(set(lengths.values())) > 1:
        raise InvalidInputError(f"sampled columns must have equal lengths, got {lengths}")
    return next(iter(lengths.values()), 0)


def concat(tables: Sequence[pa.Table]) -> pa.Table:
    """Tables of one model version as one; a column missing from some is null there, and
    integers meeting floats become floats."""
    try:
        return pa.concat_tables(tables, promote_options="permissive")
    except (pa.ArrowException, ValueError) as exc:
        raise InvalidInputError(f"sampled columns disagree in type: {one_line(exc)}") from exc


def answer(chunks: Sequence[pa.Table], since_us: int | None, until_us: int | None,
           labels: Sequence[StoredLabel]) -> pa.Table:
    """What `samples()` returns: the chunks' rows in the range, by time, with labels."""
    table = in_range(concat(chunks), since_us, until_us) if chunks else SAMPLES_SCHEMA.empty_table()
    table = by_time(table)
    return table.append_column("label", label_column(table, labels))


def sampled_keys(table: pa.Table) -> list[tuple[str, int, int]]:
    """(request_id, ts_us, row) of every row in a chunk."""
    return list(zip(table["request_id"].to_pylist(), table["ts"].cast(pa.int64()).to_pylist(),
                    table["row"].to_pylist(), strict=True))


def sampled_requests(table: pa.Table) -> list[tuple[str, int, list[int]]]:
    """(request_id, ts_us, its row numbers) of each request in a chunk."""
    numbers: dict[tuple[str, int], list[int]] = defaultdict(list)
    for request_id, ts_us, row in sampled_keys(table):
        numbers[request_id, ts_us].append(row)
    return [(request_id, ts_us, rows) for (request_id, ts_us), rows in numbers.items()]


def label_json(request_id: str, row: int, label: Any) -> str:
    try:
        return orjson.dumps(label, option=orjson.OPT_SERIALIZE_NUMPY).decode()
    except TypeError as exc:
        raise InvalidInputError(f"label of request {request_id!r} row {row} is not "
                                f"JSON-compatible: {exc}") from exc


def label_column(table: pa.Table, labels: Sequence[StoredLabel]) -> pa.Array:
    """Each row's label, null where none was given."""
    if not labels or not table.num_rows:
        return pa.nulls(table.num_rows)
    known = pa.array([_key(request_id, row) for request_id, row, _ in labels], pa.string())
    rows = pc.binary_join_element_wise(table["request_id"],
                                       pc.cast(table["row"], pa.string()), KEY_SEPARATOR)
    values = _label_values([orjson.loads(text) for _, _, text in labels])
    return pc.take(values, pc.index_in(rows, value_set=known)).combine_chunks()


def _key(request_id: str, row: int) -> str:
    return f"{request_id}{KEY_SEPARATOR}{row}"


def _label_values(values: list[Any]) -> pa.Array:
    """Labels as one Arrow type; labels of mixed kinds (1 and "yes") become strings."""
    try:
        return pa.array(values)
    except (pa.ArrowException, ValueError, TypeError):
        return pa.array([None if value is None else str(value) for value in values])
