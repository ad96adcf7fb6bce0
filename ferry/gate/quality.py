"""Is the candidate as good as the baseline, and better than a model that knows nothing?

`quality_checks` measures every metric of the task on both versions (the primary first) and
judges each with its `MetricThreshold`: by default the primary metric may not be worse than
the baseline's beyond noise, the others not worse by more than 1 % (see `conditions`). Rows
where a version's output is not a finite number are left out of the comparison, and the
candidate fails `quality.finite_predictions` if they are its own.

`naive_check` is deepchecks' simple-model comparison: the candidate must beat always
answering the hold-out's majority class (with its class shares as probabilities) or its mean,
on the primary metric, by more than noise. The naive model sees the hold-out's own labels,
which only makes it harder to beat.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np
from numpy.typing import ArrayLike

from ferry.errors import InvalidInputError
from ferry.gate.checks import Check, Kind, Scores, Verdict
from ferry.gate.conditions import (
    CONFIDENCE,
    Judgement,
    MetricThreshold,
    Resamples,
    difference_interval,
    judge,
)
from ferry.gate.metrics import (
    METRICS,
    PRIMARY,
    Labelled,
    Metric,
    encode,
    finite_rows,
    metric,
)
from ferry.signature import Task

REPORTED_ONLY = frozenset({"log_loss", "r2"})
"""Metrics measured but not gated unless named in the thresholds or chosen as primary: log
loss follows calibration, and two fits of one model on a few hundred rows differ by tens of
percent; R² on the same labels is the MSE rescaled, which the RMSE check already judges."""


def quality_checks(task: Task, y_true: ArrayLike, candidate: Scores, baseline: Scores,
                   thresholds: Mapping[str, MetricThreshold] | None = None,
                   primary: str | None = None, seed: int = 0) -> list[Check]:
    """One check per metric, the primary first. `thresholds` (by metric name, MLflow's
    names accepted) replace the default condition of the metrics they name; a metric named
    there or as `primary` that the candidate cannot give (log loss without probabilities)
    fails."""
    if task not in METRICS:
        return []
    pair, finite = _finite_rows(encode(task, y_true, candidate, baseline))
    main = metric(task, primary or PRIMARY[task])
    rules = _rules(task, main, pair[0], thresholds or {})
    resamples = Resamples(seed=seed)
    checks = [] if finite is None else [finite]
    return checks + [_quality_check(m, rule, pair[0], pair[1], resamples, m is main)
                     for m, rule in rules.items()]


def _rules(task: Task, main: Metric, candidate: Labelled,
           thresholds: Mapping[str, MetricThreshold]) -> dict[Metric, MetricThreshold | None]:
    """The default condition of the primary and of every metric the candidate gives (None:
    reported only), then the caller's."""
    rules: dict[Metric, MetricThreshold | None] = {
        m: None if m.name in REPORTED_ONLY and m is not main
        else MetricThreshold(greater_is_better=m.greater_is_better)
        for m in (main, *METRICS[task]) if m is main or m.available(candidate)}
    for name, rule in thresholds.items():
        chosen = metric(task, name)
        if rule.greater_is_better != chosen.greater_is_better:
            better = "higher" if chosen.greater_is_better else "lower"
            raise InvalidInputError(f"the threshold for {chosen.name} says greater_is_better="
                                    f"{rule.greater_is_better}, but a {better} "
                                    f"{chosen.name} is better")
        rules[chosen] = rule
    return rules


def _quality_check(chosen: Metric, rule: MetricThreshold | None, candidate: Labelled,
                   baseline: Labelled, resamples: Resamples, primary: bool) -> Check:
    """One metric of both versions, judged by `rule` (None: reported only)."""
    name, detail = f"quality.{chosen.name}", _detail(chosen, rule, primary)
    if not chosen.available(candidate):
        return Check(name, Kind.QUALITY, None, None, "the candidate gives probabilities",
                     Verdict.FAILED, detail | {"failed": ["missing_candidate"]})
    value = chosen.value(candidate)
    reference = chosen.value(baseline) if chosen.available(baseline) else None
    if not math.isfinite(value if reference is None else value + reference):
        return Check(name, Kind.QUALITY, _finite(value), _finite(reference),
                     "reported only: not measurable on these rows", Verdict.REPORTED, detail)
    interval, measured = None, {}
    if reference is not None:
        interval = difference_interval(chosen, candidate, baseline, value - reference,
                                       resamples)
        measured = {"difference": value - reference, **interval.to_detail()}
    judged = Judgement(Verdict.REPORTED, "reported only") if rule is None else judge(
        rule, value, reference, interval)
    return Check(name, Kind.QUALITY, value, reference, judged.condition, judged.verdict,
                 detail | measured | {"failed": list(judged.failed)})


def _finite(value: float | None) -> float | None:
    return value if value is not None and math.isfinite(value) else None


def _detail(chosen: Metric, rule: MetricThreshold | None, primary: bool) -> dict[str, Any]:
    """What the metric is and the knobs that judge it."""
    return {"metric": chosen.name, "primary": primary,
            "greater_is_better": chosen.greater_is_better, **_knobs(rule)}


def _knobs(rule: MetricThreshold | None) -> dict[str, float]:
    if rule is None:
        return {}
    knobs = {"threshold": rule.threshold, "min_absolute_change": rule.min_absolute_change,
             "min_relative_change": rule.min_relative_change,
             "max_relative_drop": rule.max_relative_drop}
    return {knob: value for knob, value in knobs.items() if value is not None}


def _finite_rows(versions: list[Labelled]) -> tuple[list[Labelled], Check | None]:
    """The versions on the rows where all gave finite outputs, and a check on the
    candidate's (the first) when some did not."""
    bad = [~finite_rows(data) for data in versions]
    dropped = np.logical_or.reduce(bad)
    if not dropped.any():
        return versions, None
    counts = [int(b.sum()) for b in bad]
    check = Check("quality.finite_predictions", Kind.QUALITY, counts[0],
                  counts[1] if len(counts) > 1 else None,
                  "the candidate gives a finite output on every row",
                  Verdict.FAILED if counts[0] else Verdict.PASSED,
                  {"rows": len(dropped), "compared_rows": int((~dropped).sum())})
    keep = np.flatnonzero(~dropped)
    return [data.take(keep) for data in versions], check


def naive_check(task: Task, y_true: ArrayLike, candidate: Scores, primary: str | None = None,
                seed: int = 0) -> Check:
    """The candidate beats the majority class (classifier) or the mean (regressor) on the
    primary metric: the difference's confidence interval lies wholly on the better side."""
    [data], _ = _finite_rows(encode(task, y_true, candidate))
    chosen = metric(task, primary or PRIMARY[task])
    if not chosen.available(data):
        chosen = metric(task, PRIMARY[task])
    value, trivial = chosen.value(data), chosen.value(_naive(data))
    interval = difference_interval(chosen, data, _naive(data), value - trivial,
                                   Resamples(seed=seed))
    beats = interval.low > 0 if chosen.greater_is_better else interval.high < 0
    return Check(f"naive.{chosen.name}", Kind.NAIVE, value, trivial,
                 f"candidate better than the naive model (whole {CONFIDENCE:.0%} CI of "
                 "candidate - naive on the better side of 0)",
                 Verdict.PASSED if beats else Verdict.FAILED,
                 {"metric": chosen.name, "naive_model": _describe(data),
                  **interval.to_detail(), "gain": _gain(chosen, value, trivial)})


def _gain(chosen: Metric, value: float, trivial: float) -> float | None:
    """deepchecks' gain: the share of the naive model's distance to perfect closed."""
    possible = chosen.best - trivial
    return (value - trivial) / possible if possible else None


def _naive(data: Labelled) -> Labelled:
    """A model that ignores its inputs: the majority class with the class shares as
    probabilities, or the mean value."""
    if data.classes is None:
        constant = np.full(data.rows, data.truth.mean())
        return Labelled(data.truth, constant)
    shares = np.bincount(data.truth, minlength=len(data.classes)) / data.rows
    probabilities = np.tile(shares, (data.rows, 1))
    majority = np.full(data.rows, int(np.argmax(shares)))
    return Labelled(data.truth, majority, probabilities, data.classes)


def _describe(data: Labelled) -> str:
    if data.classes is None:
        return f"always {data.truth.mean():.6g} (the mean)"
    majority = data.classes[int(np.argmax(np.bincount(data.truth)))]
    return f"always {majority!r} (the majority class)"
