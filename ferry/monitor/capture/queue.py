"""The capture's queue and the thread that writes it to the monitoring store.

`offer` is what the request path pays: the request's event as a tuple of plain values (built
by the caller while the request is still in the processor's caches), a length check and a
deque append (thread-safe in CPython). When `queue_size` events wait, a request is dropped
and counted; nothing waits for the store. Each model call's answered rows meet the sampler
(`sample`): the rows a slot takes are copied, and the slots hold at most `max_queued_bytes`
of them (`ferry.monitor.capture.sampler`). The thread also
applies the store's retention once an hour. It wakes every `flush_interval_s`, or sooner
once `flush_events` wait, turns the events into one table (column by column, yielding the
interpreter every `SLICE` events, so that a request waiting for the GIL waits for a slice,
not a whole flush), stacks the rows of the seconds that ended, and writes each kind with one
store call. `close()` writes what is left, reservoirs included. A process killed with
SIGKILL loses what was not yet written: at most the last `flush_interval_s` of requests (1 s
by default) and the current second's reservoir.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Any

import pyarrow as pa

from ferry.monitor.capture.sampler import Key, Rows, Sampler
from ferry.monitor.capture.settings import CaptureSettings
from ferry.monitor.store import MonitoringStore
from ferry.monitor.store.event_chunks import STORED_EVENTS_SCHEMA, from_columns

log = logging.getLogger("ferry.capture")

PURGE_INTERVAL_S = 3600.0
"""How often the writer thread applies the store's retention (`MonitoringStore.purge`)."""
SLICE = 1024
"""Events turned into columns between two yields of the interpreter."""
YIELD_S = 0.0001
"""How long the thread sleeps between slices. Not 0: `sleep(0)` hands the GIL back but not
the core, and a server pinned to one core would see the writer take the GIL again at once."""
QUEUE_FULL = "queue_full"
STORE_FAILED = "store_failed"


Event = tuple[Any, ...]
"""A request's event: its values in `STORED_EVENTS_SCHEMA` order (`ts` in microseconds, the
tensor lists as JSON; `event_chunks.from_columns`)."""


WRITER_NICENESS = 10
"""How much lower the writer thread's scheduling priority is than the server's. What it does
without the GIL (Arrow, zstd, SQLite) then yields the core to the requests, which wait for
it otherwise: the flush is what raises their p99 (bench/monitor/RESULTS.md)."""


def _lower_priority() -> None:
    """Lower the calling thread's priority (Linux: a thread id is a process id to
    `setpriority`); elsewhere, or when not allowed, the thread keeps its priority."""
    try:
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(),
                       os.getpriority(os.PRIO_PROCESS, 0) + WRITER_NICENESS)
    except (AttributeError, OSError):
        log.debug("capture: the writer thread keeps the server's priority")


class Capture:
    def __init__(self, store: MonitoringStore, settings: CaptureSettings,
                 on_drop: Callable[[str], None] = lambda reason: None):
        self.store = store
        self.settings = settings
        self.on_drop = on_drop
        self.dropped = 0
        self._queue: deque[Event] = deque()
        self.sampler = Sampler(settings.sample_rows_per_s,
                               max_held_bytes=settings.max_queued_bytes)
        self._wake = threading.Event()
        self._stopping = False
        self._purged_at: float | None = None
        """When retention last ran (monotonic seconds); None: not yet, so the first flush does."""
        self._thread = threading.Thread(target=self._run, name="ferry-capture", daemon=True)
        self._thread.start()

    def offer(self, event: Event) -> bool:
        """Queue a finished request's event (on the request path: never blocks); False when
        it was dropped."""
        if len(self._queue) >= self.settings.queue_size or self._stopping:
            self._drop(QUEUE_FULL)
            return False
        self._queue.append(event)
        if len(self._queue) >= self.settings.flush_events:
            self._wake.set()
        return True

    def sample(self, key: Key, second: int, count: int, source: Any,
               rows_of: Callable[[Any], Rows]) -> None:
        """Offer `count` answered rows of the model version `key` to the sampler
        (`Sampler.offer`)."""
        if self.settings.sample_rows_per_s:
            self.sampler.offer(key, second, count, source, rows_of)

    def close(self, timeout_s: float = 30.0) -> None:
        """Write everything queued and every reservoir, then close the store."""
        self._stopping = True
        self._wake.set()
        self._thread.join(timeout_s)
        self.store.close()

    def _drop(self, reason: str) -> None:
        self.dropped += 1
        self.on_drop(reason)

    def _run(self) -> None:
        _lower_priority()
        while not self._stopping:
            self._wake.wait(self.settings.flush_interval_s)
            self._wake.clear()
            drained_at = time.time()
            self._write(self._drain(), drained_at, final=False)
            self._purge_when_due()
        self._write(self._drain(), time.time(), final=True)

    def _purge_when_due(self) -> None:
        """Retention: old events, samples and results leave the store once an hour."""
        now = time.monotonic()
        if self._purged_at is not None and now - self._purged_at < PURGE_INTERVAL_S:
            return
        self._purged_at = now
        try:
            self.store.purge()
        except Exception:  # retention can wait for the next hour; requests cannot
            log.exception("capture: applying the monitoring store's retention failed")

    def _drain(self) -> list[Event]:
        return [self._queue.popleft() for _ in range(len(self._queue))]

    def _write(self, items: list[Event], drained_at: float, *, final: bool) -> None:
        """Write `items`, and the sampled rows of every second that ended before they were
        drained (a later second may still be receiving requests: its rows wait)."""
        try:
            events = self._events(items)
            samples = self.sampler.take(drained_at, final=final)
            if events is not None:
                self.store.append_event_table(events)
            if samples:
                self.store.append_samples(samples)
        except Exception:  # the store is down or full: count, keep serving
            log.exception("capture: writing %d requests to the monitoring store failed",
                          len(items))
            for _ in items:
                self._drop(STORE_FAILED)

    def _events(self, items: list[Event]) -> pa.Table | None:
        """The events as one table: columns of a slice at a time, the interpreter yielded
        between slices."""
        columns: list[list[Any]] = [[] for _ in STORED_EVENTS_SCHEMA]
        for start in range(0, len(items), SLICE):
            for column, values in zip(columns, zip(*items[start:start + SLICE], strict=True),
                                      strict=True):
                column += values
            time.sleep(YIELD_S)
        return from_columns(columns) if items else None
