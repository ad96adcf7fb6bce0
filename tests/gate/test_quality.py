"""The quality checks: metrics as scikit-learn measures them, MLflow's thresholds, the noise
rule (equal models pass, worse ones fail) and the naive model to beat."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd
import pytest
from gate_data import logistic, measured, retrained_pair, scores
from sklearn import metrics as skm
from sklearn.datasets import load_breast_cancer, load_diabetes, load_digits, load_iris
from sklearn.dummy import DummyClassifier
from sklearn.linear_model import Ridge
from sklearn.model_selection import train_test_split

from ferry.errors import InvalidInputError
from ferry.gate.bias import bias_checks
from ferry.gate.checks import Check, Scores, Verdict
from ferry.gate.conditions import Interval, MetricThreshold, Resamples, difference_interval, judge
from ferry.gate.metrics import METRICS, encode, metric, row_loss
from ferry.gate.quality import naive_check, quality_checks
from ferry.gate.slices import slice_checks
from ferry.signature import Task

CLASSIFY, REGRESS = Task.CLASSIFICATION, Task.REGRESSION


@pytest.fixture(scope="module")
def cancer_checks() -> list[Check]:
    """Every kind of check this part of the gate makes, on breast-cancer predictions."""
    features, target = load_breast_cancer(return_X_y=True, as_frame=True)
    train, test, y_train, y_test = train_test_split(features, target.map({0: "malignant",
                                                                          1: "benign"}),
                                                    test_size=0.5, random_state=0)
    candidate = scores(logistic().fit(train, y_train), test)
    baseline = scores(DummyClassifier(strategy="stratified", random_state=0).fit(train, y_train),
                      test)
    group = pd.Series(np.where(test["mean radius"] > 14, "large", "small"), name="size")
    return [*quality_checks(CLASSIFY, y_test, candidate, baseline),
            naive_check(CLASSIFY, y_test, candidate),
            *slice_checks(test, y_test, candidate, baseline, CLASSIFY,
                          declared=["mean texture"], min_rows=50),
            *bias_checks(group, y_test, candidate, baseline, CLASSIFY, min_rows=50)]


def by_name(checks: list[Check]) -> dict[str, Check]:
    return {check.name: check for check in checks}


def held_out(load: Callable[..., Any], model: Any, seed: int = 0,
             test_size: float = 0.4) -> tuple[np.ndarray, Scores]:
    features, target = load(return_X_y=True)
    train, test, y_train, y_test = train_test_split(features, target, test_size=test_size,
                                                    random_state=seed)
    return y_test, scores(model.fit(train, y_train), test)


# Metrics ----------------------------------------------------------------------------------

def _sklearn_weighted(name: str, y: np.ndarray, s: Scores, w: np.ndarray) -> float:
    """What scikit-learn says with sample weights (the definition resampled must meet)."""
    p = s.probabilities
    if name == "accuracy":
        return skm.accuracy_score(y, s.prediction, sample_weight=w)
    if name == "f1" and p is not None and p.shape[1] == 2:
        return skm.f1_score(y, s.prediction, pos_label=1, sample_weight=w)
    if name == "f1":
        return skm.f1_score(y, s.prediction, average="macro", sample_weight=w)
    if name == "roc_auc" and p is not None and p.shape[1] == 2:
        return skm.roc_auc_score(y, p[:, 1], sample_weight=w)
    if name == "roc_auc" and p is not None:
        return np.mean([skm.roc_auc_score(y == c, p[:, c], sample_weight=w)
                        for c in range(p.shape[1])])
    if name == "log_loss":
        return skm.log_loss(y, p, sample_weight=w)
    regression = {"rmse": skm.root_mean_squared_error, "mae": skm.mean_absolute_error,
                  "r2": skm.r2_score}
    return regression[name](y, s.prediction, sample_weight=w)


@pytest.mark.parametrize(("load", "model", "task"), [
    (load_breast_cancer, logistic(), CLASSIFY),
    (load_iris, logistic(), CLASSIFY),
    (load_diabetes, Ridge(), REGRESS),
], ids=["binary", "multiclass", "regression"])
def test_resampled_metrics_are_sklearn_with_sample_weights(load: Callable[..., Any], model: Any,
                                                          task: Task) -> None:
    y, s = held_out(load, model)
    [data] = encode(task, y, s)
    weights = np.random.default_rng(0).poisson(1.0, size=(5, len(y))).astype(np.float32)
    for m in METRICS[task]:
        assert m.value(data) == pytest.approx(_sklearn_weighted(m.name, y, s, np.ones(len(y))))
        expected = [_sklearn_weighted(m.name, y, s, w) for w in weights]
        np.testing.assert_allclose(m.resampled(data, weights), expected, rtol=1e-5,
                                   err_msg=m.name)


def test_labels_match_classes_whatever_their_type_and_order() -> None:
    y, s = held_out(load_breast_cancer, logistic())
    assert s.probabilities is not None
    reordered = Scores(s.prediction, s.probabilities[:, ::-1], (1, 0))
    as_text = Scores(s.prediction.astype(str), s.probabilities, ("0", "1"))
    reference = by_name(quality_checks(CLASSIFY, y, s, s))
    for labels, candidate in [(y.astype(float), s), (y.astype(str), reordered),
                              (y, as_text), (y.astype(str), as_text)]:
        checks = by_name(quality_checks(CLASSIFY, labels, candidate, s))
        for name in ("quality.accuracy", "quality.roc_auc", "quality.log_loss"):
            assert checks[name].candidate == pytest.approx(reference[name].candidate)
            assert checks[name].baseline == pytest.approx(reference[name].baseline)
    # binary F1 scores the candidate's last class: here 0
    f1 = by_name(quality_checks(CLASSIFY, y, reordered, s))["quality.f1"]
    assert f1.candidate == pytest.approx(skm.f1_score(y, s.prediction, pos_label=0))


def test_a_label_no_model_knows_counts_as_wrong() -> None:
    y = np.array(["a", "b", "a", "c"])
    s = Scores(np.array(["a", "b", "b", "a"]), np.array([[.9, .1], [.2, .8], [.4, .6], [.7, .3]]),
               ("a", "b"))
    [data] = encode(CLASSIFY, y, s)
    assert data.classes == ("a", "b", "c")
    assert metric(CLASSIFY, "accuracy").value(data) == 0.5
    assert row_loss(data)[3] > 30  # no probability at all for the true class


def test_missing_labels_are_refused() -> None:
    s = Scores(np.array([1.0, 2.0]))
    with pytest.raises(InvalidInputError, match="missing"):
        quality_checks(REGRESS, np.array([1.0, np.nan]), s, s)


def test_the_primary_comes_first_and_log_loss_and_r2_are_reported_only() -> None:
    y, s = held_out(load_breast_cancer, logistic())
    checks = quality_checks(CLASSIFY, y, s, s)
    assert [c.name for c in checks] == ["quality.accuracy", "quality.f1", "quality.roc_auc",
                                        "quality.log_loss"]
    assert checks[0].detail["primary"] is True
    assert by_name(checks)["quality.log_loss"].verdict is Verdict.REPORTED
    y, r = held_out(load_diabetes, Ridge())
    names = [(c.name, c.verdict) for c in quality_checks(REGRESS, y, r, r)]
    assert names == [("quality.rmse", Verdict.PASSED), ("quality.mae", Verdict.PASSED),
                     ("quality.r2", Verdict.REPORTED)]
    chosen = quality_checks(REGRESS, y, r, r, primary="r2")
    assert chosen[0].name == "quality.r2" and chosen[0].verdict is Verdict.PASSED


def test_a_classifier_without_probabilities_gets_the_label_metrics() -> None:
    y, s = held_out(load_iris, logistic())
    labels_only = Scores(s.prediction)
    assert [c.name for c in quality_checks(CLASSIFY, y, labels_only, labels_only)] == [
        "quality.accuracy", "quality.f1"]
    mixed = by_name(quality_checks(CLASSIFY, y, s, labels_only))
    assert mixed["quality.roc_auc"].verdict is Verdict.REPORTED
    assert mixed["quality.roc_auc"].baseline is None


# The noise rule ---------------------------------------------------------------------------

@pytest.mark.parametrize("seed", range(20))
def test_an_equal_model_passes_on_every_split(seed: int) -> None:
    pair = retrained_pair(load_breast_cancer, lambda s: logistic(), seed)
    checks = quality_checks(CLASSIFY, pair.labels, pair.candidate, pair.baseline, seed=seed)
    assert len(pair.labels) == 228
    assert not [c.name for c in checks if c.failed]
    assert checks[0].detail["resamples"] == 1000 and checks[0].detail["rows"] == 228


@pytest.mark.parametrize("seed", range(0, 20, 4))
def test_an_equal_regressor_passes(seed: int) -> None:
    pair = retrained_pair(load_diabetes, lambda s: Ridge(), seed)
    checks = quality_checks(REGRESS, pair.labels, pair.candidate, pair.baseline, seed=seed)
    assert not [c.name for c in checks if c.failed]


def test_a_model_a_few_points_worse_fails() -> None:
    features, target = load_digits(return_X_y=True)
    train, test, y_train, y_test = train_test_split(features, target, test_size=1000,
                                                    random_state=0)
    baseline = scores(logistic().fit(train, y_train), test)
    worse = scores(logistic().fit(train[:250], y_train[:250]), test)
    accuracy = quality_checks(CLASSIFY, y_test, worse, baseline)[0]
    candidate, baseline_accuracy = measured(accuracy)
    assert 0.02 < baseline_accuracy - candidate < 0.06
    assert accuracy.verdict is Verdict.FAILED
    assert accuracy.detail["failed"] == ["max_relative_drop"]
    low, high = accuracy.detail["ci"]
    assert low < accuracy.detail["difference"] < high < -0.01 * baseline_accuracy
    assert quality_checks(CLASSIFY, y_test, baseline, worse)[0].verdict is Verdict.PASSED


def test_the_interval_is_seeded_and_paired() -> None:
    y, s = held_out(load_breast_cancer, logistic())
    assert quality_checks(CLASSIFY, y, s, s, seed=3) == quality_checks(CLASSIFY, y, s, s, seed=3)
    assert quality_checks(CLASSIFY, y, s, s)[0].detail["ci"] == [0.0, 0.0]  # same rows, same model


def test_a_large_hold_out_bootstraps_a_subsample_and_rescales() -> None:
    rng = np.random.default_rng(0)
    rows = 20_000
    truth = rng.normal(size=rows)
    pair = encode(REGRESS, truth, Scores(truth + rng.normal(0, 1.0, rows)),
                  Scores(truth + rng.normal(0, 1.02, rows)))
    rmse = metric(REGRESS, "rmse")
    difference = rmse.value(pair[0]) - rmse.value(pair[1])
    small = difference_interval(rmse, pair[0], pair[1], difference, Resamples())
    full = difference_interval(rmse, pair[0], pair[1], difference,
                               Resamples(max_rows=rows))
    assert (small.bootstrapped_rows, full.bootstrapped_rows) == (5000, rows)
    assert small.high - small.low == pytest.approx(full.high - full.low, rel=0.2)
    assert small.low < difference < small.high


def test_a_version_giving_nan_fails_and_the_rest_is_compared() -> None:
    y, r = held_out(load_diabetes, Ridge())
    broken = r.prediction.copy()
    broken[:5] = np.nan
    checks = by_name(quality_checks(REGRESS, y, Scores(broken), r))
    finite = checks["quality.finite_predictions"]
    assert finite.verdict is Verdict.FAILED and finite.candidate == 5
    assert checks["quality.rmse"].detail["rows"] == len(y) - 5
    assert not quality_checks(REGRESS, y, r, Scores(broken))[0].failed


# MLflow's knobs ---------------------------------------------------------------------------

def _accuracy_with(rule: MetricThreshold, candidate: Scores, baseline: Scores,
                   y: np.ndarray) -> Check:
    return by_name(quality_checks(CLASSIFY, y, candidate, baseline,
                                  {"accuracy": rule}))["quality.accuracy"]


def test_threshold_is_a_floor_for_greater_is_better() -> None:
    y, s = held_out(load_breast_cancer, logistic())
    floor = _accuracy_with(MetricThreshold(threshold=0.99, greater_is_better=True), s, s, y)
    assert floor.verdict is Verdict.FAILED and floor.detail["failed"] == ["threshold"]
    assert "candidate >= 0.99" in floor.condition
    assert not _accuracy_with(MetricThreshold(threshold=0.9, greater_is_better=True), s, s, y
                              ).failed


def test_min_absolute_and_relative_change_ask_for_an_improvement() -> None:
    y, better = held_out(load_breast_cancer, logistic())
    _, worse = held_out(load_breast_cancer, DummyClassifier(strategy="stratified",
                                                            random_state=0))
    for knob in ({"min_absolute_change": 0.01}, {"min_relative_change": 0.01}):
        rule = MetricThreshold(greater_is_better=True, max_relative_drop=None, **knob)
        same = _accuracy_with(rule, better, better, y)
        assert same.verdict is Verdict.FAILED and same.detail["failed"] == [next(iter(knob))]
        assert _accuracy_with(rule, better, worse, y).verdict is Verdict.PASSED


def test_greater_is_better_false_flips_every_knob() -> None:
    y, s = held_out(load_breast_cancer, logistic())
    log_loss = by_name(quality_checks(CLASSIFY, y, s, s))["quality.log_loss"].candidate
    assert log_loss is not None
    ceiling = MetricThreshold(threshold=log_loss / 2, greater_is_better=False)
    check = by_name(quality_checks(CLASSIFY, y, s, s, {"log_loss": ceiling}))["quality.log_loss"]
    assert check.verdict is Verdict.FAILED and "candidate <=" in check.condition
    y, r = held_out(load_diabetes, Ridge())
    shifted = Scores(r.prediction + 15.0)
    for knob in ({"min_absolute_change": 1.0}, {"min_relative_change": 0.01}):
        rule = MetricThreshold(greater_is_better=False, **knob)
        assert quality_checks(REGRESS, y, r, shifted, {"rmse": rule})[0].verdict is Verdict.PASSED
        assert quality_checks(REGRESS, y, shifted, r, {"rmse": rule})[0].verdict is Verdict.FAILED


def test_mlflow_names_and_the_direction_are_checked() -> None:
    y, s = held_out(load_breast_cancer, logistic())
    check = quality_checks(CLASSIFY, y, s, s, {"accuracy_score": MetricThreshold(
        threshold=0.99, greater_is_better=True)})[0]
    assert check.name == "quality.accuracy" and check.failed
    with pytest.raises(InvalidInputError, match="lower log_loss is better"):
        quality_checks(CLASSIFY, y, s, s, {"log_loss": MetricThreshold(greater_is_better=True)})
    with pytest.raises(InvalidInputError, match="no classification metric 'rsme'"):
        quality_checks(CLASSIFY, y, s, s, {"rsme": MetricThreshold(greater_is_better=False)})


def test_a_threshold_on_a_metric_the_candidate_cannot_give_fails() -> None:
    y, s = held_out(load_breast_cancer, logistic())
    rule = MetricThreshold(threshold=0.5, greater_is_better=False)
    check = by_name(quality_checks(CLASSIFY, y, Scores(s.prediction), s,
                                   {"log_loss": rule}))["quality.log_loss"]
    assert check.verdict is Verdict.FAILED and check.detail["failed"] == ["missing_candidate"]


def test_a_primary_the_candidate_cannot_give_fails() -> None:
    y, s = held_out(load_breast_cancer, logistic())
    check = quality_checks(CLASSIFY, y, Scores(s.prediction), s, primary="roc_auc")[0]
    assert check.name == "quality.roc_auc" and check.failed


def test_every_check_is_plain_json(cancer_checks: list[Check]) -> None:
    for check in cancer_checks:
        assert Check.from_dict(json.loads(json.dumps(check.to_dict(), allow_nan=False))) == check


@pytest.mark.parametrize("knobs", [
    {"min_absolute_change": 0.0}, {"min_relative_change": 1.5}, {"max_relative_drop": -0.1},
    {"max_relative_drop": None},
])
def test_thresholds_are_validated_as_mlflow_does(knobs: dict[str, Any]) -> None:
    with pytest.raises(InvalidInputError):
        MetricThreshold(greater_is_better=True, **knobs)


def test_a_zero_baseline_falls_back_to_strictly_better() -> None:
    rule = MetricThreshold(min_relative_change=0.1, greater_is_better=True,
                           max_relative_drop=None)
    assert judge(rule, 0.0, 0.0, None).verdict is Verdict.FAILED
    assert judge(rule, 1e-9, 0.0, None).verdict is Verdict.PASSED
    lower = MetricThreshold(min_relative_change=0.1, greater_is_better=False,
                            max_relative_drop=None)
    assert judge(lower, -1e-9, 0.0, None).verdict is Verdict.PASSED


def test_the_drop_rule_reads_the_interval_on_the_worse_side() -> None:
    higher = MetricThreshold(greater_is_better=True, max_relative_drop=0.1)
    lower = MetricThreshold(greater_is_better=False, max_relative_drop=0.1)
    assert judge(higher, 0.7, 0.8, Interval(-0.2, -0.07, 100, 1000, 100)).verdict is Verdict.PASSED
    assert judge(higher, 0.7, 0.8, Interval(-0.2, -0.09, 100, 1000, 100)).verdict is Verdict.FAILED
    assert judge(lower, 0.9, 0.8, Interval(0.07, 0.2, 100, 1000, 100)).verdict is Verdict.PASSED
    assert judge(lower, 0.9, 0.8, Interval(0.09, 0.2, 100, 1000, 100)).verdict is Verdict.FAILED
    assert judge(higher, 0.7, None, None).verdict is Verdict.REPORTED


# The naive model --------------------------------------------------------------------------

def test_a_constant_model_does_not_beat_the_naive_one() -> None:
    y, s = held_out(load_breast_cancer, logistic())
    _, constant = held_out(load_breast_cancer, DummyClassifier(strategy="most_frequent"))
    check = naive_check(CLASSIFY, y, constant)
    assert check.name == "naive.accuracy" and check.verdict is Verdict.FAILED
    assert check.candidate == check.baseline and check.detail["gain"] == 0
    assert "majority class" in check.detail["naive_model"]
    assert naive_check(CLASSIFY, y, s).verdict is Verdict.PASSED
    y, r = held_out(load_diabetes, Ridge())
    assert naive_check(REGRESS, y, Scores(np.full(len(y), y.mean()))).failed
    assert naive_check(REGRESS, y, r).verdict is Verdict.PASSED


def test_the_naive_model_is_beaten_on_the_chosen_primary() -> None:
    y, s = held_out(load_iris, logistic())
    check = naive_check(CLASSIFY, y, s, primary="log_loss")
    assert check.name == "naive.log_loss" and check.verdict is Verdict.PASSED
    assert check.baseline == pytest.approx(skm.log_loss(y, np.tile(np.bincount(y) / len(y),
                                                                   (len(y), 1))))
    assert naive_check(CLASSIFY, y, Scores(s.prediction), primary="log_loss").name == \
        "naive.accuracy"
