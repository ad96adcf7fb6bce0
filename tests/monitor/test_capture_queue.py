"""The capture's writer thread on its own: retention applied while it runs, everything written
at close, and a failing store counted as drops without stopping the thread."""

from __future__ import annotations

import gc
import time
import weakref
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
from monitor_data import MODEL, event

from ferry.monitor.capture.queue import STORE_FAILED, Capture
from ferry.monitor.capture.sampler import AsColumns
from ferry.monitor.capture.settings import CaptureSettings
from ferry.monitor.store import MemoryStore
from ferry.monitor.store.records import event_row


def finished(request_id: str, ts: datetime) -> tuple[Any, ...]:
    """A finished request's event as the capture takes it."""
    return event_row(event(request_id, ts=ts))


def test_retention_is_applied_by_the_writer_thread_and_close_writes_the_rest() -> None:
    store = MemoryStore()
    now = datetime.now(UTC)
    store.append_events([event("old", ts=now - timedelta(days=20))])
    capture = Capture(store, CaptureSettings(flush_interval_s=0.05))
    capture.offer(finished("new", now))
    deadline = time.monotonic() + 5
    while _ids(store) != ["new"] and time.monotonic() < deadline:
        time.sleep(0.05)
    ids = _ids(store)
    capture.offer(finished("last", now))
    capture.close()
    assert ids == ["new"]  # the 20-day-old event went (events are kept 14 days)


def _ids(store: MemoryStore) -> list[str]:
    return sorted(store.events(MODEL).column("request_id").to_pylist())


def test_a_failing_store_counts_drops_and_the_thread_keeps_going() -> None:
    class Broken(MemoryStore):
        def append_event_table(self, table: object) -> None:
            raise OSError("disk full")

    reasons: list[str] = []
    capture = Capture(Broken(), CaptureSettings(flush_interval_s=0.05), reasons.append)
    capture.offer(finished("a", datetime.now(UTC)))
    time.sleep(0.3)
    capture.offer(finished("b", datetime.now(UTC)))
    capture.close()
    assert reasons == [STORE_FAILED, STORE_FAILED] and capture.dropped == 2


class Candidate:
    """A request whose rows may be sampled, of `request_bytes` bytes."""

    request_bytes = 100
    count = 1

    def __init__(self, number: int, ended: float):
        self.ended = ended
        self.values = np.array([float(number)])

    @property
    def key(self) -> tuple[str, int, int]:
        return MODEL, 1, int(self.ended)

    def request_id(self) -> str:
        return f"r{int(self.values[0])}"

    def tensors(self) -> tuple[AsColumns, dict[str, np.ndarray]]:
        return AsColumns(), {"x": self.values}


def held_after_offering(capture: Capture, count: int) -> list[bool]:
    """Offer `count` one-row requests that ended in the same second; which of them the
    capture still references (before its flush)."""
    now = datetime.now(UTC)
    offered = [Candidate(number, now.timestamp()) for number in range(count)]
    alive = [weakref.ref(candidate.values) for candidate in offered]
    for number, candidate in enumerate(offered):
        capture.offer(finished(f"r{number}", now), candidate)
    del offered, candidate
    gc.collect()
    return [ref() is not None for ref in alive]


def test_only_candidates_within_the_byte_bound_stay_referenced() -> None:
    """Past `max_queued_bytes` of waiting candidates, a request's rows are not sampled and
    nothing of it is kept; the sampled rows are those of the candidates that fit."""
    store = MemoryStore()
    capture = Capture(store, CaptureSettings(flush_interval_s=60, max_queued_bytes=1_000))
    assert held_after_offering(capture, 50) == [True] * 10 + [False] * 40
    capture.close()
    assert sorted(store.samples(MODEL, 1)["x"].to_pylist()) == [float(n) for n in range(10)]
