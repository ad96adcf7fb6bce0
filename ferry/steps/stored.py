"""A version's steps in the registry: recording them, reading them, refusing untrusted ones."""

from __future__ import annotations

from typing import Any

from ferry.errors import UnsafeFileError, UnsupportedModelError
from ferry.registry import ModelVersion, Registry, Runtime
from ferry.registry.entities import EXTRA_ARTIFACTS, extra_artifacts
from ferry.steps.pipeline import PIPELINE_ARTIFACT, PipelineRecord, pipeline_from_bytes
from ferry.steps.record import STEPS_ARTIFACT, Steps, steps_from_bytes

RUNS_CODE = "runs_code"
"""Key of a pipeline version's `runtime_settings`: true when a stage is a Python step."""


def steps_settings(steps: Steps | None, registry: Registry) -> dict[str, Any]:
    """The `runtime_settings` of a new version with `steps` (their artifact stored now)."""
    if steps is None:
        return {}
    return {EXTRA_ARTIFACTS: {STEPS_ARTIFACT: registry.artifacts.put(steps.to_bytes())}}


def has_steps(version: ModelVersion) -> bool:
    return STEPS_ARTIFACT in extra_artifacts(version.runtime_settings)


def steps_of(version: ModelVersion, registry: Registry) -> Steps | None:
    """The steps stored with `version` (read as JSON: nothing runs), or None."""
    if not has_steps(version):
        return None
    return steps_from_bytes(registry.read_artifact(version, STEPS_ARTIFACT))


def pipeline_settings(record: PipelineRecord, registry: Registry) -> dict[str, Any]:
    """The `runtime_settings` of a new pipeline version (its document stored now)."""
    return {EXTRA_ARTIFACTS: {PIPELINE_ARTIFACT: registry.artifacts.put(record.to_bytes())},
            RUNS_CODE: record.runs_code}


def pipeline_of(version: ModelVersion, registry: Registry) -> PipelineRecord | None:
    """The pipeline a version runs (read as JSON: nothing runs), or None."""
    if PIPELINE_ARTIFACT not in extra_artifacts(version.runtime_settings):
        return None
    return pipeline_from_bytes(registry.read_artifact(version, PIPELINE_ARTIFACT))


def runs_code(version: ModelVersion) -> bool:
    """Whether loading `version` runs stored Python code (steps, a pipeline's step)."""
    return has_steps(version) or bool(version.runtime_settings.get(RUNS_CODE))


def require_trust(version: ModelVersion, trust_code: bool) -> None:
    """Refuse a version with steps unless the caller trusts its code."""
    if runs_code(version) and not trust_code:
        raise UnsafeFileError(
            f"{version.uri} has Python pre/post-processing steps, and loading them runs their"
            f" code: read them with `ferry show {version.uri}`, then pass trust_code=True"
            " (`--trust-code` on the command line) to load it",
            model=version.name, version=version.version)


def carry_steps(parent: ModelVersion, runtime_settings: dict[str, Any]) -> dict[str, Any]:
    """`runtime_settings` of a version derived from `parent` (an optimized variant), keeping
    the parent's steps: the derived version runs the same model, so it needs them too."""
    named = extra_artifacts(parent.runtime_settings)
    if STEPS_ARTIFACT not in named:
        return runtime_settings
    artifacts = {**extra_artifacts(runtime_settings), STEPS_ARTIFACT: named[STEPS_ARTIFACT]}
    return {**runtime_settings, EXTRA_ARTIFACTS: artifacts}


def require_one_model(version: ModelVersion, action: str) -> None:
    """Refuse a pipeline version for an `action` (export, optimize, batch scoring) that
    works on one model's form."""
    if version.runtime == Runtime.PIPELINE:
        members = ", ".join(version.lineage.get("members") or []) or "its members"
        raise UnsupportedModelError(
            f"{version.uri} is a pipeline of registered versions ({members}); {action} works"
            " on one model: use it on each member", model=version.name,
            version=version.version)
