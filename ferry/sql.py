"""SQL engines as ferry's stores use them (the registry, the monitoring store).

SQLite runs in WAL mode: one process writes while any number of others read their own
snapshot. Writing transactions start with `BEGIN IMMEDIATE` (two writers queue on the busy
timeout instead of failing half-way); reading ones, marked with `READ_ONLY_OPTION`, with a
deferred `BEGIN` that never waits. Schemas are brought to their newest Alembic revision
under a PostgreSQL advisory lock, so two processes starting at once do not migrate twice.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from sqlalchemy import Connection, Engine, create_engine, event, text
from sqlalchemy.engine import make_url

from ferry.settings import DEFAULT_SQLITE_BUSY_TIMEOUT_S

WAL_RETRY_S = 0.05
READ_ONLY_OPTION = "ferry_read_only"
"""Execution option of a connection whose transaction only reads (SQLite: a deferred BEGIN)."""


def sqlite_engine(url: str, pragmas: Sequence[str] = ()) -> Engine:
    """An engine on the SQLite file `url` names (its folder created), in WAL mode, with
    `pragmas` (e.g. `foreign_keys=ON`) set on every connection."""
    database = make_url(url).database
    if database and database != ":memory:":
        Path(database).expanduser().parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(url, connect_args={"timeout": DEFAULT_SQLITE_BUSY_TIMEOUT_S})

    def on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute(f"PRAGMA busy_timeout={int(DEFAULT_SQLITE_BUSY_TIMEOUT_S * 1000)}")
        enable_wal(cursor)
        for pragma in pragmas:
            cursor.execute(f"PRAGMA {pragma}")
        cursor.close()

    event.listen(engine, "connect", on_connect)
    event.listen(engine, "begin", _begin)
    return engine


def _begin(connection: Connection) -> None:
    read_only = connection.get_execution_options().get(READ_ONLY_OPTION, False)
    connection.exec_driver_sql("BEGIN" if read_only else "BEGIN IMMEDIATE")


def enable_wal(cursor: Any) -> None:
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


def upgrade(engine: Engine, migrations: Path, lock_key: int) -> None:
    """Bring the schema in `migrations` to its newest revision (a no-op when it is there)."""
    config = Config()
    config.set_main_option("script_location", str(migrations))
    with engine.begin() as connection:
        if connection.dialect.name == "postgresql":
            connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": lock_key})
        config.attributes["connection"] = connection
        command.upgrade(config, "head")
