"""Wasserstein and KS from an exact profile are scipy's on the raw values, whatever the sizes,
ties and repeats: the profile keeps the reference's distinct values and counts, the window is
counted among at most LOOKUP_EDGES of them, and the intervals the counts cannot settle are
integrated step by step (ferry.monitor.drift.steps)."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest
from scipy import stats

from ferry.monitor.drift import detector_for
from ferry.monitor.drift.numeric import CHUNK, LOOKUP_EDGES, NumericReference
from ferry.monitor.drift.steps import steps_inside
from ferry.monitor.profile import NumericProfile, build_profile

REFERENCE_ROWS = (1500, 5000, 50_000)
WINDOW_ROWS = (300, 10_000, 200_000)
SHAPES = ("continuous", "ties", "repeats", "atom")
TOLERANCE = 1e-9


def _data(shape: str, reference_rows: int, window_rows: int, shift: float,
          seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """continuous: no value twice. ties: values on a 0.1 grid, fewer than LOOKUP_EDGES, so
    window values sit on the edges. repeats: a 1/7 grid with more distinct values than
    LOOKUP_EDGES (from 5,000 rows), so window values equal reference values between edges.
    atom: 40 % of the reference at one value, the window's share there moved by `shift`."""
    rng = np.random.default_rng(seed)
    if shape == "continuous":
        return rng.gamma(2, 1, reference_rows), rng.gamma(2, 1, window_rows) + shift
    if shape == "ties":
        return (np.round(rng.normal(0, 1, reference_rows), 1),
                np.round(rng.normal(shift, 1, window_rows), 1))
    if shape == "repeats":
        step = int(shift * 7)
        return (rng.integers(0, reference_rows // 2, reference_rows) / 7,
                rng.integers(step, reference_rows // 2 + step, window_rows) / 7)
    atom = rng.random(reference_rows) < 0.4
    moved = rng.random(window_rows) < 0.4 - shift / 2
    return (np.where(atom, 1.0, rng.normal(0, 1, reference_rows)),
            np.where(moved, 1.0, rng.normal(shift, 1, window_rows)))


def _column(reference: np.ndarray) -> NumericProfile:
    column = build_profile({"x": reference}).columns["x"]
    assert isinstance(column, NumericProfile) and column.exact
    return column


def _wasserstein(reference: np.ndarray, window: object) -> float:
    result = detector_for(_column(reference), method="wasserstein").score(window)
    assert result.statistic is not None
    return result.statistic


def _scipy_wasserstein(reference: np.ndarray, window: np.ndarray) -> float:
    """Evidently's normed Wasserstein on the raw values."""
    window = window[np.isfinite(window)]
    return float(stats.wasserstein_distance(reference, window) / max(reference.std(), 0.001))


CASES = [pytest.param(shape, reference_rows, window_rows, shift,
                      id=f"{shape}-{reference_rows}-{window_rows}-{'shifted' if shift else 'same'}")
         for shape in SHAPES for reference_rows in REFERENCE_ROWS
         for window_rows in WINDOW_ROWS for shift in (0.0, 0.3)]


@pytest.mark.parametrize(("shape", "reference_rows", "window_rows", "shift"), CASES)
def test_wasserstein_is_scipys_on_the_raw_values(shape: str, reference_rows: int,
                                                 window_rows: int, shift: float) -> None:
    reference, window = _data(shape, reference_rows, window_rows, shift)
    assert _wasserstein(reference, window) == pytest.approx(
        _scipy_wasserstein(reference, window), rel=TOLERANCE, abs=1e-15)


@pytest.mark.parametrize(("shape", "reference_rows", "window_rows", "shift"), CASES)
def test_ks_is_scipys_on_the_raw_values(shape: str, reference_rows: int, window_rows: int,
                                        shift: float) -> None:
    reference, window = _data(shape, reference_rows, window_rows, shift)
    result = detector_for(_column(reference), method="ks").score(window)
    expected = stats.ks_2samp(reference, window)
    assert result.statistic == pytest.approx(expected.statistic, rel=1e-12, abs=1e-15)
    assert result.p_value == pytest.approx(expected.pvalue, rel=TOLERANCE, abs=1e-300)


def test_the_cases_reach_between_the_lookup_edges() -> None:
    """The grid above must cover references counted among a subset of their values, with
    window values equal to reference values between two edges."""
    reference, window = _data("repeats", 50_000, 10_000, 0.0)
    column = _column(reference)
    edges = NumericReference.from_profile(column).edges
    assert len(column.points) > LOOKUP_EDGES >= edges.size - 10
    between = np.isin(window, column.points) & ~np.isin(window, edges)
    assert between.mean() > 0.5


@pytest.mark.parametrize("window_rows", [300, 3 * CHUNK + 17])
def test_missing_values_in_the_window_are_left_out(window_rows: int) -> None:
    reference, window = _data("continuous", 5000, window_rows, 0.1)
    window[::97] = np.nan
    window[5::1013] = np.inf
    window[7::2029] = -np.inf
    assert _wasserstein(reference, window) == pytest.approx(
        _scipy_wasserstein(reference, window), rel=TOLERANCE)
    as_objects = window.astype(object)
    as_objects[3::501] = None
    assert _wasserstein(reference, as_objects) == pytest.approx(
        _scipy_wasserstein(reference, as_objects.astype(float)), rel=TOLERANCE)


@pytest.mark.parametrize("window", [
    np.full(500, 2.5), np.full(500, -40.0), np.full(500, 40.0),
    np.linspace(30, 60, 1000), np.linspace(-60, -30, 1000),
    np.concatenate([np.full(300, -50.0), np.full(300, 50.0)])], ids=[
    "one-value-inside", "one-value-below", "one-value-above", "all-above", "all-below",
    "both-tails"])
def test_windows_outside_the_reference_or_on_one_value(window: np.ndarray) -> None:
    reference, _ = _data("continuous", 5000, 10, 0.0)
    assert _wasserstein(reference, window) == pytest.approx(
        _scipy_wasserstein(reference, window), rel=TOLERANCE)


@pytest.mark.parametrize("reference_rows", [1500, 50_000])
def test_the_reference_itself_is_at_distance_zero(reference_rows: int) -> None:
    reference, _ = _data("continuous", reference_rows, 10, 0.0)
    assert _wasserstein(reference, reference) == pytest.approx(0, abs=1e-12)
    assert _wasserstein(reference, reference[::-1].copy()) == pytest.approx(0, abs=1e-12)


def test_an_arrow_window_in_chunks_gives_the_same_distance() -> None:
    reference, window = _data("repeats", 20_000, 100_000, 0.3)
    chunked = pa.chunked_array([window[:40_000], window[40_000:]])
    assert _wasserstein(reference, chunked) == _wasserstein(reference, window)


def test_steps_need_an_exact_profile_and_its_window() -> None:
    rng = np.random.default_rng(0)
    sketch = build_profile({"x": rng.normal(size=150_000)}).columns["x"]
    assert isinstance(sketch, NumericProfile) and not sketch.exact
    window = NumericReference.from_profile(sketch).window(rng.normal(size=500))
    with pytest.raises(ValueError, match="exact profile"):
        steps_inside(window, np.ones(window.counts.size - 2, dtype=bool))
