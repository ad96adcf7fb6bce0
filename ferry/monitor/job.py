"""The drift job: captured rows of one version over one window, judged against the version's
reference profile, and the results written back to the store so their history can be plotted.

`ferry monitor` (through `ferry.monitor.api`) and the server's drift schedule both run it, so a
window judged by hand and one judged on the schedule agree.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any

import numpy as np
import pyarrow as pa

from ferry.monitor.drift.base import DriftResult
from ferry.monitor.drift.dataset import WindowReport, evaluate_window
from ferry.monitor.events import MonitorResult
from ferry.monitor.profile import Profile
from ferry.monitor.reference import profile_from_bytes
from ferry.monitor.store import MonitoringStore
from ferry.monitor.store.chunks import in_range
from ferry.monitor.store.records import to_micros
from ferry.monitor.store.samples import concat
from ferry.registry import ModelVersion, Registry


class ResultKind(StrEnum):
    """What a stored `MonitorResult` judged."""

    FEATURE = "feature"
    PREDICTION = "prediction"
    DATASET = "dataset"


DATASET_METHOD = "drift_share"
"""The dataset result's method: its statistic is the share of input columns that drift."""
MAX_JUDGED_ROWS = 1_000_000
"""Rows one read judges at most. At the capture's default 100 rows a second a day is 8.6
million rows a version, more than memory holds; a million window rows already pin every
test's statistic far below its threshold's resolution, and 30 float columns of them take
about 250 MB."""
MIN_READ_SPAN = timedelta(minutes=10)
"""Slices of time read one at a time: 60,000 rows at the capture's default rate."""
MAX_READS = 1000
"""Store reads per call at most; longer spans read longer slices."""


def reference_profile(registry: Registry, version: ModelVersion) -> Profile | None:
    """The version's stored reference profile; None when it has none (registered without
    sample rows, or they could not be profiled)."""
    if version.profile_sha256 is None:
        return None
    return profile_from_bytes(registry.read_artifact(version, "profile"))


def read_samples(store: MonitoringStore, version: ModelVersion, since: datetime,
                 until: datetime, max_rows: int = MAX_JUDGED_ROWS) -> pa.Table:
    """The rows the capture sampled for `version` with `since <= ts < until`, at most
    `max_rows` of them: the span is read in slices of time (`time_slices`), each cut by a
    seeded uniform draw to an even share of what is left of `max_rows` (a slice with fewer
    rows hands its unused share on), so what one read holds in memory is bounded whatever
    span is asked for."""
    slices = time_slices(since, until)
    left, draw, parts = max_rows, np.random.default_rng(0), []
    for index, (start, end) in enumerate(slices):
        share = max(1, left // (len(slices) - index))
        parts.append(_at_most(store.samples(version.name, version.version, since=start,
                                            until=end), share, draw))
        left -= parts[-1].num_rows
    return concat(parts)


def time_slices(since: datetime, until: datetime) -> list[tuple[datetime, datetime]]:
    """[start, end) slices covering [since, until): `MIN_READ_SPAN` long, or longer so that
    there are at most `MAX_READS`."""
    step = max(MIN_READ_SPAN, (until - since) / MAX_READS)
    count = max(1, math.ceil((until - since) / step))
    return [(since + i * step, min(until, since + (i + 1) * step)) for i in range(count)]


def _at_most(table: pa.Table, rows: int, draw: np.random.Generator) -> pa.Table:
    """`rows` of the table's rows drawn uniformly, in their order; all when it has fewer."""
    if table.num_rows <= rows:
        return table
    return table.take(np.sort(draw.choice(table.num_rows, size=rows, replace=False)))


def evaluate(version: ModelVersion, store: MonitoringStore, profile: Profile,
             since: datetime, until: datetime) -> WindowReport:
    """Drift of the version's captured rows in [since, until) against `profile`."""
    return evaluate_samples(profile, read_samples(store, version, since, until))


def evaluate_samples(profile: Profile, samples: pa.Table) -> WindowReport:
    """Drift of a samples table (as `MonitoringStore.samples` answers it) against `profile`.
    An empty window judges every profiled column as `insufficient_data` rather than missing."""
    if samples.num_rows == 0:
        names = [*profile.columns, *profile.outputs]
        return evaluate_window(profile, {name: pa.nulls(0) for name in names})
    return evaluate_window(profile, samples)


def slice_samples(samples: pa.Table, since: datetime, until: datetime) -> pa.Table:
    """The rows of a larger samples table with `since <= ts < until` (one read, many
    windows)."""
    return in_range(samples, to_micros(since, "since"), to_micros(until, "until"))


def window_rows(report: WindowReport) -> int:
    """Rows in the judged window, missing values included."""
    return max((r.rows_current + r.missing_current for r in (*report.columns, *report.outputs)),
               default=0)


def results_of(version: ModelVersion, report: WindowReport, since: datetime, until: datetime,
               now: datetime | None = None) -> list[MonitorResult]:
    """The report as stored results: one per input column ("feature"), one per output column
    ("prediction") and one for the whole window ("dataset")."""
    window = _Window(version, since, until, now or datetime.now(UTC), window_rows(report))
    return [*(window.column(ResultKind.FEATURE, r) for r in report.columns),
            *(window.column(ResultKind.PREDICTION, r) for r in report.outputs),
            window.dataset(report)]


def record(store: MonitoringStore, version: ModelVersion, report: WindowReport,
           since: datetime, until: datetime) -> None:
    """Write the report's results to the store."""
    store.write_results(results_of(version, report, since, until))


@dataclass(frozen=True)
class _Window:
    """What every result of one window shares: the version, the window, when, how many rows."""

    version: ModelVersion
    since: datetime
    until: datetime
    now: datetime
    rows: int

    def column(self, kind: ResultKind, result: DriftResult) -> MonitorResult:
        statistic = math.nan if result.statistic is None else result.statistic
        return MonitorResult(
            **self._shared(), kind=str(kind), column=result.column, method=result.method,
            statistic=statistic, p_value=result.p_value, psi=result.psi,
            verdict=str(result.verdict),
            extra={"threshold": result.threshold, "rows_reference": result.rows_reference,
                   "rows_current": result.rows_current,
                   "missing_current": result.missing_current})

    def dataset(self, report: WindowReport) -> MonitorResult:
        prediction = report.prediction_verdict
        return MonitorResult(
            **self._shared(), kind=str(ResultKind.DATASET), column=None, method=DATASET_METHOD,
            statistic=report.drift_share, p_value=None, psi=None, verdict=str(report.verdict),
            extra={"prediction_verdict": None if prediction is None else str(prediction),
                   "bonferroni_p_values": dict(report.bonferroni_p_values),
                   "missing_columns": list(report.missing_columns)})

    def _shared(self) -> dict[str, Any]:
        return {"ts": self.now, "model": self.version.name, "version": self.version.version,
                "window_start": self.since, "window_end": self.until, "rows": self.rows}
