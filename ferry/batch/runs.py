"""A run's life in the registry, and the lock that tells a live run from a dead one.

A run holds an exclusive lock on `$FERRY_HOME/batch/locks/<run id>.lock` while it works;
the operating system drops it when the process dies, however it dies. `--resume` takes the
newest unfinished run of the same version, input and output whose lock is free.
"""

from __future__ import annotations

import fcntl
import getpass
import os
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

from ferry.registry import BatchRun, Registry, RunStatus

LOCK_FOLDER = "batch/locks"


@dataclass(frozen=True)
class RunSlot:
    """What makes two runs the same job: a later one replaces the earlier one's rows."""

    model: str
    version: int
    input: str
    output: str

    def matches(self, run: BatchRun) -> bool:
        return (run.version, run.input, run.output) == (self.version, self.input, self.output)


class RunLock:
    """An exclusive, process-lifetime lock on one run id."""

    def __init__(self, home: Path, run_id: str):
        self.path = home / LOCK_FOLDER / f"{run_id}.lock"
        self._file: IO[str] | None = None

    def acquire(self) -> bool:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        file = self.path.open("a")
        try:
            fcntl.flock(file, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            file.close()
            return False
        self._file = file
        return True

    def release(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None
        self.path.unlink(missing_ok=True)


def new_run(slot: RunSlot, engine: str, workers: int, actor: str,
            details: dict[str, Any]) -> BatchRun:
    return BatchRun(id=uuid.uuid4().hex[:16], model=slot.model, version=slot.version,
                    input=slot.input, output=slot.output, engine=engine, workers=workers,
                    status=str(RunStatus.RUNNING), started_at=datetime.now(UTC),
                    created_by=actor, details=details)


def resumable(registry: Registry, slot: RunSlot, home: Path) -> tuple[BatchRun, RunLock] | None:
    """The newest unfinished run of `slot` that no live process holds, locked for us."""
    for run in registry.runs(slot.model, slot.version):
        if run.status == RunStatus.COMPLETED or not slot.matches(run):
            continue
        lock = RunLock(home, run.id)
        if lock.acquire():
            return run, lock
    return None


def replaced(registry: Registry, slot: RunSlot, run_id: str) -> list[str]:
    """The earlier completed runs of `slot`, whose rows a new run replaces."""
    return [run.id for run in registry.runs(slot.model, slot.version, RunStatus.COMPLETED)
            if slot.matches(run) and run.id != run_id]


def actor() -> str:
    try:
        login = getpass.getuser()
    except (KeyError, OSError):
        login = "unknown"
    return os.environ.get("FERRY_USER") or login
