"""`ferry.promote`: move an alias to a version only through the gate.

The gate compares the version with the one the alias holds now; the alias moves when it
passes, or when the caller overrides with a reason. Either way the gate's result is kept with
the version (`Registry.add_report`, kind "gate") and the alias's history event records the
result, the report and the reason, so `ferry history` shows why production changed.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from ferry.errors import InvalidInputError
from ferry.gate.compare import GateOptions, GateResult, compare_versions, gate_rows, keep_result
from ferry.registry import ModelVersion, Registry, Report


@dataclass(frozen=True)
class Promotion:
    """What `promote` did: whether the alias moved, and the gate that decided."""

    name: str
    alias: str
    from_version: int | None
    to_version: int
    moved: bool
    result: GateResult | None
    report: Report | None
    override: bool = False
    reason: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "alias": self.alias, "from_version": self.from_version,
                "to_version": self.to_version, "moved": self.moved,
                "gate": None if self.result is None else self.result.status,
                "failures": [] if self.result is None else
                [check.name for check in self.result.failures()],
                "report": None if self.report is None else self.report.id,
                "override": self.override, "reason": self.reason}


def promote(name: str, alias: str, version: int, data: str | Path | pd.DataFrame | None = None,
            label: str | None = None, *, override: bool = False, reason: str | None = None,
            registry: Registry | None = None, **options: Any) -> Promotion:
    """Point `alias` of model `name` at `version` if the gate passes against the version the
    alias holds now (or with `override=True` and a `reason`). An alias not set yet has no
    baseline: it is set without a gate. Other keywords are `GateOptions` fields."""
    registry = registry or Registry()
    _check_override(override, reason)
    candidate = registry.get(f"{name}:{version}")
    current = registry.aliases(name).get(alias)
    if current is None or current == version:
        return _move(registry, candidate, alias, current, None, None, override, reason)
    if data is None or label is None:
        if not override:
            raise InvalidInputError(f"{alias} holds {name}:{current}: give data and a label"
                                    " column to run the gate (or override with a reason)")
        return _move(registry, candidate, alias, current, None, None, override, reason)
    baseline = registry.get(f"{name}:{current}")
    settings = GateOptions(label=label, **options)
    result = compare_versions(registry, candidate, baseline, gate_rows(data, settings), settings)
    report = keep_result(registry, candidate, baseline, result)
    if not result.passed and not override:
        return Promotion(name, alias, current, version, False, result, report)
    return _move(registry, candidate, alias, current, result, report, override, reason)


def _check_override(override: bool, reason: str | None) -> None:
    if override and not (reason and reason.strip()):
        raise InvalidInputError("an override needs a reason (--reason \"...\"): it is kept in"
                                " the alias's history")
    if reason is not None and not override:
        raise InvalidInputError("--reason goes with --override")


def _move(registry: Registry, candidate: ModelVersion, alias: str, current: int | None,
          result: GateResult | None, report: Report | None, override: bool,
          reason: str | None) -> Promotion:
    details = {"gate": None if result is None else result.status,
               "report": None if report is None else report.id,
               "override": override, "reason": reason}
    event = registry.set_alias(candidate.name, alias, candidate.version, details=details)
    return Promotion(candidate.name, alias, current, candidate.version, event is not None,
                     result, report, override, reason)
