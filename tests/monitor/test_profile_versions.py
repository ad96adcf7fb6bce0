"""Stored profiles: version 2 keeps exact numeric columns as distinct values and counts; version
1 profiles, already stored in registries, still load and judge windows as before."""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pandas as pd
import pytest

from ferry.errors import InvalidInputError
from ferry.monitor import profile as profile_module
from ferry.monitor.drift import detector_for
from ferry.monitor.drift.dataset import evaluate_window
from ferry.monitor.profile import (
    EXACT_VALUES,
    PROFILE_VERSION,
    NumericProfile,
    Profile,
    build_profile,
)
from ferry.monitor.reference import profile_bytes, profile_from_bytes

VERSION_1 = """{"version": 1, "rows": 12, "created": "2026-12-01T00:00:00+00:00", "notes": [],
"columns": {"x": {"kind": "numeric", "name": "x", "rows": 12, "missing": 1, "mean": 4.75,
"std": 2.711507463989861, "min": 1.5, "max": 10.0, "unique": 8, "exact": true,
"points": [1.5, 2.0, 2.0, 3.25, 4.0, 4.0, 4.0, 5.5, 7.0, 9.0, 10.0], "areas": [],
"psi_edges": [2.0, 3.25, 4.0, 5.5, 7.0, 9.0], "psi_reference": [0.09090909090909091,
0.18181818181818182, 0.09090909090909091, 0.2727272727272727, 0.09090909090909091,
0.09090909090909091, 0.18181818181818182]}, "c": {"kind": "categorical", "name": "c", "rows": 12,
"missing": 1, "unique": 3, "values": ["a", "b", "c"], "counts": [6, 3, 2], "other": 0}},
"outputs": {"score": {"kind": "numeric", "name": "score", "rows": 12, "missing": 0,
"mean": 0.6091666666666667, "std": 0.30963576272058035, "min": 0.1, "max": 0.99, "unique": 11,
"exact": true, "points": [0.1, 0.2, 0.3, 0.3, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 0.97, 0.99],
"areas": [], "psi_edges": [0.21000000000000002, 0.3, 0.36, 0.54, 0.6499999999999999, 0.76, 0.87,
0.9400000000000001, 0.968], "psi_reference": [0.16666666666666666, 0.0, 0.16666666666666666,
0.08333333333333333, 0.08333333333333333, 0.08333333333333333, 0.08333333333333333,
0.08333333333333333, 0.08333333333333333, 0.16666666666666666]}}}"""
"""What ferry's version-1 `build_profile` stored for `_small_frame` (copied from its output)."""

SKETCH_SCORES = {"wasserstein": 0.07693189725408686, "ks": 0.030299999999999994,
                 "psi": 0.007542204121561928}
"""Version-1 ferry's statistics for `_sketch_data`: the 5,000-row reference as its 1001-point
sketch, against the 20,000-row window."""


def _small_frame() -> tuple[pd.DataFrame, list[float]]:
    frame = pd.DataFrame({
        "x": [1.5, 2.0, 2.0, 3.25, 4.0, 4.0, 4.0, 5.5, 7.0, np.nan, 9.0, 10.0],
        "c": ["a", "b", "a", None, "a", "b", "c", "a", "b", "a", "a", "c"]})
    return frame, [0.1, 0.2, 0.3, 0.3, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 0.97, 0.99]


def _sketch_data() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(1)
    return rng.gamma(2, 1, 5000), rng.gamma(2, 1.05, 20_000)


def _as_version_1(data: dict[str, Any]) -> dict[str, Any]:
    """A version-2 profile of sketches only in version 1's layout (no `counts`)."""
    columns = {name: {key: value for key, value in column.items() if key != "counts"}
               for name, column in data["columns"].items()}
    assert all(not column["exact"] for column in columns.values())
    return {**data, "version": 1, "columns": columns}


def test_a_stored_version_1_profile_reads_as_the_same_data_profiled_now() -> None:
    frame, scores = _small_frame()
    now = build_profile(frame, outputs={"score": scores})
    old = Profile.from_dict(json.loads(VERSION_1))
    assert old.version == PROFILE_VERSION == 2
    assert old.columns == now.columns and old.outputs == now.outputs
    column = old.columns["x"]
    assert isinstance(column, NumericProfile)
    assert column.points == (1.5, 2.0, 3.25, 4.0, 5.5, 7.0, 9.0, 10.0)
    assert column.counts == (1, 2, 1, 3, 1, 1, 1, 1)


def test_a_version_1_profile_is_stored_again_as_version_2() -> None:
    old = Profile.from_dict(json.loads(VERSION_1))
    stored = json.loads(profile_bytes(old))
    assert stored["version"] == 2 and stored["columns"]["x"]["counts"] == [1, 2, 1, 3, 1, 1, 1, 1]
    assert profile_from_bytes(profile_bytes(old)) == old


def test_a_version_1_sketch_scores_as_version_1_did(monkeypatch: pytest.MonkeyPatch) -> None:
    reference, window = _sketch_data()
    monkeypatch.setattr(profile_module, "EXACT_VALUES", 1000)
    stored = _as_version_1(build_profile({"x": reference}).to_dict())
    column = Profile.from_dict(stored).columns["x"]
    assert isinstance(column, NumericProfile) and not column.exact and column.counts == ()
    for method, expected in SKETCH_SCORES.items():
        assert detector_for(column, method=method).score(window).statistic == expected


def test_a_version_1_profile_judges_a_window_as_version_2() -> None:
    frame, scores = _small_frame()
    now = build_profile(frame, outputs={"score": scores})
    old = Profile.from_dict(json.loads(VERSION_1))
    rng = np.random.default_rng(0)
    window = {"x": rng.uniform(1, 11, 400), "c": rng.choice(["a", "b", "c"], 400),
              "score": rng.uniform(0, 1, 400)}
    assert evaluate_window(old, window) == evaluate_window(now, window)


@pytest.mark.parametrize("version", [0, 3, None, "2"])
def test_unknown_versions_are_refused(version: object) -> None:
    data = json.loads(VERSION_1) | {"version": version}
    with pytest.raises(InvalidInputError, match="profile version"):
        Profile.from_dict(data)


def test_a_malformed_version_1_column_is_refused() -> None:
    data = json.loads(VERSION_1)
    del data["columns"]["x"]["exact"]
    with pytest.raises(InvalidInputError, match="malformed"):
        Profile.from_dict(data)


def test_an_exact_profile_round_trips_through_json_with_its_counts() -> None:
    values = np.random.default_rng(2).integers(0, 5000, 30_000) / 3
    profile = build_profile({"x": values})
    stored = json.loads(json.dumps(profile.to_dict(), allow_nan=False))
    assert Profile.from_dict(stored) == profile
    assert sum(stored["columns"]["x"]["counts"]) == values.size


def test_a_column_at_the_cap_stores_in_about_22_bytes_a_value() -> None:
    """The size EXACT_VALUES was chosen by: 2.2 MB for a column of distinct doubles."""
    values = np.random.default_rng(3).lognormal(3, 1, EXACT_VALUES)
    size = len(profile_bytes(build_profile({"x": values})))
    assert 15 * EXACT_VALUES < size < 25 * EXACT_VALUES
