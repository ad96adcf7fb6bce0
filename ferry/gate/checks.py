"""What every part of the gate hands back: measurements, each with the condition that judged it.

As in deepchecks, a measurement is always kept and a condition only decides: a `Check` holds
the candidate's and the baseline's numbers, the condition in words, and the verdict. A check
that is only informative (a slice under 100 rows, a metric with no condition) is `REPORTED`;
the gate passes when no check `FAILED`.

    Scores       one version's predictions on the hold-out rows (labels or values, and
                 class probabilities when the model gives them)
    Check        one measurement and its verdict
    Verdict      passed / failed / reported
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

import numpy as np


class Verdict(StrEnum):
    PASSED = "passed"
    FAILED = "failed"
    REPORTED = "reported"
    """Measured and shown, not gated (too few rows, no condition set)."""


class Kind(StrEnum):
    """Which part of the gate a check belongs to (the report groups by it)."""

    QUALITY = "quality"
    NAIVE = "naive"
    SLICE = "slice"
    BIAS = "bias"
    SIGNATURE = "signature"
    LATENCY = "latency"
    THROUGHPUT = "throughput"
    COST = "cost"
    ROBUSTNESS = "robustness"
    STALENESS = "staleness"
    STRESS = "stress"


@dataclass(frozen=True)
class Scores:
    """One version's predictions on the rows compared, in row order."""

    prediction: np.ndarray
    """Class labels (classification) or values (regression), shape (rows,)."""
    probabilities: np.ndarray | None = None
    """(rows, classes) in the order of `classes`, when the model gives them."""
    classes: tuple[Any, ...] | None = None


@dataclass(frozen=True)
class Check:
    """One measurement and how the gate judged it."""

    name: str
    """Unique within a result, dotted: `quality.accuracy`, `slice.colour=red.accuracy`."""
    kind: Kind
    candidate: float | None
    baseline: float | None
    condition: str
    """The condition in words, e.g. "candidate >= baseline - 0.01 (95 % CI)"."""
    verdict: Verdict
    detail: dict[str, Any] = field(default_factory=dict)
    """JSON-compatible extras: confidence interval, rows, p-value, threshold, ..."""

    @property
    def failed(self) -> bool:
        return self.verdict is Verdict.FAILED

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "kind": str(self.kind), "candidate": self.candidate,
                "baseline": self.baseline, "condition": self.condition,
                "verdict": str(self.verdict), "detail": self.detail}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Check:
        return cls(name=data["name"], kind=Kind(data["kind"]), candidate=data["candidate"],
                   baseline=data["baseline"], condition=data["condition"],
                   verdict=Verdict(data["verdict"]), detail=dict(data.get("detail") or {}))


class Judged:
    """The verdict of a result holding `checks` (the gate's, the test suite's)."""

    checks: Sequence[Check]

    @property
    def passed(self) -> bool:
        return not any(check.failed for check in self.checks)

    @property
    def status(self) -> str:
        return "passed" if self.passed else "failed"

    def failures(self) -> list[Check]:
        return [check for check in self.checks if check.failed]
