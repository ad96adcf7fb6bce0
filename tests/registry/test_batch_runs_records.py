"""Batch run records on SQLite and PostgreSQL: started, finished, listed newest first."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta

import pytest
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression

import ferry
from ferry.errors import NotFoundError, VersionNotFoundError
from ferry.registry import BatchRun, Registry, RunStatus


def _run(run_id: str, version: int = 1, minutes: int = 0) -> BatchRun:
    return BatchRun(id=run_id, model="iris", version=version, input="/data/in.parquet",
                    output="/data/out", engine="local", workers=2,
                    status=str(RunStatus.RUNNING), created_by="tester",
                    started_at=datetime(2026, 12, 7, tzinfo=UTC) + timedelta(minutes=minutes),
                    details={"key": "id"})


def test_runs_are_recorded_finished_and_listed(registry: Registry) -> None:
    x, y = load_iris(return_X_y=True)
    ferry.register(LogisticRegression(max_iter=300).fit(x, y), "iris", sample=x[:20],
                   registry=registry)
    registry.add_run(_run("first"))
    registry.add_run(_run("second", minutes=5))

    done = registry.finish_run("second", RunStatus.COMPLETED, rows=150, duration_s=1.5)
    registry.finish_run("first", RunStatus.FAILED, rows=10, duration_s=0.5, error="bad file")

    assert done.status == RunStatus.COMPLETED and done.rows == 150
    assert done.finished_at is not None and done.finished_at.tzinfo is not None
    assert [r.id for r in registry.runs("iris")] == ["second", "first"]
    [completed] = registry.runs("iris", status=RunStatus.COMPLETED)
    assert completed.id == "second" and completed.started_at.tzinfo is not None
    assert registry.run("first").error == "bad file"
    assert registry.run("first").details == {"key": "id"}


def test_a_run_needs_an_existing_version(registry: Registry) -> None:
    x, y = load_iris(return_X_y=True)
    ferry.register(LogisticRegression(max_iter=300).fit(x, y), "iris", sample=x[:20],
                   registry=registry)
    with pytest.raises(VersionNotFoundError):
        registry.add_run(dataclasses.replace(_run("r"), version=9))
    with pytest.raises(NotFoundError, match="no batch run 'nope'"):
        registry.run("nope")
