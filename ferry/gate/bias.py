"""Does the candidate treat the groups of a sensitive column fairly, and no worse than before?

Two checks per declared sensitive column, over the groups with at least `min_rows` rows
(smaller groups are listed in the detail, not judged; a missing value is a group):

- `bias.<column>.selection_rate_ratio`: each group's selection rate, the share of its rows
  predicted the positive class, and the lowest rate over the highest. The four-fifths rule
  (US EEOC): the candidate fails below 0.8; the baseline's ratio is shown beside it. The
  positive class is the last class (scikit-learn's `classes_[-1]`, the positive label of a
  binary model) unless `positive` names another; for a multiclass model that is "selected
  for the last class". Regressors have no selection rate and skip this check.
- `bias.<column>.worst_group_error`: the error (1 - accuracy, or RMSE for regressors) of the
  group where the candidate errs most, against the baseline's on the same group. It fails
  when the candidate is worse there by more than `max_relative_increase` (5 %) relative,
  beyond noise (the paired bootstrap interval of `conditions`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike

from ferry.errors import InvalidInputError
from ferry.gate.checks import Check, Kind, Scores, Verdict
from ferry.gate.conditions import MetricThreshold, Resamples, difference_interval, judge
from ferry.gate.metrics import Labelled, Metric, encode, finite_rows, metric
from ferry.signature import Task

FOUR_FIFTHS = 0.8
"""Lowest acceptable ratio of selection rates, lowest group over highest (EEOC's rule)."""
MAX_RELATIVE_INCREASE = 0.05
"""How much higher, relative, the candidate's error on its worst group may be (5 %)."""
MIN_GROUP_ROWS = 100
"""Groups with fewer rows are shown, not judged."""


def _error_rate(data: Labelled) -> float:
    return 1 - metric(Task.CLASSIFICATION, "accuracy").value(data)


def _error_rate_resampled(data: Labelled, weights: np.ndarray) -> np.ndarray:
    return 1 - metric(Task.CLASSIFICATION, "accuracy").resampled(data, weights)


ERROR_RATE = Metric("error_rate", False, _error_rate, _error_rate_resampled, 0.0)


def bias_checks(groups: pd.Series | ArrayLike, y_true: ArrayLike, candidate: Scores,
                baseline: Scores, task: Task, *, positive: Any = None,
                min_rows: int = MIN_GROUP_ROWS, min_ratio: float = FOUR_FIFTHS,
                max_relative_increase: float = MAX_RELATIVE_INCREASE,
                seed: int = 0) -> list[Check]:
    """The selection-rate ratio (classifiers) and the worst group's error, for the groups
    in `groups` (the sensitive column's values, in score order; a Series names the check)."""
    if task not in (Task.CLASSIFICATION, Task.REGRESSION):
        return []
    split = _Groups.of(groups, encode(task, y_true, candidate, baseline), min_rows)
    checks = [_error_check(split, max_relative_increase, seed)]
    if task == Task.CLASSIFICATION:
        checks.insert(0, _selection_check(split, positive, min_ratio))
    return checks


@dataclass(frozen=True)
class _Groups:
    """Both versions' answers and the rows of each group (rows where both answered)."""

    column: str
    pair: list[Labelled]
    members: dict[str, np.ndarray]
    min_rows: int

    @classmethod
    def of(cls, groups: pd.Series | ArrayLike, pair: list[Labelled], min_rows: int) -> _Groups:
        values = np.asarray(groups, dtype=object)
        if len(values) != pair[0].rows:
            raise InvalidInputError(f"{len(values)} group values for {pair[0].rows} labels")
        keep = np.flatnonzero(finite_rows(pair[0]) & finite_rows(pair[1]))
        return cls(str(getattr(groups, "name", None) or "group"),
                   [data.take(keep) for data in pair], _members(values[keep]), min_rows)

    @property
    def judged(self) -> dict[str, np.ndarray]:
        return {name: rows for name, rows in self.members.items() if len(rows) >= self.min_rows}

    def table(self, measured: dict[str, list[float]]) -> dict[str, dict[str, Any]]:
        """Per group: its rows, both versions' numbers, whether it is judged."""
        return {name: {"rows": len(rows), "candidate": measured[name][0],
                       "baseline": measured[name][1], "judged": len(rows) >= self.min_rows}
                for name, rows in self.members.items()}


def _members(values: np.ndarray) -> dict[str, np.ndarray]:
    """Each group's rows, by the group's value as text (missing values as `<missing>`)."""
    codes, uniques = pd.factorize(values)
    members = {str(value): np.flatnonzero(codes == code) for code, value in enumerate(uniques)}
    if (codes < 0).any():
        members["<missing>"] = np.flatnonzero(codes < 0)
    return members


# Selection rate ---------------------------------------------------------------------------

def _selection_check(split: _Groups, positive: Any, min_ratio: float) -> Check:
    classes = split.pair[0].classes or ()
    chosen = len(classes) - 1 if positive is None else _position(classes, positive)
    rates = {name: [float(np.mean(data.prediction[rows] == chosen)) for data in split.pair]
             for name, rows in split.members.items()}
    candidate, baseline = (_ratio([rates[name][v] for name in split.judged]) for v in (0, 1))
    detail = {"positive": classes[chosen] if classes else None, "groups": split.table(rates)}
    name = f"bias.{split.column}.selection_rate_ratio"
    if len(split.judged) < 2:
        return Check(name, Kind.BIAS, candidate, baseline, "reported only: fewer than two "
                     "groups with enough rows", Verdict.REPORTED, detail)
    fair = candidate is not None and candidate >= min_ratio
    return Check(name, Kind.BIAS, candidate, baseline, f"candidate's lowest / highest "
                 f"selection rate >= {min_ratio:g} (four-fifths rule)",
                 Verdict.PASSED if fair else Verdict.FAILED, detail)


def _position(classes: tuple[Any, ...], positive: Any) -> int:
    keys = [str(label) for label in classes]
    if str(positive) not in keys:
        raise InvalidInputError(f"positive class {positive!r} is not among the classes "
                                f"{', '.join(keys)}")
    return keys.index(str(positive))


def _ratio(rates: list[float]) -> float | None:
    """Lowest over highest; 1 when nobody is selected anywhere (all treated alike)."""
    if not rates:
        return None
    return min(rates) / max(rates) if max(rates) > 0 else 1.0


# Worst group's error ----------------------------------------------------------------------

def _error_check(split: _Groups, max_increase: float, seed: int) -> Check:
    measure = ERROR_RATE if split.pair[0].classes is not None else metric(Task.REGRESSION,
                                                                         "rmse")
    errors = {name: [measure.value(data.take(rows)) for data in split.pair]
              for name, rows in split.members.items()}
    detail = {"metric": measure.name, "groups": split.table(errors)}
    name = f"bias.{split.column}.worst_group_error"
    if not split.judged:
        return Check(name, Kind.BIAS, None, None, "reported only: no group with enough rows",
                     Verdict.REPORTED, detail)
    worst = max(split.judged, key=lambda group: errors[group][0])
    candidate, baseline = (data.take(split.judged[worst]) for data in split.pair)
    (value, reference), resamples = errors[worst], Resamples(seed=seed)
    interval = difference_interval(measure, candidate, baseline, value - reference, resamples)
    judged = judge(MetricThreshold(greater_is_better=False, max_relative_drop=max_increase),
                   value, reference, interval)
    return Check(name, Kind.BIAS, value, reference, f"on {split.column}={worst}: "
                 f"{judged.condition}", judged.verdict,
                 detail | {"group": worst, **interval.to_detail()})
