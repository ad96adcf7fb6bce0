"""Shared fixtures: an isolated FERRY_HOME for every test, and registries on SQLite and on a
throwaway PostgreSQL server (started once per session from Debian's package)."""

from __future__ import annotations

import os
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from postgres_server import PostgresServer, start_server

from ferry.registry import Registry

if TYPE_CHECKING:
    from playwright.sync_api import Browser
    from pyspark.sql import SparkSession

BACKENDS = ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]


def pytest_configure(config: pytest.Config) -> None:
    """A FERRY_HOME for the whole session, before any fixture runs: module-scoped servers
    start before the per-test home below, and must not write to the user's ~/.ferry (their
    capture's monitoring store, say)."""
    os.environ["FERRY_HOME"] = tempfile.mkdtemp(prefix="ferry-tests-")
    os.environ.pop("FERRY_MONITORING_URL", None)


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    """One headless Chromium for a module. Not longer: while Playwright's sync API is open,
    its event loop runs in this thread, and a later test's `asyncio.run` would fail."""
    from browser import chromium_browser

    with chromium_browser() as launched:
        yield launched


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


@pytest.fixture(scope="session")
def spark() -> SparkSession:
    """The test run's one local SparkSession (`tests/spark_session.py`); skips the test when
    Java or pyspark is missing."""
    import importlib.util
    import shutil

    if shutil.which("java") is None:
        pytest.skip("Spark needs Java 17 or 21 on PATH")
    if importlib.util.find_spec("pyspark") is None:
        pytest.skip("pyspark is not installed: pip install 'ferry-ml[spark]'")
    from spark_session import spark_session

    return spark_session()


@pytest.fixture
def moto_s3(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """moto's S3 server on 127.0.0.1 for one test, with the AWS_* variables pointing at it;
    yields its endpoint URL. Skips when moto, boto3 or s3fs is missing."""
    import socket

    server_module = pytest.importorskip("moto.server", reason="moto[server] is a test extra")
    s3fs = pytest.importorskip("s3fs", reason="s3fs is the s3 extra")
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    server = server_module.ThreadedMotoServer(ip_address="127.0.0.1", port=port)
    server.start()
    endpoint = f"http://127.0.0.1:{port}"
    for key, value in {"AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test",
                       "AWS_DEFAULT_REGION": "us-east-1", "AWS_ENDPOINT_URL": endpoint}.items():
        monkeypatch.setenv(key, value)
    s3fs.S3FileSystem.clear_instance_cache()
    yield endpoint
    server.stop()
