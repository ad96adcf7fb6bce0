"""Request events as the stores keep them: Arrow chunks of one model's events, and back.

The capture writes a flush's events as one table (`STORED_EVENTS_SCHEMA`: the answer's
columns, with each request's tensor list as JSON text), built column by column on its writer
thread; a store checks it, splits it by model, and keeps each part as Arrow IPC chunks
(`chunks.py`) ordered by time. One insert per flush instead of one row per event is what
lets the capture keep up with the server (bench/monitor/RESULTS.md, capture cost).
`events()` decodes the chunks of the range it is asked for and parses each distinct tensor
list once.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from ferry.errors import InvalidInputError, one_line
from ferry.monitor.events import InferenceEvent
from ferry.monitor.store.chunks import by_time, in_range
from ferry.monitor.store.records import EVENTS_SCHEMA, TIMESTAMP, event_rows, tensor_column

STORED_EVENTS_SCHEMA = pa.schema([*list(EVENTS_SCHEMA)[:-2], pa.field("inputs", pa.string()),
                                  pa.field("outputs", pa.string())])
"""What a store keeps per event: `EVENTS_SCHEMA` with the tensor lists as JSON text."""
OPTIONAL = frozenset({"alias", "error_type"})
REPEATED = ("model", "alias", "protocol", "status", "error_type", "inputs", "outputs")
"""Columns whose few values repeat from event to event: dictionary-encoded when stored, a
third less to compress and a third smaller (bench/monitor/RESULTS.md)."""
"""The only columns an event may leave null."""
DURATIONS = ("latency_s", "queue_s", "compute_s")


def stored_events(events: Sequence[InferenceEvent]) -> pa.Table:
    """`events` as one stored table (each checked: aware times, finite durations)."""
    rows = event_rows(events)
    if not rows:
        return STORED_EVENTS_SCHEMA.empty_table()
    return from_columns(list(zip(*rows, strict=True)))


def from_columns(columns: Sequence[Sequence[Any]]) -> pa.Table:
    """A stored table from its columns in `STORED_EVENTS_SCHEMA` order, `ts` as
    microseconds since the epoch."""
    fields = list(STORED_EVENTS_SCHEMA)
    arrays = [pa.array(columns[0], pa.int64()).cast(TIMESTAMP)]
    arrays += [pa.array(values, field.type) for field, values in zip(fields[1:], columns[1:],
                                                                     strict=True)]
    return pa.Table.from_arrays(arrays, schema=STORED_EVENTS_SCHEMA)


def checked(table: pa.Table) -> pa.Table:
    """`table` in `STORED_EVENTS_SCHEMA`, or InvalidInputError naming what is wrong."""
    missing = [name for name in STORED_EVENTS_SCHEMA.names if name not in table.column_names]
    if missing:
        raise InvalidInputError(f"events lack the columns {', '.join(missing)}")
    table = pa.Table.from_arrays([_cast(table[field.name], field)
                                  for field in STORED_EVENTS_SCHEMA], schema=STORED_EVENTS_SCHEMA)
    for name in STORED_EVENTS_SCHEMA.names:
        if name not in OPTIONAL and table[name].null_count:
            raise InvalidInputError(f"event {name} must not be null")
    for name in DURATIONS:
        if not pc.all(pc.is_finite(table[name])).as_py():
            raise InvalidInputError(f"event {name} must be a finite number of seconds")
    return table


def _cast(column: pa.ChunkedArray, field: pa.Field) -> pa.ChunkedArray:
    try:
        return column.cast(field.type)
    except (pa.ArrowException, ValueError, TypeError) as exc:
        raise InvalidInputError(f"event {field.name} must be {field.type}: "
                                f"{one_line(exc)}") from exc


def by_model(table: pa.Table) -> dict[str, pa.Table]:
    """A checked table's events per model, each ordered by time."""
    models = pc.unique(table["model"]).to_pylist()
    if len(models) == 1:
        return {models[0]: by_time(table)}
    return {model: by_time(table.filter(pc.equal(table["model"], model))) for model in models}


def packed(table: pa.Table) -> pa.Table:
    """A checked table as it is stored: the `REPEATED` columns dictionary-encoded."""
    table = table.combine_chunks()
    for name in REPEATED:
        index = table.schema.get_field_index(name)
        table = table.set_column(index, name, table[name].dictionary_encode())
    return table


def unpacked(table: pa.Table) -> pa.Table:
    """A stored chunk back in `STORED_EVENTS_SCHEMA` (chunks written before packing, and
    packed ones, alike)."""
    return table.cast(STORED_EVENTS_SCHEMA)


def selected(table: pa.Table, version: int | None, since_us: int | None,
             until_us: int | None) -> pa.Table:
    """A stored chunk's events of `version` (any when None) in [since, until)."""
    table = unpacked(table)
    if version is not None:
        table = table.filter(pc.equal(table["version"], version))
    return in_range(table, since_us, until_us)


def newest_ts(tables: Sequence[pa.Table], limit: int) -> int | None:
    """The time of the `limit`-th newest event among `tables`, None while they hold fewer:
    once known, chunks whose events are all older cannot be among the newest `limit`."""
    micros = [table["ts"].cast(pa.int64()).to_numpy() for table in tables if table.num_rows]
    values = np.concatenate(micros) if micros else np.empty(0, np.int64)
    if limit == 0 or values.size < limit:
        return None
    return int(np.partition(values, values.size - limit)[values.size - limit])


def answer(tables: Sequence[pa.Table], limit: int | None) -> pa.Table:
    """What `events()` returns from the selected chunks' events: by time, the newest `limit`
    when given, tensor lists parsed."""
    table = by_time(pa.concat_tables(tables)) if tables else STORED_EVENTS_SCHEMA.empty_table()
    if limit is not None:
        table = table.slice(max(0, table.num_rows - limit))
    if not table.num_rows:
        return EVENTS_SCHEMA.empty_table()
    tensors = [tensor_column(table[name].combine_chunks()) for name in ("inputs", "outputs")]
    return pa.Table.from_arrays([*table.columns[:-2], *tensors], schema=EVENTS_SCHEMA)
