"""A version's steps in the registry: recording them, reading them, refusing untrusted ones."""

from __future__ import annotations

from typing import Any

from ferry.errors import UnsafeFileError
from ferry.registry import ModelVersion, Registry
from ferry.registry.entities import EXTRA_ARTIFACTS, extra_artifacts
from ferry.steps.record import STEPS_ARTIFACT, Steps, steps_from_bytes


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


def require_trust(version: ModelVersion, trust_code: bool) -> None:
    """Refuse a version with steps unless the caller trusts its code."""
    if has_steps(version) and not trust_code:
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
