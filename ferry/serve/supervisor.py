"""`ferry serve --workers N`: a supervisor process and N worker processes sharing the ports
(SO_REUSEPORT).

The supervisor serves nothing itself. It gives the workers one metrics folder (a fresh
temporary folder in `PROMETHEUS_MULTIPROC_DIR`, removed at exit), so that the `/metrics` of
any worker sums every worker's counters. prometheus_client reads that variable when it is
imported, so the workers are fresh (spawned) processes that inherit it.

SIGTERM or SIGINT to the supervisor stops every worker gracefully (each finishes the requests
it has in flight, on both protocols), then the supervisor. A worker that dies is marked dead
in the metrics folder (its in-flight gauge drops out of the sum) and replaced, unless it died
within `MIN_UPTIME_S` of its start: then the supervisor stops the others and fails, so that a
worker that cannot start (a port in use, a model that does not load) is not restarted forever.
Only the first worker (or its replacement) judges drift on the schedule (`worker_settings`).
"""

from __future__ import annotations

import contextlib
import logging
import multiprocessing
import os
import shutil
import signal
import tempfile
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace
from multiprocessing.connection import wait
from multiprocessing.process import BaseProcess

from ferry.errors import ServingError
from ferry.serve import access
from ferry.serve.metrics import MULTIPROCESS_DIR_ENV
from ferry.serve.settings import ServeSettings

log = logging.getLogger("ferry.serve")
MIN_UPTIME_S = 30.0
"""A worker that dies sooner than this after its start is not replaced: the server stops."""
POLL_S = 0.5
STOP_MARGIN_S = 5.0
"""How long past the shutdown grace the supervisor waits for a worker before killing it."""
PARENT_CHECK_S = 1.0
SIGNALS = (signal.SIGTERM, signal.SIGINT)


@dataclass
class _Worker:
    process: BaseProcess
    started: float


def supervise(uris: Sequence[str], settings: ServeSettings, workers: int) -> None:
    """Run `workers` worker processes until SIGTERM or SIGINT (see the module docstring)."""
    with _metrics_folder() as folder:
        Supervisor(list(uris), settings, workers, folder).run()


@contextlib.contextmanager
def _metrics_folder() -> Iterator[str]:
    folder = tempfile.mkdtemp(prefix="ferry-metrics-")
    previous = os.environ.get(MULTIPROCESS_DIR_ENV)
    os.environ[MULTIPROCESS_DIR_ENV] = folder
    try:
        yield folder
    finally:
        if previous is None:
            os.environ.pop(MULTIPROCESS_DIR_ENV, None)
        else:
            os.environ[MULTIPROCESS_DIR_ENV] = previous
        shutil.rmtree(folder, ignore_errors=True)


class Supervisor:
    """Starts, watches, replaces and stops the worker processes."""

    def __init__(self, uris: list[str], settings: ServeSettings, count: int, folder: str):
        self.uris = uris
        self.settings = settings
        self.count = count
        self.folder = folder
        self.context = multiprocessing.get_context("spawn")
        self.workers: list[_Worker] = []
        self.stopping = False

    def run(self) -> None:
        previous = {signum: signal.signal(signum, self._stop_soon) for signum in SIGNALS}
        try:
            self.workers = [self._start(index) for index in range(self.count)]
            while not self.stopping:
                wait([worker.process.sentinel for worker in self.workers], timeout=POLL_S)
                self._replace_dead()
        finally:
            self._stop_all()
            for signum, handler in previous.items():
                signal.signal(signum, handler)

    def _stop_soon(self, _signum: int, _frame: object) -> None:
        self.stopping = True

    def _start(self, index: int) -> _Worker:
        process = self.context.Process(
            target=_worker, daemon=True,
            args=(self.uris, worker_settings(self.settings, index), os.getpid()))
        process.start()
        return _Worker(process, time.monotonic())

    def _replace_dead(self) -> None:
        for index, worker in enumerate(self.workers):
            if self.stopping or worker.process.is_alive():
                continue
            self._mark_dead(worker)
            pid, code = worker.process.pid, worker.process.exitcode
            if time.monotonic() - worker.started < MIN_UPTIME_S:
                raise ServingError(f"worker process {pid} exited with code {code} soon after"
                                   " it started (see its log above); the server stops")
            log.warning("worker process %s exited with code %s; starting another", pid, code)
            self.workers[index] = self._start(index)

    def _stop_all(self) -> None:
        """SIGTERM to every worker (each finishes its requests in flight), then wait."""
        for worker in self.workers:
            if worker.process.is_alive():
                worker.process.terminate()
        deadline = time.monotonic() + self.settings.shutdown_grace_s + STOP_MARGIN_S
        for worker in self.workers:
            worker.process.join(max(0.0, deadline - time.monotonic()))
            if worker.process.is_alive():
                log.warning("worker process %s did not stop in time; killing it",
                            worker.process.pid)
                worker.process.kill()
                worker.process.join()
            self._mark_dead(worker)

    def _mark_dead(self, worker: _Worker) -> None:
        from prometheus_client import multiprocess

        if worker.process.pid is not None:
            multiprocess.mark_process_dead(worker.process.pid, self.folder)


def worker_settings(settings: ServeSettings, index: int) -> ServeSettings:
    """Worker `index`'s settings: the first worker alone judges drift on a schedule. Every
    worker captures into the same store, so one judge covers them all; N judges would write
    each result N times."""
    return settings if index == 0 else replace(settings, drift_every_s=0)


def _worker(uris: list[str], settings: ServeSettings, parent: int) -> None:
    """A worker process: the same server as `ferry serve` with one process, on shared ports."""
    from ferry.serve.server import serve_process

    threading.Thread(target=_exit_with_parent, args=(parent,), daemon=True).start()
    access.configure_logging(settings.access_log)
    with contextlib.suppress(KeyboardInterrupt):
        serve_process(uris, settings, reuse_port=True)


def _exit_with_parent(parent: int) -> None:
    """A worker whose supervisor died (even by SIGKILL) stops too, instead of holding the
    ports."""
    while os.getppid() == parent:
        time.sleep(PARENT_CHECK_S)
    os._exit(0)
