"""The monitoring store on a SQL database: the embedded default (one SQLite file in WAL mode)
and PostgreSQL, through the same SQLAlchemy Core statements.

Request events and sampled rows are Arrow IPC chunks (`chunks.py`): a flush is one insert,
and a million rows of twenty columns read back as a few dozen blobs instead of twenty million
values through the driver (bench/monitor/RESULTS.md has the figures). Small chunks, which a
quiet model leaves one per flush, are merged in tiers after each append (`compaction.py`).
Labels, sampled request ids and results are rows.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any

import orjson
import pyarrow as pa
from sqlalchemy import Connection, Engine, Select, Table, delete, func, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import SQLAlchemyError

from ferry.monitor.events import MonitorResult, SampledRows
from ferry.monitor.store import chunks as chunking
from ferry.monitor.store import compaction, event_chunks
from ferry.monitor.store import labels as label_rules
from ferry.monitor.store import samples as sampling
from ferry.monitor.store.base import Attached, Label, MonitoringStore, Retention
from ferry.monitor.store.engines import postgres_engine, sqlite_engine, transaction
from ferry.monitor.store.records import (
    check_limit,
    optional_micros,
    result_from_row,
    result_row,
)
from ferry.monitor.store.schema import (
    event_chunks as event_chunk_table,
)
from ferry.monitor.store.schema import labels, results, sample_chunks, sampled_requests

log = logging.getLogger("ferry.monitor")

LOOKUP_BATCH = 500
MERGED_BELOW = {sample_chunks.name: chunking.CHUNK_ROWS, event_chunk_table.name: 256}
"""Chunks with fewer rows than this are merged. Events stop at 256: a busy server's flush
is bigger than that already, and rewriting its chunks again cost the capture 2 µs of CPU per
request; a quiet model's one-event chunks still merge into chunks of 256 to 4,095."""
"""Request ids per `IN (...)` when checking labels (SQLite allows 32,766 parameters)."""


class SqlStore(MonitoringStore):
    """A store on `engine`, whose tables `engines.migrated` has created."""

    def __init__(self, engine: Engine, retention: Retention | None = None):
        self.engine = engine
        self.retention = retention or Retention()

    @classmethod
    def embedded(cls, url: str, retention: Retention | None = None) -> SqlStore:
        return cls(sqlite_engine(url), retention)

    @classmethod
    def postgres(cls, url: str, retention: Retention | None = None) -> SqlStore:
        return cls(postgres_engine(url), retention)

    def append_event_table(self, table: pa.Table) -> None:
        parts = event_chunks.by_model(event_chunks.checked(table))
        if not parts:
            return
        with transaction(self.engine, write=True) as connection:
            for model, part in parts.items():
                _insert_chunks(connection, event_chunk_table, {"model": model},
                               _stored_form(event_chunk_table, part))
        for model in parts:
            self._compact_quietly(event_chunk_table, {"model": model})

    def append_samples(self, samples: Sequence[SampledRows]) -> None:
        chunks = sampling.chunks_by_version(samples)
        if not chunks:
            return
        with transaction(self.engine, write=True) as connection:
            for (model, version), table in chunks.items():
                _insert_chunks(connection, sample_chunks, {"model": model, "version": version},
                               chunking.by_time(table))
                _insert_sampled_requests(connection, _request_rows(model, version, table))
        for model, version in chunks:
            self._compact_quietly(sample_chunks, {"model": model, "version": version})

    def _compact_quietly(self, table: Table, key: Mapping[str, Any]) -> None:
        """Merging is upkeep: the append is committed whatever happens to it, so a failure is
        logged for the next append to retry, not raised to the writer."""
        try:
            self.compact(table, key)
        except SQLAlchemyError:
            log.warning("merging chunks of %s %s failed", table.name, dict(key), exc_info=True)

    def compact(self, table: Table, key: Mapping[str, Any]) -> None:
        """Merge one tier of the small chunks in `table` whose columns match `key`."""
        with transaction(self.engine, write=True) as connection:
            small = connection.execute(small_chunks(table, key))
            ids = compaction.mergeable([(row.id, row.rows) for row in small])
            if ids:
                merged = sampling.concat(_chunk_tables(connection, table, ids))
                connection.execute(delete(table).where(table.c.id.in_(ids)))
                merged = _stored_form(table, chunking.by_time(merged))
                _insert_chunks(connection, table, key, merged)

    def events(self, model: str, version: int | None = None, since: datetime | None = None,
               until: datetime | None = None, limit: int | None = None) -> pa.Table:
        low, high = optional_micros(since, "since"), optional_micros(until, "until")
        newest = check_limit(limit)
        query = _chunk_query(event_chunk_table, {"model": model}, low, high,
                             newest_first=newest is not None)
        def pick(data: bytes) -> pa.Table:
            return event_chunks.selected(chunking.from_ipc(data), version, low, high)

        with transaction(self.engine, write=False) as connection:
            stored = connection.execute(query)
            tables = ([pick(data) for _, data in stored] if newest is None
                      else _newest(stored, newest, pick))
        return event_chunks.answer(tables, newest)

    def samples(self, model: str, version: int, since: datetime | None = None,
                until: datetime | None = None) -> pa.Table:
        low, high = optional_micros(since, "since"), optional_micros(until, "until")
        with transaction(self.engine, write=False) as connection:
            query = _chunk_query(sample_chunks, {"model": model, "version": version}, low, high)
            chunks = [chunking.from_ipc(data) for _, data in connection.execute(query)]
            stored = [(row[0], row[1], row[2])
                      for row in connection.execute(_label_query(model, version, low, high))]
        return sampling.answer(chunks, low, high, stored)

    def attach_labels(self, model: str, given: Sequence[Label]) -> Attached:
        with transaction(self.engine, write=True) as connection:
            known = _known(connection, model, label_rules.request_ids(given))
            plan = label_rules.label_plan(model, given, known)
            if plan.rows:
                connection.execute(_upsert_labels(connection),
                                   [_label_row(row) for row in plan.rows])
        return plan.attached

    def write_results(self, batch: Sequence[MonitorResult]) -> None:
        rows = [result_row(result) for result in batch]
        if rows:
            with transaction(self.engine, write=True) as connection:
                connection.execute(results.insert(), rows)

    def results(self, model: str, version: int | None = None,
                since: datetime | None = None) -> list[MonitorResult]:
        query = (select(results).where(results.c.model == model,
                                       *_ts_range(results.c.ts_us, since, None))
                 .order_by(results.c.ts_us, results.c.id))
        if version is not None:
            query = query.where(results.c.version == version)
        with transaction(self.engine, write=False) as connection:
            return [result_from_row(dict(row._mapping)) for row in connection.execute(query)]

    def purge(self, now: datetime | None = None) -> dict[str, int]:
        cutoffs = self.retention.cutoffs(now)
        with transaction(self.engine, write=True) as connection:
            return {"events": _purge_chunks(connection, event_chunk_table, cutoffs.events_us),
                    "samples": _purge_samples(connection, cutoffs.samples_us),
                    "labels": _delete_before(connection, labels.c.ts_us, cutoffs.samples_us),
                    "results": _delete_before(connection, results.c.ts_us, cutoffs.results_us)}

    def close(self) -> None:
        self.engine.dispose()


def _matching(table: Table, key: Mapping[str, Any]) -> list[Any]:
    return [table.c[name] == value for name, value in key.items()]


def _newest(stored: Iterable[Any], limit: int,
            pick: Callable[[bytes], pa.Table]) -> list[pa.Table]:
    """The picked events of chunks read newest first, until no older chunk can hold one of
    the newest `limit` of them: `ferry log` decodes a few chunks, not the whole range."""
    tables: list[pa.Table] = []
    for ts_max_us, data in stored:
        cutoff = event_chunks.newest_ts(tables, limit)
        if cutoff is not None and ts_max_us < cutoff:
            break
        tables.append(pick(data))
    return tables


def _ts_range(column: Any, since: datetime | None, until: datetime | None) -> list[Any]:
    return _micros_range(column, optional_micros(since, "since"), optional_micros(until, "until"))


def _micros_range(column: Any, low: int | None, high: int | None) -> list[Any]:
    return ([] if low is None else [column >= low]) + ([] if high is None else [column < high])


def _chunk_query(table: Table, key: Mapping[str, Any], low: int | None, high: int | None,
                 *, newest_first: bool = False) -> Select[Any]:
    """(ts_max_us, data) of the chunks holding rows in [low, high), in the order of their
    index (newest first when asked)."""
    overlapping = ([] if low is None else [table.c.ts_max_us >= low]) + \
        ([] if high is None else [table.c.ts_min_us < high])
    order: list[Any] = [table.c.ts_max_us, table.c.id]
    if newest_first:
        order = [column.desc() for column in order]
    return (select(table.c.ts_max_us, table.c.data).where(*_matching(table, key), *overlapping)
            .order_by(*order))


def _label_query(model: str, version: int, low: int | None, high: int | None) -> Select[Any]:
    return select(labels.c.request_id, labels.c.row, labels.c.label).where(
        labels.c.model == model, labels.c.version == version,
        *_micros_range(labels.c.ts_us, low, high))


def small_chunks(table: Table, key: Mapping[str, Any]) -> Select[tuple[int, int]]:
    """The (id, rows) of the chunks of `table` matching `key` that may still be merged (an
    index ending with `rows` finds them without reading the others)."""
    return (select(table.c.id, table.c.rows)
            .where(*_matching(table, key), table.c.rows < MERGED_BELOW[table.name])
            .with_for_update(skip_locked=True))


def _insert_chunks(connection: Connection, table: Table, key: Mapping[str, Any],
                   rows: pa.Table) -> None:
    """`rows`, ordered by time, as chunks of `table` with the key columns `key`."""
    stored = []
    for part in chunking.split(rows):
        first, last = chunking.ts_span(part)
        stored.append({**key, "ts_min_us": first, "ts_max_us": last, "rows": part.num_rows,
                       "data": chunking.to_ipc(part)})
    if stored:
        connection.execute(table.insert(), stored)


def _chunk_tables(connection: Connection, table: Table, ids: Sequence[int]) -> list[pa.Table]:
    query = (select(table.c.data).where(table.c.id.in_(ids))
             .order_by(table.c.ts_max_us, table.c.id))
    return [_read_form(table, chunking.from_ipc(data)) for data in connection.scalars(query)]


def _read_form(table: Table, rows: pa.Table) -> pa.Table:
    """A decoded chunk in the form tables of its kind concatenate in (events unpacked)."""
    return event_chunks.unpacked(rows) if table is event_chunk_table else rows


def _stored_form(table: Table, rows: pa.Table) -> pa.Table:
    return event_chunks.packed(rows) if table is event_chunk_table else rows


REQUEST_COLUMNS = ("model", "version", "request_id", "ts_us", "rows")


def _request_rows(model: str, version: int, table: pa.Table) -> list[tuple[Any, ...]]:
    return [(model, version, request_id, ts_us, orjson.dumps(rows).decode())
            for request_id, ts_us, rows in sampling.sampled_requests(table)]


def _insert_sampled_requests(connection: Connection, rows: list[tuple[Any, ...]]) -> None:
    """Rows (in `REQUEST_COLUMNS` order) through the driver's executemany: a third of the
    time SQLAlchemy takes to bind them one parameter at a time."""
    statement = sampled_requests.insert().compile(dialect=connection.dialect,
                                                  column_keys=list(REQUEST_COLUMNS))
    if statement.positional and list(statement.positiontup or ()) == list(REQUEST_COLUMNS):
        connection.exec_driver_sql(str(statement), rows)
    else:
        connection.exec_driver_sql(str(statement),
                                   [dict(zip(REQUEST_COLUMNS, row, strict=True)) for row in rows])


def _known(connection: Connection, model: str,
           request_ids: list[str]) -> dict[str, label_rules.KnownRequest]:
    """The sampled requests among `request_ids`."""
    table = sampled_requests
    rows: list[tuple[str, int, int, int]] = []
    for start in range(0, len(request_ids), LOOKUP_BATCH):
        query = select(table.c.request_id, table.c.version, table.c.ts_us, table.c.rows).where(
            table.c.model == model,
            table.c.request_id.in_(request_ids[start:start + LOOKUP_BATCH]))
        rows += [(request_id, version, ts_us, row)
                 for request_id, version, ts_us, numbers in connection.execute(query)
                 for row in orjson.loads(numbers)]
    return label_rules.known_requests(rows)


def _upsert_labels(connection: Connection) -> Any:
    """INSERT ... ON CONFLICT (model, request_id, row) DO UPDATE, in this database's dialect."""
    if connection.dialect.name == "postgresql":
        statement: Any = postgresql.insert(labels)
    else:
        statement = sqlite.insert(labels)
    replaced = {name: statement.excluded[name] for name in ("version", "ts_us", "label")}
    return statement.on_conflict_do_update(index_elements=list(labels.primary_key.columns),
                                           set_=replaced)


def _label_row(row: label_rules.LabelRow) -> dict[str, Any]:
    return {"model": row.model, "request_id": row.request_id, "row": row.row,
            "version": row.version, "ts_us": row.ts_us, "label": row.label}


def _delete_before(connection: Connection, column: Any, cutoff_us: int) -> int:
    return int(connection.execute(delete(column.table).where(column < cutoff_us)).rowcount)


def _purge_samples(connection: Connection, cutoff_us: int) -> int:
    removed = _purge_chunks(connection, sample_chunks, cutoff_us)
    _delete_before(connection, sampled_requests.c.ts_us, cutoff_us)
    return removed


def _purge_chunks(connection: Connection, table: Table, cutoff_us: int) -> int:
    """Drop the chunks wholly before the cutoff and trim the ones that straddle it; how many
    rows went."""
    dropped = connection.scalar(select(func.coalesce(func.sum(table.c.rows), 0))
                                .where(table.c.ts_max_us < cutoff_us))
    connection.execute(delete(table).where(table.c.ts_max_us < cutoff_us))
    straddling = connection.execute(
        select(table).where(table.c.ts_min_us < cutoff_us).with_for_update()).all()
    trimmed = sum(_trim(connection, table, row, cutoff_us) for row in straddling)
    return int(dropped or 0) + trimmed


def _trim(connection: Connection, table: Table, chunk: Any, cutoff_us: int) -> int:
    """Rewrite one chunk without its rows before the cutoff; how many rows went."""
    kept = chunking.in_range(_read_form(table, chunking.from_ipc(chunk.data)), cutoff_us, None)
    connection.execute(delete(table).where(table.c.id == chunk.id))
    key = {name: getattr(chunk, name) for name in ("model", "version") if name in table.c}
    _insert_chunks(connection, table, key, _stored_form(table, kept))
    return int(chunk.rows) - kept.num_rows
