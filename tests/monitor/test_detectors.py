"""Every registered detector passes the shared conformance checks (detector_checks.py), and the
registry picks Evidently's default test for each kind of column."""

from __future__ import annotations

import numpy as np
import pytest
from detector_checks import CASES, Case, Check, detector_cases

from ferry.errors import InvalidInputError
from ferry.monitor.drift import (
    Detector,
    KSDetector,
    default_method,
    detector_for,
    register_detector,
    registered_detectors,
)
from ferry.monitor.drift.numeric import LOOKUP_EDGES
from ferry.monitor.profile import EXACT_VALUES, NumericProfile, build_profile

ALL = [pytest.param(check, case, detector, id=f"{name}-{param.id}")
       for name, detector in sorted(registered_detectors().items())
       for param in detector_cases(detector)
       for check, case in [param.values]]


@pytest.mark.parametrize(("check", "case", "detector"), ALL)
def test_detector_conformance(check: Check, case: Case, detector: type[Detector]) -> None:
    check(detector, case)


def test_every_builtin_test_is_registered() -> None:
    assert set(registered_detectors()) == {"ks", "chisquare", "z", "wasserstein",
                                           "jensenshannon", "psi"}


@pytest.mark.parametrize(("values", "expected"), [
    (np.random.default_rng(0).normal(size=1000), "ks"),
    (np.random.default_rng(0).normal(size=1001), "wasserstein"),
    (np.random.default_rng(0).choice(["a", "b", "c"], 1000), "chisquare"),
    (np.random.default_rng(0).choice(["a", "b"], 1000), "z"),
    (np.random.default_rng(0).choice([0.5, 1.5], 1000), "z"),
    (np.random.default_rng(0).integers(0, 5, 1000), "chisquare"),
    (np.random.default_rng(0).integers(0, 5, 1001), "jensenshannon"),
    (np.random.default_rng(0).integers(0, 6, 1001), "wasserstein"),
    (np.random.default_rng(0).choice([True, False], 5000), "jensenshannon"),
])
def test_default_test_is_evidentlys(values: np.ndarray, expected: str) -> None:
    column = build_profile({"x": values}).columns["x"]
    assert default_method(column) == expected
    assert detector_for(column).method == expected


@pytest.mark.parametrize(("rows", "exact", "expected"), [
    (1000, True, "ks"), (1001, True, "wasserstein"), (EXACT_VALUES, True, "wasserstein"),
    (EXACT_VALUES + 1, False, "wasserstein")])
def test_the_row_count_picks_the_test_not_how_the_profile_stores_it(
        rows: int, exact: bool, expected: str) -> None:
    column = build_profile({"x": np.random.default_rng(0).normal(size=rows)}).columns["x"]
    assert isinstance(column, NumericProfile) and column.exact is exact
    assert default_method(column) == expected


def test_the_numeric_cases_cover_every_way_a_column_is_stored() -> None:
    stored = set()
    for case in CASES:
        column = case.profile()
        if isinstance(column, NumericProfile):
            stored.add((column.exact, len(column.points) > LOOKUP_EDGES))
    assert stored == {(True, False), (True, True), (False, False)}


def test_reference_size_counts_only_present_values() -> None:
    values = np.random.default_rng(0).normal(size=1500)
    values[:600] = np.nan
    assert default_method(build_profile({"x": values}).columns["x"]) == "ks"


def test_unknown_method_is_refused_with_the_known_ones() -> None:
    column = build_profile({"x": np.arange(300.0)}).columns["x"]
    with pytest.raises(InvalidInputError, match="chisquare, jensenshannon, ks"):
        detector_for(column, method="anderson")


def test_a_name_cannot_be_registered_twice() -> None:
    class Other(KSDetector):
        pass

    assert register_detector(KSDetector) is KSDetector
    with pytest.raises(InvalidInputError, match="already registered"):
        register_detector(Other)
