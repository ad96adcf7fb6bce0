"""Engines for the SQL stores, set up the way the registry's are (ferry/registry/database.py).

SQLite runs in WAL mode: one process writes while any number of others read their own
snapshot, which is what lets `ferry monitor` read while the server appends. Writing
transactions start with `BEGIN IMMEDIATE` (two writers queue on the busy timeout instead of
failing half-way); reading ones with a deferred `BEGIN` and never wait. `synchronous=NORMAL`
syncs at checkpoints rather than at every commit: a killed process loses nothing committed,
a power cut may lose the last commits but never leaves a batch half-written.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from sqlalchemy import Connection, Engine, create_engine, event, text
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError, SQLAlchemyError

from ferry.errors import InvalidInputError, RegistryError
from ferry.settings import DEFAULT_SQLITE_BUSY_TIMEOUT_S

MIGRATIONS = Path(__file__).parent / "migrations"
WAL_RETRY_S = 0.05
MIGRATION_LOCK_KEY = 0x464D4F4E
"""PostgreSQL advisory lock held while migrating ("FMON"; the registry's is "FERR")."""
READ_ONLY_OPTION = "ferry_read_only"


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
    Path(database).expanduser().parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(url, connect_args={"timeout": DEFAULT_SQLITE_BUSY_TIMEOUT_S})
    event.listen(engine, "connect", _on_sqlite_connect)
    event.listen(engine, "begin", _on_sqlite_begin)
    return migrated(engine)


def postgres_engine(url: str) -> Engine:
    parse_url(url)
    try:
        engine = create_engine(url, pool_pre_ping=True)
    except ModuleNotFoundError as exc:
        raise InvalidInputError(f"{url!r} needs the PostgreSQL driver: "
                                "pip install 'ferry-ml[postgres]'") from exc
    return migrated(engine)


def _on_sqlite_connect(dbapi_connection: Any, _record: Any) -> None:
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    cursor.execute(f"PRAGMA busy_timeout={int(DEFAULT_SQLITE_BUSY_TIMEOUT_S * 1000)}")
    _enable_wal(cursor)
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()


def _on_sqlite_begin(connection: Connection) -> None:
    read_only = connection.get_execution_options().get(READ_ONLY_OPTION, False)
    connection.exec_driver_sql("BEGIN" if read_only else "BEGIN IMMEDIATE")


def _enable_wal(cursor: Any) -> None:
    """Switch to WAL (persistent, so a no-op once done); the switch answers "locked" at once
    while another process is in a transaction, so retry until the busy timeout."""
    deadline = time.monotonic() + DEFAULT_SQLITE_BUSY_TIMEOUT_S
    while True:
        try:
            cursor.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() > deadline:
                raise
            time.sleep(WAL_RETRY_S)


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
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    try:
        with engine.begin() as connection:
            if connection.dialect.name == "postgresql":
                connection.execute(text("SELECT pg_advisory_xact_lock(:key)"),
                                   {"key": MIGRATION_LOCK_KEY})
            config.attributes["connection"] = connection
            command.upgrade(config, "head")
    except SQLAlchemyError as exc:
        engine.dispose()
        raise RegistryError(f"cannot open the monitoring store at {engine.url!r}: {exc}") from exc
    return engine
