"""The detector interface, its result, and the three-level verdict.

A detector follows scikit-learn's conventions: `__init__` stores parameters, `fit(column)`
prepares the reference profile's column (fitted state ends in `_`), `score(values)` reduces a
window to counts against it and returns a `DriftResult`. Every result carries PSI beside the
detector's own statistic, so a verdict never rests on a p-value alone.

Verdict rule, per column:

    window under `min_rows` non-missing values, or empty reference  -> insufficient_data
    the test does not fire                                          -> ok
    a p-value test fires (p < threshold) but PSI < 0.1              -> warn
    a p-value test fires and PSI >= 0.1, or a distance fires        -> drift

A distance (Wasserstein, Jensen-Shannon) is an effect size already and does not grow with the
window, so it is not gated; PSI used as the detector itself has its own bands (0.1 / 0.2).
"""

from __future__ import annotations

import math
from abc import ABC
from dataclasses import asdict, dataclass
from enum import StrEnum
from typing import Any, ClassVar, Self

import numpy as np

from ferry.errors import InvalidInputError, NotFittedError
from ferry.monitor.drift.categorical import CategoricalReference, CategoricalWindow
from ferry.monitor.drift.numeric import NumericReference, NumericWindow
from ferry.monitor.profile import ColumnKind, ColumnProfile, ColumnValues, NumericProfile

MIN_WINDOW_ROWS = 200
"""Smallest window judged at all (design notes 4.3; Evidently #509: 8 rows vs Iris)."""
DEFAULT_P_VALUE = 0.05
"""Evidently's StatTest.default_threshold for KS, chi-squared and Z."""
DEFAULT_DISTANCE = 0.1
"""Evidently's threshold for normed Wasserstein and Jensen-Shannon distance."""
PSI_WARN = 0.1
"""PSI below this is stable; a p-value test firing below it is only `warn`."""
PSI_DRIFT = 0.2
"""PSI at or above this is a significant shift (the common 0.1 / 0.2 bands)."""
PSI_EPSILON = 1e-4
"""Share given to an empty bin so PSI stays finite (Evidently's fill value too)."""

Reference = NumericReference | CategoricalReference
Window = NumericWindow | CategoricalWindow


class Verdict(StrEnum):
    OK = "ok"
    WARN = "warn"
    DRIFT = "drift"
    INSUFFICIENT_DATA = "insufficient_data"


@dataclass(frozen=True)
class Measurement:
    """What a test computed: its statistic, and a p-value if it is a hypothesis test."""

    statistic: float
    p_value: float | None = None


@dataclass(frozen=True)
class DriftResult:
    """One column's drift against its reference, in a form that can be stored as JSON."""

    column: str
    method: str
    statistic: float | None
    p_value: float | None
    threshold: float
    psi: float | None
    verdict: Verdict
    rows_reference: int
    rows_current: int
    missing_current: int

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON values; an infinite statistic (a category the reference never had, for
        chi-squared) becomes None, as strict JSON has no infinity."""
        data = asdict(self)
        data["verdict"] = str(self.verdict)
        return {key: _finite_or_none(value) for key, value in data.items()}


def population_stability(expected: np.ndarray, actual: np.ndarray) -> float:
    """PSI = sum (expected - actual) * ln(expected / actual), empty shares set to epsilon."""
    expected = np.where(expected > 0, expected, PSI_EPSILON)
    actual = np.where(actual > 0, actual, PSI_EPSILON)
    return float(np.sum((expected - actual) * np.log(expected / actual)))


def reference_for(column: ColumnProfile) -> Reference:
    if isinstance(column, NumericProfile):
        return NumericReference.from_profile(column)
    return CategoricalReference.from_profile(column)


class Detector(ABC):
    """One drift test on one column. Subclasses set the class attributes and implement
    `_numeric` and/or `_categorical` for the kinds they list."""

    method: ClassVar[str]
    kinds: ClassVar[frozenset[ColumnKind]]
    default_threshold: ClassVar[float]
    uses_p_value: ClassVar[bool]

    def __init__(self, *, threshold: float | None = None,
                 min_rows: int = MIN_WINDOW_ROWS) -> None:
        self.threshold = threshold
        self.min_rows = min_rows

    def get_params(self) -> dict[str, Any]:
        return {"threshold": self.threshold, "min_rows": self.min_rows}

    def supports(self, column: ColumnProfile) -> bool:
        return column.kind in self.kinds

    def fit(self, column: ColumnProfile) -> Self:
        self._check_params()
        if not self.supports(column):
            raise InvalidInputError(f"column {column.name!r}: the {self.method} test does not "
                                    f"apply to this {column.kind} column")
        self.reference_: Reference = reference_for(column)
        self.threshold_: float = (self.default_threshold if self.threshold is None
                                  else self.threshold)
        return self

    def score(self, values: ColumnValues) -> DriftResult:
        reference = self._fitted()
        window = reference.window(values)
        if window.rows < self.min_rows or reference.rows == 0:
            return self._result(window, None, None, Verdict.INSUFFICIENT_DATA)
        measured = self._measure(window)
        psi = population_stability(*window.psi_proportions())
        return self._result(window, measured, psi, self._verdict(measured, psi))

    def _check_params(self) -> None:
        """Validated here, not in __init__, as scikit-learn does (parameters stay verbatim)."""
        limit = 1.0 if self.uses_p_value else math.inf
        if self.threshold is not None and not (
                _is_number(self.threshold) and 0 < self.threshold < limit):
            kind = "a p-value in (0, 1)" if self.uses_p_value else "a positive number"
            raise InvalidInputError(f"threshold must be {kind}, not {self.threshold!r}")
        if not (_is_number(self.min_rows) and isinstance(self.min_rows, int)
                and self.min_rows >= 1):
            raise InvalidInputError(f"min_rows must be a positive integer, not {self.min_rows!r}")

    def _fitted(self) -> Reference:
        if not hasattr(self, "reference_"):
            raise NotFittedError(f"{type(self).__name__} is not fitted: call fit(column) first")
        return self.reference_

    def _measure(self, window: Window) -> Measurement:
        if isinstance(window, NumericWindow):
            return self._numeric(window)
        return self._categorical(window)

    def _numeric(self, window: NumericWindow) -> Measurement:
        raise NotImplementedError(f"{self.method} has no numeric form")

    def _categorical(self, window: CategoricalWindow) -> Measurement:
        raise NotImplementedError(f"{self.method} has no categorical form")

    def _fires(self, measured: Measurement) -> bool:
        if self.uses_p_value:
            return measured.p_value is not None and measured.p_value < self.threshold_
        return measured.statistic >= self.threshold_

    def _verdict(self, measured: Measurement, psi: float) -> Verdict:
        if not self._fires(measured):
            return Verdict.OK
        if self.uses_p_value and psi < PSI_WARN:
            return Verdict.WARN
        return Verdict.DRIFT

    def _result(self, window: Window, measured: Measurement | None, psi: float | None,
                verdict: Verdict) -> DriftResult:
        return DriftResult(
            column=self.reference_.column.name, method=self.method,
            statistic=None if measured is None else float(measured.statistic),
            p_value=None if measured is None or measured.p_value is None
            else float(measured.p_value),
            threshold=self.threshold_, psi=psi, verdict=verdict,
            rows_reference=self.reference_.rows, rows_current=window.rows,
            missing_current=window.missing)


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _finite_or_none(value: Any) -> Any:
    return None if isinstance(value, float) and not math.isfinite(value) else value

