"""Assertions for your own test suite (pytest, unittest, any CI): the gate as a test.

    from ferry.testing import assert_gate_passes, assert_not_stale

    def test_the_new_churn_model_deserves_production():
        assert_gate_passes("churn:7", "churn@production", "holdout.parquet", label="churned")

    def test_production_is_fresh():
        assert_not_stale("churn@production", max_age_days=90)

Each raises `AssertionError` naming what failed (the failed checks with both versions'
numbers), so a failing CI job says why without opening a report.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd

from ferry.gate.checks import Check
from ferry.gate.compare import GateResult, compare
from ferry.registry import Registry


def assert_gate_passes(candidate: str, baseline: str, data: str | Path | pd.DataFrame,
                       label: str, **options: Any) -> GateResult:
    """Compare `candidate` with `baseline` on `data` (`ferry.compare`'s keywords apply) and
    fail the test if any check fails; returns the result for further assertions."""
    result = compare(candidate, baseline, data, label, **options)
    if not result.passed:
        raise AssertionError(f"the gate failed for {result.candidate} against"
                             f" {result.baseline}: " + "; ".join(map(_line, result.failures())))
    return result


def assert_not_stale(uri: str, max_age_days: float = 90.0,
                     registry: Registry | None = None) -> None:
    """Fail if the version is older than `max_age_days` (the ML Test Score's staleness test)."""
    version = (registry or Registry()).get(uri)
    age = (datetime.now(UTC) - version.created_at).total_seconds() / 86400
    if age > max_age_days:
        raise AssertionError(f"{version.uri} is {age:.1f} days old (at most {max_age_days:g})")


def _line(check: Check) -> str:
    return (f"{check.name}: candidate {_number(check.candidate)}, baseline"
            f" {_number(check.baseline)} ({check.condition})")


def _number(value: float | None) -> str:
    return "-" if value is None else f"{value:.4g}"
