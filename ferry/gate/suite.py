"""`ferry test`: the test suite of one version, kept with it.

- robustness: perturbed hold-out rows must not flip predictions (`robustness.py`); failing
  rows become regression cases that later runs replay first;
- staleness: the version's age against its bands, and, when the server captured labelled
  traffic, the metric on the latest labelled window against the registered one;
- stress: the highest request rate the served version holds with p99 under a target, found
  with `ferry bench`'s closed-loop load generator against the version served here.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pandas as pd

from ferry.gate.cases import case_file, load_cases, replay, save_cases
from ferry.gate.checks import Check, Judged, Kind, Verdict
from ferry.gate.compare import HoldOut, score
from ferry.gate.images import ImageSettings, image_checks
from ferry.gate.robustness import robustness_checks
from ferry.loading import load_version
from ferry.registry import ModelVersion, Registry, Report, ReportDraft
from ferry.settings import Settings

STRESS_CONCURRENCY = (1, 2, 4, 8, 16, 32)
DEFAULT_LATENCY_TARGET_MS = 100.0
STALENESS_WINDOW = timedelta(days=1)


@dataclass(frozen=True)
class TestOptions:
    """What `ferry test` runs."""

    robustness: bool = True
    staleness: bool = True
    stress: bool = True
    latency_target_ms: float = DEFAULT_LATENCY_TARGET_MS
    stress_seconds: float = 1.0
    """Measured seconds per concurrency level."""
    cases_dir: Path | None = None
    """Where regression cases are kept; None: `$FERRY_HOME/cases`."""
    seed: int = 0


@dataclass(frozen=True)
class SuiteResult(Judged):
    """Every check the suite ran on one version."""

    uri: str
    checks: list[Check]
    data: dict[str, Any]
    created_at: datetime = field(default_factory=lambda: datetime.now(UTC))

    def to_dict(self) -> dict[str, Any]:
        return {"uri": self.uri, "status": self.status, "data": self.data,
                "created_at": self.created_at.isoformat(),
                "failures": [check.name for check in self.failures()],
                "checks": [check.to_dict() for check in self.checks]}


def run_suite(registry: Registry, version: ModelVersion, rows: HoldOut | None,
              options: TestOptions, images: np.ndarray | None = None) -> SuiteResult:
    """The suite on `version`: robustness on `rows` (a table) or `images` (an image model's
    input tensor), staleness and stress as `options` say."""
    checks: list[Check] = []
    if options.robustness and rows is not None:
        checks += _robustness(registry, version, rows, options)
    if options.robustness and images is not None:
        predictor = load_version(version, registry)
        checks += image_checks(lambda batch: score(predictor, batch), images,
                               settings=ImageSettings(seed=options.seed))
    if options.staleness:
        checks += staleness_checks(version)
    if options.stress:
        checks.append(stress_check(registry, version, options))
    return SuiteResult(version.uri, checks, rows.source if rows is not None else {})


def keep_suite(registry: Registry, version: ModelVersion, result: SuiteResult) -> Report:
    summary = {"failures": [check.name for check in result.checks if check.failed],
               "fingerprint": result.data.get("fingerprint")}
    stress = next((c for c in result.checks if c.kind is Kind.STRESS), None)
    if stress is not None:
        summary["max_req_s_under_target"] = stress.candidate
    content = orjson.dumps(result.to_dict(), option=orjson.OPT_SERIALIZE_NUMPY)
    return registry.add_report(version.name, version.version, ReportDraft(
        kind="test", status=result.status, content=content, summary=summary))


def _robustness(registry: Registry, version: ModelVersion, rows: HoldOut,
                options: TestOptions) -> list[Check]:
    predictor = load_version(version, registry)

    def predict(frame: pd.DataFrame) -> Any:
        return score(predictor, frame)

    label = rows.source.get("label")
    features = rows.frame.drop(columns=[label]) if label else rows.frame
    path = _cases_path(options, version)
    saved = load_cases(path) if path.exists() else []
    checks = [replay(saved, predict)] if saved else []
    found, cases = robustness_checks(predict, features, version.task, seed=options.seed)
    if cases:
        save_cases([*saved, *cases], path)
    return checks + found


def _cases_path(options: TestOptions, version: ModelVersion) -> Path:
    folder = options.cases_dir or Settings.from_env().home / "cases"
    return case_file(folder, version.name, version.version)


def staleness_checks(version: ModelVersion) -> list[Check]:
    """Age against the version's bands; live metrics against the registered ones when the
    monitoring store holds labelled rows of the last day."""
    from ferry.monitor.performance import live_performance
    from ferry.monitor.staleness import Level, staleness
    from ferry.monitor.store import open_store

    with open_store(None) as store:
        samples = store.samples(version.name, version.version,
                                since=datetime.now(UTC) - STALENESS_WINDOW)
    performance = live_performance(version, samples) if samples.num_rows else None
    stale = staleness(version, performance=performance)
    checks = [Check("staleness.age_days", Kind.STALENESS, stale.age_days, stale.critical_days,
                    "age below the critical band (tag staleness_critical_days)",
                    Verdict.FAILED if stale.level is Level.CRITICAL else Verdict.PASSED,
                    {"level": str(stale.level), "warn_days": stale.warn_days})]
    return checks + _decay_checks(performance)


def _decay_checks(performance: dict[str, Any] | None) -> list[Check]:
    if not performance:
        return []
    enough = bool(performance.get("enough_labels"))
    return [Check(f"staleness.live_{name}", Kind.STALENESS,
                  performance["metrics"].get(name), registered,
                  f"live within {performance['threshold']:.0%} of the registered value",
                  Verdict.REPORTED if not enough else Verdict.FAILED
                  if name in performance["worse"] else Verdict.PASSED,
                  {"labelled_rows": performance["labelled_rows"],
                   "decay": performance["decay"].get(name)})
            for name, registered in performance["registered"].items()]


def stress_check(registry: Registry, version: ModelVersion, options: TestOptions) -> Check:
    """The best closed-loop step with p99 under the target, the version served here."""
    from ferry.loadtest import LoadPlan, Target, best_step, discover, mark_targets, run_plan
    from ferry.loadtest import transport_factory as transports
    from ferry.loadtest.bodies import make_batches, rows_per_request
    from ferry.serve.server import serve_in_thread

    running = serve_in_thread([version.uri], grpc_port=None, registry=registry)
    try:
        target = Target("http", running.http_url, version.name, str(version.version), False)
        info = discover(target)
        batches = make_batches(info.inputs, 1, 64, seed=options.seed)
        plan = LoadPlan(mode="concurrency", levels=tuple(map(float, STRESS_CONCURRENCY)),
                        warmup_s=0.3, duration_s=options.stress_seconds,
                        rows_per_request=rows_per_request(info.inputs, 1),
                        pool_size=len(batches), client_cpu=False)
        results = run_plan(transports(target, info.inputs, batches, 10.0), plan).results
    finally:
        running.stop()
    mark_targets(results, options.latency_target_ms, "p99")
    best = best_step(results)
    steps = [{"concurrency": r.level, "req_s": r.req_s, "p99_ms": r.p99_ms} for r in results]
    return Check("stress.max_req_s", Kind.STRESS, None if best is None else best.req_s, None,
                 f"p99 <= {options.latency_target_ms:g} ms with no errors",
                 Verdict.FAILED if best is None else Verdict.PASSED,
                 {"steps": steps, "target_ms": options.latency_target_ms,
                  "best_concurrency": None if best is None else best.level})
