"""The stores other processes share (embedded, PostgreSQL): a reader in this process while a
writer process appends, and a writer killed with SIGKILL in the middle of its appends."""

from __future__ import annotations

import itertools
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import store_writer

from ferry.monitor.store import MonitoringStore, open_store

WRITER = Path(store_writer.__file__)
START_TIMEOUT_S = 60.0
READING_S = 1.5


@contextmanager
def writer(url: str) -> Iterator[subprocess.Popen[str]]:
    """The writer process, once its first batch is committed; killed at the end."""
    process = subprocess.Popen([sys.executable, str(WRITER), url], stdout=subprocess.PIPE,
                               text=True)
    try:
        wait_for_batch(process, 0)
        yield process
    finally:
        if process.poll() is None:
            process.kill()
        process.wait(timeout=30)


def wait_for_batch(process: subprocess.Popen[str], batch: int) -> None:
    assert process.stdout is not None
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        line = process.stdout.readline()
        assert line, f"the writer exited ({process.poll()}) before batch {batch}"
        if int(line) >= batch:
            return
    raise AssertionError(f"no batch {batch} within {START_TIMEOUT_S} s")


def complete_batches(store: MonitoringStore) -> tuple[int, int]:
    """How many batches of events and of sampled requests the store holds, asserting that
    every one of them is whole."""
    events = Counter(rid.split(":")[0] for rid in store.events("iris")["request_id"].to_pylist())
    rows = Counter(rid.split(":")[0] for rid in store.samples("iris", 1)["request_id"].to_pylist())
    assert set(events.values()) <= {store_writer.EVENTS}, "a batch of events is partial"
    assert set(rows.values()) <= {store_writer.REQUESTS * store_writer.ROWS}, \
        "a batch of samples is partial"
    return len(events), len(rows)


def test_another_process_reads_while_the_writer_appends(shared_store_url: str) -> None:
    seen: list[tuple[int, int]] = []
    with writer(shared_store_url) as process, open_store(shared_store_url) as reader:
        deadline = time.monotonic() + READING_S
        while time.monotonic() < deadline:
            seen.append(complete_batches(reader))
        assert process.poll() is None, "the writer stopped while it was read"

    assert seen[0][0] >= 1 and len(seen) >= 3
    assert all(now[0] >= before[0] and now[1] >= before[1]  # never less than the read before
               for before, now in itertools.pairwise(seen))
    assert seen[-1] > seen[0], "the reader never saw the writer's later batches"


def test_a_writer_killed_mid_append_leaves_only_whole_batches(shared_store_url: str) -> None:
    with writer(shared_store_url) as process:
        wait_for_batch(process, 2)
        os.kill(process.pid, signal.SIGKILL)
        process.wait(timeout=30)

    with open_store(shared_store_url) as store:
        events, samples = complete_batches(store)
        assert events >= 3 and samples >= 3 and events - samples in (0, 1)
        store.append_events(store_writer.events(10_000))  # and it takes appends again
        assert complete_batches(store)[0] == events + 1
