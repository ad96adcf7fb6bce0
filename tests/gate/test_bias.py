"""Bias: the four-fifths rule on selection rates, and the worst group's error against the
baseline's on the same group."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from gate_data import logistic, measured, scores
from sklearn.datasets import load_breast_cancer, load_diabetes, load_iris
from sklearn.linear_model import Ridge
from sklearn.model_selection import train_test_split

from ferry.errors import InvalidInputError
from ferry.gate.bias import bias_checks
from ferry.gate.checks import Check, Kind, Scores, Verdict
from ferry.signature import Task

CLASSIFY = Task.CLASSIFICATION


def by_name(checks: list[Check]) -> dict[str, Check]:
    return {check.name: check for check in checks}


@pytest.fixture(scope="module")
def cancer() -> tuple[pd.Series, np.ndarray, Scores]:
    """Breast-cancer hold-out rows with a made-up sensitive column, and a fair model."""
    features, target = load_breast_cancer(return_X_y=True)
    train, test, y_train, y_test = train_test_split(features, target, test_size=0.6,
                                                    random_state=0)
    group = pd.Series(np.random.default_rng(0).choice(["a", "b"], len(y_test)), name="group")
    return group, y_test, scores(logistic().fit(train, y_train), test)


def disfavour(fair: Scores, group: pd.Series, share: float = 0.5) -> Scores:
    """`fair` with `share` of group b's positive (last-class) answers turned negative."""
    assert fair.probabilities is not None
    rows = np.flatnonzero((group == "b").to_numpy() & (fair.prediction == 1))
    turned = np.random.default_rng(1).choice(rows, int(share * len(rows)), replace=False)
    prediction, probabilities = fair.prediction.copy(), fair.probabilities.copy()
    prediction[turned], probabilities[turned] = 0, probabilities[turned, ::-1]
    return Scores(prediction, probabilities, fair.classes)


def test_a_fair_model_passes(cancer: tuple[pd.Series, np.ndarray, Scores]) -> None:
    group, y, fair = cancer
    checks = bias_checks(group, y, fair, fair, CLASSIFY)
    assert [(c.name, c.verdict) for c in checks] == [
        ("bias.group.selection_rate_ratio", Verdict.PASSED),
        ("bias.group.worst_group_error", Verdict.PASSED)]
    assert {c.kind for c in checks} == {Kind.BIAS}
    ratio = checks[0]
    candidate, baseline = measured(ratio)
    assert 0.8 <= candidate <= 1 and candidate == baseline
    assert ratio.detail["positive"] == 1 and set(ratio.detail["groups"]) == {"a", "b"}


def test_a_planted_selection_disparity_fails_the_four_fifths_rule(
        cancer: tuple[pd.Series, np.ndarray, Scores]) -> None:
    group, y, fair = cancer
    checks = by_name(bias_checks(group, y, disfavour(fair, group), fair, CLASSIFY))
    ratio = checks["bias.group.selection_rate_ratio"]
    assert ratio.verdict is Verdict.FAILED
    candidate, baseline = measured(ratio)
    assert candidate < 0.8 <= baseline
    rates = ratio.detail["groups"]
    assert rates["b"]["candidate"] < rates["a"]["candidate"]
    assert "four-fifths" in ratio.condition
    error = checks["bias.group.worst_group_error"]
    assert error.verdict is Verdict.FAILED and error.detail["group"] == "b"
    candidate, baseline = measured(error)
    assert candidate > baseline


def test_a_slight_error_increase_in_one_group_is_noise(
        cancer: tuple[pd.Series, np.ndarray, Scores]) -> None:
    group, y, fair = cancer
    checks = by_name(bias_checks(group, y, disfavour(fair, group, 0.02), fair, CLASSIFY))
    assert checks["bias.group.worst_group_error"].verdict is Verdict.PASSED


def test_small_groups_are_shown_not_judged(
        cancer: tuple[pd.Series, np.ndarray, Scores]) -> None:
    group, y, fair = cancer
    checks = bias_checks(group, y, disfavour(fair, group), fair, CLASSIFY, min_rows=1000)
    assert {c.verdict for c in checks} == {Verdict.REPORTED}
    assert checks[0].detail["groups"]["a"]["judged"] is False


def test_missing_values_are_a_group(cancer: tuple[pd.Series, np.ndarray, Scores]) -> None:
    group, y, fair = cancer
    holes = group.where(np.arange(len(group)) % 3 != 0)
    checks = bias_checks(holes, y, fair, fair, CLASSIFY, min_rows=50)
    assert set(checks[0].detail["groups"]) == {"a", "b", "<missing>"}


def test_the_positive_class_is_the_last_unless_named() -> None:
    features, target = load_iris(return_X_y=True)
    names = load_iris().target_names
    train, test, y_train, y_test = train_test_split(features, names[target], random_state=0)
    fair = scores(logistic().fit(train, y_train), test)
    group = pd.Series(np.where(test[:, 0] > 5.8, "long", "short"), name="sepal")
    last = bias_checks(group, y_test, fair, fair, CLASSIFY, min_rows=10)[0]
    assert last.detail["positive"] == "virginica"
    named = bias_checks(group, y_test, fair, fair, CLASSIFY, min_rows=10, positive="setosa")[0]
    assert named.detail["positive"] == "setosa"
    assert named.detail["groups"]["long"]["candidate"] < 0.1  # long sepals are seldom setosa
    with pytest.raises(InvalidInputError, match="positive class 'rose'"):
        bias_checks(group, y_test, fair, fair, CLASSIFY, positive="rose")


def test_a_regressor_is_judged_on_its_worst_group_rmse() -> None:
    features, target = load_diabetes(return_X_y=True, as_frame=True)
    model = Ridge().fit(features, target)
    group = pd.Series(np.where(features["sex"] > 0, "f", "m"), name="sex")
    fair = model.predict(features)
    worse = fair + np.where(group == "f", 50.0, 0.0)
    checks = bias_checks(group, target.to_numpy(), Scores(worse), Scores(fair), Task.REGRESSION)
    assert [c.name for c in checks] == ["bias.sex.worst_group_error"]
    assert checks[0].failed and checks[0].detail["group"] == "f"
    assert checks[0].detail["metric"] == "rmse"
