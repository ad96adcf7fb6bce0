"""What the registry hands out: plain frozen records, detached from the database."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from ferry.signature import Signature, Task


class Runtime:
    """Where a version runs: its ONNX form on ONNX Runtime, its own framework (`native`), or
    a form the optimizer built (OpenVINO, a compiled tree library), or a pipeline of other
    versions and Python steps (`ferry.steps.pipeline`)."""

    ONNX = "onnx"
    NATIVE = "native"
    OPENVINO = "openvino"
    TL2CGEN = "tl2cgen"
    PIPELINE = "pipeline"


EXTRA_ARTIFACTS = "artifacts"
"""Key of `runtime_settings` naming a runtime's own artifacts: `{name: sha256}`."""


def extra_artifacts(runtime_settings: dict[str, Any]) -> dict[str, str]:
    """The runtime's own artifacts recorded in `runtime_settings` (name to sha256)."""
    named = runtime_settings.get(EXTRA_ARTIFACTS) or {}
    return {str(k): str(v) for k, v in named.items()}


class Status:
    READY = "ready"
    ARCHIVED = "archived"


@dataclass(frozen=True)
class RegisteredModel:
    name: str
    description: str
    tags: dict[str, Any]
    created_at: datetime
    created_by: str
    latest_version: int | None
    aliases: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True)
class ModelVersion:
    """One registered version: its artifacts, signature, check and lineage."""

    name: str
    version: int
    status: str
    description: str
    framework: str
    framework_version: str
    task: Task
    runtime: str
    runtime_settings: dict[str, Any]
    original_sha256: str
    original_format: str
    onnx_sha256: str | None
    sample_sha256: str | None
    signature: Signature
    metrics: dict[str, Any]
    params: dict[str, Any]
    tags: dict[str, Any]
    lineage: dict[str, Any]
    parent_version: int | None
    conversion_check: dict[str, Any]
    forced: bool
    created_at: datetime
    created_by: str
    aliases: tuple[str, ...] = ()
    profile_sha256: str | None = None
    """The reference profile drift is measured against (`ferry.monitor.profile`)."""

    @property
    def uri(self) -> str:
        return f"{self.name}:{self.version}"


@dataclass(frozen=True)
class VersionDraft:
    """Everything a new version records, before the registry gives it a number."""

    framework: str
    framework_version: str
    task: Task
    runtime: str
    original_sha256: str
    original_format: str
    signature: Signature
    onnx_sha256: str | None = None
    sample_sha256: str | None = None
    profile_sha256: str | None = None
    runtime_settings: dict[str, Any] = field(default_factory=dict)
    description: str = ""
    metrics: dict[str, Any] = field(default_factory=dict)
    params: dict[str, Any] = field(default_factory=dict)
    tags: dict[str, Any] = field(default_factory=dict)
    lineage: dict[str, Any] = field(default_factory=dict)
    parent_version: int | None = None
    conversion_check: dict[str, Any] = field(default_factory=dict)
    forced: bool = False

    def artifacts(self) -> list[str]:
        stored = [s for s in (self.original_sha256, self.onnx_sha256, self.sample_sha256,
                              self.profile_sha256) if s]
        return stored + list(extra_artifacts(self.runtime_settings).values())


@dataclass(frozen=True)
class Event:
    """One line of a model's append-only history."""

    id: int
    model: str
    event: str
    version: int | None
    alias: str | None
    from_version: int | None
    to_version: int | None
    actor: str
    at: datetime
    details: dict[str, Any]


@dataclass(frozen=True)
class ReportDraft:
    """A gate or test result to keep with a version: `content` (the full report, JSON bytes)
    becomes an artifact, `summary` stays in the row for listings."""

    kind: str
    """"gate" (`ferry compare` / `ferry promote`) or "test" (`ferry test`)."""
    status: str
    """"passed" or "failed"."""
    content: bytes
    summary: dict[str, Any] = field(default_factory=dict)
    baseline_version: int | None = None


@dataclass(frozen=True)
class Report:
    """A kept gate or test result of one version."""

    id: int
    model: str
    version: int
    kind: str
    status: str
    baseline_version: int | None
    sha256: str
    summary: dict[str, Any]
    created_at: datetime
    created_by: str
