"""Engines for the registry's metadata: SQLite by default, PostgreSQL (or any SQLAlchemy URL).

SQLite runs in WAL mode and every writing transaction starts with `BEGIN IMMEDIATE`, so two
processes never interleave a read-then-write (version numbering) and the loser waits on the
busy timeout instead of failing. Reading transactions (`transaction(engine, write=False)`)
start with a deferred `BEGIN`: they read a snapshot and never wait for a writer (the server
polls the registry every half second per model). PostgreSQL takes row locks
(`SELECT ... FOR UPDATE`) instead. Migrations run on first use, under an advisory lock on
PostgreSQL.
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
from sqlalchemy import Engine, create_engine, event, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, SQLAlchemyError
from sqlalchemy.orm import Session

from ferry.errors import InvalidInputError, RegistryError
from ferry.settings import DEFAULT_SQLITE_BUSY_TIMEOUT_S

MIGRATIONS = Path(__file__).parent / "migrations"
WAL_RETRY_S = 0.05
MIGRATION_LOCK_KEY = 0x46455252
"""PostgreSQL advisory lock held while migrating ("FERR")."""
READ_ONLY_OPTION = "ferry_read_only"
"""Execution option of a connection whose transaction only reads (SQLite: a deferred BEGIN)."""


def open_engine(url: str) -> Engine:
    """An engine for `url`, with the schema migrated to the newest revision."""
    try:
        parsed = make_url(url)
    except ArgumentError as exc:
        raise InvalidInputError(f"invalid registry URL {url!r}: {exc}") from exc
    if parsed.get_backend_name() == "sqlite":
        engine = _sqlite_engine(url, parsed.database)
    else:
        engine = create_engine(url, pool_pre_ping=True)
    try:
        migrate(engine)
    except SQLAlchemyError as exc:
        raise RegistryError(f"cannot open the registry at {parsed!r}: {exc}") from exc
    return engine


def _sqlite_engine(url: str, database: str | None) -> Engine:
    if database and database != ":memory:":
        Path(database).expanduser().parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(url, connect_args={"timeout": DEFAULT_SQLITE_BUSY_TIMEOUT_S})

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute(f"PRAGMA busy_timeout={int(DEFAULT_SQLITE_BUSY_TIMEOUT_S * 1000)}")
        cursor.execute("PRAGMA foreign_keys=ON")
        _enable_wal(cursor)
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Any) -> None:
        read_only = connection.get_execution_options().get(READ_ONLY_OPTION, False)
        connection.exec_driver_sql("BEGIN" if read_only else "BEGIN IMMEDIATE")

    return engine


@contextmanager
def transaction(engine: Engine, *, write: bool) -> Iterator[Session]:
    """A session in one transaction, committed on success; `write=False` for reads only,
    which on SQLite do not take the write lock."""
    with Session(engine, expire_on_commit=False) as session, session.begin():
        session.connection(execution_options={READ_ONLY_OPTION: not write})
        yield session


def _enable_wal(cursor: Any) -> None:
    """Switch to WAL (persistent, so a no-op once done). The switch wants the database to
    itself and answers "locked" at once, without the busy handler, when another process is in
    a transaction: retry until the busy timeout."""
    deadline = time.monotonic() + DEFAULT_SQLITE_BUSY_TIMEOUT_S
    while True:
        try:
            cursor.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() > deadline:
                raise
            time.sleep(WAL_RETRY_S)


def migrate(engine: Engine) -> None:
    """Bring the schema to the newest revision (a no-op when it is there already)."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    with engine.begin() as connection:
        if connection.dialect.name == "postgresql":
            connection.execute(text("SELECT pg_advisory_xact_lock(:key)"),
                               {"key": MIGRATION_LOCK_KEY})
        config.attributes["connection"] = connection
        command.upgrade(config, "head")
