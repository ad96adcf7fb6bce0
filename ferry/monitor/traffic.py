"""Traffic: what the server's capture saw of one model over a recent span, from the store's
events, computed on their columns with `pyarrow.compute`.

    requests per second, per bucket      how busy, and when
    latency percentiles (p50, p95, p99)  how slow the answers were, queue and model included
    request / response bytes             payload sizes, mean and p95
    datatype mix                         input tensors by V2 datatype (FP32, BYTES, ...)
    statuses and error rate              how requests ended (`ferry.monitor.events.Outcome`)
"""

from __future__ import annotations

import math
from contextlib import nullcontext
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from ferry.errors import InvalidInputError
from ferry.monitor.durations import parse_duration, show_duration
from ferry.monitor.events import Outcome
from ferry.monitor.store import MonitoringStore, open_store
from ferry.monitor.store.records import MICROSECOND, to_micros
from ferry.registry import Registry
from ferry.uri import ModelURI

DEFAULT_SINCE = "1h"
DEFAULT_BUCKET = "1m"
MAX_BUCKETS = 10_000
"""Buckets one report may hold: a week by the minute, a year by the hour."""
PERCENTILES = (0.5, 0.95, 0.99)

Span = timedelta | str
"""A span of time: a timedelta, or text such as "30m", "24h", "7d"."""


@dataclass(frozen=True, slots=True)
class Target:
    """The model the traffic is of, and its version (None: every version)."""

    model: str
    version: int | None

    @classmethod
    def of(cls, uri: str, registry: Registry | None = None) -> Target:
        """`name` (every version), `name:3`, or `name@alias` (the version it points at now)."""
        parsed = ModelURI.parse(uri)
        if parsed.alias is None:
            return cls(parsed.name, parsed.version)
        return cls(parsed.name, (registry or Registry()).get(parsed).version)


@dataclass(frozen=True, slots=True)
class Window:
    """The half-open span `[start, end)` a report covers."""

    start: datetime
    end: datetime

    @classmethod
    def ending(cls, since: Span, now: datetime | None = None) -> Window:
        end = now or datetime.now(UTC)
        return cls(end - span(since, "since"), end)


def span(value: Span, what: str) -> timedelta:
    """A span given as a timedelta or as text ("30m"), checked the same way either way."""
    return parse_duration(value if isinstance(value, str) else show_duration(value), what)


@dataclass(frozen=True, slots=True)
class Bucket:
    start: datetime
    requests: int
    errors: int
    per_second: float


@dataclass(frozen=True, slots=True)
class Spread:
    """A quantity's mean and 95th percentile."""

    mean: float
    p95: float


@dataclass(frozen=True, slots=True)
class Latency:
    p50_ms: float
    p95_ms: float
    p99_ms: float


@dataclass(frozen=True, slots=True)
class TrafficReport:
    model: str
    version: int | None
    start: datetime
    end: datetime
    bucket_s: float
    requests: int
    per_second: float
    error_rate: float
    statuses: dict[str, int]
    datatypes: dict[str, int]
    """Input tensors by datatype, over every request."""
    latency: Latency | None
    """None when there were no requests."""
    request_bytes: Spread | None
    response_bytes: Spread | None
    buckets: tuple[Bucket, ...]

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["start"], data["end"] = self.start.isoformat(), self.end.isoformat()
        data["buckets"] = [{**asdict(b), "start": b.start.isoformat()} for b in self.buckets]
        return data


def traffic(uri: str, since: Span = DEFAULT_SINCE, bucket: Span = DEFAULT_BUCKET, *,
            store: MonitoringStore | None = None, now: datetime | None = None,
            registry: Registry | None = None) -> TrafficReport:
    """The traffic of the model `uri` names over the last `since`, in `bucket`-long buckets
    (from `store`, default `open_store()`, where the server's capture writes by default)."""
    window, width = Window.ending(since, now), span(bucket, "bucket")
    check_buckets(window.end - window.start, width)
    target = Target.of(uri, registry)
    with nullcontext(store) if store is not None else open_store() as source:
        events = source.events(target.model, target.version, since=window.start,
                               until=window.end)
    return report(target, window, width, events)


def check_buckets(since: timedelta, width: timedelta, what: str = "bucket") -> None:
    """Refuse a bucket so short that the report would hold more than `MAX_BUCKETS`."""
    count = math.ceil(since / width)
    if count > MAX_BUCKETS:
        raise InvalidInputError(f"{what} {show_duration(width)} cuts {show_duration(since)} "
                                f"into {count} buckets, more than {MAX_BUCKETS}: choose a "
                                "longer one")


def report(target: Target, window: Window, width: timedelta, events: pa.Table) -> TrafficReport:
    """The report of `events` (an `EVENTS_SCHEMA` table, all within `window`)."""
    requests, seconds = events.num_rows, (window.end - window.start).total_seconds()
    statuses = _counts(events["status"])
    errors = requests - statuses.get(Outcome.OK, 0)
    return TrafficReport(
        model=target.model, version=target.version, start=window.start, end=window.end,
        bucket_s=width.total_seconds(), requests=requests, per_second=requests / seconds,
        error_rate=errors / requests if requests else 0.0, statuses=statuses,
        datatypes=_counts(pc.struct_field(pc.list_flatten(events["inputs"]), "datatype")),
        latency=_latency(events["latency_s"]), request_bytes=_spread(events["request_bytes"]),
        response_bytes=_spread(events["response_bytes"]), buckets=_buckets(events, window,
                                                                           width))


def _counts(values: pa.ChunkedArray | pa.Array) -> dict[str, int]:
    """How often each value occurs, most frequent first."""
    counted = pc.value_counts(values).to_pylist()
    pairs = sorted(((row["values"], row["counts"]) for row in counted), key=lambda p: -p[1])
    return {str(value): count for value, count in pairs}


def _quantiles(values: pa.ChunkedArray, q: tuple[float, ...]) -> list[float] | None:
    if len(values) == 0:
        return None
    return [float(v) for v in pc.quantile(values, q=list(q)).to_pylist()]


def _latency(seconds: pa.ChunkedArray) -> Latency | None:
    found = _quantiles(seconds, PERCENTILES)
    return None if found is None else Latency(*(value * 1000 for value in found))


def _spread(sizes: pa.ChunkedArray) -> Spread | None:
    found = _quantiles(sizes, (0.95,))
    return None if found is None else Spread(float(pc.mean(sizes).as_py()), found[0])


def _buckets(events: pa.Table, window: Window, width: timedelta) -> tuple[Bucket, ...]:
    """Requests and errors per bucket, empty buckets included (their number is bounded by
    `MAX_BUCKETS`)."""
    count = math.ceil((window.end - window.start) / width)
    offsets = pc.divide(pc.subtract(events["ts"].cast(pa.int64()),
                                    to_micros(window.start, "start")), width // MICROSECOND)
    slots = np.asarray(offsets.to_numpy(), dtype=np.int64)
    failed = np.asarray(pc.not_equal(events["status"], str(Outcome.OK)).to_numpy(), dtype=bool)
    requests = np.bincount(slots, minlength=count)[:count]
    errors = np.bincount(slots[failed], minlength=count)[:count]
    starts = [window.start + i * width for i in range(count)]
    return tuple(Bucket(start, int(requests[i]), int(errors[i]), int(requests[i]) / (
        min(start + width, window.end) - start).total_seconds())
        for i, start in enumerate(starts))
