"""Monitoring stores for the tests: every backend behind one parametrized fixture, so each
conformance test runs on memory, the embedded file and PostgreSQL (the root conftest starts
the throwaway server and skips those only when it cannot run)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from ferry.monitor.store import MonitoringStore, open_store

POSTGRES = pytest.param("postgres", marks=pytest.mark.postgres)


def _url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "memory":
        return "memory://"
    if request.param == "embedded":
        return f"sqlite:///{tmp_path / 'monitoring.db'}"
    return str(request.getfixturevalue("postgres_url"))


@pytest.fixture(params=["memory", "embedded", POSTGRES])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    return _url(request, tmp_path)


@pytest.fixture(params=["embedded", POSTGRES])
def shared_store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A store that other processes can open too."""
    return _url(request, tmp_path)


@pytest.fixture
def store(store_url: str) -> Iterator[MonitoringStore]:
    with open_store(store_url) as store:
        yield store
