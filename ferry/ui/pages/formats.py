"""What the registry pages share: formatters for the templates (`fmt.when(...)`), the
conversion check in a word, and artifact sizes."""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

from ferry.registry import ModelVersion, Registry
from ferry.ui.lineage import version_href


class Formats:
    """Small formatters the templates call (`fmt.when(...)`)."""

    @staticmethod
    def when(value: datetime | None) -> str:
        return "" if value is None else value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S")

    @staticmethod
    def size(value: int | None) -> str:
        """Bytes in B, KB, MB or GB (powers of 1024); '' when unknown."""
        if value is None:
            return ""
        amount, unit = float(value), "B"
        for unit in ("B", "KB", "MB", "GB"):
            if amount < 1024 or unit == "GB":
                break
            amount /= 1024
        return f"{amount:,.0f} {unit}" if unit == "B" else f"{amount:,.1f} {unit}"

    @staticmethod
    def num(value: Any) -> str:
        """Numbers with 4 significant digits; containers as compact JSON; None as ''."""
        if value is None:
            return ""
        if isinstance(value, bool):
            return "yes" if value else "no"
        if isinstance(value, float):
            return f"{value:.4g}" if math.isfinite(value) else str(value)
        if isinstance(value, dict | list | tuple):
            return json.dumps(value, default=str, separators=(", ", ": "))
        return str(value)

    @staticmethod
    def href(name: str, version: int | None = None) -> str:
        base = f"/ui/models/{quote(name, safe='')}"
        return base if version is None else version_href(name, version)


FMT = Formats()


def check_state(version: ModelVersion) -> tuple[str, str]:
    """The conversion check in a word, and its CSS class (`ferry versions`' check column)."""
    check = version.conversion_check
    if "skipped" in check:
        return f"none ({check['skipped']})", "muted"
    if "equivalence_gate" in check:
        gate = check.get("equivalence_gate") or {}
        return ("passed" if gate.get("passed") else "FAILED"), \
            ("ok" if gate.get("passed") else "bad")
    if check.get("passed"):
        return ("passed (forced)" if version.forced else "passed"), "ok"
    return ("FAILED (forced)" if version.forced else "FAILED"), "bad"


MAX_SIZES = 20_000
"""Artifact sizes remembered (artifacts never change under their sha256)."""
_SIZES: dict[str, int] = {}
"""Bytes by sha256: the same in every store, so remembered across registries."""


def artifact_size(registry: Registry, sha256: str | None) -> int | None:
    """Bytes of a stored artifact (one stat, then remembered: content under a sha256 never
    changes); None when it is missing (asked again next time)."""
    if not sha256:
        return None
    if sha256 not in _SIZES:
        store = registry.artifacts
        try:
            size = int(store.fs.size(store.path(sha256)))
        except (FileNotFoundError, OSError):
            return None
        if len(_SIZES) >= MAX_SIZES:
            _SIZES.clear()
        _SIZES[sha256] = size
    return _SIZES[sha256]
