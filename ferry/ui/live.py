"""The serving process's own numbers, read from its Prometheus exposition (what `/metrics`
answers), per model and version: requests and how they ended, latency, queue and compute
time and batch sizes from the histograms; for the whole server the payload sizes, which it
counts per protocol only. Metric names and labels are `ferry.serve.metrics`'.

Requests per second come from two scrapes: `RateKeeper` keeps the last one per series (one
number and its time), so what it holds is bounded by the series the server reports.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field

from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.samples import Sample

from ferry.text import is_whole_number

REQUESTS = "ferry_inference_requests"
REQUEST_DURATION = "ferry_request_duration_seconds"
QUEUE_DURATION = "ferry_queue_duration_seconds"
COMPUTE_DURATION = "ferry_compute_duration_seconds"
BATCH_SIZE = "ferry_batch_size"
REQUEST_SIZE = "ferry_request_size_bytes"
RESPONSE_SIZE = "ferry_response_size_bytes"
INFLIGHT = "ferry_inflight_requests"
VERSION_HISTOGRAMS = {REQUEST_DURATION: "latency", QUEUE_DURATION: "queue",
                      COMPUTE_DURATION: "compute", BATCH_SIZE: "batch"}
"""Histograms labelled by model and version, and the `VersionNumbers` field each fills."""
SERVER_HISTOGRAMS = {REQUEST_SIZE: "request_bytes", RESPONSE_SIZE: "response_bytes"}
"""Histograms labelled by protocol only, and the `Snapshot` field each fills."""
OK_STATUSES = frozenset({"200", "OK"})
"""The `status` label of a request answered: the HTTP code over REST, gRPC's name over gRPC."""
UNRESOLVED = ("", "")
"""(model, version) of requests that named no served model (a 404)."""

SeriesKey = tuple[str, str]
"""(model, version label) as the metrics label them."""


@dataclass
class Histogram:
    """A Prometheus histogram summed over label sets: cumulative counts by upper bound."""

    buckets: dict[float, float] = field(default_factory=dict)
    count: float = 0.0
    total: float = 0.0

    def add(self, sample: Sample) -> None:
        """Add one `_bucket`, `_count` or `_sum` sample of the histogram."""
        if sample.name.endswith("_bucket"):
            bound = float(sample.labels["le"])
            self.buckets[bound] = self.buckets.get(bound, 0.0) + sample.value
        elif sample.name.endswith("_count"):
            self.count += sample.value
        elif sample.name.endswith("_sum"):
            self.total += sample.value

    @property
    def mean(self) -> float | None:
        """The mean observation; None before any."""
        return self.total / self.count if self.count else None

    def quantile(self, q: float) -> float | None:
        """The `q` quantile as Prometheus' `histogram_quantile` estimates it: linear within
        the bucket that holds it; the highest finite bound when it falls in `+Inf`'s."""
        if not self.count or not self.buckets:
            return None
        rank, lower, below = q * self.count, 0.0, 0.0
        for bound, cumulative in sorted(self.buckets.items()):
            if cumulative >= rank:
                if math.isinf(bound):
                    return lower
                share = (rank - below) / (cumulative - below) if cumulative > below else 1.0
                return lower + (bound - lower) * share
            lower, below = bound, cumulative
        return lower


@dataclass
class VersionNumbers:
    """What the server counted for one served model version since it started."""

    model: str
    version: str
    statuses: dict[str, float] = field(default_factory=dict)
    latency: Histogram = field(default_factory=Histogram)
    queue: Histogram = field(default_factory=Histogram)
    compute: Histogram = field(default_factory=Histogram)
    batch: Histogram = field(default_factory=Histogram)

    @property
    def key(self) -> SeriesKey:
        """(model, version) as labelled."""
        return self.model, self.version

    @property
    def requests(self) -> float:
        """Requests answered, whatever their status."""
        return sum(self.statuses.values())

    @property
    def errors(self) -> float:
        """Requests answered with another status than success."""
        return sum(count for status, count in self.statuses.items()
                   if status not in OK_STATUSES)


@dataclass
class Snapshot:
    """One scrape: every served version's numbers, and the server-wide ones."""

    versions: dict[SeriesKey, VersionNumbers] = field(default_factory=dict)
    request_bytes: Histogram = field(default_factory=Histogram)
    response_bytes: Histogram = field(default_factory=Histogram)
    inflight: float = 0.0

    def version(self, key: SeriesKey) -> VersionNumbers:
        """The numbers of `key`, created empty on first use."""
        found = self.versions.get(key)
        if found is None:
            found = self.versions[key] = VersionNumbers(*key)
        return found

    def ordered(self) -> list[VersionNumbers]:
        """Served versions by model, then version number; unresolved requests last."""
        return sorted(self.versions.values(), key=_order)


def _order(numbers: VersionNumbers) -> tuple[bool, str, int, str]:
    """Sort key: model, then version as a number; unresolved requests last."""
    version = numbers.version
    return (numbers.key == UNRESOLVED, numbers.model,
            int(version) if is_whole_number(version) else -1, version)


def parse_exposition(text: bytes | str) -> Snapshot:
    """The numbers of a Prometheus text exposition of `ferry serve`'s metrics."""
    source = text.decode("utf-8") if isinstance(text, bytes) else text
    snapshot = Snapshot()
    for family in text_string_to_metric_families(source):
        for sample in family.samples:
            _take(snapshot, family.name, sample)
    return snapshot


def _take(snapshot: Snapshot, family: str, sample: Sample) -> None:
    """Add one sample to the snapshot when it is one of the metrics shown."""
    if sample.name.endswith("_created"):
        return
    labels = sample.labels
    if family == REQUESTS and sample.name == f"{REQUESTS}_total":
        statuses = snapshot.version((labels.get("model", ""), labels.get("version", ""))).statuses
        status = labels.get("status", "")
        statuses[status] = statuses.get(status, 0.0) + sample.value
    elif family in VERSION_HISTOGRAMS:
        numbers = snapshot.version((labels.get("model", ""), labels.get("version", "")))
        getattr(numbers, VERSION_HISTOGRAMS[family]).add(sample)
    elif family in SERVER_HISTOGRAMS:
        getattr(snapshot, SERVER_HISTOGRAMS[family]).add(sample)
    elif family == INFLIGHT:
        snapshot.inflight += sample.value


@dataclass(frozen=True)
class _Scrape:
    at: float
    count: float
    rate: float | None


class RateKeeper:
    """Requests per second of each series, from the counter's change since the last scrape
    at least `min_interval_s` older (a second look sooner reuses the last rate). Keeps one
    scrape per series, and forgets series the server no longer reports."""

    def __init__(self, min_interval_s: float = 1.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        """`clock` gives seconds (monotonic); a test passes its own."""
        self.min_interval_s = min_interval_s
        self._clock = clock
        self._last: dict[SeriesKey, _Scrape] = {}
        self._lock = threading.Lock()

    def __len__(self) -> int:
        """Series held: those of the last scrape."""
        return len(self._last)

    def rates(self, counts: Mapping[SeriesKey, float]) -> dict[SeriesKey, float | None]:
        """The rate of each series in `counts` (None on its first scrape)."""
        now = self._clock()
        with self._lock:
            kept = {key: self._next(self._last.get(key), count, now)
                    for key, count in counts.items()}
            self._last = kept
        return {key: scrape.rate for key, scrape in kept.items()}

    def _next(self, last: _Scrape | None, count: float, now: float) -> _Scrape:
        """The scrape kept for one series after seeing `count` at `now`."""
        if last is None:
            return _Scrape(now, count, None)
        if now - last.at < self.min_interval_s:
            return last
        change = count if count < last.count else count - last.count  # a restart resets
        return _Scrape(now, count, change / (now - last.at))


def request_counts(versions: Iterable[VersionNumbers]) -> dict[SeriesKey, float]:
    """Each series' requests answered so far, the counter `RateKeeper` differentiates."""
    return {numbers.key: numbers.requests for numbers in versions}
