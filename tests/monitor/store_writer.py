"""Appends to a monitoring store until it is killed: `python store_writer.py URL`.

Batch k is one append of `EVENTS` events (request ids "k:i") and then one append of
`REQUESTS` sampled requests of `ROWS` rows each; after both commit it prints k.
"""

from __future__ import annotations

import sys
from datetime import UTC, datetime, timedelta

import numpy as np

from ferry.monitor.events import InferenceEvent, SampledRows
from ferry.monitor.store import open_store

EVENTS = 2000
REQUESTS = 40
ROWS = 5
MODEL = "iris"
START = datetime(2026, 1, 1, tzinfo=UTC)


def events(batch: int) -> list[InferenceEvent]:
    return [InferenceEvent(START + timedelta(seconds=batch), f"{batch}:{i}", MODEL, 1, None,
                           "rest", "ok", None, 0.01, 0.0, 0.01, 1, 100, 10, (), ())
            for i in range(EVENTS)]


def samples(batch: int) -> list[SampledRows]:
    columns = {"x": np.arange(ROWS, dtype=np.float64), "output:label": np.ones(ROWS)}
    return [SampledRows(START + timedelta(seconds=batch), f"{batch}:{i}", MODEL, 1, columns)
            for i in range(REQUESTS)]


def main(url: str) -> None:
    store = open_store(url)
    batch = 0
    while True:
        store.append_events(events(batch))
        store.append_samples(samples(batch))
        print(batch, flush=True)
        batch += 1


if __name__ == "__main__":
    main(sys.argv[1])
