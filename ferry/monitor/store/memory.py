"""A store in this process's memory, gone when the process ends: for tests, notebooks and a
server run without a place to write (`memory://`).

It keeps the same rows and Arrow chunks the SQL stores keep and answers through the same
functions, so code tested against it behaves the same on the others.
"""

from __future__ import annotations

import threading
from collections import defaultdict
from collections.abc import Sequence
from datetime import datetime
from typing import Any

import pyarrow as pa

from ferry.monitor.events import MonitorResult, SampledRows
from ferry.monitor.store import event_chunks
from ferry.monitor.store import labels as label_rules
from ferry.monitor.store import samples as sampling
from ferry.monitor.store.base import Attached, Label, MonitoringStore, Retention
from ferry.monitor.store.chunks import in_range
from ferry.monitor.store.records import (
    check_limit,
    optional_micros,
    result_from_row,
    result_row,
)

LabelKey = tuple[str, str, int]
"""(model, request_id, row)."""


class MemoryStore(MonitoringStore):
    """Everything in memory, one lock around it (the capture appends from its own thread)."""

    def __init__(self, retention: Retention | None = None):
        self.retention = retention or Retention()
        self._lock = threading.Lock()
        self._events: dict[str, list[pa.Table]] = defaultdict(list)
        """Per model, its appended event tables."""
        self._chunks: dict[sampling.VersionKey, list[pa.Table]] = defaultdict(list)
        self._sampled: dict[tuple[str, str], list[tuple[str, int, int, int]]] = defaultdict(list)
        """Per (model, request_id): (request_id, version, ts_us, row) of its sampled rows."""
        self._labels: dict[LabelKey, label_rules.LabelRow] = {}
        self._results: list[dict[str, Any]] = []

    def append_event_table(self, table: pa.Table) -> None:
        parts = event_chunks.by_model(event_chunks.checked(table))
        with self._lock:
            for model, part in parts.items():
                self._events[model].append(part)

    def append_samples(self, samples: Sequence[SampledRows]) -> None:
        chunks = sampling.chunks_by_version(samples)
        with self._lock:
            for (model, version), table in chunks.items():
                self._chunks[model, version].append(table)
                self._index(model, version, table)

    def _index(self, model: str, version: int, table: pa.Table) -> None:
        for request_id, ts_us, row in sampling.sampled_keys(table):
            self._sampled[model, request_id].append((request_id, version, ts_us, row))

    def events(self, model: str, version: int | None = None, since: datetime | None = None,
               until: datetime | None = None, limit: int | None = None) -> pa.Table:
        low, high = optional_micros(since, "since"), optional_micros(until, "until")
        newest = check_limit(limit)
        with self._lock:
            tables = list(self._events.get(model, ()))
        return event_chunks.answer(
            [event_chunks.selected(table, version, low, high) for table in tables], newest)

    def samples(self, model: str, version: int, since: datetime | None = None,
                until: datetime | None = None) -> pa.Table:
        low, high = optional_micros(since, "since"), optional_micros(until, "until")
        with self._lock:
            chunks = list(self._chunks.get((model, version), ()))
            labels = [(row.request_id, row.row, row.label) for row in self._labels.values()
                      if row.model == model and row.version == version
                      and _within(row.ts_us, low, high)]
        return sampling.answer(chunks, low, high, labels)

    def attach_labels(self, model: str, labels: Sequence[Label]) -> Attached:
        with self._lock:
            known = self._known(model, label_rules.request_ids(labels))
            plan = label_rules.label_plan(model, labels, known)
            self._labels.update({(model, row.request_id, row.row): row for row in plan.rows})
        return plan.attached

    def _known(self, model: str, request_ids: list[str]) -> dict[str, label_rules.KnownRequest]:
        return label_rules.known_requests(key for request_id in request_ids
                                          for key in self._sampled.get((model, request_id), ()))

    def write_results(self, results: Sequence[MonitorResult]) -> None:
        rows = [result_row(result) for result in results]
        with self._lock:
            self._results.extend(rows)

    def results(self, model: str, version: int | None = None,
                since: datetime | None = None) -> list[MonitorResult]:
        low = optional_micros(since, "since")
        with self._lock:
            rows = [row for row in self._results if row["model"] == model
                    and (version is None or row["version"] == version)
                    and _within(row["ts_us"], low, None)]
        return [result_from_row(row) for row in sorted(rows, key=lambda row: row["ts_us"])]

    def purge(self, now: datetime | None = None) -> dict[str, int]:
        cutoffs = self.retention.cutoffs(now)
        with self._lock:
            return {"events": self._purge_events(cutoffs.events_us),
                    "samples": self._purge_samples(cutoffs.samples_us),
                    "labels": self._purge_labels(cutoffs.samples_us),
                    "results": self._purge_results(cutoffs.results_us)}

    def _purge_events(self, cutoff_us: int) -> int:
        return sum(_purge_tables(self._events, model, cutoff_us) for model in self._events)

    def _purge_samples(self, cutoff_us: int) -> int:
        removed = sum(_purge_tables(self._chunks, key, cutoff_us) for key in self._chunks)
        for request, keys in list(self._sampled.items()):
            kept = [key for key in keys if key[2] >= cutoff_us]
            if kept:
                self._sampled[request] = kept
            else:
                del self._sampled[request]
        return removed

    def _purge_labels(self, cutoff_us: int) -> int:
        before = len(self._labels)
        self._labels = {key: row for key, row in self._labels.items() if row.ts_us >= cutoff_us}
        return before - len(self._labels)

    def _purge_results(self, cutoff_us: int) -> int:
        before = len(self._results)
        self._results = [row for row in self._results if row["ts_us"] >= cutoff_us]
        return before - len(self._results)

    def close(self) -> None:
        """Nothing to release: the data lives as long as this object."""


def _purge_tables(tables: dict[Any, list[pa.Table]], key: Any, cutoff_us: int) -> int:
    """Keep only the rows of `tables[key]` from `cutoff_us` on; how many went."""
    kept = [in_range(table, cutoff_us, None) for table in tables[key]]
    removed = sum(table.num_rows for table in tables[key]) - sum(t.num_rows for t in kept)
    tables[key] = [table for table in kept if table.num_rows]
    return removed


def _within(ts_us: int, low: int | None, high: int | None) -> bool:
    return (low is None or ts_us >= low) and (high is None or ts_us < high)
