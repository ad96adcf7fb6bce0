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
from ferry.monitor.capture.sampler import FIRST_BUFFER_ROWS, AsColumns
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


class Offered:
    """A model call's one answered row (`ferry.monitor.capture.sampler.Rows`), counting the
    copies the sampler takes of it."""

    count = 1

    def __init__(self, number: int, taken: list[int]):
        self.values = np.array([float(number)])
        self.taken = taken

    @staticmethod
    def rows(offered: Offered) -> Offered:
        return offered

    def tensors(self) -> tuple[AsColumns, dict[str, np.ndarray]]:
        self.taken.append(int(self.values[0]))
        return AsColumns(), {"x": self.values}

    def owners(self, rows: list[int]) -> tuple[list[str], list[int]]:
        return [f"r{int(self.values[0])}"] * len(rows), rows


def offer_rows(capture: Capture, count: int) -> tuple[list[bool], list[int]]:
    """Offer `count` one-row calls answered in the same second to the sampler: which of them
    the capture still references (before its flush), and which it copied rows from."""
    second, taken = int(time.time()), []
    offered = [Offered(number, taken) for number in range(count)]
    alive = [weakref.ref(rows.values) for rows in offered]
    for rows in offered:
        capture.sample((MODEL, 1), second, rows.count, rows, Offered.rows)
    del offered, rows
    gc.collect()
    return [ref() is not None for ref in alive], taken


def test_the_slots_hold_rows_only_within_the_byte_bound() -> None:
    """Once the buffers held reach `max_queued_bytes`, rows are not sampled, and not copied
    either; the sampled rows are those taken before."""
    store = MemoryStore()
    bound = FIRST_BUFFER_ROWS * 8 + 1  # just past the first buffers (8 bytes a row)
    capture = Capture(store, CaptureSettings(flush_interval_s=60, max_queued_bytes=bound))
    _, taken = offer_rows(capture, 50)
    capture.close()
    kept = FIRST_BUFFER_ROWS + 1  # the row that doubled the buffers past the bound is the last
    assert taken == list(range(kept))
    assert sorted(store.samples(MODEL, 1)["x"].to_pylist()) == [float(n) for n in range(kept)]


def test_the_sampler_holds_copies_of_rows_never_what_offered_them() -> None:
    """Past the cap, the slots hold copies of the rows they took, in the second's buffers:
    nothing offered is referenced once it has been offered, kept or not."""
    store = MemoryStore()
    capture = Capture(store, CaptureSettings(flush_interval_s=60, sample_rows_per_s=5))
    alive, taken = offer_rows(capture, 2_000)
    capture.close()
    kept = store.samples(MODEL, 1)["x"].to_pylist()
    assert not any(alive)
    assert len(kept) == 5 and 5 < len(taken) < 200  # the fill, then the reservoir's jumps
    assert set(kept) <= {float(n) for n in taken}


class Broken(Offered):
    def tensors(self) -> tuple[AsColumns, dict[str, np.ndarray]]:
        raise ValueError("a tensor that cannot be copied")


def test_rows_that_could_not_be_copied_leave_their_slots_empty() -> None:
    """A copy that fails (the batcher logs it) loses only its own rows: the others of the
    second are still kept and written."""
    store = MemoryStore()
    capture = Capture(store, CaptureSettings(flush_interval_s=60))
    second, taken = int(time.time()), []
    for number in range(5):
        offered = (Broken if number == 2 else Offered)(number, taken)
        try:
            capture.sample((MODEL, 1), second, 1, offered, Offered.rows)
        except ValueError:
            assert number == 2
    capture.close()
    assert sorted(store.samples(MODEL, 1)["x"].to_pylist()) == [0.0, 1.0, 3.0, 4.0]
