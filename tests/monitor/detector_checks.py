"""The checks every drift detector passes, as scikit-learn's `check_estimator` does for
estimators: a plug-in author proves conformance with

    @pytest.mark.parametrize(("check", "case"), detector_cases(MyDetector))
    def test_my_detector(check, case): check(MyDetector, case)

Each check takes a detector factory and a `Case` (a reference, a window from the same
distribution, a shifted window) of a kind the detector supports.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property
from typing import Any

import numpy as np
import pytest

from ferry.errors import InvalidInputError
from ferry.monitor.drift import Detector, NotFittedError, Verdict
from ferry.monitor.profile import EXACT_VALUES, ColumnKind, ColumnProfile, build_profile

Factory = Callable[..., Detector]
Check = Callable[[Factory, "Case"], None]


@dataclass(frozen=True)
class Case:
    label: str
    reference: np.ndarray
    same: np.ndarray
    shifted: np.ndarray

    def profile(self) -> ColumnProfile:
        return self._profile

    @cached_property
    def _profile(self) -> ColumnProfile:
        """Built once: the sketch case profiles over 100,000 values, and every check asks."""
        return build_profile({self.label: self.reference}).columns[self.label]

    def missing_value(self) -> object:
        return np.nan if self.reference.dtype.kind == "f" else None


def _numeric(label: str, rows: int, seed: int) -> Case:
    rng = np.random.default_rng(seed)
    return Case(label, rng.normal(10, 2, rows), rng.normal(10, 2, 2000),
                rng.normal(12, 2, 2000))


def _categorical(label: str, rows: int, seed: int, shares: list[float],
                 shifted: list[float]) -> Case:
    rng = np.random.default_rng(seed)
    values = np.array(["red", "green", "blue", "black"][:len(shares)], dtype=object)
    return Case(label, rng.choice(values, rows, p=shares), rng.choice(values, 2000, p=shares),
                rng.choice(values, 2000, p=shifted))


CASES = (
    _numeric("numeric-exact", 800, 1),
    _numeric("numeric-exact-large", 20_000, 2),
    _numeric("numeric-sketch", EXACT_VALUES + 20_000, 6),
    _categorical("categorical-exact", 800, 3, [0.5, 0.3, 0.15, 0.05], [0.2, 0.2, 0.3, 0.3]),
    _categorical("categorical-large", 5000, 4, [0.5, 0.3, 0.15, 0.05], [0.2, 0.2, 0.3, 0.3]),
    _categorical("binary", 800, 5, [0.7, 0.3], [0.4, 0.6]),
)


def _fitted(factory: Factory, case: Case) -> Detector:
    return factory().fit(case.profile())


def check_same_distribution_is_not_drift(factory: Factory, case: Case) -> None:
    result = _fitted(factory, case).score(case.same)
    assert result.verdict in (Verdict.OK, Verdict.WARN), result


def check_shift_is_drift(factory: Factory, case: Case) -> None:
    result = _fitted(factory, case).score(case.shifted)
    assert result.verdict is Verdict.DRIFT, result


def check_result_fields(factory: Factory, case: Case) -> None:
    detector = _fitted(factory, case)
    result = detector.score(case.same)
    assert (result.column, result.method) == (case.label, detector.method)
    assert result.rows_reference == case.reference.size
    assert (result.rows_current, result.missing_current) == (case.same.size, 0)
    assert result.threshold == detector.default_threshold
    assert result.statistic is not None and math.isfinite(result.statistic)
    assert result.psi is not None and 0 <= result.psi < 0.1
    assert (result.p_value is not None) == detector.uses_p_value
    if result.p_value is not None:
        assert 0 <= result.p_value <= 1


def check_deterministic(factory: Factory, case: Case) -> None:
    detector = _fitted(factory, case)
    first = detector.score(case.shifted)
    assert detector.score(case.shifted) == first
    assert _fitted(factory, case).score(case.shifted) == first


def check_result_is_json(factory: Factory, case: Case) -> None:
    result = _fitted(factory, case).score(case.shifted)
    data = json.loads(json.dumps(result.to_dict(), allow_nan=False))
    assert data["verdict"] == "drift"
    assert data["column"] == case.label and data["rows_current"] == case.shifted.size


def check_missing_values_are_counted(factory: Factory, case: Case) -> None:
    window = case.same.astype(object)
    window[::4] = case.missing_value()
    result = _fitted(factory, case).score(window)
    assert result.missing_current == len(window[::4])
    assert result.rows_current == case.same.size - result.missing_current
    assert result.verdict in (Verdict.OK, Verdict.WARN)


def check_all_missing_is_insufficient(factory: Factory, case: Case) -> None:
    window = np.full(500, case.missing_value(), dtype=object)
    result = _fitted(factory, case).score(window)
    assert result.verdict is Verdict.INSUFFICIENT_DATA
    assert (result.rows_current, result.missing_current) == (0, 500)
    assert result.statistic is None and result.psi is None


def check_empty_window_is_insufficient(factory: Factory, case: Case) -> None:
    result = _fitted(factory, case).score(case.reference[:0])
    assert result.verdict is Verdict.INSUFFICIENT_DATA and result.rows_current == 0


def check_small_window_is_insufficient(factory: Factory, case: Case) -> None:
    result = _fitted(factory, case).score(case.shifted[:199])
    assert result.verdict is Verdict.INSUFFICIENT_DATA
    assert _fitted(factory, case).score(case.shifted[:200]).verdict is Verdict.DRIFT


def check_min_rows_is_a_parameter(factory: Factory, case: Case) -> None:
    result = factory(min_rows=50).fit(case.profile()).score(case.shifted[:100])
    assert result.verdict is Verdict.DRIFT


def check_score_before_fit_raises(factory: Factory, case: Case) -> None:
    with pytest.raises(NotFittedError):
        factory().score(case.same)


def check_bad_parameters_are_refused_at_fit(factory: Factory, case: Case) -> None:
    for params in ({"threshold": -1.0}, {"threshold": math.nan}, {"threshold": "0.05"},
                   {"min_rows": 0}, {"min_rows": 2.5}, {"min_rows": True}):
        detector = factory(**params)
        assert detector.get_params() | params == detector.get_params()  # stored verbatim
        with pytest.raises(InvalidInputError):
            detector.fit(case.profile())


def check_other_kind_is_refused(factory: Factory, case: Case) -> None:
    detector = factory()
    for other in CASES:
        if not detector.supports(other.profile()):
            with pytest.raises(InvalidInputError, match=detector.method):
                detector.fit(other.profile())


CHECKS: tuple[Check, ...] = (
    check_same_distribution_is_not_drift, check_shift_is_drift, check_result_fields,
    check_deterministic, check_result_is_json, check_missing_values_are_counted,
    check_all_missing_is_insufficient, check_empty_window_is_insufficient,
    check_small_window_is_insufficient, check_min_rows_is_a_parameter,
    check_score_before_fit_raises, check_bad_parameters_are_refused_at_fit,
    check_other_kind_is_refused,
)


def detector_cases(factory: Factory) -> list[Any]:
    """pytest parameters: every check on every case the detector supports."""
    detector = factory()
    supported = [case for case in CASES if detector.supports(case.profile())]
    assert supported, f"{detector.method} supports none of the conformance cases"
    assert {case.profile().kind for case in supported} <= set(ColumnKind)
    return [pytest.param(check, case, id=f"{check.__name__}-{case.label}")
            for check in CHECKS for case in supported]
