"""Regression cases: the rows a robustness check failed on, kept so later runs replay them.

Giskard turns each issue its scan finds into a reusable test; here each failing row becomes a
`RegressionCase` (the row, the perturbed row, the prediction then), saved as JSON, one file per
model version (`case_file`). `replay` runs the current model on a file's cases: a case fails
again when the perturbation still changes the prediction (an invariance case), or when the
model raises or outputs NaN on the perturbed row (any case). Comparing with the current
model's prediction on the original row, not the saved one, lets a later version that rightly
predicts something else on that row pass, as long as the perturbation no longer moves it.

File layout: `{"format": 1, "cases": [case, ...]}`, written to a temporary file and renamed.
Values are JSON scalars (NaN as null); `dtypes` restores each column's dtype on reading.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass
from datetime import date
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ferry.errors import InvalidInputError, one_line
from ferry.gate.checks import Check, Kind, Scores, Verdict

CASES_FORMAT = 1
"""Bumped when the file layout changes; `load_cases` refuses layouts it does not know."""
REPLAY_CHECK = "robustness.replay"
SHOWN_FAILURES = 10
"""Failing cases a replay check lists in its detail."""

Predict = Callable[[pd.DataFrame], Scores]


@dataclass(frozen=True)
class RegressionCase:
    """One row a robustness check failed on."""

    check: str
    """The check that found it, e.g. `robustness.scale+1%.age`."""
    perturbation: str
    column: str
    invariant: bool
    """True: the perturbation must not change the prediction; False: only errors and NaN
    outputs fail."""
    tolerance: float | None
    """None: the label must stay; else the relative output change must stay below it."""
    index: Any
    """The row's label in the data it came from."""
    row: dict[str, Any]
    perturbed: dict[str, Any]
    expected: Any
    """The prediction on `row` when the case was found."""
    got: Any
    """The prediction on `perturbed` then; None when the model raised."""
    error: str | None
    dtypes: dict[str, str]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RegressionCase:
        return cls(**data)


def case_file(directory: str | Path, model: str, version: int) -> Path:
    """Where a version's cases are kept: `<directory>/<model>-v<version>.json`."""
    return Path(directory) / f"{model}-v{version}.json"


def save_cases(cases: Iterable[RegressionCase], path: str | Path) -> Path:
    """Write `cases` to `path`, replacing it whole or not at all."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    text = json.dumps({"format": CASES_FORMAT, "cases": [c.to_dict() for c in cases]},
                      indent=1, allow_nan=False)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as file:
            file.write(text)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    return path


def load_cases(path: str | Path) -> list[RegressionCase]:
    """The cases saved in `path`."""
    data = json.loads(Path(path).read_text(encoding="utf-8"))
    if data.get("format") != CASES_FORMAT:
        raise InvalidInputError(f"{path}: regression cases in format {data.get('format')!r};"
                                f" this ferry reads format {CASES_FORMAT}")
    return [RegressionCase.from_dict(case) for case in data["cases"]]


def replay(cases: Sequence[RegressionCase], predict: Predict) -> Check:
    """Run the current model on saved cases; fails when any case fails again."""
    if not cases:
        return Check(REPLAY_CHECK, Kind.ROBUSTNESS, None, None, "no saved case fails again",
                     Verdict.REPORTED, {"cases": 0})
    before, before_errors = predict_rows(predict, _frame([c.row for c in cases], cases))
    after, after_errors = predict_rows(predict, _frame([c.perturbed for c in cases], cases))
    failing = [i for i, case in enumerate(cases)
               if before_errors[i] or after_errors[i]
               or _fails(case, before[i], after[i])]
    errors = sorted({e for e in before_errors + after_errors if e})
    detail = {"cases": len(cases), "failing": len(failing),
              "by_check": dict(Counter(cases[i].check for i in failing)),
              "examples": [{"check": cases[i].check, "index": cases[i].index}
                           for i in failing[:SHOWN_FAILURES]],
              "errors": errors[:SHOWN_FAILURES]}
    return Check(REPLAY_CHECK, Kind.ROBUSTNESS, len(failing) / len(cases), None,
                 "no saved case fails again",
                 Verdict.FAILED if failing else Verdict.PASSED, detail)


def output_changes(before: np.ndarray, after: np.ndarray,
                   tolerance: float | None) -> np.ndarray:
    """Per row, whether `after` differs from `before`: another label (`tolerance` None), a
    relative change of `tolerance` or more, or a NaN where there was none."""
    before, after = _by_row(before), _by_row(after)
    missing_before, missing_after = pd.isna(before), pd.isna(after)
    if tolerance is None:
        moved = differs(before, after)
    else:
        moved = relative_change(before.astype(float), after.astype(float)) >= tolerance
    return np.asarray((moved | (missing_after & ~missing_before)).any(axis=1))


def differs(old: np.ndarray, new: np.ndarray) -> np.ndarray:
    """Elementwise, whether the values differ; two missing values (NaN, None, pd.NA) do not."""
    old, new = np.asarray(old, dtype=object), np.asarray(new, dtype=object)
    missing_old, missing_new = np.asarray(pd.isna(old)), np.asarray(pd.isna(new))
    both = ~missing_old & ~missing_new
    unequal = missing_old != missing_new
    unequal[both] = old[both] != new[both]
    return unequal


def relative_change(before: np.ndarray, after: np.ndarray) -> np.ndarray:
    """|after - before| / |before| (Giskard's rule); from 0, any change is infinite."""
    with np.errstate(divide="ignore", invalid="ignore"):
        change = np.abs(after - before) / np.abs(before)
    return np.where(before == 0, np.where(after == before, 0.0, np.inf), change)


def predict_rows(predict: Predict, frame: pd.DataFrame) -> tuple[np.ndarray, list[str | None]]:
    """Predictions and, per row, the error the model raised; the rows are predicted one by
    one when the batch raises, so one bad row does not hide the others."""
    try:
        return np.asarray(predict(frame).prediction), [None] * len(frame)
    except Exception:  # the model's failure is the measurement
        pass
    predictions: list[Any] = []
    errors: list[str | None] = []
    for position in range(len(frame)):
        try:
            predictions.append(np.asarray(predict(frame.iloc[[position]]).prediction)[0])
            errors.append(None)
        except Exception as exc:
            predictions.append(None)
            errors.append(describe(exc))
    values = np.empty(len(predictions), dtype=object)
    values[:] = predictions
    return values, errors


def describe(exc: BaseException) -> str:
    """An exception in one line, with its type."""
    return f"{type(exc).__name__}: {one_line(exc)}"


def plain(value: Any) -> Any:
    """`value` as a JSON value: numpy scalars unwrapped, times as ISO text, missing as None."""
    if isinstance(value, np.ndarray | list | tuple):
        return [plain(v) for v in value]
    if pd.api.types.is_scalar(value) and pd.isna(value):
        return None
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, date):
        return value.isoformat()
    return value


def _fails(case: RegressionCase, before: Any, after: Any) -> bool:
    if not case.invariant:
        return bool(np.any(pd.isna(after)) and not np.any(pd.isna(before)))
    one = [np.array([value], dtype=object) for value in (before, after)]
    return bool(output_changes(one[0], one[1], case.tolerance)[0])


def _frame(records: list[dict[str, Any]], cases: Sequence[RegressionCase]) -> pd.DataFrame:
    """Rows back as a frame, each column in its saved dtype (float if NaN rules out int)."""
    frame = pd.DataFrame.from_records(records)
    for column, dtype in cases[0].dtypes.items():
        if column in frame.columns:
            frame[column] = _cast(frame[column], dtype)
    return frame


def _cast(values: pd.Series, dtype: str) -> pd.Series:
    for target in (dtype, "float64"):
        try:
            values = values.astype(pd.api.types.pandas_dtype(target))
            break
        except (TypeError, ValueError):
            continue
    if values.dtype == object:
        values = values.where(values.notna(), np.nan)
    return values


def _by_row(values: np.ndarray) -> np.ndarray:
    values = np.asarray(values)
    return values.reshape(len(values), -1)
