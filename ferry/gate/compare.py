"""`ferry.compare`: a candidate version against a baseline on the same hold-out rows.

Both versions score every row; each part of the gate turns the scores into `Check`s
(quality with MLflow's thresholds, a naive model to beat, slices, bias, signature
compatibility, then latency, throughput and cost); the result passes when no check failed.
Every measurement is kept in the `GateResult`, with the versions compared and the data's
fingerprint, whatever the verdict.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pandas as pd

from ferry.data import fingerprint, read_table_file
from ferry.errors import InvalidInputError
from ferry.gate.bias import bias_checks
from ferry.gate.checks import Check, Judged, Scores
from ferry.gate.compat import require_same_task, signature_checks
from ferry.gate.conditions import MetricThreshold
from ferry.gate.performance import (
    TimingSettings,
    cost_checks,
    in_process_timings,
    latency_checks,
    server_timings,
)
from ferry.gate.quality import naive_check, quality_checks
from ferry.gate.slices import slice_checks
from ferry.loading import load_version
from ferry.registry import ModelVersion, Registry, Report, ReportDraft
from ferry.runtime.predictor import Predictor
from ferry.signature import Task

GATE_REPORT_VERSION = 1


@dataclass(frozen=True)
class GateOptions:
    """What to compare on and how strictly (`ferry compare`'s options)."""

    label: str
    slices: tuple[str, ...] = ()
    sensitive: str | None = None
    thresholds: Mapping[str, MetricThreshold] | None = None
    primary: str | None = None
    timing: TimingSettings | None = field(default_factory=TimingSettings)
    """None: leave latency, throughput and cost out (quality only)."""
    auto_slices: bool = True
    seed: int = 0


@dataclass(frozen=True)
class GateResult(Judged):
    """Every measurement of one comparison, and the verdict."""

    candidate: str
    baseline: str
    task: str
    rows: int
    data: dict[str, Any]
    """Where the rows came from, their fingerprint and the label column."""
    checks: list[Check]
    created_at: datetime

    def to_dict(self) -> dict[str, Any]:
        return {"report_version": GATE_REPORT_VERSION, "status": self.status,
                "candidate": self.candidate, "baseline": self.baseline, "task": self.task,
                "rows": self.rows, "data": self.data,
                "created_at": self.created_at.isoformat(),
                "failures": [check.name for check in self.failures()],
                "checks": [check.to_dict() for check in self.checks]}

    def to_json(self) -> bytes:
        return orjson.dumps(self.to_dict(), option=orjson.OPT_SERIALIZE_NUMPY
                            | orjson.OPT_INDENT_2)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> GateResult:
        return cls(candidate=data["candidate"], baseline=data["baseline"], task=data["task"],
                   rows=data["rows"], data=dict(data["data"]),
                   checks=[Check.from_dict(check) for check in data["checks"]],
                   created_at=datetime.fromisoformat(data["created_at"]))


@dataclass(frozen=True)
class HoldOut:
    """The rows both versions score: features, labels, and where they came from."""

    frame: pd.DataFrame
    labels: np.ndarray
    source: dict[str, Any]


def compare(candidate: str, baseline: str, data: str | Path | pd.DataFrame, label: str, *,
            slices: Sequence[str] = (), sensitive: str | None = None,
            registry: Registry | None = None, keep: bool = True,
            **options: Any) -> GateResult:
    """Compare registry versions `candidate` and `baseline` (URIs) on `data` (a Parquet, CSV
    or JSON-lines file, or a DataFrame) whose `label` column holds the true answers; the
    result is kept with the candidate unless `keep=False`. Other keywords are `GateOptions`
    fields."""
    registry = registry or Registry()
    settings = GateOptions(label=label, slices=tuple(slices), sensitive=sensitive, **options)
    versions = registry.get(candidate), registry.get(baseline)
    result = compare_versions(registry, *versions, gate_rows(data, settings), settings)
    if keep:
        keep_result(registry, *versions, result)
    return result


def keep_result(registry: Registry, candidate: ModelVersion, baseline: ModelVersion,
                result: GateResult) -> Report:
    """Store `result` with the candidate version: status, a summary and the full report."""
    summary = {"baseline": result.baseline, "rows": result.rows,
               "fingerprint": result.data.get("fingerprint"),
               "failures": [check.name for check in result.failures()]}
    return registry.add_report(candidate.name, candidate.version, ReportDraft(
        kind="gate", status=result.status, content=result.to_json(), summary=summary,
        baseline_version=baseline.version))


def hold_out(data: str | Path | pd.DataFrame, label: str | None,
             columns: Sequence[str] = ()) -> HoldOut:
    """The rows, checked: the label column (if any) and every named column must be there."""
    source: dict[str, Any] = {"path": None if isinstance(data, pd.DataFrame) else str(data)}
    frame = data if isinstance(data, pd.DataFrame) else read_table_file(Path(data))
    missing = [c for c in [*([label] if label else []), *columns] if c not in frame.columns]
    if missing:
        raise InvalidInputError(f"the data has no column {missing[0]!r} (columns: "
                                f"{', '.join(map(str, frame.columns[:12]))})")
    if frame.empty:
        raise InvalidInputError("the data has no rows")
    source |= {"rows": len(frame), "label": label, "fingerprint": fingerprint(frame)}
    labels = frame[label].to_numpy() if label else np.empty(0)
    return HoldOut(frame.reset_index(drop=True), labels, source)


def gate_rows(data: str | Path | pd.DataFrame, options: GateOptions) -> HoldOut:
    """The hold-out rows for `options`: its label, slice and sensitive columns required."""
    named = [*options.slices, *([options.sensitive] if options.sensitive else [])]
    return hold_out(data, options.label, named)


def compare_versions(registry: Registry, candidate: ModelVersion, baseline: ModelVersion,
                     rows: HoldOut, options: GateOptions) -> GateResult:
    require_same_task(candidate.task, baseline.task)
    predictors = (load_version(candidate, registry), load_version(baseline, registry))
    features = rows.frame.drop(columns=[options.label])
    scores = [score(predictor, features) for predictor in predictors]
    checks = [*signature_checks(candidate.signature, baseline.signature),
              *_model_checks(candidate.task, rows, scores, options)]
    if options.timing is not None:
        checks += _performance_checks(registry, (candidate, baseline), predictors, features,
                                      options.timing)
    return GateResult(candidate=candidate.uri, baseline=baseline.uri, task=str(candidate.task),
                      rows=len(rows.frame), data=rows.source, checks=checks,
                      created_at=datetime.now(UTC))


def score(predictor: Predictor, features: pd.DataFrame | np.ndarray) -> Scores:
    """One version's predictions on every row (probabilities when a classifier gives them)."""
    prediction = np.asarray(predictor.predict(features)).reshape(len(features), -1)
    probabilities = None
    if predictor.task == Task.CLASSIFICATION:
        try:
            probabilities = _normalised(predictor.predict_proba(features))
        except InvalidInputError:
            probabilities = None
    return Scores(prediction=prediction[:, 0] if prediction.shape[1] == 1 else prediction,
                  probabilities=probabilities, classes=predictor.signature.class_labels)


def _normalised(probabilities: Any) -> np.ndarray:
    """Rows summing to 1 in float64: a graph's float32 probabilities are off by a few ulps,
    which log loss takes for a model that is not giving probabilities."""
    values = np.asarray(probabilities, dtype=np.float64)
    totals = values.sum(axis=1, keepdims=True)
    return np.divide(values, totals, out=values.copy(), where=totals > 0)


def _model_checks(task: Task, rows: HoldOut, scores: list[Scores],
                  options: GateOptions) -> list[Check]:
    candidate, baseline = scores
    checks = [*quality_checks(task, rows.labels, candidate, baseline, options.thresholds,
                              options.primary, options.seed),
              naive_check(task, rows.labels, candidate, options.primary, options.seed)]
    checks += slice_checks(rows.frame.drop(columns=[options.label]), rows.labels, candidate,
                           baseline, task, declared=options.slices, auto=options.auto_slices,
                           seed=options.seed, primary=options.primary)
    if options.sensitive is not None:
        checks += bias_checks(rows.frame[options.sensitive], rows.labels, candidate, baseline,
                              task, seed=options.seed)
    return checks


def _performance_checks(registry: Registry, versions: tuple[ModelVersion, ModelVersion],
                        predictors: tuple[Predictor, Predictor], features: pd.DataFrame,
                        timing: TimingSettings) -> list[Check]:
    local = in_process_timings(predictors[0].predict, predictors[1].predict, features, timing)
    checks = [*latency_checks(*local, timing, "in_process"),
              *cost_checks(*local, timing, (_training(versions[0]), _training(versions[1])))]
    if timing.server:
        served = server_timings(registry, versions[0].uri, versions[1].uri, features, timing)
        checks += latency_checks(*served, timing, "server")
    return checks


def _training(version: ModelVersion) -> dict[str, Any]:
    """What registration recorded about training (metrics, then params, then tags)."""
    return {**version.tags, **version.params, **version.metrics}
