"""The monitoring store on a SQL database: the embedded default (one SQLite file in WAL mode)
and PostgreSQL, through the same SQLAlchemy Core statements.

Events, labels and results are rows. Sampled rows are Arrow IPC chunks (`samples.py`): a
million rows of twenty columns read back as a few dozen blobs instead of twenty million
values through the driver (bench/monitor/RESULTS.md has the figures). Small chunks, which a
quiet model leaves one per flush, are merged in tiers after each append (`compaction.py`).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import datetime
from typing import Any

import orjson
import pyarrow as pa
from sqlalchemy import Connection, Engine, Select, Table, delete, func, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import SQLAlchemyError

from ferry.monitor.events import InferenceEvent, MonitorResult, SampledRows
from ferry.monitor.store import compaction
from ferry.monitor.store import labels as label_rules
from ferry.monitor.store import samples as sampling
from ferry.monitor.store.base import Label, MonitoringStore, Retention
from ferry.monitor.store.engines import postgres_engine, sqlite_engine, transaction
from ferry.monitor.store.records import (
    EVENT_COLUMNS,
    check_limit,
    event_rows,
    events_table,
    optional_micros,
    result_from_row,
    result_row,
)
from ferry.monitor.store.schema import events, labels, results, sample_chunks, sampled_requests

log = logging.getLogger("ferry.monitor")

LOOKUP_BATCH = 500
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

    def append_events(self, batch: Sequence[InferenceEvent]) -> None:
        rows = event_rows(batch)
        if rows:
            with transaction(self.engine, write=True) as connection:
                _insert_rows(connection, events, EVENT_COLUMNS, rows)

    def append_samples(self, samples: Sequence[SampledRows]) -> None:
        chunks = sampling.chunks_by_version(samples)
        if not chunks:
            return
        with transaction(self.engine, write=True) as connection:
            for (model, version), table in chunks.items():
                _insert_chunks(connection, model, version, sampling.by_time(table))
                connection.execute(sampled_requests.insert(),
                                   _request_rows(model, version, table))
        for model, version in chunks:
            self._compact_quietly(model, version)

    def _compact_quietly(self, model: str, version: int) -> None:
        """Merging is upkeep: the append is committed whatever happens to it, so a failure is
        logged for the next append to retry, not raised to the writer."""
        try:
            self.compact(model, version)
        except SQLAlchemyError:
            log.warning("merging sample chunks of %s v%d failed", model, version, exc_info=True)

    def compact(self, model: str, version: int) -> None:
        """Merge one tier of small chunks of a model version, if one is full."""
        with transaction(self.engine, write=True) as connection:
            candidates = connection.execute(
                select(sample_chunks.c.id, sample_chunks.c.rows)
                .where(*_version(model, version), sample_chunks.c.rows < sampling.CHUNK_ROWS)
                .with_for_update(skip_locked=True)).all()
            ids = compaction.mergeable(candidates)
            if ids:
                merged = sampling.concat(_chunk_tables(connection, ids))
                connection.execute(delete(sample_chunks).where(sample_chunks.c.id.in_(ids)))
                _insert_chunks(connection, model, version, sampling.by_time(merged))

    def events(self, model: str, version: int | None = None, since: datetime | None = None,
               until: datetime | None = None, limit: int | None = None) -> pa.Table:
        query = select(*(events.c[name] for name in EVENT_COLUMNS)).where(
            events.c.model == model, *_ts_range(events.c.ts_us, since, until))
        if version is not None:
            query = query.where(events.c.version == version)
        newest = check_limit(limit)
        if newest is None:
            query = query.order_by(events.c.ts_us, events.c.id)
        else:
            query = query.order_by(events.c.ts_us.desc(), events.c.id.desc()).limit(newest)
        with transaction(self.engine, write=False) as connection:
            rows = connection.execute(query).all()
        return events_table(rows if newest is None else rows[::-1])

    def samples(self, model: str, version: int, since: datetime | None = None,
                until: datetime | None = None) -> pa.Table:
        low, high = optional_micros(since, "since"), optional_micros(until, "until")
        with transaction(self.engine, write=False) as connection:
            chunks = [sampling.from_ipc(data)
                      for data in connection.scalars(_chunk_query(model, version, low, high))]
            stored = [(row[0], row[1], row[2])
                      for row in connection.execute(_label_query(model, version, low, high))]
        return sampling.answer(chunks, low, high, stored)

    def attach_labels(self, model: str, given: Sequence[Label]) -> int:
        with transaction(self.engine, write=True) as connection:
            known = _known(connection, model, label_rules.request_ids(given))
            rows = label_rules.label_rows(model, given, known)
            if rows:
                connection.execute(_upsert_labels(connection), [_label_row(row) for row in rows])
        return label_rules.matched(rows, known)

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
            return {"events": _delete_before(connection, events.c.ts_us, cutoffs.events_us),
                    "samples": _purge_samples(connection, cutoffs.samples_us),
                    "labels": _delete_before(connection, labels.c.ts_us, cutoffs.samples_us),
                    "results": _delete_before(connection, results.c.ts_us, cutoffs.results_us)}

    def close(self) -> None:
        self.engine.dispose()


def _version(model: str, version: int) -> tuple[Any, ...]:
    return sample_chunks.c.model == model, sample_chunks.c.version == version


def _ts_range(column: Any, since: datetime | None, until: datetime | None) -> list[Any]:
    return _micros_range(column, optional_micros(since, "since"), optional_micros(until, "until"))


def _micros_range(column: Any, low: int | None, high: int | None) -> list[Any]:
    return ([] if low is None else [column >= low]) + ([] if high is None else [column < high])


def _chunk_query(model: str, version: int, low: int | None, high: int | None) -> Select[Any]:
    """The chunks holding rows in [low, high), in the order of their index."""
    chunks = sample_chunks.c
    overlapping = ([] if low is None else [chunks.ts_max_us >= low]) + \
        ([] if high is None else [chunks.ts_min_us < high])
    return (select(chunks.data).where(*_version(model, version), *overlapping)
            .order_by(chunks.ts_max_us, chunks.id))


def _label_query(model: str, version: int, low: int | None, high: int | None) -> Select[Any]:
    return select(labels.c.request_id, labels.c.row, labels.c.label).where(
        labels.c.model == model, labels.c.version == version,
        *_micros_range(labels.c.ts_us, low, high))


def _insert_rows(connection: Connection, table: Table, columns: Sequence[str],
                 rows: list[tuple[Any, ...]]) -> None:
    """Many rows through the driver's executemany: a third of the time SQLAlchemy takes to
    bind a thousand events one parameter at a time."""
    statement = table.insert().compile(dialect=connection.dialect, column_keys=list(columns))
    if statement.positional and list(statement.positiontup or ()) == list(columns):
        connection.exec_driver_sql(str(statement), rows)
    else:
        connection.exec_driver_sql(str(statement),
                                   [dict(zip(columns, row, strict=True)) for row in rows])


def _insert_chunks(connection: Connection, model: str, version: int, table: pa.Table) -> None:
    rows = []
    for part in sampling.split(table):
        first, last = sampling.ts_span(part)
        rows.append({"model": model, "version": version, "ts_min_us": first, "ts_max_us": last,
                     "rows": part.num_rows, "data": sampling.to_ipc(part)})
    if rows:
        connection.execute(sample_chunks.insert(), rows)


def _chunk_tables(connection: Connection, ids: Sequence[int]) -> list[pa.Table]:
    query = (select(sample_chunks.c.data).where(sample_chunks.c.id.in_(ids))
             .order_by(sample_chunks.c.ts_max_us, sample_chunks.c.id))
    return [sampling.from_ipc(data) for data in connection.scalars(query)]


def _request_rows(model: str, version: int, table: pa.Table) -> list[dict[str, Any]]:
    return [{"model": model, "version": version, "request_id": request_id, "ts_us": ts_us,
             "rows": orjson.dumps(rows).decode()}
            for request_id, ts_us, rows in sampling.sampled_requests(table)]


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


def _purge_samples(connection: Connection, cutoff: int) -> int:
    """Drop chunks wholly before the cutoff and trim the ones that straddle it."""
    old = sample_chunks.c.ts_min_us < cutoff
    dropped = connection.scalar(select(func.coalesce(func.sum(sample_chunks.c.rows), 0))
                                .where(sample_chunks.c.ts_max_us < cutoff))
    connection.execute(delete(sample_chunks).where(sample_chunks.c.ts_max_us < cutoff))
    straddling = connection.execute(
        select(sample_chunks).where(old).with_for_update()).all()
    trimmed = sum(_trim(connection, row, cutoff) for row in straddling)
    _delete_before(connection, sampled_requests.c.ts_us, cutoff)
    return int(dropped or 0) + trimmed


def _trim(connection: Connection, chunk: Any, cutoff_us: int) -> int:
    """Rewrite one chunk without its rows before the cutoff; how many rows went."""
    kept = sampling.in_range(sampling.from_ipc(chunk.data), cutoff_us, None)
    connection.execute(delete(sample_chunks).where(sample_chunks.c.id == chunk.id))
    _insert_chunks(connection, chunk.model, chunk.version, kept)
    return int(chunk.rows) - kept.num_rows
