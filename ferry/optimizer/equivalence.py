"""The equivalence gate: a candidate's outputs against the original model's, on held-out rows
of the reference sample that calibration never saw.

What is compared depends on the output:
- labels: the share of rows whose label agrees;
- probabilities and regression values: for exact candidates, element-wise
  `|candidate - original| <= atol + rtol * |original|` (`tolerance_used` is the largest share
  of that slack used); for lossy ones, the 99.9th percentile of the absolute error against a
  cap (probabilities) or the largest error against a share of the original's range (values);
- embeddings and scores (a model with no task whose output has several columns): the cosine
  similarity of each row, the smallest one against a floor; with labels from the user, the
  arg-max is also compared as a label (a CNN's logits);
- with labels from the user (`y`): accuracy, whose drop must stay under a bound.

Exact candidates (float32 reformulations) must match to float tolerance; lossy ones (int8,
bf16, fp16) within the looser, documented defaults below. Every number is recorded, pass or
fail.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from ferry.convert.check import (
    DEFAULT_ATOL,
    DEFAULT_MIN_LABEL_AGREEMENT,
    DEFAULT_RTOL,
    closeness,
)
from ferry.optimizer.candidate import Precision
from ferry.runtime.predictor import Outputs
from ferry.signature import Role, Task

LOSSY_MIN_LABEL_AGREEMENT = 0.995
LOSSY_MAX_ACCURACY_DROP = 0.005
"""Half a point of accuracy, when the user gives labels."""
LOSSY_PROBABILITY_P999 = 0.1
"""Cap on the 99.9th percentile of |Δp|: int8 moved single probabilities by up to 0.95 while
keeping 99.5 % of labels (reference/optimization.md §4.2)."""
LOSSY_VALUE_RANGE_SHARE = 0.01
"""Largest |Δ| of a regression value, as a share of the original values' range."""
EXACT_MIN_COSINE = 0.9999
LOSSY_MIN_COSINE = 0.99


@dataclass(frozen=True)
class Gate:
    """The thresholds; `ferry optimize --tolerance key=value` sets any of them."""

    rtol: float = DEFAULT_RTOL
    atol: float = DEFAULT_ATOL
    min_label_agreement: float = DEFAULT_MIN_LABEL_AGREEMENT
    lossy_min_label_agreement: float = LOSSY_MIN_LABEL_AGREEMENT
    lossy_max_accuracy_drop: float = LOSSY_MAX_ACCURACY_DROP
    lossy_probability_p999: float = LOSSY_PROBABILITY_P999
    lossy_value_range_share: float = LOSSY_VALUE_RANGE_SHARE
    min_cosine: float = EXACT_MIN_COSINE
    lossy_min_cosine: float = LOSSY_MIN_COSINE

    def to_dict(self) -> dict[str, float]:
        return asdict(self)


@dataclass(frozen=True)
class Measure:
    """One number the gate looked at, its bound, and whether it held."""

    output: str
    metric: str
    value: float
    bound: float | None
    """None: recorded for information, not checked."""
    passed: bool

    def describe(self) -> str:
        if self.bound is None:
            return f"{self.output} {self.metric} {self.value:.3g}"
        relation = ">=" if self.metric in _AT_LEAST else "<="
        verdict = "ok" if self.passed else "FAILS"
        return (f"{self.output} {self.metric} {self.value:.4g}"
                f" ({relation} {self.bound:.4g}: {verdict})")


_AT_LEAST = {"label_agreement", "min_cosine"}


@dataclass(frozen=True)
class Verdict:
    """The gate's result for one candidate."""

    precision: str
    rows: int
    measures: list[Measure] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return bool(self.measures) and all(m.passed for m in self.measures)

    def failures(self) -> list[Measure]:
        return [m for m in self.measures if not m.passed]

    def summary(self) -> str:
        if not self.measures:
            return "nothing compared"
        shown = self.failures() or [m for m in self.measures if m.bound is not None]
        return "; ".join(m.describe() for m in shown[:3])

    def to_dict(self) -> dict[str, Any]:
        return {"precision": self.precision, "rows": self.rows, "passed": self.passed,
                "measures": [asdict(m) for m in self.measures]}


def judge(original: Outputs, candidate: Outputs, precision: Precision, task: Task,
          gate: Gate, y: np.ndarray | None = None) -> Verdict:
    """Compare every output both sides give, by its role."""
    rows = len(next(iter(original.values()))) if original else 0
    measures: list[Measure] = []
    lossy = precision == Precision.LOSSY
    if Role.LABEL in original and Role.LABEL in candidate:
        measures += _labels(original[Role.LABEL], candidate[Role.LABEL], lossy, gate, y)
    if Role.PROBABILITIES in original and Role.PROBABILITIES in candidate:
        measures += _close("probabilities", original[Role.PROBABILITIES],
                           candidate[Role.PROBABILITIES], lossy, gate, probabilities=True)
    if Role.VALUE in original and Role.VALUE in candidate:
        want, got = _as_float(original[Role.VALUE]), _as_float(candidate[Role.VALUE])
        if task == Task.OTHER and want.ndim >= 2 and want.shape[-1] > 1:
            measures.append(_cosine(want, got, lossy, gate))
            if y is not None and Role.LABEL not in original and want.ndim == 2:
                measures += _labels(want.argmax(axis=1), got.argmax(axis=1), lossy, gate,
                                    y.astype(np.int64, copy=False))
        else:
            measures += _close("value", want, got, lossy, gate, probabilities=False)
    return Verdict(str(precision), rows, measures)


def _labels(want: np.ndarray, got: np.ndarray, lossy: bool, gate: Gate,
            y: np.ndarray | None) -> list[Measure]:
    want, got = np.asarray(want).reshape(-1), np.asarray(got).reshape(-1)
    agreement = float(np.mean(_same(want, got))) if len(want) else 1.0
    bound = gate.lossy_min_label_agreement if lossy else gate.min_label_agreement
    measures = [Measure("label", "label_agreement", agreement, bound, agreement >= bound)]
    if y is not None and len(y) == len(want):
        truth = np.asarray(y).reshape(-1)
        drop = float(np.mean(_same(want, truth)) - np.mean(_same(got, truth)))
        measures.append(Measure("label", "accuracy_drop", drop, gate.lossy_max_accuracy_drop,
                                drop <= gate.lossy_max_accuracy_drop))
    return measures


def _same(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.asarray([str(x) for x in a]) == np.asarray([str(x) for x in b]) \
        if a.dtype.kind in "OUS" or b.dtype.kind in "OUS" else a == b


def _as_float(values: np.ndarray) -> np.ndarray:
    return np.asarray(values, dtype=np.float64)


def _close(name: str, want: np.ndarray, got: np.ndarray, lossy: bool, gate: Gate,
           probabilities: bool) -> list[Measure]:
    want, got = _as_float(want), _as_float(got).reshape(_as_float(want).shape)
    error = np.abs(got - want)
    max_abs = float(error.max()) if error.size else 0.0
    if not lossy:
        close = closeness(want, got, rtol=gate.rtol, atol=gate.atol)
        return [Measure(name, "tolerance_used", close.tolerance_used, 1.0, close.passed),
                Measure(name, "max_abs_error", close.max_abs_error, None, True),
                Measure(name, "max_rel_error", close.max_rel_error, None, True)]
    if probabilities:
        p999 = float(np.quantile(error, 0.999)) if error.size else 0.0
        return [Measure(name, "p99.9_abs_error", p999, gate.lossy_probability_p999,
                        p999 <= gate.lossy_probability_p999),
                Measure(name, "max_abs_error", max_abs, None, True)]
    spread = float(want.max() - want.min()) if want.size else 0.0
    bound = gate.atol + gate.lossy_value_range_share * spread
    return [Measure(name, "max_abs_error", max_abs, bound, max_abs <= bound)]


def _cosine(want: np.ndarray, got: np.ndarray, lossy: bool, gate: Gate) -> Measure:
    a = want.reshape(len(want), -1)
    b = got.reshape(len(got), -1)
    norms = np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1)
    cosine = np.sum(a * b, axis=1) / np.maximum(norms, 1e-12)
    lowest = float(cosine.min()) if cosine.size else 1.0
    bound = gate.lossy_min_cosine if lossy else gate.min_cosine
    return Measure("value", "min_cosine", lowest, bound, lowest >= bound)
