"""`ferry test`'s robustness part: does a prediction survive small changes to its input?

As Giskard's scan does (design notes 3.3 and 4.7): up to `DEFAULT_MAX_ROWS` rows are sampled
with a fixed seed, each perturbation (`ferry.gate.perturb`) changes one column at a time, and
each (perturbation, column) pair gives one check, `robustness.<perturbation>.<column>`, over
the rows it changed. A row fails when its prediction changes: another label, or for a
regressor a relative output change of `DEFAULT_OUTPUT_SENSITIVITY` or more; a NaN output where
the original row had none always fails. An invariance check fails when the fail rate reaches
`DEFAULT_FAIL_THRESHOLD`, "major" from `DEFAULT_MAJOR_THRESHOLD`; a reported check shows the
fail rate and fails only when the model raises or outputs NaN. A model that raises on a
perturbed batch fails that check with the error in its detail; it is not an exception.

The failing rows of a failed check become `RegressionCase`s (`ferry.gate.cases`), for later
runs to replay. An error on the unperturbed rows propagates: there is nothing to compare with.
"""

from __future__ import annotations

import zlib
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import pandas as pd

from ferry.gate.cases import (
    Predict,
    RegressionCase,
    describe,
    differs,
    output_changes,
    plain,
)
from ferry.gate.checks import Check, Kind, Verdict
from ferry.gate.perturb import DEFAULT, Perturbation
from ferry.signature import Task

DEFAULT_MAX_ROWS = 1000
"""Giskard's sample size for its robustness detectors."""
DEFAULT_FAIL_THRESHOLD = 0.05
"""Giskard's `threshold`: the fail rate at which an invariance check fails."""
DEFAULT_MAJOR_THRESHOLD = 0.10
"""Giskard's MAJOR issue: twice the threshold."""
DEFAULT_OUTPUT_SENSITIVITY = 0.05
"""Giskard's `output_sensitivity`: the relative change at which a regressor's row fails."""
DEFAULT_MAX_CASES = 100
"""Failing rows a failed check keeps as regression cases (the first, in sample order)."""
ERROR_CASES = 5
"""Rows kept as cases when the model raises on a perturbed batch (any row may be the one)."""


def robustness_checks(
    predict: Predict,
    frame: pd.DataFrame,
    task: Task,
    perturbations: Sequence[Perturbation] = DEFAULT,
    max_rows: int = DEFAULT_MAX_ROWS,
    seed: int = 0,
    fail_threshold: float = DEFAULT_FAIL_THRESHOLD,
    major_threshold: float = DEFAULT_MAJOR_THRESHOLD,
    output_sensitivity: float = DEFAULT_OUTPUT_SENSITIVITY,
    max_cases: int = DEFAULT_MAX_CASES,
) -> tuple[list[Check], list[RegressionCase]]:
    """One check per perturbation and column it applies to, and the failed checks' rows."""
    rows = sample_rows(frame, max_rows, seed)
    before = np.asarray(predict(rows).prediction)
    run = _Run(predict, rows, before, _tolerance(task, before, output_sensitivity),
               fail_threshold, major_threshold, seed, max_cases)
    checks: list[Check] = []
    cases: list[RegressionCase] = []
    for perturbation in perturbations:
        for column in rows.columns:
            if perturbation.applies_to(rows[column]):
                found = run.test(perturbation, column)
                if found is not None:
                    checks.append(found[0])
                    cases.extend(found[1])
    return checks, cases


def sample_rows(frame: pd.DataFrame, max_rows: int, seed: int) -> pd.DataFrame:
    """All of `frame` when it is small enough, else `max_rows` rows drawn with `seed`."""
    if len(frame) <= max_rows:
        return frame
    return frame.sample(n=max_rows, random_state=seed)


@dataclass(frozen=True)
class _Outcome:
    """What one perturbation of one column did to the rows it changed (positions in the
    sample)."""

    check: str
    perturbation: Perturbation
    column: str
    perturbed: pd.DataFrame
    changed: np.ndarray
    failing: np.ndarray
    """The changed rows whose prediction changed; all of them when the model raised."""
    nan: np.ndarray
    """The changed rows predicted NaN where the original row was not."""
    after: np.ndarray | None
    error: str | None

    def broken(self) -> np.ndarray:
        """The rows a reported check fails on."""
        return self.changed if self.error else self.nan


@dataclass(frozen=True)
class _Run:
    """The sample, its predictions and the settings every check of one run shares."""

    predict: Predict
    rows: pd.DataFrame
    before: np.ndarray
    tolerance: float | None
    fail_threshold: float
    major_threshold: float
    seed: int
    max_cases: int

    def test(self, perturbation: Perturbation,
             column: Any) -> tuple[Check, list[RegressionCase]] | None:
        """The check for `perturbation` on `column`; None when it changed no row."""
        name = f"robustness.{perturbation.name}.{column}"
        perturbed = self.rows.copy()
        perturbed[column] = perturbation.apply(self.rows[column], _rng(self.seed, name))
        changed = np.flatnonzero(differs(self.rows[column].to_numpy(dtype=object),
                                            perturbed[column].to_numpy(dtype=object)))
        if not len(changed):
            return None
        unmeasured = _Outcome(check=name, perturbation=perturbation, column=str(column),
                              perturbed=perturbed, changed=changed, failing=changed,
                              nan=changed[:0], after=None, error=None)
        outcome = self.measure(unmeasured)
        check = self.judge(outcome)
        return check, self.cases(outcome) if check.failed else []

    def measure(self, outcome: _Outcome) -> _Outcome:
        """`outcome` with the model's predictions on the changed rows, or its error."""
        changed = outcome.changed
        after, error = _predict(self.predict, outcome.perturbed.iloc[changed])
        if after is None:
            return replace(outcome, error=error)
        before = self.before[changed]
        nan = _any_missing(after) & ~_any_missing(before)
        return replace(outcome, after=after, nan=changed[nan],
                       failing=changed[output_changes(before, after, self.tolerance)])

    def judge(self, outcome: _Outcome) -> Check:
        rate = len(outcome.failing) / len(outcome.changed)
        broken = len(outcome.broken()) > 0
        invariant = outcome.perturbation.invariant
        failed = broken or (invariant and rate >= self.fail_threshold)
        verdict = Verdict.FAILED if failed else Verdict.PASSED if invariant else Verdict.REPORTED
        major = broken or rate >= self.major_threshold
        detail = {
            "perturbation": outcome.perturbation.name, "column": outcome.column,
            "invariant": invariant, "rows": len(outcome.changed),
            "failing_rows": len(outcome.failing), "nan_outputs": len(outcome.nan),
            "error": outcome.error, "fail_threshold": self.fail_threshold,
            "major_threshold": self.major_threshold, "output_sensitivity": self.tolerance,
            "severity": None if not failed else "major" if major else "medium",
        }
        return Check(outcome.check, Kind.ROBUSTNESS, None if outcome.error else rate, None,
                     self.condition(invariant), verdict, detail)

    def condition(self, invariant: bool) -> str:
        if not invariant:
            return "reported; fails only if the model raises or outputs NaN"
        change = ("the label changes" if self.tolerance is None
                  else f"the output moves by >= {self.tolerance:.0%}")
        return (f"rows where {change}: < {self.fail_threshold:.0%}"
                f" (>= {self.major_threshold:.0%} is major)")

    def cases(self, outcome: _Outcome) -> list[RegressionCase]:
        rows = outcome.failing if outcome.perturbation.invariant else outcome.broken()
        keep = ERROR_CASES if outcome.error else self.max_cases
        after_at = {int(p): i for i, p in enumerate(outcome.changed)}
        dtypes = {str(c): str(t) for c, t in self.rows.dtypes.items()}
        return [RegressionCase(
            check=outcome.check, perturbation=outcome.perturbation.name, column=outcome.column,
            invariant=outcome.perturbation.invariant, tolerance=self.tolerance,
            index=plain(self.rows.index[p]), row=_record(self.rows, p),
            perturbed=_record(outcome.perturbed, p), expected=plain(self.before[p]),
            got=None if outcome.after is None else plain(outcome.after[after_at[int(p)]]),
            error=outcome.error, dtypes=dtypes,
        ) for p in rows[:keep]]


def _predict(predict: Predict, frame: pd.DataFrame) -> tuple[np.ndarray | None, str | None]:
    """Predictions, or the model's error in words."""
    try:
        return np.asarray(predict(frame).prediction), None
    except Exception as exc:  # the model's failure is the measurement
        return None, describe(exc)


def _tolerance(task: Task, before: np.ndarray, output_sensitivity: float) -> float | None:
    """None (labels compared) for classifiers and non-numeric outputs."""
    numeric = np.issubdtype(before.dtype, np.number) and not np.issubdtype(before.dtype,
                                                                           np.bool_)
    return None if task == Task.CLASSIFICATION or not numeric else output_sensitivity


def _rng(seed: int, name: str) -> np.random.Generator:
    """A generator per check, so adding a perturbation leaves the others' draws alone."""
    return np.random.default_rng([seed, zlib.crc32(name.encode())])


def _any_missing(values: np.ndarray) -> np.ndarray:
    return np.asarray(np.asarray(pd.isna(values)).reshape(len(values), -1).any(axis=1))


def _record(frame: pd.DataFrame, position: int) -> dict[str, Any]:
    return {str(c): plain(v) for c, v in frame.iloc[int(position)].items()}
