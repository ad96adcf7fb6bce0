"""Engines for the SQL stores, made by `ferry.sql` as the registry's are.

SQLite runs in WAL mode: one process writes while any number of others read their own
snapshot, which is what lets `ferry monitor` read while the server appends. `synchronous=NORMAL`
syncs at checkpoints rather than at every commit: a killed process loses nothing committed,
a power cut may lose the last commits but never leaves a batch half-written.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy import Connection, Engine, create_engine
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError, SQLAlchemyError

from ferry import sql as ferry_sql
from ferry.errors import InvalidInputError, MonitoringStoreError
from ferry.sql import READ_ONLY_OPTION, upgrade

MIGRATIONS = Path(__file__).parent / "migrations"
MIGRATION_LOCK_KEY = 0x464D4F4E
"""PostgreSQL advisory lock held while migrating ("FMON"; the registry's is "FERR")."""


def parse_url(url: str) -> URL:
    try:
        return make_url(url)
    except ArgumentError as exc:
        raise InvalidInputError(f"invalid monitoring store URL {url!r}: {exc}") from exc


def sqlite_engine(url: str) -> Engine:
    """A migrated engine on the SQLite file `url` names (its folder is created)."""
    database = parse_url(url).database
    if not database or database == ":memory:":
        raise InvalidInputError(f"the embedded monitoring store needs a file, got {url!r} "
                                "(use memory:// for a store in memory)")
    return migrated(ferry_sql.sqlite_engine(url, pragmas=["synchronous=NORMAL"]))


def postgres_engine(url: str) -> Engine:
    parse_url(url)
    try:
        engine = create_engine(url, pool_pre_ping=True)
    except ModuleNotFoundError as exc:
        raise InvalidInputError(f"{url!r} needs the PostgreSQL driver: "
                                "pip install 'ferry-ml[postgres]'") from exc
    return migrated(engine)


@contextmanager
def transaction(engine: Engine, *, write: bool) -> Iterator[Connection]:
    """A connection in one transaction, committed on success and rolled back on error;
    `write=False` for reads, which on SQLite never wait for the writer."""
    with engine.connect() as connection:
        connection.execution_options(**{READ_ONLY_OPTION: not write})
        with connection.begin():
            yield connection


def migrated(engine: Engine) -> Engine:
    """`engine` with the monitoring tables at the newest revision."""
    try:
        upgrade(engine, MIGRATIONS, MIGRATION_LOCK_KEY)
    except SQLAlchemyError as exc:
        engine.dispose()
        raise MonitoringStoreError(f"cannot open the monitoring store at {engine.url!r}:"
                                   f" {exc}") from exc
    return engine
