"""The local engine: parts scored by N workers on this machine, this process among them.

Parts wait in a queue. This process takes parts from it from the first moment, and N-1
worker processes take them too as soon as they have started and built their scorer (one
runtime session each, `threads` intra-op threads), so the time to start a process is not
added to the run. Workers are forked where the platform allows (Linux: no re-import of
ferry, ONNX Runtime and the model), spawned elsewhere; each ends itself if the run's
process dies. Rows scored come back through a queue for the progress bar.
"""

from __future__ import annotations

import multiprocessing
import os
import queue
import threading
import time
import traceback
from dataclasses import dataclass
from typing import Any

from ferry.batch.engines.base import EngineJob, RowsScored, score_part
from ferry.batch.kernel import Scorer
from ferry.errors import BatchRunError, FerryError

PARENT_POLL_S = 0.5
RESULT_POLL_S = 0.2


@dataclass
class Channels:
    """The queues between this process and its workers."""

    parts: Any
    results: Any


class LocalEngine:
    name = "local"

    def score(self, job: EngineJob, on_rows: RowsScored) -> None:
        if job.workers <= 1 or len(job.todo) <= 1:
            scorer = job.spec.build()
            for part in job.todo:
                score_part(scorer, job, part, on_rows)
            return
        _score_with_workers(job, on_rows)


def _context() -> Any:
    methods = multiprocessing.get_all_start_methods()
    return multiprocessing.get_context("fork" if "fork" in methods else "spawn")


def _score_with_workers(job: EngineJob, on_rows: RowsScored) -> None:
    context = _context()
    channels = Channels(context.Queue(), context.Queue())
    for part in job.todo:
        channels.parts.put(part)
    workers = [context.Process(target=_work, args=(job, channels, os.getpid()), daemon=True)
               for _ in range(min(job.workers, len(job.todo)) - 1)]
    for worker in workers:
        worker.start()
    try:
        outcome = _ScoreHere(job, channels)
        outcome.start()
        _collect(job, channels, workers, on_rows, outcome)
    finally:
        _stop(workers, channels)


class _ScoreHere(threading.Thread):
    """This process's share of the parts, on a thread while the main thread collects."""

    def __init__(self, job: EngineJob, channels: Channels):
        super().__init__(daemon=True)
        self.job, self.channels = job, channels

    def run(self) -> None:
        _take_parts(self.job, self.channels, lambda: self.job.spec.build())


def _work(job: EngineJob, channels: Channels, parent: int) -> None:
    """A worker process: score parts until the queue is empty."""
    threading.Thread(target=_exit_with_parent, args=(parent,), daemon=True).start()
    _take_parts(job, channels, job.spec.build)


def _take_parts(job: EngineJob, channels: Channels, build: Any) -> None:
    try:
        scorer: Scorer | None = None
        while True:
            try:
                part = channels.parts.get_nowait()
            except queue.Empty:
                return
            scorer = scorer or build()
            score_part(scorer, job, part, lambda rows: channels.results.put(("rows", rows)))
            channels.results.put(("part", part.index))
    except BaseException as exc:
        channels.results.put(("error", _portable(exc)))


def _portable(exc: BaseException) -> BaseException:
    """`exc` if it crosses a process boundary intact, else a `BatchRunError` saying it."""
    if isinstance(exc, FerryError):
        return type(exc)(str(exc))
    detail = "".join(traceback.format_exception_only(type(exc), exc)).strip()
    return BatchRunError(f"a worker failed: {detail}")


def _collect(job: EngineJob, channels: Channels, workers: list[Any], on_rows: RowsScored,
             here: threading.Thread) -> None:
    """Relay rows until every part is staged; raise the first failure."""
    remaining = {part.index for part in job.todo}
    while remaining:
        try:
            kind, value = channels.results.get(timeout=RESULT_POLL_S)
        except queue.Empty:
            _check_alive(workers, here)
            continue
        if kind == "rows":
            on_rows(value)
        elif kind == "part":
            remaining.discard(value)
        else:
            raise value


def _check_alive(workers: list[Any], here: threading.Thread) -> None:
    if all(not w.is_alive() for w in workers) and not here.is_alive():
        raise BatchRunError("every worker stopped with parts left to score")
    dead = [w for w in workers if w.exitcode not in (None, 0)]
    if dead:
        raise BatchRunError(f"a worker process died (exit code {dead[0].exitcode})")


def _stop(workers: list[Any], channels: Channels) -> None:
    while True:
        try:
            channels.parts.get_nowait()
        except queue.Empty:
            break
    for worker in workers:
        worker.join(timeout=10)
        if worker.is_alive():
            worker.kill()


def _exit_with_parent(parent: int) -> None:
    """End this worker when the run's process is gone (killed with -9, say): nothing else
    would tell it, and its part is staged again on `--resume`."""
    while os.getppid() == parent:
        time.sleep(PARENT_POLL_S)
    os._exit(1)
