"""Robustness checks (`ferry.gate.robustness`), their perturbations and regression cases, on
scikit-learn's bundled data sets and real models."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from robust_data import (
    PINNED_WIDTH,
    Linear,
    Power,
    churn_pipeline,
    iris,
    iris_trees,
    predict_with,
)
from sklearn.datasets import load_breast_cancer, load_diabetes
from sklearn.linear_model import LinearRegression, LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from zoo import churn_frame

import ferry
from ferry.errors import InvalidInputError
from ferry.gate.cases import (
    case_file,
    load_cases,
    output_changes,
    relative_change,
    replay,
    save_cases,
)
from ferry.gate.checks import Check, Scores, Verdict
from ferry.gate.perturb import (
    DEFAULT,
    UNSEEN_CATEGORY,
    Missing,
    OutOfRange,
    Scale,
    SwapCategory,
    UnseenCategory,
)
from ferry.gate.robustness import ERROR_CASES, robustness_checks, sample_rows
from ferry.registry import Registry
from ferry.signature import Task

WIDTH = "petal width (cm)"


def by_name(checks: list[Check]) -> dict[str, Check]:
    names = [c.name for c in checks]
    assert len(names) == len(set(names))
    return {c.name: c for c in checks}


def invariance(checks: list[Check]) -> list[Check]:
    return [c for c in checks if c.detail["invariant"]]


# A planted fragility is found, kept as cases, and replayed.

def test_a_threshold_on_many_rows_values_fails_the_one_percent_check() -> None:
    fragile, _ = iris_trees()
    frame, _ = iris()

    checks, cases = robustness_checks(predict_with(fragile), frame, Task.CLASSIFICATION)
    found = by_name(checks)

    pinned = int((frame[WIDTH] == PINNED_WIDTH).sum())
    scale_up = found[f"robustness.scale+1%.{WIDTH}"]
    assert scale_up.verdict is Verdict.FAILED
    assert scale_up.candidate == pytest.approx(pinned / len(frame))
    assert scale_up.detail["severity"] == "major"
    assert found[f"robustness.scale-1%.{WIDTH}"].verdict is Verdict.PASSED
    assert all(c.verdict is Verdict.PASSED for c in invariance(checks) if c.detail["column"]
               != WIDTH)
    saved = [c for c in cases if c.check == scale_up.name]
    assert len(saved) == pinned
    assert all(c.row[WIDTH] == PINNED_WIDTH and c.perturbed[WIDTH] > PINNED_WIDTH
               and c.expected != c.got for c in saved)


def test_replayed_cases_fail_on_the_fragile_model_and_pass_on_the_fixed_one(
        tmp_path: Path) -> None:
    fragile, fixed = iris_trees()
    frame, _ = iris()
    _, cases = robustness_checks(predict_with(fragile), frame, Task.CLASSIFICATION)

    path = save_cases(cases, case_file(tmp_path, "iris", 1))
    saved = load_cases(path)

    assert path == tmp_path / "iris-v1.json"
    assert saved == cases
    again = replay(saved, predict_with(fragile))
    assert again.verdict is Verdict.FAILED
    assert again.candidate == pytest.approx(1.0)
    assert again.detail["by_check"][f"robustness.scale+1%.{WIDTH}"] > 0
    assert replay(saved, predict_with(fixed)).verdict is Verdict.PASSED
    assert replay([], predict_with(fixed)).verdict is Verdict.REPORTED


def test_a_smooth_model_passes_the_invariance_checks() -> None:
    frame, target = load_breast_cancer(return_X_y=True, as_frame=True)
    model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000)).fit(frame, target)

    checks, cases = robustness_checks(predict_with(model), frame, Task.CLASSIFICATION)

    assert len(invariance(checks)) == 3 * frame.shape[1]
    assert all(c.verdict is Verdict.PASSED for c in invariance(checks))
    assert not any(c.failed for c in checks)
    assert cases == []


# Regression: a row fails when its output moves by output_sensitivity or more.

@pytest.mark.parametrize(("power", "sensitivity", "fails"), [
    (6, 0.05, True),    # 1.01 ** 6 - 1 = 6.2 %
    (4, 0.05, False),   # 4.1 %
    (4, 0.03, True),
])
def test_a_regressor_fails_when_its_output_moves_by_the_sensitivity(
        power: int, sensitivity: float, fails: bool) -> None:
    frame, _ = load_diabetes(return_X_y=True, as_frame=True, scaled=False)

    checks, cases = robustness_checks(predict_with(Power("bmi", power)), frame,
                                      Task.REGRESSION, output_sensitivity=sensitivity)
    check = by_name(checks)["robustness.scale+1%.bmi"]

    assert check.failed is fails
    assert check.candidate == (1.0 if fails else 0.0)
    assert check.detail["output_sensitivity"] == sensitivity
    assert len(cases) == (2 * 100 if fails else 0)   # scale+1% and scale-1%, capped


def test_a_linear_regressor_passes_the_invariance_checks() -> None:
    frame, target = load_diabetes(return_X_y=True, as_frame=True, scaled=False)
    model = LinearRegression().fit(frame, target)

    checks, _ = robustness_checks(predict_with(model), frame, Task.REGRESSION)

    assert invariance(checks)
    assert all(c.verdict is Verdict.PASSED for c in invariance(checks))


def test_relative_change_counts_any_change_from_zero() -> None:
    before = np.array([100.0, 100.0, 0.0, 0.0, 5.0])
    after = np.array([104.0, 95.0, 0.0, 1e-9, np.nan])

    np.testing.assert_allclose(relative_change(before[:4], after[:4]), [0.04, 0.05, 0, np.inf])
    assert output_changes(before, after, 0.05).tolist() == [False, True, False, True, True]
    labels = np.array(["a", "b", None], dtype=object)
    assert output_changes(labels, np.array(["a", "c", None], dtype=object),
                          None).tolist() == [False, True, False]


# Reported perturbations, and models that raise or output NaN.

def test_missing_unseen_and_out_of_range_values_are_reported() -> None:
    frame, target = churn_frame(600)
    model = churn_pipeline().fit(frame, target)

    checks, cases = robustness_checks(predict_with(model), frame, Task.CLASSIFICATION)
    found = by_name(checks)

    reported = ["robustness.missing.monthly_spend", "robustness.above-range.age",
                "robustness.below-range.monthly_spend", "robustness.unseen-category.plan",
                "robustness.swap-category.region"]
    for name in reported:
        assert found[name].verdict is Verdict.REPORTED, name
        assert 0 <= (found[name].candidate or 0) <= 1
        assert found[name].detail["error"] is None
    assert found["robustness.missing.monthly_spend"].detail["rows"] == frame.monthly_spend.count()
    assert "robustness.missing.age" not in found   # age is never missing in the data
    assert (found["robustness.swap-category.plan"].candidate or 0) > 0.2   # plan drives churn
    assert cases == []


def test_a_model_that_raises_on_an_unseen_category_fails_that_check() -> None:
    frame, target = churn_frame(600)
    model = churn_pipeline(handle_unknown="error").fit(frame, target)

    checks, cases = robustness_checks(predict_with(model), frame, Task.CLASSIFICATION)
    found = by_name(checks)

    unseen = found["robustness.unseen-category.plan"]
    assert unseen.verdict is Verdict.FAILED
    assert unseen.candidate is None
    assert unseen.detail["severity"] == "major"
    assert unseen.detail["error"].startswith("ValueError: ")
    assert "unknown categor" in unseen.detail["error"].lower()
    assert found["robustness.swap-category.plan"].verdict is Verdict.REPORTED
    errors = [c for c in cases if c.check == unseen.name]
    assert len(errors) == ERROR_CASES
    assert all(c.got is None and c.perturbed["plan"] == UNSEEN_CATEGORY for c in errors)


def test_cases_of_a_raising_model_replay_as_errors(tmp_path: Path) -> None:
    frame, target = churn_frame(600)
    strict = churn_pipeline(handle_unknown="error").fit(frame, target)
    lenient = churn_pipeline().fit(frame, target)
    _, cases = robustness_checks(predict_with(strict), frame, Task.CLASSIFICATION)
    saved = load_cases(save_cases(cases, tmp_path / "cases.json"))

    again = replay(saved, predict_with(strict))

    assert again.verdict is Verdict.FAILED
    assert again.detail["errors"] and "unknown categor" in again.detail["errors"][0].lower()
    assert replay(saved, predict_with(lenient)).verdict is Verdict.PASSED


def test_a_model_that_refuses_nan_fails_when_missing_is_tried_everywhere() -> None:
    frame, target = load_breast_cancer(return_X_y=True, as_frame=True)
    model = make_pipeline(StandardScaler(), LogisticRegression()).fit(frame, target)

    checks, cases = robustness_checks(predict_with(model), frame, Task.CLASSIFICATION,
                                      perturbations=(Missing(always=True),))

    assert len(checks) == frame.shape[1]
    assert all(c.failed and "contains NaN" in c.detail["error"] for c in checks)
    assert len(cases) == ERROR_CASES * frame.shape[1]
    assert all(c.perturbed[c.column] is None for c in cases)


def test_a_nan_output_fails_a_reported_check() -> None:
    frame, _ = load_diabetes(return_X_y=True, as_frame=True)
    model = Linear(np.ones(frame.shape[1]))

    checks, cases = robustness_checks(predict_with(model), frame, Task.REGRESSION,
                                      perturbations=(Missing(always=True), OutOfRange()))

    missing = [c for c in checks if c.detail["perturbation"] == "missing"]
    assert missing and all(c.failed and c.detail["error"] is None for c in missing)
    assert all(c.detail["nan_outputs"] == len(frame) for c in missing)
    assert all(c.verdict is Verdict.REPORTED for c in checks if c not in missing)
    assert {c.check for c in cases} == {c.name for c in missing}
    assert replay(cases, predict_with(model)).verdict is Verdict.FAILED


# Perturbations.

def test_swap_category_picks_another_frequent_value() -> None:
    values = pd.Series(list("aaaabbbccd") * 10 + ["rare"], name="letter")

    swapped = SwapCategory(top=3).apply(values, np.random.default_rng(0))

    assert (swapped != values).all()
    assert set(swapped) == {"a", "b", "c"}
    assert not SwapCategory().applies_to(pd.Series(["a"] * 5))


def test_a_declared_category_swap_is_an_invariance_check() -> None:
    frame, target = churn_frame(600)
    model = churn_pipeline().fit(frame, target)
    swap = SwapCategory(invariant=True, columns=("region",))

    checks, _ = robustness_checks(predict_with(model), frame, Task.CLASSIFICATION,
                                  perturbations=(swap,))

    assert [c.name for c in checks] == ["robustness.swap-category.region"]
    assert checks[0].verdict in (Verdict.PASSED, Verdict.FAILED)
    assert checks[0].condition.startswith("rows where the label changes")


def test_perturbations_keep_integers_and_categories() -> None:
    ages = pd.Series(np.arange(20, 80), name="age")
    plans = pd.Series(["basic", "pro", "team"] * 4, name="plan", dtype="category")
    rng = np.random.default_rng(0)

    assert Scale(0.01).apply(ages, rng).dtype == ages.dtype
    above = OutOfRange(above=True).apply(ages, rng)
    assert above.dtype == ages.dtype and (above > ages.max()).all()
    assert (OutOfRange(above=False).apply(ages, rng) < ages.min()).all()
    assert (UnseenCategory().apply(plans, rng) == UNSEEN_CATEGORY).all()
    assert not Scale(0.01).applies_to(pd.Series([0, 1, 1, 0] * 5))   # a flag is a category
    assert SwapCategory().applies_to(pd.Series([0, 1, 1, 0] * 5))
    assert {p.name for p in DEFAULT} == {"scale+1%", "scale-1%", "noise", "above-range",
                                         "below-range", "missing", "swap-category",
                                         "unseen-category"}


# Determinism and files.

def test_the_same_seed_gives_the_same_checks_and_cases() -> None:
    frame, target = churn_frame(800)
    model = churn_pipeline().fit(frame, target)
    fragile, _ = iris_trees()

    def run(seed: int) -> tuple[list[dict[str, object]], list[dict[str, object]]]:
        checks, cases = robustness_checks(predict_with(model), frame, Task.CLASSIFICATION,
                                          max_rows=200, seed=seed)
        _, more = robustness_checks(predict_with(fragile), iris()[0], Task.CLASSIFICATION,
                                    max_rows=100, seed=seed)
        return [c.to_dict() for c in checks], [c.to_dict() for c in cases + more]

    assert run(3) == run(3)
    assert run(3) != run(4)
    assert len(sample_rows(frame, 200, 3)) == 200
    assert not sample_rows(frame, 200, 3).index.equals(sample_rows(frame, 200, 4).index)


def test_case_files_are_plain_json_written_whole(tmp_path: Path) -> None:
    fragile, _ = iris_trees()
    _, cases = robustness_checks(predict_with(fragile), iris()[0], Task.CLASSIFICATION)
    path = save_cases(cases, tmp_path / "cases" / "iris-v1.json")

    with pytest.raises(TypeError):
        save_cases([*cases, cases[0].__class__(**{**cases[0].to_dict(), "expected": object()})],
                   path)

    assert load_cases(path) == cases
    assert [p.name for p in path.parent.iterdir()] == ["iris-v1.json"]
    data = json.loads(path.read_text())
    path.write_text(json.dumps({**data, "format": 99}))
    with pytest.raises(InvalidInputError, match="format 99"):
        load_cases(path)


def test_replayed_rows_keep_their_dtypes(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    frame = pd.DataFrame({
        "when": pd.date_range("2024-01-01", periods=300, freq="h"),
        "count": pd.array(rng.integers(0, 50, 300), dtype="Int64"),
        "plan": pd.Series(rng.choice(["a", "b", "c"], 300), dtype="category"),
        "x": rng.normal(size=300),
    })
    frame.loc[::7, "count"] = pd.NA
    dtypes = frame.dtypes.to_dict()

    def predict(rows: pd.DataFrame) -> Scores:
        assert rows.dtypes.to_dict() == {**dtypes, "plan": rows["plan"].dtype}
        assert isinstance(rows["plan"].dtype, pd.CategoricalDtype)
        return Scores(np.where((rows.x > 0) ^ (rows.plan == "c") ^ (rows["count"].fillna(0) > 20),
                               "y", "n"))

    fragile = (SwapCategory(invariant=True), Missing(invariant=True))
    checks, cases = robustness_checks(predict, frame, Task.CLASSIFICATION,
                                      perturbations=fragile)
    saved = load_cases(save_cases(cases, tmp_path / "cases.json"))

    assert [c.name for c in checks] == ["robustness.swap-category.plan",
                                        "robustness.missing.count"]
    assert checks[1].detail["rows"] == frame["count"].count()
    assert saved == cases
    assert replay(saved, predict).candidate == 1.0


# Through a registered version.

def test_a_registered_tree_is_checked_and_replayed_through_ferry_load(
        sqlite_registry: Registry, tmp_path: Path) -> None:
    fragile, fixed = iris_trees()
    frame, _ = iris()
    ferry.register(fragile, "iris", sample=frame, registry=sqlite_registry)
    ferry.register(fixed, "iris", sample=frame, registry=sqlite_registry)
    version_1 = ferry.load("iris:1", registry=sqlite_registry)
    version_2 = ferry.load("iris:2", registry=sqlite_registry)

    def scores(frame: pd.DataFrame) -> Scores:
        return Scores(version_1.predict(frame))

    checks, cases = robustness_checks(scores, frame, version_1.task)
    saved = load_cases(save_cases(cases, case_file(tmp_path, "iris", 1)))

    assert by_name(checks)[f"robustness.scale+1%.{WIDTH}"].failed
    assert all(c.detail["error"] is None for c in checks)
    assert replay(saved, scores).failed
    assert replay(saved, predict_with(version_2)).verdict is Verdict.PASSED


def test_a_registered_pipeline_takes_every_perturbed_frame(sqlite_registry: Registry) -> None:
    frame, target = churn_frame(600)
    model = churn_pipeline().fit(frame, target)
    version = ferry.register(model, "churn", sample=frame, registry=sqlite_registry)
    predictor = ferry.load(version.uri, registry=sqlite_registry)

    checks, _ = robustness_checks(predict_with(predictor), frame, version.task)
    native, _ = robustness_checks(predict_with(model), frame, Task.CLASSIFICATION)

    assert all(c.detail["error"] is None for c in checks)
    assert {c.name for c in checks} == {c.name for c in native}
    assert "robustness.unseen-category.region" in by_name(checks)
