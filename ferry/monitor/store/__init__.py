"""Where monitoring records are kept, chosen by URL.

    memory://                          in this process only (MemoryStore); each open is empty
    sqlite:///PATH                     embedded: one SQLite file in WAL mode, no set-up; the
                                       default is $FERRY_HOME/monitoring.db
    postgresql+psycopg://USER@HOST/DB  PostgreSQL (the `postgres` extra); may be the
                                       registry's database, the tables start with monitor_

`open_store(None)` reads `FERRY_MONITORING_URL`, else opens the embedded default. Another
backend registers an opener for its scheme with `register_backend`; every backend runs
tests/monitor/test_store_conformance.py.

Why SQLite for the embedded default and not DuckDB: while one process holds a DuckDB file
for writing no other process can open it, not even to read, so `ferry monitor` could not
read while the server writes. SQLite in WAL mode lets any number of processes read while one
writes, and with sampled rows kept as Arrow chunks it reads a million of them about as fast
as DuckDB does (0.27 s against 0.23 s; bench/monitor/RESULTS.md).

A column store (ClickHouse) would map onto the same interface without changing it:
- events (here Arrow chunks in `monitor_event_chunks`) become a MergeTree ordered by (model,
  version, ts) and partitioned by day, with a table TTL of `Retention.events`, so `purge` has
  nothing left to do there;
  tensor lists become Nested(name String, datatype String, shape Array(Int64)).
- Sampled rows go to a table per model version, created when the version is first sampled
  (its columns are the model's signature; DDL is cheap there), ordered by (ts, request_id,
  row); `samples()` reads them with the Arrow output format. Appends are one INSERT per
  flush (ClickHouse wants batches, and the capture already batches).
- Labels go to a ReplacingMergeTree keyed by (model, request_id, row), joined at read;
  `attach_labels` checks the request ids against the sampled ones with one query first.
- Results are a small MergeTree ordered by (model, ts).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping

from ferry.errors import InvalidInputError
from ferry.monitor.store.base import Attached, Label, MonitoringStore, Retention
from ferry.monitor.store.engines import parse_url
from ferry.monitor.store.memory import MemoryStore
from ferry.monitor.store.records import EVENTS_SCHEMA, events_from_table
from ferry.monitor.store.sql import SqlStore
from ferry.settings import Settings

__all__ = ["EVENTS_SCHEMA", "Attached", "Label", "MemoryStore", "MonitoringStore", "Retention",
           "SqlStore", "default_url", "events_from_table", "open_store", "register_backend"]

DEFAULT_MONITORING_FILE = "monitoring.db"
MONITORING_URL_VARIABLE = "FERRY_MONITORING_URL"

Opener = Callable[[str, Retention], MonitoringStore]


def _memory(_url: str, retention: Retention) -> MonitoringStore:
    return MemoryStore(retention)


BACKENDS: dict[str, Opener] = {
    "memory": _memory,
    "sqlite": SqlStore.embedded,
    "postgresql": SqlStore.postgres,
}
"""Opener by URL scheme; a driver suffix (`postgresql+psycopg`) selects the same backend."""


def register_backend(scheme: str, opener: Opener) -> None:
    BACKENDS[scheme] = opener


def open_store(url: str | None = None, *, retention: Retention | None = None) -> MonitoringStore:
    """The store at `url`, or at `default_url()` when it is None."""
    url = url or default_url()
    opener = BACKENDS.get(_scheme(url))
    if opener is None:
        known = ", ".join(f"{scheme}://" for scheme in BACKENDS)
        raise InvalidInputError(f"no monitoring store for {url!r}; known: {known}")
    return opener(url, retention or Retention())


def default_url(environ: Mapping[str, str] | None = None) -> str:
    """`FERRY_MONITORING_URL`, else the embedded file under `FERRY_HOME`."""
    env = os.environ if environ is None else environ
    home = Settings.from_env(dict(env)).home
    return env.get(MONITORING_URL_VARIABLE) or f"sqlite:///{home / DEFAULT_MONITORING_FILE}"


def _scheme(url: str) -> str:
    if url.startswith("memory://"):
        return "memory"
    return parse_url(url).get_backend_name()
