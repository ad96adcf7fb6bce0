"""The versioned model registry: metadata in SQL, artifacts by content hash."""

from ferry.registry.artifacts import ArtifactStore
from ferry.registry.entities import (
    Event,
    ModelVersion,
    RegisteredModel,
    Report,
    ReportDraft,
    Runtime,
    VersionDraft,
)
from ferry.registry.registry import GcReport, Registry
from ferry.registry.runs import BatchRun, RunStatus

__all__ = [
    "ArtifactStore",
    "BatchRun",
    "Event",
    "GcReport",
    "ModelVersion",
    "RegisteredModel",
    "Registry",
    "Report",
    "ReportDraft",
    "RunStatus",
    "Runtime",
    "VersionDraft",
]
