"""Shared fixtures: an isolated FERRY_HOME for every test, and registries on SQLite and on a
throwaway PostgreSQL server (started once per session from Debian's package)."""

from __future__ import annotations

import os
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from postgres_server import PostgresServer, start_server

from ferry.registry import Registry

BACKENDS = ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]


def pytest_configure(config: pytest.Config) -> None:
    """A FERRY_HOME for the whole session, before any fixture runs: module-scoped servers
    start before the per-test home below, and must not write to the user's ~/.ferry (their
    capture's monitoring store, say)."""
    os.environ["FERRY_HOME"] = tempfile.mkdtemp(prefix="ferry-tests-")
    os.environ.pop("FERRY_MONITORING_URL", None)


@pytest.fixture(autouse=True)
def ferry_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    home = tmp_path / "ferry-home"
    monkeypatch.setenv("FERRY_HOME", str(home))
    monkeypatch.delenv("FERRY_REGISTRY_URL", raising=False)
    monkeypatch.delenv("FERRY_ARTIFACTS_URL", raising=False)
    return home


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    try:
        server = start_server()
    except (RuntimeError, OSError) as exc:
        pytest.skip(f"PostgreSQL cannot run here: {exc}")
    yield server
    server.stop()


@pytest.fixture
def postgres_url(postgres_server: PostgresServer) -> Iterator[str]:
    """A fresh, empty database on the session's server."""
    import psycopg

    name = f"t_{uuid.uuid4().hex[:12]}"
    admin = f"host=127.0.0.1 port={postgres_server.port} user=postgres dbname=postgres"
    with psycopg.connect(admin, autocommit=True) as connection:
        connection.execute(f'CREATE DATABASE "{name}"')
    yield postgres_server.url.rsplit("/", 1)[0] + f"/{name}"
    with psycopg.connect(admin, autocommit=True) as connection:
        connection.execute(f'DROP DATABASE "{name}" WITH (FORCE)')


@pytest.fixture(params=BACKENDS)
def registry_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "postgres":
        return str(request.getfixturevalue("postgres_url"))
    return f"sqlite:///{tmp_path / 'registry.db'}"


@pytest.fixture
def registry(registry_url: str, tmp_path: Path) -> Iterator[Registry]:
    """A registry on each backend, with artifacts in a temporary folder."""
    registry = Registry(registry_url, artifacts_url=str(tmp_path / "artifacts"), actor="tester")
    yield registry
    registry.close()


@pytest.fixture
def sqlite_registry(tmp_path: Path) -> Iterator[Registry]:
    registry = Registry(f"sqlite:///{tmp_path / 'registry.db'}",
                        artifacts_url=str(tmp_path / "artifacts"), actor="tester")
    yield registry
    registry.close()
