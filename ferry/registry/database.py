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

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy import Engine, create_engine
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, SQLAlchemyError
from sqlalchemy.orm import Session

from ferry.errors import InvalidInputError, RegistryError
from ferry.sql import READ_ONLY_OPTION, sqlite_engine, upgrade

MIGRATIONS = Path(__file__).parent / "migrations"
MIGRATION_LOCK_KEY = 0x46455252
"""PostgreSQL advisory lock held while migrating ("FERR")."""


def open_engine(url: str) -> Engine:
    """An engine for `url`, with the schema migrated to the newest revision."""
    try:
        parsed = make_url(url)
    except ArgumentError as exc:
        raise InvalidInputError(f"invalid registry URL {url!r}: {exc}") from exc
    if parsed.get_backend_name() == "sqlite":
        engine = sqlite_engine(url, pragmas=["foreign_keys=ON"])
    else:
        engine = create_engine(url, pool_pre_ping=True)
    try:
        migrate(engine)
    except SQLAlchemyError as exc:
        raise RegistryError(f"cannot open the registry at {parsed!r}: {exc}") from exc
    return engine


@contextmanager
def transaction(engine: Engine, *, write: bool) -> Iterator[Session]:
    """A session in one transaction, committed on success; `write=False` for reads only,
    which on SQLite do not take the write lock."""
    with Session(engine, expire_on_commit=False) as session, session.begin():
        session.connection(execution_options={READ_ONLY_OPTION: not write})
        yield session


def migrate(engine: Engine) -> None:
    """Bring the schema to the newest revision (a no-op when it is there already)."""
    upgrade(engine, MIGRATIONS, MIGRATION_LOCK_KEY)
