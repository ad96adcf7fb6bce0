"""Drift judged by the server itself, on a schedule (`ferry serve --drift-every 10m`).

Every `drift_every_s`, each served version that has a reference profile is judged on the rows
the capture sampled since the previous run (`ferry.monitor.job`, the same job `ferry monitor`
runs), the results are written to the monitoring store, and the verdicts are exported:

    ferry_drift_score{model,version,feature,method}   the test's statistic (NaN: too few rows)
    ferry_drift_detected{model,version}               1 when the dataset drifts, else 0
    ferry_model_age_seconds{model,version}            time since the version was registered

Reading a window and testing it take a good part of a second for large windows, so both run
in a worker thread, never on the event loop that answers requests. Every label value comes
from the server: model and version from what it serves, feature from the version's profile
(at most `MAX_GAUGED_COLUMNS` per version), method from the detector; a series whose version
is no longer served, or whose column the new profile lacks, is removed.
"""

from __future__ import annotations

import asyncio
import logging
import math
from datetime import UTC, datetime, timedelta

from ferry.errors import FerryError
from ferry.monitor import job
from ferry.monitor.drift.base import Verdict
from ferry.monitor.drift.dataset import WindowReport
from ferry.monitor.profile import Profile
from ferry.monitor.store import MonitoringStore
from ferry.registry import ModelVersion, Registry
from ferry.serve.metrics import ServerMetrics
from ferry.serve.repository import ModelRepository
from ferry.serve.settings import ServeSettings

log = logging.getLogger("ferry.serve")

MAX_GAUGED_COLUMNS = 100
"""Columns per version exported as `ferry_drift_score` series; the store keeps them all."""
SAMPLED_SECOND_S = 1.0
"""The capture's sampler hands over a second's rows once that second has ended
(`ferry.monitor.capture.sampler`), so rows reach the store up to this much late, plus up to
two flush intervals (one waiting, one writing)."""

VersionKey = tuple[str, str]
"""(model, version) as gauge labels."""


class DriftGauges:
    """The drift gauges of `ServerMetrics`, and the series each version has, so that those
    nothing sets any more are removed instead of going stale."""

    def __init__(self, metrics: ServerMetrics):
        self.metrics = metrics
        self._scores: dict[VersionKey, set[tuple[str, str]]] = {}
        """(feature, method) of each `ferry_drift_score` series, by version."""

    def age(self, version: ModelVersion, now: datetime) -> None:
        key = _key(version)
        self._scores.setdefault(key, set())
        self.metrics.model_age.labels(*key).set((now - version.created_at).total_seconds())

    def drift(self, version: ModelVersion, report: WindowReport) -> None:
        key = _key(version)
        results = (*report.columns, *report.outputs)[:MAX_GAUGED_COLUMNS]
        scores = {(r.column, r.method): math.nan if r.statistic is None else r.statistic
                  for r in results}
        for feature, method in self._scores.get(key, set()) - set(scores):
            self.metrics.drift_score.remove(*key, feature, method)
        for (feature, method), statistic in scores.items():
            self.metrics.drift_score.labels(*key, feature, method).set(statistic)
        self._scores[key] = set(scores)
        self.metrics.drift_detected.labels(*key).set(float(report.verdict is Verdict.DRIFT))

    def keep_only(self, served: list[ModelVersion]) -> None:
        """Remove every series of the versions no longer served."""
        for key in set(self._scores) - {_key(version) for version in served}:
            for feature, method in self._scores.pop(key):
                self.metrics.drift_score.remove(*key, feature, method)
            self.metrics.drift_detected.remove(*key)
            self.metrics.model_age.remove(*key)


class DriftSchedule:
    """Judge every served version's last interval of traffic, every `every_s` seconds."""

    def __init__(self, repository: ModelRepository, registry: Registry,
                 store: MonitoringStore, metrics: ServerMetrics, settings: ServeSettings):
        self.repository = repository
        self.registry = registry
        self.store = store
        self.gauges = DriftGauges(metrics)
        self.every = timedelta(seconds=settings.drift_every_s)
        self.settle = timedelta(seconds=SAMPLED_SECOND_S
                                + 2 * settings.capture.flush_interval_s)
        """How far behind the clock a window ends: by then its rows are in the store."""
        self._profiles: dict[str, Profile] = {}
        """Profiles by their artifact's sha256: read once, whatever version shares one."""
        self._since: datetime | None = None

    async def run(self) -> None:
        """Until cancelled; a cancelled run lets the evaluation in progress finish, so the
        store is not closed under it."""
        while True:
            await asyncio.sleep(self.every.total_seconds())
            evaluation = asyncio.ensure_future(asyncio.to_thread(self.run_once))
            try:
                await asyncio.shield(evaluation)
            except asyncio.CancelledError:
                await asyncio.wait([evaluation])
                raise
            except Exception:
                log.exception("drift evaluation failed; trying again in %s", self.every)

    def run_once(self, until: datetime | None = None) -> None:
        """Judge [previous run, `until`) for every served version (in a worker thread);
        `until` defaults to now less the time the capture takes to store rows."""
        until = until or datetime.now(UTC) - self.settle
        since, self._since = self._since or until - self.every, until
        served = [self._current(s.version) for s in self.repository.served_models()]
        for version in served:
            self.gauges.age(version, datetime.now(UTC))
            try:
                self._judge(version, since, until)
            except Exception:  # one version's bad profile or data must not stop the others
                log.exception("drift of %s not judged from %s to %s", version.uri, since,
                              until)
        self.gauges.keep_only(served)
        kept = {version.profile_sha256 for version in served}
        self._profiles = {sha: p for sha, p in self._profiles.items() if sha in kept}

    def _current(self, version: ModelVersion) -> ModelVersion:
        """The version as the registry has it now: `ferry reference set` may have replaced
        its profile since it was loaded."""
        try:
            return self.registry.get(version.uri)
        except FerryError:
            return version

    def _judge(self, version: ModelVersion, since: datetime, until: datetime) -> None:
        profile = self._profile(version)
        if profile is None:
            return
        report = job.evaluate(version, self.store, profile, since, until)
        job.record(self.store, version, report, since, until)
        self.gauges.drift(version, report)

    def _profile(self, version: ModelVersion) -> Profile | None:
        sha = version.profile_sha256
        if sha is None:
            return None
        if sha not in self._profiles:
            profile = job.reference_profile(self.registry, version)
            if profile is None:
                return None
            self._profiles[sha] = profile
        return self._profiles[sha]


def _key(version: ModelVersion) -> VersionKey:
    return version.name, str(version.version)
