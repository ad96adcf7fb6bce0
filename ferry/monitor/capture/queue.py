"""The capture's queue and the thread that writes it to the monitoring store.

`offer` is all the request path pays: a length check and a deque append (thread-safe in
CPython). When `queue_size` requests wait, or the payloads waiting pass `max_queued_bytes`,
a request is dropped (or queued without its payload) and counted; nothing waits for the
store. The thread also applies the store's retention once an hour. It wakes every
`flush_interval_s`, or sooner once `flush_events` wait, builds the events as one table
(column by column) and the sampled rows there (off the request path), and writes each kind
with one store call. It works in slices of `SLICE` requests and yields the
interpreter between them, so a request waiting for the GIL waits for a slice (about a
millisecond), not a whole flush. `close()` writes what is left, reservoirs included. A
process killed with SIGKILL loses what was not yet written: at most the last
`flush_interval_s` of requests (1 s by default) and the current second's reservoir.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Any, Protocol

import pyarrow as pa

from ferry.monitor.capture.sampler import RequestRows, Sampler
from ferry.monitor.capture.settings import CaptureSettings
from ferry.monitor.store import MonitoringStore
from ferry.monitor.store.event_chunks import from_columns

log = logging.getLogger("ferry.capture")

PURGE_INTERVAL_S = 3600.0
"""How often the writer thread applies the store's retention (`MonitoringStore.purge`)."""
SLICE = 64
"""Requests turned into records between two yields of the interpreter."""
YIELD_S = 0.0001
"""How long the thread sleeps between slices. Not 0: `sleep(0)` hands the GIL back but not
the core, and a server pinned to one core would see the writer take the GIL again at once."""
QUEUE_FULL = "queue_full"
STORE_FAILED = "store_failed"


class Captured(Protocol):
    """One finished request, turned into records only on the capture's thread."""

    @property
    def payload_bytes(self) -> int:
        """Bytes of tensors it holds for sampling (0: none)."""

    def event_row(self) -> tuple[Any, ...]:
        """Its event, in `STORED_EVENTS_SCHEMA` order (`event_chunks.from_columns`)."""

    def rows(self) -> tuple[str, int, RequestRows] | None:
        """(model, version, its rows) to sample, or None."""


class Capture:
    def __init__(self, store: MonitoringStore, settings: CaptureSettings,
                 on_drop: Callable[[str], None] = lambda reason: None):
        self.store = store
        self.settings = settings
        self.on_drop = on_drop
        self.dropped = 0
        self._queue: deque[Captured] = deque()
        self._queued_bytes = 0
        self._sampler = Sampler(settings.sample_rows_per_s)
        self._wake = threading.Event()
        self._stopping = False
        self._purged_at: float | None = None
        """When retention last ran (monotonic seconds); None: not yet, so the first flush does."""
        self._thread = threading.Thread(target=self._run, name="ferry-capture", daemon=True)
        self._thread.start()

    def room_for_payload(self, payload_bytes: int) -> bool:
        """Whether a request's tensors may wait in the queue to be sampled."""
        return self._queued_bytes + payload_bytes <= self.settings.max_queued_bytes

    def offer(self, item: Captured) -> None:
        """Queue a finished request (on the request path: never blocks)."""
        if len(self._queue) >= self.settings.queue_size or self._stopping:
            self._drop(QUEUE_FULL)
            return
        self._queued_bytes += item.payload_bytes
        self._queue.append(item)
        if len(self._queue) >= self.settings.flush_events:
            self._wake.set()

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

    def _drain(self) -> list[Captured]:
        taken = [self._queue.popleft() for _ in range(len(self._queue))]
        self._queued_bytes -= sum(item.payload_bytes for item in taken)
        return taken

    def _write(self, items: list[Captured], drained_at: float, *, final: bool) -> None:
        """Write `items`, and the sampled rows of every second that ended before they were
        drained (a later second may still be receiving requests: its rows wait)."""
        try:
            events = self._events(items)
            samples = self._sampler.take(drained_at, final=final)
            if events is not None:
                self.store.append_event_table(events)
            if samples:
                self.store.append_samples(samples)
        except Exception:  # the store is down or full: count, keep serving
            log.exception("capture: writing %d requests to the monitoring store failed",
                          len(items))
            for _ in items:
                self._drop(STORE_FAILED)

    def _events(self, items: list[Captured]) -> pa.Table | None:
        """The events of `items` as one table (a tuple per request, a slice at a time, then
        an Arrow array per column), their rows offered to the sampler on the way."""
        rows: list[tuple[Any, ...]] = []
        for start in range(0, len(items), SLICE):
            part = items[start:start + SLICE]
            rows += [item.event_row() for item in part]
            self._sample(part)
            time.sleep(YIELD_S)
        return from_columns(list(zip(*rows, strict=True))) if rows else None

    def _sample(self, items: list[Captured]) -> None:
        for item in items:
            found = item.rows() if item.payload_bytes else None
            if found is not None:
                self._sampler.add(*found)
