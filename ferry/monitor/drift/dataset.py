"""A whole window against a profile: one result per column, dataset drift, prediction drift.

Dataset drift is Evidently's rule: at least half of the judged input columns (those not
`insufficient_data`) are `drift`. Bonferroni-corrected p-values (p times the number of tests,
as alibi-detect corrects) are reported beside it for the columns a p-value test judged.
Prediction drift is the worst verdict among the output columns.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import pandas as pd
import pyarrow as pa

from ferry.monitor.drift import detector_for
from ferry.monitor.drift.base import MIN_WINDOW_ROWS, DriftResult, Verdict
from ferry.monitor.profile import ColumnProfile, ColumnValues, Profile, flatten_columns

DRIFT_SHARE = 0.5
"""Evidently's `drift_share`: the dataset drifts when this share of its columns drift."""
_SEVERITY = {Verdict.INSUFFICIENT_DATA: 0, Verdict.OK: 1, Verdict.WARN: 2, Verdict.DRIFT: 3}


@dataclass(frozen=True)
class WindowReport:
    """Drift of one window of captured rows against the version's reference profile."""

    verdict: Verdict
    drift_share: float
    columns: tuple[DriftResult, ...]
    outputs: tuple[DriftResult, ...]
    prediction_verdict: Verdict | None
    bonferroni_p_values: dict[str, float]
    missing_columns: tuple[str, ...]

    def to_dict(self) -> dict[str, Any]:
        return {"verdict": str(self.verdict), "drift_share": self.drift_share,
                "columns": [result.to_dict() for result in self.columns],
                "outputs": [result.to_dict() for result in self.outputs],
                "prediction_verdict": None if self.prediction_verdict is None
                else str(self.prediction_verdict),
                "bonferroni_p_values": dict(self.bonferroni_p_values),
                "missing_columns": list(self.missing_columns)}


def evaluate_window(profile: Profile,
                    columns: pd.DataFrame | pa.Table | Mapping[str, Any],
                    min_rows: int = MIN_WINDOW_ROWS,
                    methods: Mapping[str, str] | None = None) -> WindowReport:
    """Score every profiled input and output column the window has, with its default test or
    the one `methods` names for it (as Evidently's `per_column_stattest`).

    Columns of the profile absent from the window are listed in `missing_columns`, not judged;
    window columns the profile does not know are ignored."""
    window, _ = flatten_columns(columns)
    features = _score_all(profile.columns, window, min_rows, methods or {})
    outputs = _score_all(profile.outputs, window, min_rows, methods or {})
    share = drifted_share(features)
    absent = [name for name in (*profile.columns, *profile.outputs) if name not in window]
    return WindowReport(
        verdict=dataset_verdict(features, share), drift_share=share, columns=features,
        outputs=outputs, prediction_verdict=worst(outputs) if profile.outputs else None,
        bonferroni_p_values=bonferroni(features), missing_columns=tuple(absent))


def _score_all(profiles: Mapping[str, ColumnProfile], window: Mapping[str, ColumnValues],
               min_rows: int, methods: Mapping[str, str]) -> tuple[DriftResult, ...]:
    return tuple(detector_for(column, methods.get(name), min_rows=min_rows).score(window[name])
                 for name, column in profiles.items() if name in window)


def drifted_share(results: Iterable[DriftResult]) -> float:
    judged = [r for r in results if r.verdict is not Verdict.INSUFFICIENT_DATA]
    drifted = sum(r.verdict is Verdict.DRIFT for r in judged)
    return drifted / len(judged) if judged else 0.0


def dataset_verdict(results: tuple[DriftResult, ...], share: float) -> Verdict:
    """drift at `DRIFT_SHARE`; warn when some column warns or drifts; ok; or insufficient."""
    if share >= DRIFT_SHARE:
        return Verdict.DRIFT
    return min(worst(results), Verdict.WARN, key=_SEVERITY.__getitem__)


def worst(results: Iterable[DriftResult]) -> Verdict:
    return max((r.verdict for r in results), key=_SEVERITY.__getitem__,
               default=Verdict.INSUFFICIENT_DATA)


def bonferroni(results: tuple[DriftResult, ...]) -> dict[str, float]:
    tested = [r for r in results if r.p_value is not None]
    return {r.column: min(1.0, r.p_value * len(tested)) for r in tested if r.p_value is not None}
