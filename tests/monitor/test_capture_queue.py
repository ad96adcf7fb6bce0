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


class Held:
    """An answered request's one row, of `request_bytes` bytes."""

    request_bytes = 100
    count = 1

    def __init__(self, number: int):
        self.values = np.array([float(number)])

    def request_id(self) -> str:
        return f"r{int(self.values[0])}"

    def tensors(self) -> tuple[AsColumns, dict[str, np.ndarray]]:
        return AsColumns(), {"x": self.values}


def held_after_sampling(capture: Capture, count: int) -> list[bool]:
    """Offer `count` one-row requests that ended in the same second to the sampler; which of
    them the capture still references (before its flush)."""
    second = int(time.time())
    offered = [Held(number) for number in range(count)]
    alive = [weakref.ref(request.values) for request in offered]
    for request in offered:
        capture.sample((MODEL, 1), second, request.count, request.request_bytes, request)
    del offered, request
    gc.collect()
    return [ref() is not None for ref in alive]


def test_the_slots_hold_requests_only_within_the_byte_bound() -> None:
    """Past `max_queued_bytes` held, a request's rows are not sampled and nothing of it is
    kept; the sampled rows are those of the requests that fit."""
    store = MemoryStore()
    capture = Capture(store, CaptureSettings(flush_interval_s=60, max_queued_bytes=1_000))
    assert held_after_sampling(capture, 50) == [True] * 10 + [False] * 40
    capture.close()
    assert sorted(store.samples(MODEL, 1)["x"].to_pylist()) == [float(n) for n in range(10)]


def test_a_request_past_the_byte_bound_is_not_turned_into_rows() -> None:
    built: list[int] = []

    def rows_of(request: Held) -> Held:
        built.append(int(request.values[0]))
        return request

    store = MemoryStore()
    capture = Capture(store, CaptureSettings(flush_interval_s=60, max_queued_bytes=1_000),
                      rows_of=rows_of)
    held_after_sampling(capture, 50)
    capture.close()
    assert built == list(range(10))


def test_a_request_no_slot_takes_is_let_go_at_once() -> None:
    """Past the cap, only the requests the reservoir's slots hold are referenced: the others,
    and those a later row replaced, are not kept until the flush."""
    store = MemoryStore()
    capture = Capture(store, CaptureSettings(flush_interval_s=60, sample_rows_per_s=5))
    held = held_after_sampling(capture, 2_000)
    capture.close()
    kept = store.samples(MODEL, 1)["x"].to_pylist()
    assert sum(held) == len(kept) == 5
    assert sorted(kept) == [float(n) for n, alive in enumerate(held) if alive]
