"""Reference profiles and drift windows on real data: what is kept, that the tests agree with
scipy on the raw values, and which columns a shifted window flags (sklearn's bundled data)."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from scipy import stats
from scipy.spatial import distance
from sklearn.datasets import load_breast_cancer, load_diabetes, load_digits
from sklearn.linear_model import LogisticRegression

from ferry.errors import InvalidInputError
from ferry.monitor import profile as profile_module
from ferry.monitor.drift import DriftResult, Verdict, detector_for
from ferry.monitor.drift.dataset import evaluate_window
from ferry.monitor.drift.search import FastSearch
from ferry.monitor.profile import (
    EXACT_VALUES,
    CategoricalProfile,
    ColumnKind,
    NumericProfile,
    Profile,
    build_profile,
)
from ferry.monitor.report import reference_shares

# --- the profile -------------------------------------------------------------------------


def _mixed_frame(rows: int, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame({
        "income": rng.lognormal(10, 1, rows), "age": rng.integers(18, 90, rows),
        "plan": rng.choice(["free", "pro", "team"], rows), "active": rng.random(rows) < 0.3,
        "rating": rng.choice([1.0, 2.0, 3.0], rows)})


def test_profile_round_trips_through_json_exactly() -> None:
    frame = _mixed_frame(5000)
    frame.loc[::7, "income"] = np.nan
    profile = build_profile(frame, outputs={"score": np.random.default_rng(1).random(5000)})
    stored = json.loads(json.dumps(profile.to_dict(), allow_nan=False))
    assert Profile.from_dict(stored) == profile
    assert Profile.from_dict(stored).to_dict() == profile.to_dict()


def test_profile_of_a_small_reference_round_trips_too() -> None:
    profile = build_profile(_mixed_frame(300))
    assert Profile.from_dict(json.loads(json.dumps(profile.to_dict()))) == profile


@pytest.mark.parametrize("change", [{"version": 3}, {"version": 0}, {"columns": 3},
                                    {"rows": None}])
def test_an_unreadable_profile_is_refused(change: dict[str, object]) -> None:
    data = build_profile(_mixed_frame(300)).to_dict() | change
    with pytest.raises(InvalidInputError, match="profile"):
        Profile.from_dict(data)


def test_column_kinds_follow_evidentlys_rule() -> None:
    frame = _mixed_frame(2000)
    frame["codes"] = np.arange(2000) % 4
    frame["numbers_as_text"] = (np.arange(2000) % 50).astype(str)
    kinds = {name: column.kind for name, column in build_profile(frame).columns.items()}
    assert kinds == {"income": ColumnKind.NUMERIC, "age": ColumnKind.NUMERIC,
                     "plan": ColumnKind.CATEGORICAL, "active": ColumnKind.CATEGORICAL,
                     "rating": ColumnKind.CATEGORICAL, "codes": ColumnKind.CATEGORICAL,
                     "numbers_as_text": ColumnKind.CATEGORICAL}


@pytest.mark.parametrize(("rows", "exact", "points"), [
    (1000, True, 1000), (1001, True, 1001), (50_000, True, 50_000),
    (EXACT_VALUES, True, EXACT_VALUES), (EXACT_VALUES + 1, False, 1001)])
def test_values_are_kept_up_to_the_cap_then_a_sketch(rows: int, exact: bool,
                                                     points: int) -> None:
    values = np.random.default_rng(0).normal(size=rows)
    column = build_profile({"x": values}).columns["x"]
    assert isinstance(column, NumericProfile)
    assert (column.exact, len(column.points)) == (exact, points)
    assert len(column.counts) == (points if exact else 0)
    assert column.points[0] == values.min() and column.points[-1] == values.max()
    assert column.mean == pytest.approx(values.mean()) and column.std == pytest.approx(values.std())
    assert sum(column.psi_reference) == pytest.approx(1)
    assert np.allclose(column.psi_reference, 0.1, atol=0.002)


def test_repeated_values_are_kept_once_with_their_counts() -> None:
    values = np.random.default_rng(0).integers(0, 300, 200_000) / 4
    column = build_profile({"x": values}).columns["x"]
    assert isinstance(column, NumericProfile)
    distinct, counts = np.unique(values, return_counts=True)
    assert column.exact and column.unique == distinct.size
    assert column.points == tuple(distinct) and column.counts == tuple(counts)


def test_the_reports_reference_histogram_reads_the_profile(
        monkeypatch: pytest.MonkeyPatch) -> None:
    values = np.round(np.random.default_rng(0).lognormal(3, 0.6, 40_000), 1)
    edges = np.linspace(values.min(), values.max(), 31)
    raw = np.histogram(values, edges)[0] / values.size
    exact = build_profile({"x": values}).columns["x"]
    assert isinstance(exact, NumericProfile) and exact.exact
    assert np.allclose(reference_shares(exact, edges), raw, rtol=1e-12, atol=0)
    monkeypatch.setattr(profile_module, "EXACT_VALUES", 1000)
    sketch = build_profile({"x": values}).columns["x"]
    assert isinstance(sketch, NumericProfile) and not sketch.exact
    assert np.allclose(reference_shares(sketch, edges), raw, atol=2e-3)


def test_sketch_areas_are_the_empirical_cdfs_integrals(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(profile_module, "EXACT_VALUES", 1000)
    values = np.random.default_rng(0).exponential(size=20_000)
    column = build_profile({"x": values}).columns["x"]
    assert isinstance(column, NumericProfile) and not column.exact
    fine = np.sort(np.unique(np.concatenate([values, column.points])))
    cdf = np.searchsorted(np.sort(values), fine, side="right") / values.size
    running = np.concatenate([[0], np.cumsum(cdf[:-1] * np.diff(fine))])
    expected = np.diff(np.interp(column.points, fine, running))
    assert np.allclose(column.areas, expected, rtol=1e-9, atol=1e-12)


def test_categories_keep_the_top_100_and_pool_the_rest() -> None:
    values = np.repeat([f"c{i}" for i in range(150)], np.arange(150, 0, -1))
    column = build_profile({"x": values}).columns["x"]
    assert isinstance(column, CategoricalProfile)
    assert (column.unique, len(column.values), column.values[0]) == (150, 100, "c0")
    assert column.other == sum(range(1, 51)) and sum(column.counts) + column.other == values.size


def test_missing_values_are_counted_not_profiled() -> None:
    frame = pd.DataFrame({"x": [1.5, np.nan, np.inf, 2.5, -np.inf, 3.0, 4.0, 5.0, 6.0, 7.0],
                          "c": ["a", None, "b", "a", np.nan, "b", "a", "c", "a", "b"]})
    columns = build_profile(frame).columns
    assert (columns["x"].missing, columns["x"].count) == (3, 7)
    assert (columns["c"].missing, columns["c"].count) == (2, 8)


def test_matrix_inputs_are_split_and_wide_ones_skipped_with_a_note() -> None:
    rng = np.random.default_rng(0)
    profile = build_profile({"X": rng.normal(size=(400, 3)), "image": rng.random((400, 8, 8)),
                             "embedding": rng.random((400, 200)), "column": rng.random((400, 1)),
                             "when": pd.date_range("2024-01-01", periods=400, freq="h"),
                             "empty": np.full(400, np.nan)})
    assert list(profile.columns) == ["X[0]", "X[1]", "X[2]", "column"]
    notes = "\n".join(profile.notes)
    for skipped in ("image", "embedding", "when", "empty"):
        assert f"{skipped}:" in notes


def test_arrow_and_pandas_inputs_give_the_same_profile() -> None:
    frame = _mixed_frame(3000)
    from_pandas = build_profile(frame)
    from_arrow = build_profile(pa.Table.from_pandas(frame, preserve_index=False))
    assert from_arrow.columns == from_pandas.columns


# --- agreement with the raw-data computation -------------------------------------------------


def test_fast_search_is_numpys_searchsorted() -> None:
    rng = np.random.default_rng(3)
    for edges in (rng.normal(size=1001), rng.lognormal(0, 3, 1001), rng.standard_cauchy(500),
                  rng.lognormal(0, 1, 4105), rng.normal(size=20_000),  # fewer cells an edge
                  rng.integers(0, 5, 50).astype(float), np.array([1.0]),
                  np.concatenate([rng.normal(size=900), 1 + 1e-12 * rng.normal(size=100)])):
        edges = np.unique(edges)
        values = np.concatenate([rng.choice(edges, 3000), np.nextafter(rng.choice(edges, 3000),
                                 np.inf), rng.normal(np.median(edges), edges.std() + 1, 3000),
                                 [np.inf, -np.inf, 1e308, -1e308]])
        found = FastSearch.over(edges)(values)
        assert np.array_equal(found, np.searchsorted(edges, values, side="right"))


@pytest.mark.parametrize("rows", [3000, 40_000])
def test_ks_is_scipys_on_the_raw_values(rows: int) -> None:
    rng = np.random.default_rng(0)
    reference, window = rng.integers(0, 60, 900) / 3, rng.integers(0, 61, rows) / 3
    result = detector_for(build_profile({"x": reference}).columns["x"]).score(window)
    expected = stats.ks_2samp(reference, window)
    assert result.method == "ks" and result.statistic == expected.statistic
    assert result.p_value == pytest.approx(expected.pvalue, rel=1e-9, abs=1e-15)


@pytest.mark.parametrize(("reference_rows", "window_rows", "tolerance"), [
    (800, 5000, 1e-12), (800, 100_000, 1e-12), (50_000, 200_000, 1e-12),
    (5000, 3000, 1e-12), (150_000, 200_000, 2e-4), (150_000, 3000, 1e-3)])
def test_wasserstein_is_scipys_on_the_raw_values_or_close_from_a_sketch(
        reference_rows: int, window_rows: int, tolerance: float) -> None:
    rng = np.random.default_rng(1)
    reference, window = rng.gamma(2, 1, reference_rows), rng.gamma(2, 1.05, window_rows)
    column = build_profile({"x": reference}).columns["x"]
    assert isinstance(column, NumericProfile)
    assert column.exact == (reference_rows <= EXACT_VALUES)
    result = detector_for(column, method="wasserstein").score(window)
    expected = stats.wasserstein_distance(reference, window) / reference.std()
    assert result.statistic == pytest.approx(expected, abs=tolerance)


def test_chisquare_is_evidentlys_goodness_of_fit() -> None:
    rng = np.random.default_rng(2)
    reference = pd.Series(rng.choice(list("abcd"), 900, p=[0.4, 0.3, 0.2, 0.1]))
    window = pd.Series(rng.choice(list("abcd"), 5000, p=[0.37, 0.33, 0.2, 0.1]))
    result = detector_for(build_profile({"x": reference}).columns["x"]).score(window)
    keys = sorted(set(reference) | set(window))
    scale = len(window) / len(reference)
    f_exp = [reference.value_counts().get(k, 0) * scale for k in keys]
    expected = stats.chisquare([window.value_counts().get(k, 0) for k in keys], f_exp)
    assert result.method == "chisquare"
    assert result.p_value == pytest.approx(expected.pvalue, rel=1e-9)


def test_a_category_the_reference_never_had_fails_chisquare() -> None:
    column = build_profile({"x": np.repeat(["a", "b", "c"], 300)}).columns["x"]
    result = detector_for(column).score(np.repeat(["a", "b", "c", "new"], 100))
    assert (result.p_value, result.verdict) == (0.0, Verdict.DRIFT)
    assert result.to_dict()["statistic"] is None


def test_jensenshannon_is_scipys_on_value_shares() -> None:
    rng = np.random.default_rng(3)
    reference, window = rng.integers(0, 4, 5000), rng.integers(0, 5, 8000)
    result = detector_for(build_profile({"x": reference}).columns["x"]).score(window)
    shares = [np.bincount(v, minlength=5) / v.size for v in (reference, window)]
    assert result.method == "jensenshannon"
    assert result.statistic == pytest.approx(distance.jensenshannon(*shares), rel=1e-12)


def test_psi_uses_reference_deciles_and_an_epsilon_for_empty_bins() -> None:
    reference = np.arange(1000.0)
    column = build_profile({"x": reference}).columns["x"]
    assert detector_for(column, method="psi").score(reference).statistic == pytest.approx(0)
    half = detector_for(column, method="psi").score(np.arange(500.0))
    expected = 5 * (0.1 - 0.2) * np.log(0.1 / 0.2) + 5 * (0.1 - 1e-4) * np.log(0.1 / 1e-4)
    assert half.statistic == pytest.approx(expected)
    assert half.verdict is Verdict.DRIFT


# --- windows of real data ------------------------------------------------------------------


def _diabetes(seed: int = 0) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Half of load_diabetes as reference, the other half as an unshifted window, with a
    categorical column derived from blood pressure quartiles."""
    frame = load_diabetes(as_frame=True).frame.drop(columns="target")
    frame["bp_band"] = pd.qcut(frame["bp"], 4, labels=["low", "mid", "high", "top"]).astype(str)
    order = np.random.default_rng(seed).permutation(len(frame))
    return (frame.iloc[order[:221]].reset_index(drop=True),
            frame.iloc[order[221:]].reset_index(drop=True))


def _flagged(results: tuple[DriftResult, ...]) -> set[str]:
    return {r.column for r in results if r.verdict is Verdict.DRIFT}


def test_unshifted_held_out_data_is_not_flagged() -> None:
    # One split as the example; a split can flag a column by chance (the tests fire at 5 %
    # per column by design), which test_false_alarms_stay_rare measures over many splits.
    reference, window = _diabetes()
    report = evaluate_window(build_profile(reference), window)
    assert not _flagged(report.columns) and report.verdict is Verdict.OK
    assert {r.method for r in report.columns} == {"ks", "z", "chisquare"}


def test_false_alarms_stay_rare_and_rarer_than_the_p_values_alone() -> None:
    verdicts, fired = [], []
    for seed in range(30):
        reference, window = _diabetes(seed)
        report = evaluate_window(build_profile(reference), window)
        assert report.verdict is not Verdict.DRIFT
        verdicts += [r.verdict for r in report.columns]
        fired += [r.p_value is not None and r.p_value < 0.05 for r in report.columns]
    drift_rate = verdicts.count(Verdict.DRIFT) / len(verdicts)
    assert drift_rate <= 0.05 and drift_rate < np.mean(fired)


def test_a_moved_mean_and_a_changed_category_are_flagged_and_only_they() -> None:
    reference, window = _diabetes()
    window["bmi"] += 0.5 * reference["bmi"].std()
    window.loc[: len(window) // 2, "bp_band"] = "top"
    report = evaluate_window(build_profile(reference), window)
    assert _flagged(report.columns) == {"bmi", "bp_band"}
    assert report.verdict is Verdict.WARN and report.drift_share == pytest.approx(2 / 11)


def test_a_window_under_200_rows_is_insufficient_never_ok() -> None:
    reference, window = _diabetes()
    report = evaluate_window(build_profile(reference), window.iloc[:199])
    assert {r.verdict for r in report.columns} == {Verdict.INSUFFICIENT_DATA}
    assert report.verdict is Verdict.INSUFFICIENT_DATA and report.bonferroni_p_values == {}
    assert evaluate_window(build_profile(reference), window.iloc[:150], min_rows=100).verdict \
        is not Verdict.INSUFFICIENT_DATA


def test_a_large_unshifted_window_does_not_turn_into_drift() -> None:
    reference, _ = _diabetes()
    rng = np.random.default_rng(5)
    window = reference.iloc[rng.integers(0, len(reference), 50_000)].reset_index(drop=True)
    # Noise splits repeated values, which KS rightly sees (s4 has one value in 29 % of rows),
    # so it goes only to the columns whose most frequent value holds under 5 % of the rows.
    smooth = [c for c in window.columns.drop(["sex", "bp_band"])
              if reference[c].value_counts(normalize=True).iloc[0] < 0.05]
    assert len(smooth) >= 5
    window[smooth] += rng.normal(0, 1e-4, (len(window), len(smooth)))
    report = evaluate_window(build_profile(reference), window)
    assert not _flagged(report.columns)


def test_a_significant_but_small_change_is_warn_not_drift() -> None:
    rng = np.random.default_rng(6)
    reference = rng.choice(["a", "b", "c"], 900, p=[0.5, 0.3, 0.2])
    window = rng.choice(["a", "b", "c"], 50_000, p=[0.46, 0.32, 0.22])
    result = detector_for(build_profile({"plan": reference}).columns["plan"]).score(window)
    assert result.p_value is not None and result.p_value < 1e-6
    assert result.psi is not None and result.psi < 0.1
    assert result.verdict is Verdict.WARN


def test_a_large_reference_uses_distances_and_flags_a_shifted_pixel() -> None:
    pixels = load_digits(as_frame=True).frame.drop(columns="target")
    order = np.random.default_rng(0).permutation(len(pixels))
    reference = pixels.iloc[order[:1297]]
    window = pixels.iloc[order[1297:]].copy()
    window["pixel_3_4"] += 0.5 * reference["pixel_3_4"].std()
    report = evaluate_window(build_profile(reference), window)
    by_column = {r.column: r for r in report.columns}
    assert {r.method for r in report.columns} == {"wasserstein", "jensenshannon"}
    assert by_column["pixel_3_4"].verdict is Verdict.DRIFT
    assert by_column["pixel_3_4"].statistic == pytest.approx(0.5, abs=0.1)
    assert report.verdict is not Verdict.DRIFT


def test_dataset_drift_at_half_the_columns_with_bonferroni_beside_it() -> None:
    reference, window = _diabetes()
    numeric = window.columns.drop(["sex", "bp_band"])
    window[numeric] += 0.6 * reference[numeric].std()
    report = evaluate_window(build_profile(reference), window)
    assert report.verdict is Verdict.DRIFT and report.drift_share >= 0.5
    tested = [r for r in report.columns if r.p_value is not None]
    assert len(report.bonferroni_p_values) == len(tested) == 11
    for r in tested:
        assert r.p_value is not None
        assert report.bonferroni_p_values[r.column] == min(1.0, r.p_value * 11)
    json.dumps(report.to_dict(), allow_nan=False)


def test_prediction_drift_on_the_models_probabilities() -> None:
    features, labels = load_breast_cancer(return_X_y=True)
    order = np.random.default_rng(0).permutation(len(labels))
    train, held_out = features[order[:300]], features[order[300:]]
    model = LogisticRegression(max_iter=5000).fit(train, labels[order[:300]])
    profile = build_profile({"X": train}, outputs={"probabilities": model.predict_proba(train)})
    assert list(profile.outputs) == ["probabilities[0]", "probabilities[1]"]
    same = evaluate_window(profile, {"probabilities": model.predict_proba(held_out)})
    shifted = held_out * 1.3
    moved = evaluate_window(profile, {"X": shifted,
                                      "probabilities": model.predict_proba(shifted)})
    assert same.prediction_verdict is not Verdict.DRIFT
    assert moved.prediction_verdict is Verdict.DRIFT
    assert len(same.missing_columns) == 30 and not moved.missing_columns


def test_an_arrow_window_gives_the_same_report_and_methods_can_be_chosen() -> None:
    reference, window = _diabetes()
    window["bmi"] += 0.5 * reference["bmi"].std()
    profile = build_profile(reference)
    from_pandas = evaluate_window(profile, window)
    from_arrow = evaluate_window(profile, pa.Table.from_pandas(window, preserve_index=False))
    assert from_arrow == from_pandas
    chosen = evaluate_window(profile, window, methods={"bmi": "psi", "bp_band": "jensenshannon"})
    by_column = {r.column: r.method for r in chosen.columns}
    assert (by_column["bmi"], by_column["bp_band"], by_column["age"]) == \
        ("psi", "jensenshannon", "ks")
