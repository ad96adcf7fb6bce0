"""The conversion check: the ONNX form's outputs against the original's, on the sample rows
and on probe rows beyond them (`ferry.convert.probes`).

Values and probabilities pass when every element, on every row compared, satisfies
`|onnx - original| <= atol + rtol * |original|` (the rule `numpy.isclose` and torch.onnx's
verification use). Labels pass when the share of sample rows whose labels agree reaches
`min_label_agreement`, and when every probe row's label agrees except where the original's
two most likely classes are tied within that same tolerance: probe rows lie where the data
does not, where a float32 rounding may legitimately break such a tie. A classifier that gives
no probabilities is held to the sample's share rule on its probe rows too. Outputs of strings
(or bytes) are compared as text and pass only when every element is equal.

`check_conversion` runs both forms on the sample and on each kind of probe rows, records how
many rows of each kind it compared and the worst rows (their values, the original's outputs
and the ONNX form's); probes the original or the ONNX form cannot run are left out, and the
check records why.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from ferry.convert.base import Sample
from ferry.convert.probes import Probes
from ferry.data import sample_rows
from ferry.errors import one_line
from ferry.runtime.predictor import Outputs
from ferry.signature import Role

DEFAULT_RTOL = 1e-3
"""torch.onnx's export-verification default relative tolerance."""
DEFAULT_ATOL = 1e-5
"""Absolute slack for values near zero: float32 ONNX against float64 originals."""
DEFAULT_MIN_LABEL_AGREEMENT = 0.999
"""Share of rows whose predicted class must agree (reference/registry-monitoring.md §4.6)."""
WORST_ROWS = 3
"""Rows kept on the result (and shown in a refusal): those furthest off tolerance."""
MAX_SHOWN_VALUES = 20
"""Input values kept per worst row; wider rows are cut (`RowReport.more_values`)."""
DESCRIBED_VALUES = 10
"""Input values a worst row shows in a refusal message."""

Predict = Callable[[Any], Outputs]
"""A model's outputs by role for rows like the sample."""


@dataclass(frozen=True)
class Tolerance:
    rtol: float = DEFAULT_RTOL
    atol: float = DEFAULT_ATOL
    min_label_agreement: float = DEFAULT_MIN_LABEL_AGREEMENT


@dataclass(frozen=True)
class OutputCheck:
    """How one output of the ONNX form compares with the original's."""

    role: str
    passed: bool
    max_abs_error: float | None = None
    max_rel_error: float | None = None
    label_agreement: float | None = None
    """On the sample rows."""
    exact_match: float | None = None
    """String outputs: the share of elements equal to the original's."""
    probe_label_mismatches: int | None = None
    """Probe rows whose label differs from the original's off a tie."""

    def describe(self) -> str:
        if self.label_agreement is not None:
            probes = (f", {self.probe_label_mismatches} probe rows with another label"
                      if self.probe_label_mismatches else "")
            return f"{self.role}: label agreement {self.label_agreement:.4%}{probes}"
        if self.exact_match is not None:
            return f"{self.role}: {self.exact_match:.4%} of strings equal"
        return (f"{self.role}: max abs error {self.max_abs_error:.3g},"
                f" max rel error {self.max_rel_error:.3g}")


@dataclass(frozen=True)
class RowReport:
    """One row the check compared: which, its input values, and both forms' outputs."""

    kind: str
    index: int
    """The row's position among the rows of its kind."""
    about: str
    values: dict[str, Any]
    original: dict[str, Any]
    onnx: dict[str, Any]
    more_values: int = 0

    def describe(self) -> str:
        """One line for a refusal message: the first `DESCRIBED_VALUES` input values."""
        shown = ", ".join(f"{k}={_short(v)}"
                          for k, v in list(self.values.items())[:DESCRIBED_VALUES])
        more = len(self.values) + self.more_values - DESCRIBED_VALUES
        about = f" ({self.about})" if self.about else ""
        return (f"{self.kind} row {self.index}{about} [{shown}{', ...' if more > 0 else ''}]:"
                f" original {_outputs(self.original)}, ONNX {_outputs(self.onnx)}")


@dataclass(frozen=True)
class ConversionCheck:
    """The result recorded on a version: every output's numbers, pass or fail."""

    rows: int
    """Rows of the sample (kind `data`) compared; `compared` counts every kind."""
    data: str
    outputs: list[OutputCheck]
    tolerance: Tolerance = field(default_factory=Tolerance)
    compared: dict[str, int] = field(default_factory=dict)
    """Rows compared by kind: `sample` (or `synthetic`), `range`, `thresholds`."""
    probes_skipped: list[str] = field(default_factory=list)
    worst_rows: list[RowReport] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return all(o.passed for o in self.outputs)

    def worst(self) -> OutputCheck | None:
        failing = [o for o in self.outputs if not o.passed]
        return failing[0] if failing else None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready; outputs other than labels keep the shape they had before probes."""
        data = asdict(self)
        data["passed"] = self.passed
        for output in data["outputs"]:
            if output["probe_label_mismatches"] is None:
                del output["probe_label_mismatches"]
        return data


def compare(reference: Outputs, candidate: Outputs, *, data: str,
            tolerance: Tolerance | None = None,
            kinds: Sequence[str] | None = None) -> ConversionCheck:
    """Compare every role both sides give; a role only one side gives is not compared.
    `kinds` names each row's kind (all `data` when not given): rows of another kind are
    probes, held to the probe rule for labels."""
    tolerance = tolerance or Tolerance()
    total = len(next(iter(reference.values()))) if reference else 0
    row_kinds = np.asarray(kinds if kinds is not None else [data] * total, dtype=object)
    checks = []
    for role in (Role.LABEL, Role.PROBABILITIES, Role.VALUE):
        if role in reference and role in candidate:
            probabilities = reference.get(Role.PROBABILITIES)
            checks.append(_compare_one(role, reference[role], candidate[role], tolerance,
                                       row_kinds == data, probabilities))
    return ConversionCheck(rows=int(np.sum(row_kinds == data)), data=data, outputs=checks,
                           tolerance=tolerance, compared=dict(Counter(row_kinds.tolist())))


def _compare_one(role: Role, want: np.ndarray, got: np.ndarray, tol: Tolerance,
                 sample: np.ndarray, probabilities: np.ndarray | None) -> OutputCheck:
    if role == Role.LABEL:
        return _compare_labels(want, got, tol, sample, probabilities)
    if np.asarray(want).size != np.asarray(got).size:
        return OutputCheck(str(role), passed=False, max_abs_error=float("inf"),
                           max_rel_error=float("inf"))
    if _is_text(want) or _is_text(got):
        match = float(np.mean(_as_text(want) == _as_text(got))) if np.size(want) else 1.0
        return OutputCheck(str(role), match == 1.0, exact_match=match)
    close = closeness(want, got, rtol=tol.rtol, atol=tol.atol)
    return OutputCheck(str(role), close.passed, max_abs_error=close.max_abs_error,
                       max_rel_error=close.max_rel_error)


def _label_text(labels: np.ndarray) -> np.ndarray:
    """Labels as text to compare; bools as 0/1, as ONNX gives a bool classifier's classes."""
    return (labels.astype(np.int64) if labels.dtype == bool else labels).astype(str)


def _compare_labels(want: np.ndarray, got: np.ndarray, tol: Tolerance, sample: np.ndarray,
                    probabilities: np.ndarray | None) -> OutputCheck:
    want_labels = np.asarray(want).reshape(-1)
    got_labels = np.asarray(got).reshape(-1)
    if want_labels.shape != got_labels.shape or want_labels.shape != sample.shape:
        return OutputCheck(str(Role.LABEL), passed=False, label_agreement=0.0)
    agree = _label_text(want_labels) == _label_text(got_labels)
    agreement = float(np.mean(agree[sample])) if sample.any() else 1.0
    probes = ~sample
    if probabilities is None:
        probe_share = float(np.mean(agree[probes])) if probes.any() else 1.0
        mismatches = int(np.sum(~agree[probes]))
        passed = min(agreement, probe_share) >= tol.min_label_agreement
    else:
        mismatches = int(np.sum(~agree & probes & ~_tied(probabilities, tol)))
        passed = agreement >= tol.min_label_agreement and mismatches == 0
    return OutputCheck(str(Role.LABEL), passed, label_agreement=agreement,
                       probe_label_mismatches=mismatches)


def _tied(probabilities: np.ndarray, tol: Tolerance) -> np.ndarray:
    """Rows whose two most likely classes are within tolerance of each other."""
    values = np.asarray(probabilities, dtype=np.float64)
    if values.ndim != 2 or values.shape[1] < 2:
        return np.zeros(len(values), dtype=bool)
    top_two = np.sort(values, axis=1)[:, -2:]
    return np.asarray(top_two[:, 1] - top_two[:, 0] <= tol.atol + tol.rtol * top_two[:, 1])


def _is_text(values: np.ndarray) -> bool:
    """Whether `values` holds strings or bytes (numpy string kinds, or str/bytes objects)."""
    array = np.asarray(values)
    if array.dtype.kind in "SU":
        return True
    return array.dtype.kind == "O" and any(isinstance(v, str | bytes) for v in array.flat)


def _as_text(values: np.ndarray) -> np.ndarray:
    """Every element as `str`, bytes decoded as UTF-8 (ONNX Runtime gives str objects)."""
    flat = np.asarray(values).reshape(-1)
    return np.array([v.decode("utf-8", "replace") if isinstance(v, bytes) else str(v)
                     for v in flat], dtype=object)


@dataclass(frozen=True)
class Closeness:
    """How far `got` is from `want`, element by element, against `atol + rtol * |want|`."""

    max_abs_error: float
    max_rel_error: float
    tolerance_used: float
    """The largest share of an element's slack that its error uses; at most 1 passes."""

    @property
    def passed(self) -> bool:
        return self.tolerance_used <= 1.0


def closeness(want: np.ndarray, got: np.ndarray, *, rtol: float, atol: float) -> Closeness:
    """Compare two arrays of the same size (also used by the optimizer's equivalence gate)."""
    want_values = np.asarray(want, dtype=np.float64)
    got_values = np.asarray(got, dtype=np.float64).reshape(want_values.shape)
    error = np.abs(got_values - want_values)
    relative = _share(error, np.maximum(np.abs(want_values), atol))
    used = _share(error, atol + rtol * np.abs(want_values))
    return Closeness(_max(error), _max(relative), _max(used))


def _share(error: np.ndarray, slack: np.ndarray | float) -> np.ndarray:
    """`error / slack`, where no slack (a zero tolerance) makes any error infinite and an
    exact match zero."""
    with np.errstate(divide="ignore", invalid="ignore"):
        share = error / slack
    return np.where(error == 0, 0.0, share)


def _max(values: np.ndarray) -> float:
    return float(np.max(values)) if values.size else 0.0


@dataclass(frozen=True)
class _Part:
    """Rows with both forms' outputs on them, and each row's kind and note."""

    rows: Sample
    kinds: tuple[str, ...]
    about: tuple[str, ...]
    want: Outputs
    got: Outputs


def check_conversion(original: Predict, onnx: Predict, sample: Sample, *, data: str,
                     probes: Probes | None = None,
                     tolerance: Tolerance | None = None) -> ConversionCheck:
    """Compare `onnx` with `original` on `sample` (rows of kind `data`) and on `probes`,
    which run as one batch (a framework's per-call cost is paid once)."""
    probes = probes or Probes()
    count = sample_rows(sample)
    parts = [_Part(sample, (data,) * count, ("",) * count, original(sample), onnx(sample))]
    probed, failure = _probed(original, onnx, probes)
    parts += [probed] if probed is not None else []
    want, got = _joined([p.want for p in parts]), _joined([p.got for p in parts])
    kinds = [kind for part in parts for kind in part.kinds]
    result = compare(want, got, data=data, tolerance=tolerance, kinds=kinds)
    reports = [_report(parts, kinds, i) for i in _worst_rows(want, got, result.tolerance)]
    skipped = [*probes.skipped, *([failure] if failure else [])]
    return ConversionCheck(result.rows, data, result.outputs, result.tolerance,
                           result.compared, skipped, reports)


def _probed(original: Predict, onnx: Predict, probes: Probes) -> tuple[_Part | None, str | None]:
    """The probe rows with both forms' outputs, or why there are none."""
    if not probes.sets:
        return None, None
    rows = _stacked([p.rows for p in probes.sets])
    kinds = tuple(str(p.kind) for p in probes.sets for _ in p.about)
    try:
        return _Part(rows, kinds, tuple(a for p in probes.sets for a in p.about),
                     original(rows), onnx(rows)), None
    except Exception as exc:  # rows a form cannot run are no verdict on the conversion
        return None, (f"{', '.join(p.kind for p in probes.sets)}: the original or the ONNX"
                      f" form fails on them: {one_line(exc)}")


def _stacked(rows: list[pd.DataFrame | np.ndarray]) -> pd.DataFrame | np.ndarray:
    frames = [r for r in rows if isinstance(r, pd.DataFrame)]
    return pd.concat(frames, ignore_index=True) if frames else np.concatenate(rows)


def _length(outputs: Outputs) -> int:
    return len(next(iter(outputs.values()))) if outputs else 0


def _joined(outputs: list[Outputs]) -> Outputs:
    """Each role's rows from every part, for the roles every part gives."""
    roles = [role for role in outputs[0] if all(role in o for o in outputs)]
    return {role: np.concatenate([np.asarray(o[role]) for o in outputs]) for role in roles}


def _worst_rows(want: Outputs, got: Outputs, tol: Tolerance) -> list[int]:
    """Rows off the original, furthest first: labels that differ, then the largest share of
    tolerance used by any value or probability."""
    badness = np.zeros(_length(want))
    for role in want.keys() & got.keys():
        badness = np.maximum(badness, _row_badness(role, want[role], got[role], tol))
    order = np.argsort(-badness, kind="stable")[:WORST_ROWS]
    return [int(i) for i in order if badness[i] > 0]


def _row_badness(role: Role, want: np.ndarray, got: np.ndarray, tol: Tolerance) -> np.ndarray:
    rows = len(want)
    if np.asarray(got).size != np.asarray(want).size:
        return np.zeros(rows)
    if role == Role.LABEL or _is_text(want) or _is_text(got):
        differs = _as_text(want).reshape(rows, -1) != _as_text(got).reshape(rows, -1)
        return np.where(differs.any(axis=1), np.inf, 0.0)
    want_values = np.asarray(want, dtype=np.float64).reshape(rows, -1)
    error = np.abs(np.asarray(got, dtype=np.float64).reshape(rows, -1) - want_values)
    with np.errstate(divide="ignore", invalid="ignore"):  # a zero tolerance: any error is off
        used = np.where(error == 0, 0.0, error / (tol.atol + tol.rtol * np.abs(want_values)))
    used = np.nan_to_num(used, nan=np.inf)
    return np.asarray(used.max(axis=1) if used.size else np.zeros(rows))


def _report(parts: list[_Part], kinds: list[str], row: int) -> RowReport:
    kind = kinds[row]
    index = kinds[:row].count(kind)
    for part in parts:
        if row < len(part.kinds):
            values, more = _values(part.rows, row)
            return RowReport(kind, index, part.about[row], values,
                             _row_outputs(part.want, row), _row_outputs(part.got, row), more)
        row -= len(part.kinds)
    raise IndexError(row)


def _values(rows: Sample, row: int) -> tuple[dict[str, Any], int]:
    """Row `row`'s input values by column (`f<i>` for arrays), the first `MAX_SHOWN_VALUES`,
    and how many more there are."""
    if isinstance(rows, pd.DataFrame):
        series = rows.iloc[row]
        items = [(str(k), v) for k, v in series.items()]
    elif isinstance(rows, dict):
        items = [(name, array[row]) for name, array in rows.items()]
    else:
        items = [(f"f{i}", v) for i, v in enumerate(np.asarray(rows[row]).reshape(-1))]
    shown = items[:MAX_SHOWN_VALUES]
    return {k: _plain(v) for k, v in shown}, len(items) - len(shown)


def _row_outputs(outputs: Outputs, row: int) -> dict[str, Any]:
    return {str(role): _plain(np.asarray(values)[row]) for role, values in outputs.items()}


def _plain(value: Any) -> Any:
    """`value` as JSON-serialisable Python: numbers, strings, lists; NaN and infinities as
    text (PostgreSQL's JSON refuses them)."""
    if isinstance(value, np.ndarray):
        return _plain(value.tolist()) if value.size <= MAX_SHOWN_VALUES else f"{value.shape}"
    if isinstance(value, list):
        return [_plain(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    if isinstance(value, float) and not np.isfinite(value):
        return str(value)
    return value if isinstance(value, int | float | str | bool) or value is None else str(value)


def _short(value: Any) -> str:
    return f"{value:.6g}" if isinstance(value, float) else str(value)


def _outputs(outputs: dict[str, Any]) -> str:
    return ", ".join(f"{role} {_short_all(v)}" for role, v in outputs.items())


def _short_all(value: Any) -> str:
    if isinstance(value, list):
        return "[" + ", ".join(_short_all(v) for v in value) + "]"
    return _short(value)
