"""The capture's writer thread on its own: retention applied while it runs, everything written
at close, and a failing store counted as drops without stopping the thread."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from typing import Any

from monitor_data import MODEL, event

from ferry.monitor.capture.queue import STORE_FAILED, Capture
from ferry.monitor.capture.settings import CaptureSettings
from ferry.monitor.events import InferenceEvent
from ferry.monitor.store import MemoryStore
from ferry.monitor.store.records import event_row


class Finished:
    """A finished request as the capture takes it (no payload to sample)."""

    payload_bytes = 0

    def __init__(self, request_id: str, ts: datetime):
        self._event = event(request_id, ts=ts)

    def event(self) -> InferenceEvent:
        return self._event

    def event_row(self) -> tuple[Any, ...]:
        return event_row(self._event)

    def rows(self) -> None:
        return None


def test_retention_is_applied_by_the_writer_thread_and_close_writes_the_rest() -> None:
    store = MemoryStore()
    now = datetime.now(UTC)
    store.append_events([event("old", ts=now - timedelta(days=20))])
    capture = Capture(store, CaptureSettings(flush_interval_s=0.05))
    capture.offer(Finished("new", now))
    deadline = time.monotonic() + 5
    while _ids(store) != ["new"] and time.monotonic() < deadline:
        time.sleep(0.05)
    ids = _ids(store)
    capture.offer(Finished("last", now))
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
    capture.offer(Finished("a", datetime.now(UTC)))
    time.sleep(0.3)
    capture.offer(Finished("b", datetime.now(UTC)))
    capture.close()
    assert reasons == [STORE_FAILED, STORE_FAILED] and capture.dropped == 2
