"""When a metric passes: MLflow's four knobs, and a non-regression rule that knows noise.

`MetricThreshold(threshold, min_absolute_change, min_relative_change, greater_is_better)` has
MLflow 2.x's meaning exactly (mlflow/models/evaluation/validation.py), judged on the two
versions' measured values:

    threshold             candidate >= threshold            (<= when lower is better)
    min_absolute_change   candidate >= baseline + change    (<= baseline - change)
    min_relative_change   candidate >= baseline * (1 + r)   (<= baseline * (1 - r));
                          a baseline of 0 asks candidate > baseline (MLflow's 1e-10 step)

To these ferry adds `max_relative_drop`, the gate's default condition: the candidate may not
be worse than the baseline by more than `max_relative_drop * |baseline|`, *beyond noise*. Both
versions are scored on the same rows, so the difference candidate - baseline gets a paired
bootstrap confidence interval (95 %, 1000 resamples, seeded) and the rule fails only when the
whole interval lies on the worse side of the tolerance: for a greater-is-better metric, when
its upper end is below -tolerance.

The default tolerance is 1 % (`DEFAULT_RELATIVE_DROP`), for the primary metric as for the
others. With 0, a model equal to the baseline would already fail 2.5 % of the time, and a
retrained copy (same model, other training rows) fails more often: the interval covers the
noise of the hold-out rows, not that of training, which makes two fits genuinely, slightly
different. Over 100 random splits each, tolerance 0 failed such retrains 3-4 % of the time on
accuracy (breast cancer, logistic regression and random forest) and 6-16 % on RMSE (diabetes,
ridge and random forest); 1 % failed none on accuracy and 1-2 % on RMSE. A model three to
five points of accuracy worse on a thousand rows still fails (digits: the interval's upper end
is 1.5 to 3.5 points below 0).

The resamples are Poisson(1) weights per row (the Poisson bootstrap, Hanley & MacGibbon 2006;
Chamandy et al. 2012): each row's weight is independent of the others, so one seeded weight
matrix serves both versions, every metric and every slice. Above `BOOTSTRAP_MAX_ROWS` rows the
resamples are drawn on a seeded subsample of that many rows and their spread around the
subsample's value is scaled by sqrt(subsample / rows), the rate at which every metric here
settles, so a million-row hold-out costs what a five-thousand-row one does.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from ferry.errors import InvalidInputError
from ferry.gate.checks import Verdict
from ferry.gate.metrics import Labelled, Metric

CONFIDENCE = 0.95
"""Two-sided level of the difference's confidence interval."""
RESAMPLES = 1000
"""Bootstrap resamples per interval."""
BOOTSTRAP_MAX_ROWS = 5000
"""Rows above which the bootstrap runs on a subsample and rescales its spread."""
DEFAULT_RELATIVE_DROP = 0.01
"""How much worse than the baseline, relative and beyond noise, a gated metric may be (1 %)."""
_MLFLOW_STEP = 1e-10
"""MLflow's "strictly better" step when the baseline is 0 for a relative change."""


@dataclass(frozen=True, kw_only=True)
class MetricThreshold:
    """One metric's condition: MLflow's four knobs plus ferry's noise-aware non-regression
    (`None` turns it off, leaving MLflow's semantics alone)."""

    threshold: float | None = None
    min_absolute_change: float | None = None
    min_relative_change: float | None = None
    greater_is_better: bool
    max_relative_drop: float | None = DEFAULT_RELATIVE_DROP

    def __post_init__(self) -> None:
        if self.min_absolute_change is not None and not self.min_absolute_change > 0:
            raise InvalidInputError("min_absolute_change must be a positive number")
        if self.min_relative_change is not None and not 0 <= self.min_relative_change <= 1:
            raise InvalidInputError("min_relative_change must be between 0 and 1")
        if self.max_relative_drop is not None and not self.max_relative_drop >= 0:
            raise InvalidInputError("max_relative_drop must be 0 or more")
        if (self.threshold, self.min_absolute_change, self.min_relative_change,
                self.max_relative_drop) == (None, None, None, None):
            raise InvalidInputError("a MetricThreshold needs at least one condition")


@dataclass(frozen=True)
class Interval:
    """A confidence interval of candidate - baseline, and what it was computed from."""

    low: float
    high: float
    rows: int
    resamples: int
    bootstrapped_rows: int
    confidence: float = CONFIDENCE

    def to_detail(self) -> dict[str, object]:
        ends = [None if math.isnan(end) else end for end in (self.low, self.high)]
        return {"ci": ends, "confidence": self.confidence, "rows": self.rows,
                "resamples": self.resamples, "bootstrapped_rows": self.bootstrapped_rows}


@dataclass
class Resamples:
    """Seeded Poisson(1) bootstrap weights, drawn once and shared by every interval."""

    count: int = RESAMPLES
    seed: int = 0
    max_rows: int = BOOTSTRAP_MAX_ROWS
    _weights: np.ndarray = field(init=False, repr=False,
                                 default_factory=lambda: np.empty((0, 0), dtype=np.float32))

    def weights(self, rows: int) -> np.ndarray:
        """(count, rows) weights: the first `rows` columns of the widest matrix asked for."""
        if rows > self._weights.shape[1]:
            drawn = np.random.default_rng(self.seed).poisson(1.0, size=(self.count, rows))
            self._weights = drawn.astype(np.float32)
        return self._weights[:, :rows]

    def subsample(self, rows: int) -> np.ndarray | None:
        """Which rows the bootstrap uses when there are more than `max_rows` (else None)."""
        if rows <= self.max_rows:
            return None
        chosen = np.random.default_rng([self.seed, rows]).choice(rows, self.max_rows,
                                                                 replace=False)
        return np.sort(chosen)


def difference_interval(metric: Metric, candidate: Labelled, baseline: Labelled,
                        difference: float, resamples: Resamples) -> Interval:
    """The paired bootstrap interval of metric(candidate) - metric(baseline) (`difference` on
    every row): both versions measured on the same resampled rows."""
    rows, chosen = candidate.rows, resamples.subsample(candidate.rows)
    centre = difference
    if chosen is not None:
        candidate, baseline = candidate.take(chosen), baseline.take(chosen)
        centre = metric.value(candidate) - metric.value(baseline)
    weights = resamples.weights(candidate.rows)
    spread = metric.resampled(candidate, weights) - metric.resampled(baseline, weights)
    low, high = _quantiles(spread)
    scale = math.sqrt(candidate.rows / rows)
    return Interval(difference + (low - centre) * scale, difference + (high - centre) * scale,
                    rows, resamples.count, candidate.rows)


def _quantiles(spread: np.ndarray) -> tuple[float, float]:
    """The interval's ends among the resamples that could be measured (NaN if none could)."""
    finite = spread[np.isfinite(spread)]
    if not len(finite):
        return math.nan, math.nan
    tail = (1 - CONFIDENCE) / 2
    low, high = np.quantile(finite, [tail, 1 - tail])
    return float(low), float(high)


@dataclass(frozen=True)
class Judgement:
    """A threshold applied: the verdict, the condition in words, and which parts failed."""

    verdict: Verdict
    condition: str
    failed: tuple[str, ...] = ()


def judge(rule: MetricThreshold, candidate: float, baseline: float | None,
          interval: Interval | None) -> Judgement:
    """Every condition `rule` sets, on the candidate's value, the baseline's and the
    difference's interval; REPORTED when none applies (no baseline to compare with)."""
    parts = [part for part in (_threshold(rule, candidate),
                               _absolute(rule, candidate, baseline),
                               _relative(rule, candidate, baseline),
                               _drop(rule, baseline, interval)) if part is not None]
    if not parts:
        return Judgement(Verdict.REPORTED, "reported only: no baseline to compare with")
    failed = tuple(name for name, _, passed in parts if not passed)
    return Judgement(Verdict.FAILED if failed else Verdict.PASSED,
                     " and ".join(words for _, words, _ in parts), failed)


_Part = tuple[str, str, bool]
"""(knob, the condition in words, whether it held)."""


def _better(rule: MetricThreshold, value: float, bound: float) -> bool:
    """value >= bound when greater is better, else value <= bound (MLflow's comparator)."""
    return value >= bound if rule.greater_is_better else value <= bound


def _sign(rule: MetricThreshold) -> tuple[str, str, float]:
    return (">=", "+", 1.0) if rule.greater_is_better else ("<=", "-", -1.0)


def _threshold(rule: MetricThreshold, candidate: float) -> _Part | None:
    if rule.threshold is None:
        return None
    compare, _, _ = _sign(rule)
    return ("threshold", f"candidate {compare} {rule.threshold:.6g}",
            _better(rule, candidate, rule.threshold))


def _absolute(rule: MetricThreshold, candidate: float, baseline: float | None) -> _Part | None:
    if rule.min_absolute_change is None:
        return None
    compare, plus, sign = _sign(rule)
    words = f"candidate {compare} baseline {plus} {rule.min_absolute_change:.6g}"
    if baseline is None:
        return "min_absolute_change", words + " (no baseline value)", False
    bound = baseline + sign * rule.min_absolute_change
    return "min_absolute_change", words, _better(rule, candidate, bound)


def _relative(rule: MetricThreshold, candidate: float, baseline: float | None) -> _Part | None:
    if rule.min_relative_change is None:
        return None
    compare, plus, sign = _sign(rule)
    words = f"candidate {compare} baseline * (1 {plus} {rule.min_relative_change:.6g})"
    if baseline is None:
        return "min_relative_change", words + " (no baseline value)", False
    if baseline == 0:
        bound = sign * _MLFLOW_STEP
        return "min_relative_change", words, _better(rule, candidate, bound)
    change = sign * (candidate - baseline) / baseline
    return "min_relative_change", words, change >= rule.min_relative_change


def _drop(rule: MetricThreshold, baseline: float | None,
          interval: Interval | None) -> _Part | None:
    """The noise-aware non-regression: the interval must reach the tolerated side."""
    if rule.max_relative_drop is None or baseline is None or interval is None:
        return None
    tolerance = rule.max_relative_drop * abs(baseline)
    margin = (f" by more than {rule.max_relative_drop:.4g} relative"
              if rule.max_relative_drop else "")
    ci = f"the {CONFIDENCE:.0%} CI of candidate - baseline"
    if rule.greater_is_better:
        words = f"no worse than baseline{margin} (upper end of {ci} >= {0.0 - tolerance:.4g})"
        return "max_relative_drop", words, interval.high >= -tolerance
    words = f"no worse than baseline{margin} (lower end of {ci} <= {tolerance:.4g})"
    return "max_relative_drop", words, interval.low <= tolerance
