"""Slices: a candidate better overall but worse on a planted slice fails there, whether the
slice's column is declared or the tree finds it; equal models fail no slice; it stays fast."""

from __future__ import annotations

import time

import numpy as np
import pandas as pd
import pytest
from gate_data import Pair, logistic, measured, planted_slice, scores
from sklearn.datasets import load_diabetes, make_classification
from sklearn.linear_model import Ridge
from sklearn.model_selection import train_test_split

from ferry.errors import InvalidInputError
from ferry.gate.checks import Check, Scores, Verdict
from ferry.gate.metrics import encode, row_loss
from ferry.gate.quality import quality_checks
from ferry.gate.slices import declared_slices, found_slices, slice_checks
from ferry.signature import Task

CLASSIFY = Task.CLASSIFICATION


@pytest.fixture(scope="module")
def planted() -> tuple[Pair, np.ndarray]:
    return planted_slice()


def failed(checks: list[Check]) -> list[str]:
    return [check.name for check in checks if check.failed]


def test_the_planted_pair_is_better_overall(planted: tuple[Pair, np.ndarray]) -> None:
    pair, _ = planted
    checks = quality_checks(CLASSIFY, pair.labels, pair.candidate, pair.baseline)
    assert not failed(checks)
    candidate, baseline = measured(checks[0])
    assert candidate > baseline + 0.05


def test_a_declared_slice_where_the_candidate_is_worse_fails(
        planted: tuple[Pair, np.ndarray]) -> None:
    pair, rows = planted
    checks = slice_checks(pair.frame, pair.labels, pair.candidate, pair.baseline, CLASSIFY,
                          declared=["region"], auto=False)
    assert failed(checks) == ["slice.region=north.accuracy"]
    north = next(c for c in checks if c.failed)
    assert north.detail["rows"] == len(rows) == 1000
    assert north.detail["source"] == "declared"
    candidate, baseline = measured(north)
    assert baseline - candidate == pytest.approx(0.10, abs=0.005)
    assert north.detail["ci"][1] < -0.05 * baseline
    assert north.detail["resamples"] == 1000
    assert {c.name for c in checks} == {f"slice.region={r}.accuracy"
                                        for r in ("north", "south", "east", "west")}


def test_the_tree_finds_the_slice_when_nothing_is_declared(
        planted: tuple[Pair, np.ndarray]) -> None:
    pair, rows = planted
    frame = pair.frame.drop(columns="region")
    checks = slice_checks(frame, pair.labels, pair.candidate, pair.baseline, CLASSIFY)
    assert failed(checks) and all("x3>" in name for name in failed(checks))
    found = [c for c in checks if c.failed]
    assert sum(c.detail["rows"] for c in found) == pytest.approx(len(rows), rel=0.15)
    assert {c.detail["source"] for c in found} == {"found"}
    difference = np.zeros(len(frame))
    pieces = found_slices(frame, _loss_difference(pair))
    planted_rows = set(rows.tolist())
    assert max(len(planted_rows & set(p.rows.tolist())) / len(p.rows) for p in pieces) > 0.9
    assert found_slices(frame, difference) == []  # nowhere worse: nothing to report


def _loss_difference(pair: Pair) -> np.ndarray:
    candidate, baseline = encode(CLASSIFY, pair.labels, pair.candidate, pair.baseline)
    return row_loss(candidate) - row_loss(baseline)


def test_the_tree_names_categories_and_skips_declared_duplicates(
        planted: tuple[Pair, np.ndarray]) -> None:
    pair, _ = planted
    frame = pair.frame[["region", "x0"]]
    found = slice_checks(frame, pair.labels, pair.candidate, pair.baseline, CLASSIFY)
    assert "slice.region=north.accuracy" in failed(found)
    both = slice_checks(frame, pair.labels, pair.candidate, pair.baseline, CLASSIFY,
                        declared=["region"])
    assert [c.name for c in both].count("slice.region=north.accuracy") == 1


def test_equal_models_fail_no_slice() -> None:
    features, target = make_classification(n_samples=24_000, n_features=6, n_informative=4,
                                           random_state=1)
    frame = pd.DataFrame(features, columns=[f"x{i}" for i in range(6)])
    train, test, y_train, y_test = train_test_split(frame, target, test_size=8000,
                                                    random_state=1)
    halves = [logistic().fit(train.iloc[part::2], y_train[part::2]) for part in (0, 1)]
    test = test.reset_index(drop=True)
    test["band"] = np.where(test["x1"] > 0, "high", "low")
    checks = slice_checks(test, y_test, scores(halves[0], test.drop(columns="band")),
                          scores(halves[1], test.drop(columns="band")), CLASSIFY,
                          declared=["x0", "band"])
    assert len(checks) >= 6 and not failed(checks)


def test_declared_numeric_columns_are_cut_at_quartiles_and_missing_values_kept() -> None:
    values = np.r_[np.arange(400, dtype=float), [np.nan] * 10]
    slices = declared_slices(pd.DataFrame({"age": values}), "age")
    assert [s.name for s in slices] == ["age<=99.75", "99.75<age<=199.5", "199.5<age<=299.2",
                                        "age>299.2", "age=<missing>"]
    assert [len(s.rows) for s in slices] == [100, 100, 100, 100, 10]
    few = declared_slices(pd.DataFrame({"stars": np.arange(400) % 5}), "stars")
    assert [s.name for s in few] == [f"stars={v}" for v in range(5)]


def test_small_slices_are_reported_not_judged(planted: tuple[Pair, np.ndarray]) -> None:
    pair, _ = planted
    checks = slice_checks(pair.frame, pair.labels, pair.candidate, pair.baseline, CLASSIFY,
                          declared=["region"], auto=False, min_rows=2000)
    north = next(c for c in checks if c.name == "slice.region=north.accuracy")
    assert north.verdict is Verdict.REPORTED and "fewer than 2000 rows" in north.condition
    assert north.candidate is not None and "ci" not in north.detail


def test_a_regressor_is_sliced_on_its_rmse() -> None:
    features, target = load_diabetes(return_X_y=True, as_frame=True)
    model = Ridge().fit(features, target)
    baseline = model.predict(features)
    worse = baseline.copy()
    heavy = (features["bmi"] > features["bmi"].quantile(0.75)).to_numpy()
    worse[heavy] -= 40  # heavier patients' progression underestimated
    checks = slice_checks(features, target.to_numpy(), Scores(worse), Scores(baseline),
                          Task.REGRESSION, declared=["bmi"], auto=False, min_rows=50)
    assert failed(checks) == [f"slice.bmi>{features['bmi'].quantile(0.75):.4g}.rmse"]


def test_an_undeclared_column_is_refused() -> None:
    s = Scores(np.array([0, 1]))
    with pytest.raises(InvalidInputError, match="no column 'colour'"):
        slice_checks(pd.DataFrame({"x": [1, 2]}), np.array([0, 1]), s, s, CLASSIFY,
                     declared=["colour"])


def test_a_hundred_thousand_rows_and_ten_declared_columns_take_seconds() -> None:
    rng = np.random.default_rng(0)
    rows = 100_000
    frame = pd.DataFrame({f"n{i}": rng.normal(size=rows) for i in range(5)}
                         | {f"c{i}": rng.choice(list("abcdef"), rows) for i in range(5)})
    truth = rng.integers(0, 2, rows)

    def version() -> Scores:
        p = np.clip(np.where(truth == 1, 0.7, 0.3) + rng.normal(0, 0.2, rows), 0.01, 0.99)
        return Scores((p > 0.5).astype(int), np.column_stack([1 - p, p]), (0, 1))

    candidate, baseline = version(), version()
    start = time.perf_counter()
    checks = slice_checks(frame, truth, candidate, baseline, CLASSIFY,
                          declared=[str(c) for c in frame])
    elapsed = time.perf_counter() - start
    print(f"slice_checks: {rows} rows, {len(checks)} slices, {elapsed:.2f} s")
    assert len(checks) >= 50 and elapsed < 10
