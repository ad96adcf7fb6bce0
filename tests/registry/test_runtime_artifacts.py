"""A runtime's own artifacts (an OpenVINO IR, a compiled library), named in a version's
`runtime_settings["artifacts"]`: stored, checked, read by name, kept by gc."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression

import ferry
from ferry.errors import InvalidInputError, UnsupportedModelError
from ferry.registry import Registry, Runtime, VersionDraft


def _draft(registry: Registry, extra: dict[str, str]) -> tuple[VersionDraft, str]:
    x, y = load_iris(return_X_y=True)
    parent = ferry.register(LogisticRegression(max_iter=300).fit(x, y), "iris",
                            sample=x.astype(np.float32), registry=registry)
    draft = VersionDraft(
        framework=parent.framework, framework_version=parent.framework_version,
        task=parent.task, runtime=Runtime.ONNX, original_sha256=parent.original_sha256,
        original_format=parent.original_format, signature=parent.signature,
        onnx_sha256=parent.onnx_sha256, sample_sha256=parent.sample_sha256,
        runtime_settings={"artifacts": extra}, parent_version=parent.version)
    return draft, parent.uri


def test_named_artifacts_are_read_by_name_and_kept_by_gc(registry: Registry) -> None:
    library = registry.artifacts.put(b"compiled library bytes")
    draft, _ = _draft(registry, {"model.so": library})
    version = registry.create_version("iris", draft)

    assert registry.read_artifact(version, "model.so") == b"compiled library bytes"
    report = registry.gc(grace_s=0)
    assert library not in report.removed
    assert registry.artifacts.exists(library)

    registry.delete_version("iris", version.version)
    assert library in registry.gc(grace_s=0).removed


def test_a_version_naming_an_artifact_not_stored_is_refused(registry: Registry) -> None:
    draft, _ = _draft(registry, {"model.so": "0" * 64})

    with pytest.raises(InvalidInputError, match="not stored"):
        registry.create_version("iris", draft)
    assert [v.version for v in registry.versions("iris")] == [1]


def test_unknown_artifact_name_and_unknown_runtime_are_clear_errors(
        sqlite_registry: Registry) -> None:
    draft, _ = _draft(sqlite_registry, {})
    version = sqlite_registry.create_version("iris", replace(draft, runtime="no-such-engine"))

    with pytest.raises(InvalidInputError, match=r"no model\.so artifact"):
        sqlite_registry.read_artifact(version, "model.so")
    with pytest.raises(UnsupportedModelError, match="no runtime named 'no-such-engine'"):
        ferry.load(version.uri, registry=sqlite_registry)
