"""SQLite: reads never wait for a writer (the server polls the registry every half second per
model while registrations write)."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from ferry.registry import Registry, Runtime, VersionDraft
from ferry.signature import Role, Signature, Task, TensorSpec

SIGNATURE = Signature(inputs=(TensorSpec("X", "float32", (-1, 4)),),
                      outputs=(TensorSpec("label", "int64", (-1,), Role.LABEL),))
READ_DEADLINE_S = 1.0


@pytest.fixture
def registry(tmp_path: Path) -> Iterator[Registry]:
    registry = Registry(f"sqlite:///{tmp_path / 'registry.db'}",
                        artifacts_url=str(tmp_path / "artifacts"), actor="tester")
    draft = VersionDraft(framework="sklearn", framework_version="1.0", task=Task.CLASSIFICATION,
                         runtime=Runtime.NATIVE, original_sha256=registry.artifacts.put(b"w"),
                         original_format="joblib", signature=SIGNATURE)
    registry.create_version("iris", draft)
    registry.set_alias("iris", "production", 1)
    yield registry
    registry.close()


@contextmanager
def writer_holding_the_lock(database: Path) -> Iterator[None]:
    """Another connection in the middle of a write transaction on the same file."""
    connection = sqlite3.connect(database, isolation_level=None)
    connection.execute("BEGIN IMMEDIATE")
    connection.execute("UPDATE models SET description = 'being written' WHERE name = 'iris'")
    try:
        yield
    finally:
        connection.execute("ROLLBACK")
        connection.close()


READS: dict[str, Callable[[Registry], Any]] = {
    "get": lambda r: r.get("iris@production").version,
    "aliases": lambda r: r.aliases("iris"),
    "models": lambda r: [m.name for m in r.models()],
    "model": lambda r: r.model("iris").latest_version,
    "versions": lambda r: len(r.versions("iris")),
    "history": lambda r: len(r.history("iris")) > 0,
}
EXPECTED = {"get": 1, "aliases": {"production": 1}, "models": ["iris"], "model": 1,
            "versions": 1, "history": True}


@pytest.mark.parametrize("method", sorted(READS))
def test_reads_do_not_wait_for_a_writer(registry: Registry, tmp_path: Path,
                                        method: str) -> None:
    with ThreadPoolExecutor(1) as pool, writer_holding_the_lock(tmp_path / "registry.db"):
        answer = pool.submit(READS[method], registry)
        assert answer.result(timeout=READ_DEADLINE_S) == EXPECTED[method]


def test_writes_still_wait_for_the_writer(tmp_path: Path, registry: Registry) -> None:
    """The write lock is still taken at BEGIN: a writer waits for the other one to finish."""
    with ThreadPoolExecutor(1) as pool:
        with writer_holding_the_lock(tmp_path / "registry.db"):
            moved = pool.submit(registry.set_alias, "iris", "staging", 1)
            with pytest.raises(TimeoutError):
                moved.result(timeout=0.5)
        assert moved.result(timeout=10) is not None
