"""`ferry.monitor` and `ferry.set_reference`: is the traffic a version served still like the
data it was registered with, and the means to say what "like" is measured against.

    report = ferry.monitor("churn@production", since="24h", window="1h")
    report.verdict, report.to_dict()["columns"]
    ferry.set_reference("churn:3", last_quarter_rows)

`monitor` reads the rows the server's capture sampled for that version number, judges each
window against the version's reference profile (`ferry.monitor.job`), writes the results to
the monitoring store, and adds the version's staleness and, where rows have labels, its live
performance.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from contextlib import nullcontext
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pyarrow as pa

from ferry.errors import InvalidInputError
from ferry.loading import load_version
from ferry.monitor import job
from ferry.monitor.drift.base import DriftResult, Verdict
from ferry.monitor.drift.dataset import WindowReport
from ferry.monitor.durations import parse_duration, show_duration
from ferry.monitor.performance import live_performance
from ferry.monitor.profile import Profile
from ferry.monitor.reference import profile_bytes, profile_of
from ferry.monitor.staleness import Staleness, staleness
from ferry.monitor.store import MonitoringStore, open_store
from ferry.registry import ModelVersion, Registry

DEFAULT_SINCE = timedelta(hours=24)
"""How far back `ferry monitor` looks by default: a day of traffic, the daily cycle whole."""
MAX_WINDOWS = 1000
"""Windows one call may judge (a week in 10-minute windows): each is a full drift test."""


@dataclass(frozen=True)
class MonitoredWindow:
    """One window of captured rows and its drift report."""

    start: datetime
    end: datetime
    rows: int
    report: WindowReport

    def to_dict(self) -> dict[str, Any]:
        report = self.report
        return {"window_start": self.start.isoformat(), "window_end": self.end.isoformat(),
                "rows": self.rows, "verdict": str(report.verdict),
                "prediction_verdict": _optional(report.prediction_verdict),
                "drift_share": report.drift_share,
                "columns": [column_dict(r) for r in report.columns],
                "outputs": [column_dict(r) for r in report.outputs],
                "missing_columns": list(report.missing_columns),
                "bonferroni_p_values": dict(report.bonferroni_p_values)}


@dataclass(frozen=True)
class MonitorReport:
    """Drift per window (oldest first; the last is the latest), staleness and performance.

    The report's own verdict and columns are the latest window's. `profile` and `samples`
    (the latest window's rows) are kept for the HTML report's plots, not printed."""

    version: ModelVersion
    since: datetime
    until: datetime
    windows: tuple[MonitoredWindow, ...]
    staleness: Staleness
    performance: dict[str, Any] | None
    profile: Profile
    samples: pa.Table

    @property
    def latest(self) -> MonitoredWindow:
        return self.windows[-1]

    @property
    def verdict(self) -> Verdict:
        return self.latest.report.verdict

    def to_dict(self) -> dict[str, Any]:
        """The latest window at the top, the earlier ones (oldest first) under `windows`."""
        return {"model": self.version.name, "version": self.version.version,
                "uri": self.version.uri, "since": self.since.isoformat(),
                "until": self.until.isoformat(), **self.latest.to_dict(),
                "staleness": self.staleness.to_dict(), "performance": self.performance,
                "windows": [window.to_dict() for window in self.windows[:-1]]}


def column_dict(result: DriftResult) -> dict[str, Any]:
    """One column's result as `--json` prints it: `name` first, then the test's figures."""
    data = result.to_dict()
    return {"name": data.pop("column"), **data}


def monitor(uri: str, *, since: timedelta | str = DEFAULT_SINCE,
            window: timedelta | str | None = None, until: datetime | None = None,
            store: MonitoringStore | None = None, registry: Registry | None = None,
            report: str | Path | None = None) -> MonitorReport:
    """Judge the traffic `uri` (`name`, `name:3`, `name@production`) received between
    `until - since` and `until` (now), in windows of `window` (default: one window), against
    its reference profile; write the results to `store` (default: `open_store()`), and with
    `report` an HTML file of reference and current distributions per column."""
    registry = registry or Registry()
    version = registry.get(uri)
    profile = _profile_of(registry, version)
    bounds = window_bounds(until or datetime.now(UTC), _span(since, "since"),
                           None if window is None else _span(window, "window"))
    with nullcontext(store) if store is not None else open_store() as opened:
        result = _judge(version, profile, opened, bounds)
    if report is not None:
        from ferry.monitor.report import write_report

        write_report(Path(report), result)
    return result


def set_reference(uri: str, rows: Any, *, registry: Registry | None = None) -> ModelVersion:
    """Replace the reference profile of `uri`'s version with the profile of `rows` (a
    DataFrame, an array, or one array per input) and of the version's outputs on them.
    Rows whose columns do not fit the signature are refused (SampleMismatchError)."""
    registry = registry or Registry()
    version = registry.get(uri)
    profile = profile_of(load_version(version, registry), rows)
    if profile.rows == 0:
        raise InvalidInputError(f"no rows to profile for {version.uri}'s reference",
                                model=version.name, version=version.version)
    return registry.set_profile(version.name, version.version, profile_bytes(profile))


def window_bounds(until: datetime, since: timedelta,
                  window: timedelta | None) -> list[tuple[datetime, datetime]]:
    """[start, end) of each window, oldest first, the last ending at `until`; the first is
    cut at `until - since` when `window` does not divide `since`."""
    step = window or since
    count = math.ceil(since / step)
    if count > MAX_WINDOWS:
        raise InvalidInputError(f"window {show_duration(step)} cuts since"
                                f" {show_duration(since)} into {count} windows, more than"
                                f" {MAX_WINDOWS}: choose a longer window")
    start = until - since
    return [(max(start, until - (count - i) * step), until - (count - 1 - i) * step)
            for i in range(count)]


def _span(value: timedelta | str, name: str) -> timedelta:
    span = parse_duration(value, name) if isinstance(value, str) else value
    if span <= timedelta(0):
        raise InvalidInputError(f"{name} must be a positive span of time, not {value!r}")
    return span


def _profile_of(registry: Registry, version: ModelVersion) -> Profile:
    profile = job.reference_profile(registry, version)
    if profile is None:
        raise InvalidInputError(f"{version.uri} has no reference profile to measure drift"
                                f" against: set one with `ferry reference set {version.uri}"
                                " DATA`", model=version.name, version=version.version)
    return profile


def _judge(version: ModelVersion, profile: Profile, store: MonitoringStore,
           bounds: Sequence[tuple[datetime, datetime]]) -> MonitorReport:
    """Read the whole span once, judge each window, write every window's results."""
    since, until = bounds[0][0], bounds[-1][1]
    samples = job.read_samples(store, version, since, until)
    windows = tuple(_window(profile, samples, start, end) for start, end in bounds)
    store.write_results([result for w in windows for result in
                         job.results_of(version, w.report, w.start, w.end)])
    performance = live_performance(version, samples)
    return MonitorReport(version=version, since=since, until=until, windows=windows,
                         staleness=staleness(version, performance=performance),
                         performance=performance, profile=profile,
                         samples=job.slice_samples(samples, *bounds[-1]))


def _window(profile: Profile, samples: pa.Table, start: datetime,
            end: datetime) -> MonitoredWindow:
    report = job.evaluate_samples(profile, job.slice_samples(samples, start, end))
    return MonitoredWindow(start, end, job.window_rows(report), report)


def _optional(verdict: Verdict | None) -> str | None:
    return None if verdict is None else str(verdict)
