"""The one interface every monitoring store implements, and how long it keeps things.

Reads answer Arrow tables because their readers work on columns: `ferry traffic` counts and
takes latency percentiles over events with `pyarrow.compute`, and the drift job hands whole
feature columns to its detectors; a list of a million dataclasses would cost seconds to build
and be taken apart again at once. `events_from_table` turns a small events table back
into `InferenceEvent`s where objects are handier. Time ranges are half-open:
`since <= ts < until`.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from types import TracebackType
from typing import Any, Self

import pyarrow as pa

from ferry.errors import InvalidInputError
from ferry.monitor.events import InferenceEvent, MonitorResult, SampledRows
from ferry.monitor.store.event_chunks import stored_events
from ferry.monitor.store.records import MICROSECOND, to_micros

DEFAULT_EVENTS_RETENTION = timedelta(days=14)
"""Raw request events: long enough to compare this week's traffic with last week's."""
DEFAULT_SAMPLES_RETENTION = timedelta(days=30)
"""Sampled rows and their labels: a month of windows for drift and late feedback."""
DEFAULT_RESULTS_RETENTION = timedelta(days=400)
"""Drift results: a year and a month, so a season can be compared with last year's."""

Label = tuple[str, int, Any]
"""(request_id, row, label): the true answer for one row of one request, known later."""


@dataclass(frozen=True, slots=True)
class Attached:
    """What a store did with one call's labels."""

    labels: int
    """Labels stored: those that name a request the store sampled for the model (a later
    label for the same row replaces the earlier)."""
    matched: int
    """Of the rows labelled, those the sampler kept (a row past them joins nothing)."""
    skipped: int = 0
    """Labels not stored, as they name requests the store did not sample for the model."""
    skipped_ids: tuple[str, ...] = ()
    """The first of those requests' ids (`ferry.monitor.store.labels.SHOWN_UNKNOWN`)."""


@dataclass(frozen=True, slots=True)
class Retention:
    """How long each kind of record is kept before `purge` removes it."""

    events: timedelta = DEFAULT_EVENTS_RETENTION
    samples: timedelta = DEFAULT_SAMPLES_RETENTION
    results: timedelta = DEFAULT_RESULTS_RETENTION

    def __post_init__(self) -> None:
        for kind in ("events", "samples", "results"):
            if getattr(self, kind) <= timedelta(0):
                raise InvalidInputError(f"retention.{kind} must be positive")

    def cutoffs(self, now: datetime | None = None) -> Cutoffs:
        now_us = to_micros(now or datetime.now(UTC), "now")
        return Cutoffs(events_us=now_us - self.events // MICROSECOND,
                       samples_us=now_us - self.samples // MICROSECOND,
                       results_us=now_us - self.results // MICROSECOND)


@dataclass(frozen=True, slots=True)
class Cutoffs:
    """The oldest time, in microseconds, each kind of record may have to stay; samples and
    their labels share one."""

    events_us: int
    samples_us: int
    results_us: int


class MonitoringStore(ABC):
    """Where the server's capture appends and `ferry monitor` reads.

    Every append is atomic: after a crash a reader sees a batch whole or not at all.
    """

    def append_events(self, events: Sequence[InferenceEvent]) -> None:
        """Append events given as objects (tests, tools); the capture appends tables."""
        self.append_event_table(stored_events(events))

    @abstractmethod
    def append_event_table(self, table: pa.Table) -> None:
        """Append a table of events (`STORED_EVENTS_SCHEMA`; `event_chunks.from_columns`
        builds one), all or none of them."""

    @abstractmethod
    def append_samples(self, samples: Sequence[SampledRows]) -> None: ...

    @abstractmethod
    def events(self, model: str, version: int | None = None, since: datetime | None = None,
               until: datetime | None = None, limit: int | None = None) -> pa.Table:
        """The model's events oldest first (`EVENTS_SCHEMA`); with `limit`, the newest
        `limit` of them."""

    @abstractmethod
    def samples(self, model: str, version: int, since: datetime | None = None,
                until: datetime | None = None) -> pa.Table:
        """Sampled rows ordered by time: `ts`, `request_id`, `row`, one column per input and
        output, and `label` (null until feedback names the row)."""

    @abstractmethod
    def attach_labels(self, model: str, labels: Sequence[Label]) -> Attached:
        """Record true answers; a later label for the same row replaces the earlier. Labels of
        requests the store did not sample for `model` are skipped and counted: under load the
        capture samples a share of the requests, and a client labels all of its own. When no
        label names a sampled request, the call is refused (InvalidInputError naming the ids:
        a mistyped id or another model's) and nothing is written; so is a call with a row
        that is not an index."""

    @abstractmethod
    def write_results(self, results: Sequence[MonitorResult]) -> None: ...

    @abstractmethod
    def results(self, model: str, version: int | None = None,
                since: datetime | None = None) -> list[MonitorResult]:
        """The model's results oldest first."""

    @abstractmethod
    def purge(self, now: datetime | None = None) -> dict[str, int]:
        """Remove what is older than the retention allows; how many events, sampled rows,
        labels and results went."""

    @abstractmethod
    def close(self) -> None: ...

    def __enter__(self) -> Self:
        return self

    def __exit__(self, kind: type[BaseException] | None, value: BaseException | None,
                 traceback: TracebackType | None) -> None:
        self.close()
