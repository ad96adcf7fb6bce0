"""The conversion check: the ONNX form's outputs against the original's, on sample rows.

Values and probabilities pass when every element satisfies `|onnx - original| <= atol +
rtol * |original|` (the rule `numpy.isclose` and torch.onnx's verification use); labels pass
when the share of rows whose labels agree reaches `min_label_agreement`. Outputs of strings
(or bytes) are compared as text and pass only when every element is equal.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from ferry.runtime.predictor import Outputs
from ferry.signature import Role

DEFAULT_RTOL = 1e-3
"""torch.onnx's export-verification default relative tolerance."""
DEFAULT_ATOL = 1e-5
"""Absolute slack for values near zero: float32 ONNX against float64 originals."""
DEFAULT_MIN_LABEL_AGREEMENT = 0.999
"""Share of rows whose predicted class must agree (reference/registry-monitoring.md §4.6)."""


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
    exact_match: float | None = None
    """String outputs: the share of elements equal to the original's."""

    def describe(self) -> str:
        if self.label_agreement is not None:
            return f"{self.role}: label agreement {self.label_agreement:.4%}"
        if self.exact_match is not None:
            return f"{self.role}: {self.exact_match:.4%} of strings equal"
        return (f"{self.role}: max abs error {self.max_abs_error:.3g},"
                f" max rel error {self.max_rel_error:.3g}")


@dataclass(frozen=True)
class ConversionCheck:
    """The result recorded on a version: every output's numbers, pass or fail."""

    rows: int
    data: str
    outputs: list[OutputCheck]
    tolerance: Tolerance = field(default_factory=Tolerance)

    @property
    def passed(self) -> bool:
        return all(o.passed for o in self.outputs)

    def worst(self) -> OutputCheck | None:
        failing = [o for o in self.outputs if not o.passed]
        return failing[0] if failing else None

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["passed"] = self.passed
        return data


def compare(reference: Outputs, candidate: Outputs, *, data: str,
            tolerance: Tolerance | None = None) -> ConversionCheck:
    """Compare every role both sides give; a role only one side gives is not compared."""
    tolerance = tolerance or Tolerance()
    checks = []
    for role in (Role.LABEL, Role.PROBABILITIES, Role.VALUE):
        if role in reference and role in candidate:
            checks.append(_compare_one(role, reference[role], candidate[role], tolerance))
    rows = len(next(iter(reference.values()))) if reference else 0
    return ConversionCheck(rows=rows, data=data, outputs=checks, tolerance=tolerance)


def _compare_one(role: Role, want: np.ndarray, got: np.ndarray, tol: Tolerance) -> OutputCheck:
    if role == Role.LABEL:
        want_labels = np.asarray(want).reshape(-1)
        got_labels = np.asarray(got).reshape(-1)
        if want_labels.shape != got_labels.shape:
            return OutputCheck(str(role), passed=False, label_agreement=0.0)
        agreement = float(np.mean(want_labels.astype(str) == got_labels.astype(str)))
        return OutputCheck(str(role), agreement >= tol.min_label_agreement,
                           label_agreement=agreement)
    if np.asarray(want).size != np.asarray(got).size:
        return OutputCheck(str(role), passed=False, max_abs_error=float("inf"),
                           max_rel_error=float("inf"))
    if _is_text(want) or _is_text(got):
        match = float(np.mean(_as_text(want) == _as_text(got))) if np.size(want) else 1.0
        return OutputCheck(str(role), match == 1.0, exact_match=match)
    close = closeness(want, got, rtol=tol.rtol, atol=tol.atol)
    return OutputCheck(str(role), close.passed, max_abs_error=close.max_abs_error,
                       max_rel_error=close.max_rel_error)


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
    relative = error / np.maximum(np.abs(want_values), atol)
    used = error / (atol + rtol * np.abs(want_values))
    return Closeness(_max(error), _max(relative), _max(used))


def _max(values: np.ndarray) -> float:
    return float(np.max(values)) if values.size else 0.0
