"""Staleness: how old a version is, and whether its live performance has decayed.

Age alone says when a model is due for retraining whatever its traffic does; the default
bands (`warn` at 30 days, `critical` at 90) suit a model retrained monthly and can be set per
version through its tags `staleness_warn_days` and `staleness_critical_days` (0 turns a band
off). Decay comes from `ferry.monitor.performance.live_performance`, when labels came back.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import TYPE_CHECKING, Any

from ferry.errors import InvalidInputError

if TYPE_CHECKING:
    from ferry.registry import ModelVersion

DEFAULT_WARN_DAYS = 30.0
"""A month: a model retrained monthly is due."""
DEFAULT_CRITICAL_DAYS = 90.0
"""A quarter: three retraining cycles missed."""
WARN_TAG = "staleness_warn_days"
CRITICAL_TAG = "staleness_critical_days"
DAY = timedelta(days=1)


class Level(StrEnum):
    OK = "ok"
    WARN = "warn"
    CRITICAL = "critical"


@dataclass(frozen=True, slots=True)
class Staleness:
    """A version's age against its bands, and its live performance against its registered
    metrics."""

    model: str
    version: int
    age_days: float
    warn_days: float | None
    """None: the band is off (tag set to 0)."""
    critical_days: float | None
    level: Level
    stale_performance: bool = False
    decay: dict[str, float] = field(default_factory=dict)
    """Relative change of each live metric from its registered value; negative is worse."""

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["level"] = str(self.level)
        return data


def staleness(version: ModelVersion, now: datetime | None = None,
              performance: dict[str, Any] | None = None) -> Staleness:
    """`version`'s staleness at `now` (default: the current time); `performance` is what
    `live_performance` gave, if anything."""
    age = ((now or datetime.now(UTC)) - version.created_at) / DAY
    warn, critical = bands(version)
    performance = performance or {}
    return Staleness(model=version.name, version=version.version, age_days=age,
                     warn_days=warn, critical_days=critical, level=level_of(age, warn, critical),
                     stale_performance=bool(performance.get("stale_performance", False)),
                     decay=dict(performance.get("decay", {})))


def level_of(age_days: float, warn_days: float | None, critical_days: float | None) -> Level:
    if critical_days is not None and age_days >= critical_days:
        return Level.CRITICAL
    if warn_days is not None and age_days >= warn_days:
        return Level.WARN
    return Level.OK


def bands(version: ModelVersion) -> tuple[float | None, float | None]:
    """The warn and critical ages in days from the version's tags, else the defaults."""
    return (_days(version, WARN_TAG, DEFAULT_WARN_DAYS),
            _days(version, CRITICAL_TAG, DEFAULT_CRITICAL_DAYS))


def _days(version: ModelVersion, tag: str, default: float) -> float | None:
    raw = version.tags.get(tag, default)
    try:
        days = float(raw)
    except (TypeError, ValueError):
        days = math.nan
    if not (math.isfinite(days) and days >= 0):
        raise InvalidInputError(f"tag {tag} of {version.uri} must be a number of days (0 turns"
                                f" it off), got {raw!r}", model=version.name,
                                version=version.version)
    return None if days == 0 else days
