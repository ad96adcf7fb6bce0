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

__all__ = [
    "ArtifactStore",
    "Event",
    "GcReport",
    "ModelVersion",
    "RegisteredModel",
    "Registry",
    "Report",
    "ReportDraft",
    "Runtime",
    "VersionDraft",
]
