"""Registry behaviour on SQLite and on PostgreSQL: numbering, URIs, errors, aliases and their
history, archive/delete, metadata round trips, artifact integrity, gc, crash safety,
persistence and migrations.

Every test runs on both backends through the `registry` fixture (see tests/conftest.py).
"""

from __future__ import annotations

import dataclasses
import itertools
import os
import subprocess
import sys
import textwrap
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from alembic.config import Config
from alembic.script import ScriptDirectory
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression
from sqlalchemy import inspect, text

import ferry
from ferry.data import fingerprint
from ferry.errors import (
    AliasNotFoundError,
    CorruptArtifactError,
    InvalidInputError,
    InvalidNameError,
    MissingArtifactError,
    ModelNotFoundError,
    VersionNotFoundError,
)
from ferry.registry import Registry, ReportDraft, Runtime, VersionDraft
from ferry.registry.database import MIGRATIONS, migrate, open_engine
from ferry.signature import Role, Signature, Task, TensorSpec

SIGNATURE = Signature(
    inputs=(TensorSpec("X", "float32", (-1, 4)),),
    outputs=(TensorSpec("label", "int64", (-1,), Role.LABEL),),
    feature_names=("a", "b", "c", "d"),
    class_labels=(0, 1, 2),
)

INVALID_NAMES = ["../x", "", "a b", "bad\x07name", "line\nbreak", "x" * 200]


# -- helpers ----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def iris() -> tuple[pd.DataFrame, pd.Series]:
    X, y = load_iris(return_X_y=True, as_frame=True)
    return X, y


def _fit(iris: tuple[pd.DataFrame, pd.Series], C: float = 1.0) -> LogisticRegression:
    X, y = iris
    return LogisticRegression(C=C, max_iter=1000).fit(X, y)


def _draft(registry: Registry, payload: bytes = b"weights", **fields: Any) -> VersionDraft:
    """A version record whose single artifact is `payload`, stored first."""
    sha = registry.artifacts.put(payload)
    return VersionDraft(framework="sklearn", framework_version="1.0",
                        task=Task.CLASSIFICATION, runtime=Runtime.NATIVE,
                        original_sha256=sha, original_format="joblib", signature=SIGNATURE,
                        **fields)


def _new(registry: Registry, name: str, payload: bytes = b"weights", **fields: Any) -> int:
    return registry.create_version(name, _draft(registry, payload, **fields)).version


def _stored(registry: Registry) -> set[str]:
    return {a.sha256 for a in registry.artifacts.stored()}


def _events(registry: Registry, name: str, *kinds: str) -> list[tuple[Any, ...]]:
    """History as tuples, without `model_created` (test_model_created_is_logged_once)."""
    return [(e.event, e.version, e.alias, e.from_version, e.to_version, e.actor)
            for e in registry.history(name)
            if e.event != "model_created" and (not kinds or e.event in kinds)]


def _snapshot(registry: Registry) -> dict[str, Any]:
    """Everything a test can observe about the registry's contents."""
    models = registry.models()
    return {
        "models": models,
        "versions": {m.name: registry.versions(m.name) for m in models},
        "history": {m.name: registry.history(m.name) for m in models},
        "artifacts": _stored(registry),
    }


# -- numbering --------------------------------------------------------------------------------


def test_version_numbers_count_from_one_per_model(registry: Registry) -> None:
    numbers = [_new(registry, "alpha", b"a1"), _new(registry, "beta", b"b1"),
               _new(registry, "alpha", b"a2"), _new(registry, "alpha", b"a3"),
               _new(registry, "beta", b"b2")]

    assert numbers == [1, 1, 2, 3, 2]
    assert [v.version for v in registry.versions("alpha")] == [1, 2, 3]
    assert [v.version for v in registry.versions("beta")] == [1, 2]
    assert [m.name for m in registry.models()] == ["alpha", "beta"]
    assert registry.model("alpha").latest_version == 3
    assert registry.model("alpha").created_by == "tester"
    assert all(v.created_by == "tester" and v.status == "ready"
               for v in registry.versions("alpha"))


def test_register_real_model_and_load_it(registry: Registry, iris: Any) -> None:
    X, _ = iris
    model = _fit(iris)

    first = ferry.register(model, "iris", sample=X, registry=registry)
    second = ferry.register(_fit(iris, C=0.1), "iris", sample=X, registry=registry)

    assert (first.version, second.version) == (1, 2)
    assert first.runtime == Runtime.ONNX and first.onnx_sha256 and first.sample_sha256
    assert first.conversion_check["passed"] is True
    predictor = ferry.load("iris:1", registry=registry)
    assert (predictor.model, predictor.version) == ("iris", 1)
    np.testing.assert_array_equal(predictor.predict(X), model.predict(X))
    np.testing.assert_allclose(predictor.predict_proba(X), model.predict_proba(X), atol=1e-5)
    assert ferry.load("iris", registry=registry).version == 2
    pd.testing.assert_frame_equal(ferry.load_sample("iris:1", registry=registry), X)


# -- URIs -------------------------------------------------------------------------------------


def test_get_by_latest_number_and_alias(registry: Registry) -> None:
    for payload in (b"v1", b"v2", b"v3"):
        _new(registry, "churn", payload)
    registry.set_alias("churn", "production", 2)
    registry.set_alias("churn", "staging", 2)

    assert registry.get("churn").version == 3
    assert registry.get("churn:1").version == 1
    assert registry.get("churn:2").original_sha256 == registry.artifacts.put(b"v2")
    by_alias = registry.get("churn@production")
    assert (by_alias.name, by_alias.version) == ("churn", 2)
    assert by_alias.aliases == ("production", "staging")
    assert registry.get("churn:3").aliases == ()
    assert registry.get("models:/churn@staging").version == 2
    assert registry.get(ferry.ModelURI("churn", version=1)).version == 1


UNKNOWN = [
    ("nosuch", ModelNotFoundError, ["'nosuch'"]),
    ("nosuch:1", ModelNotFoundError, ["'nosuch'"]),
    ("nosuch@production", ModelNotFoundError, ["'nosuch'"]),
    ("known:7", VersionNotFoundError, ["'known'", "7"]),
    ("known@production", AliasNotFoundError, ["'known'", "'production'", "staging"]),
]


def test_unknown_model_version_alias(registry: Registry) -> None:
    _new(registry, "known")
    registry.set_alias("known", "staging", 1)

    for uri, error, fragments in UNKNOWN:
        with pytest.raises(error) as caught:
            registry.get(uri)
        for fragment in fragments:
            assert fragment in str(caught.value), uri
        assert caught.value.model == uri.split(":")[0].split("@")[0]  # type: ignore[attr-defined]
        assert isinstance(caught.value, LookupError)
        with pytest.raises(error):
            ferry.load(uri, registry=registry)


def test_unknown_targets_of_other_operations(registry: Registry) -> None:
    _new(registry, "known")

    with pytest.raises(ModelNotFoundError, match="'ghost'"):
        registry.versions("ghost")
    with pytest.raises(ModelNotFoundError, match="'ghost'"):
        registry.history("ghost")
    with pytest.raises(ModelNotFoundError, match="'ghost'"):
        registry.delete_model("ghost")
    with pytest.raises(VersionNotFoundError, match="'known' has no version 5"):
        registry.set_alias("known", "production", 5)
    with pytest.raises(VersionNotFoundError, match="'known' has no version 5"):
        registry.archive("known", 5)
    with pytest.raises(VersionNotFoundError, match="'known' has no version 5"):
        registry.delete_version("known", 5)
    with pytest.raises(AliasNotFoundError, match="'production'"):
        registry.remove_alias("known", "production")
    assert registry.aliases("known") == {}
    assert _events(registry, "known") == [
        ("registered", 1, None, None, None, "tester"),
    ]


def test_model_created_is_logged_once(registry: Registry) -> None:
    _new(registry, "m", b"1")
    _new(registry, "m", b"2")
    _new(registry, "other", b"3")

    assert [(e.event, e.version) for e in registry.history("m")] == [
        ("model_created", None), ("registered", 1), ("registered", 2)]
    assert [e.event for e in registry.history("other")] == ["model_created", "registered"]


# -- names ------------------------------------------------------------------------------------


def test_invalid_names_are_refused_and_change_nothing(registry: Registry, iris: Any) -> None:
    X, _ = iris
    model = _fit(iris)
    _new(registry, "existing")
    draft = _draft(registry, b"another")
    before = _snapshot(registry)

    for name in INVALID_NAMES:
        with pytest.raises(InvalidNameError):
            registry.create_version(name, draft)
        with pytest.raises(InvalidNameError):
            ferry.register(model, name, sample=X, registry=registry)
        with pytest.raises(InvalidNameError):
            registry.set_alias("existing", name, 1)
        with pytest.raises(InvalidInputError):
            registry.get(name)

    assert _snapshot(registry) == before


def test_longest_allowed_name_and_numeric_alias(registry: Registry) -> None:
    longest = "m" * 128
    assert _new(registry, longest) == 1
    assert registry.get(longest).name == longest
    assert _new(registry, "v1.2_final-b") == 1

    with pytest.raises(InvalidNameError, match="number"):
        registry.set_alias(longest, "2", 1)
    with pytest.raises(InvalidNameError):
        registry.create_version("m" * 129, _draft(registry))
    assert registry.aliases(longest) == {}
    assert [m.name for m in registry.models()] == [longest, "v1.2_final-b"]


# -- aliases and history ----------------------------------------------------------------------


def test_alias_set_move_rollback_remove_history(registry: Registry) -> None:
    for payload in (b"1", b"2", b"3"):
        _new(registry, "churn", payload)
    alice = Registry(registry.url, artifacts_url=registry.artifacts_url, actor="alice")
    try:
        first = registry.set_alias("churn", "production", 1)
        registry.set_alias("churn", "production", 2)
        assert registry.get("churn@production").version == 2
        rollback = alice.set_alias("churn", "production", 1)
        assert registry.get("churn@production").version == 1
        assert registry.aliases("churn") == {"production": 1}
        registry.set_alias("churn", "canary", 3)
        assert registry.aliases("churn") == {"canary": 3, "production": 1}
        removed = alice.remove_alias("churn", "production")
    finally:
        alice.close()

    assert registry.aliases("churn") == {"canary": 3}
    with pytest.raises(AliasNotFoundError, match="canary"):
        registry.get("churn@production")
    assert (first.event, first.from_version, first.to_version) == ("alias_set", None, 1)
    assert (rollback.event, rollback.from_version, rollback.to_version) == ("alias_moved", 2, 1)
    assert (removed.event, removed.from_version, removed.actor) == ("alias_removed", 1, "alice")
    assert _events(registry, "churn") == [
        ("registered", 1, None, None, None, "tester"),
        ("registered", 2, None, None, None, "tester"),
        ("registered", 3, None, None, None, "tester"),
        ("alias_set", 1, "production", None, 1, "tester"),
        ("alias_moved", 2, "production", 1, 2, "tester"),
        ("alias_moved", 1, "production", 2, 1, "alice"),
        ("alias_set", 3, "canary", None, 3, "tester"),
        ("alias_removed", 1, "production", 1, None, "alice"),
    ]
    history = registry.history("churn")
    assert [e.id for e in history] == sorted(e.id for e in history)
    assert all(a.at <= b.at for a, b in itertools.pairwise(history))
    assert all(e.at.tzinfo is not None for e in history)


def test_actor_comes_from_environment_when_not_given(registry: Registry,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FERRY_USER", "ci-bot")
    anonymous = Registry(registry.url, artifacts_url=registry.artifacts_url)
    try:
        version = anonymous.create_version("m", _draft(anonymous))
    finally:
        anonymous.close()

    assert version.created_by == "ci-bot"
    assert [e.actor for e in registry.history("m")] == ["ci-bot", "ci-bot"]  # created, registered


# -- archive and delete -----------------------------------------------------------------------


def test_archive_hides_version_from_latest_only(registry: Registry) -> None:
    _new(registry, "m", b"1")
    _new(registry, "m", b"2")

    archived = registry.archive("m", 2)

    assert archived.status == "archived"
    assert registry.get("m").version == 1
    assert registry.get("m:2").status == "archived"
    assert [(v.version, v.status) for v in registry.versions("m")] == [(1, "ready"),
                                                                        (2, "archived")]
    with pytest.raises(InvalidInputError, match="archived"):
        registry.set_alias("m", "production", 2)
    assert registry.aliases("m") == {}
    assert _events(registry, "m", "archived") == [("archived", 2, None, None, None, "tester")]
    assert _new(registry, "m", b"3") == 3
    assert registry.get("m").version == 3
    registry.archive("m", 3)
    registry.archive("m", 1)
    with pytest.raises(VersionNotFoundError, match="'m' has no ready version"):
        registry.get("m")
    assert registry.get("m:1").status == "archived"


def test_archive_or_delete_of_aliased_version_is_refused(registry: Registry) -> None:
    _new(registry, "m", b"1")
    _new(registry, "m", b"2")
    registry.set_alias("m", "production", 1)
    before = _snapshot(registry)

    with pytest.raises(InvalidInputError, match="production") as archive_error:
        registry.archive("m", 1)
    with pytest.raises(InvalidInputError, match="production") as delete_error:
        registry.delete_version("m", 1)

    assert (archive_error.value.model, archive_error.value.version) == ("m", 1)
    assert (delete_error.value.model, delete_error.value.version) == ("m", 1)
    assert _snapshot(registry) == before
    assert registry.get("m:1").status == "ready"
    registry.remove_alias("m", "production")
    registry.delete_version("m", 1)
    assert [v.version for v in registry.versions("m")] == [2]


def test_deleted_version_numbers_are_never_reused(registry: Registry) -> None:
    for payload in (b"1", b"2", b"3"):
        _new(registry, "m", payload)

    registry.delete_version("m", 3)

    with pytest.raises(VersionNotFoundError):
        registry.get("m:3")
    assert registry.get("m").version == 2
    assert _new(registry, "m", b"4") == 4
    registry.delete_version("m", 4)
    registry.delete_version("m", 2)
    assert _new(registry, "m", b"5") == 5
    assert [v.version for v in registry.versions("m")] == [1, 5]
    assert [(e.event, e.version) for e in registry.history("m")
            if e.event in ("registered", "deleted")] == [
        ("registered", 1), ("registered", 2), ("registered", 3), ("deleted", 3),
        ("registered", 4), ("deleted", 4), ("deleted", 2), ("registered", 5)]


def test_delete_model_keeps_history(registry: Registry) -> None:
    _new(registry, "gone", b"1")
    _new(registry, "gone", b"2")
    _new(registry, "kept")
    registry.set_alias("gone", "production", 2)

    registry.delete_model("gone")

    assert [m.name for m in registry.models()] == ["kept"]
    for uri in ("gone", "gone:1", "gone@production"):
        with pytest.raises(ModelNotFoundError, match="'gone'"):
            registry.get(uri)
    with pytest.raises(ModelNotFoundError):
        registry.versions("gone")
    assert [e[0] for e in _events(registry, "gone")] == [
        "registered", "registered", "alias_set", "model_deleted"]
    assert registry.get("kept").version == 1
    assert [e[0] for e in _events(registry, "kept")] == ["registered"]


# -- metadata ---------------------------------------------------------------------------------


def test_metadata_round_trips(registry: Registry, iris: Any) -> None:
    X, _ = iris
    start, end = datetime(2024, 1, 1, tzinfo=UTC), datetime(2024, 6, 30, 12, tzinfo=UTC)
    lineage = ferry.Lineage(training_data=X, data_start=start, data_end=end, run_id="run-7",
                            source="notebooks/iris.ipynb")
    metrics = {"accuracy": 0.9733333333333334, "per_class": {"0": 1.0, "1": 0.94},
               "curve": [0.5, 0.75, 1.0]}
    ferry.register(_fit(iris), "iris", sample=X, registry=registry)

    made = ferry.register(_fit(iris, C=0.5), "iris", sample=X, registry=registry,
                          metrics=metrics, params={"C": 0.5, "solver": "lbfgs"},
                          tags={"team": "growth", "ünïcode": "✓"}, description="second try",
                          lineage=lineage, parent_version=1)
    fetched = registry.get("iris:2")

    assert fetched == made
    assert fetched.metrics == metrics
    assert fetched.params == {"C": 0.5, "solver": "lbfgs"}
    assert fetched.tags == {"team": "growth", "ünïcode": "✓"}
    assert fetched.description == "second try"
    assert fetched.parent_version == 1
    assert fetched.lineage["run_id"] == "run-7"
    assert fetched.lineage["source"] == "notebooks/iris.ipynb"
    assert fetched.lineage["data_rows"] == len(X)
    assert fetched.lineage["data_start"] == start.isoformat()
    assert fetched.lineage["data_end"] == end.isoformat()
    assert fetched.lineage["data_fingerprint"] == fingerprint(X)
    assert fetched.signature.feature_names == tuple(X.columns)
    assert fetched.signature.class_labels == (0, 1, 2)
    assert fetched.signature.inputs[0].shape == (-1, 4)
    assert {o.role for o in fetched.signature.outputs} == {Role.LABEL, Role.PROBABILITIES}
    assert fetched.task == Task.CLASSIFICATION
    assert fetched.framework == "sklearn"
    assert registry.history("iris")[-1].details["parent_version"] == 1
    assert registry.get("iris:1").metrics == {} and registry.get("iris:1").parent_version is None


def test_draft_fields_round_trip(registry: Registry) -> None:
    fields: dict[str, Any] = {
        "metrics": {"rmse": 1.25, "nested": {"deep": [1, 2, {"x": None}]}},
        "params": {"alpha": 1e-4}, "tags": {"owner": "ml"}, "lineage": {"run_id": "abc"},
        "runtime_settings": {"onnxruntime": {"intra_op_num_threads": 2}},
        "conversion_check": {"skipped": "native"}, "forced": True, "description": "d",
    }
    made = registry.create_version("m", _draft(registry, **fields))
    reopened = Registry(registry.url, artifacts_url=registry.artifacts_url)
    try:
        fetched = reopened.get("m:1")
    finally:
        reopened.close()

    assert fetched == made
    for key, value in fields.items():
        assert getattr(fetched, key) == value
    assert fetched.signature == SIGNATURE


def test_create_version_refuses_unstored_artifacts(registry: Registry) -> None:
    draft = _draft(registry)
    missing = dataclasses.replace(draft, onnx_sha256="0" * 64)

    with pytest.raises(InvalidInputError, match="not stored"):
        registry.create_version("m", missing)
    assert registry.models() == []


# -- artifacts --------------------------------------------------------------------------------


def test_corrupt_artifact_is_refused_on_load(registry: Registry, iris: Any) -> None:
    X, _ = iris
    version = ferry.register(_fit(iris), "iris", sample=X, registry=registry)
    assert version.onnx_sha256 is not None
    path = Path(registry.artifacts.path(version.onnx_sha256))
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))

    with pytest.raises(CorruptArtifactError) as caught:
        ferry.load("iris", registry=registry)

    assert (caught.value.model, caught.value.version) == ("iris", 1)
    assert "iris:1" in str(caught.value)
    assert registry.read_artifact(version, "sample")  # the others are untouched


def test_missing_artifact_is_reported_on_load(registry: Registry, iris: Any) -> None:
    X, _ = iris
    version = ferry.register(_fit(iris), "iris", sample=X, registry=registry)
    assert version.onnx_sha256 is not None
    Path(registry.artifacts.path(version.onnx_sha256)).unlink()

    with pytest.raises(MissingArtifactError) as caught:
        ferry.load("iris:1", registry=registry)

    assert (caught.value.model, caught.value.version) == ("iris", 1)
    assert "iris:1" in str(caught.value)


def test_gc_removes_only_old_unreferenced_artifacts(registry: Registry, iris: Any) -> None:
    X, _ = iris
    model = _fit(iris)
    version = ferry.register(model, "iris", sample=X, registry=registry)
    referenced = {version.original_sha256, version.onnx_sha256, version.sample_sha256,
                  version.profile_sha256}
    orphan = registry.artifacts.put(b"orphan bytes")
    leftover = Path(registry.artifacts_url) / "tmp" / "deadbeef"
    leftover.write_bytes(b"half a write")

    young = registry.gc()

    assert young.removed == [] and young.freed_bytes == 0 and young.kept == 6
    assert _stored(registry) == referenced | {orphan, "tmp/deadbeef"}

    report = registry.gc(grace_s=0)

    assert sorted(report.removed) == sorted([orphan, "tmp/deadbeef"])
    assert report.freed_bytes == len(b"orphan bytes") + len(b"half a write")
    assert report.kept == 4
    assert _stored(registry) == referenced
    assert not registry.artifacts.exists(orphan)
    np.testing.assert_array_equal(ferry.load("iris", registry=registry).predict(X),
                                  model.predict(X))


def test_gc_collects_deleted_versions_but_keeps_shared_artifacts(registry: Registry,
                                                                 iris: Any) -> None:
    X, _ = iris
    first = ferry.register(_fit(iris), "iris", sample=X, registry=registry)
    second = ferry.register(_fit(iris, C=0.01), "iris", sample=X, registry=registry)
    assert first.sample_sha256 == second.sample_sha256
    assert first.onnx_sha256 != second.onnx_sha256

    registry.delete_version("iris", 2)
    report = registry.gc(grace_s=0)

    assert sorted(report.removed) == sorted([second.original_sha256, second.onnx_sha256,
                                             second.profile_sha256])
    assert _stored(registry) == {first.original_sha256, first.onnx_sha256,
                                 first.sample_sha256, first.profile_sha256}
    assert ferry.load("iris", registry=registry).version == 1


def test_gc_grace_is_measured_from_the_write(registry: Registry) -> None:
    sha = registry.artifacts.put(b"stale")
    an_hour_ago = time.time() - 2 * 3600
    os.utime(registry.artifacts.path(sha), (an_hour_ago, an_hour_ago))
    fresh = registry.artifacts.put(b"fresh")

    report = registry.gc()

    assert report.removed == [sha]
    assert _stored(registry) == {fresh}


def test_rewriting_an_old_orphan_restarts_its_grace_period(sqlite_registry: Registry) -> None:
    """Content addressing de-duplicates writes; a re-write must still count as young."""
    registry = sqlite_registry
    sha = registry.artifacts.put(b"model bytes")  # e.g. left over by a deleted version
    two_hours_ago = time.time() - 2 * 3600
    os.utime(registry.artifacts.path(sha), (two_hours_ago, two_hours_ago))

    assert registry.artifacts.put(b"model bytes") == sha  # a new registration writes them again
    report = registry.gc()  # a gc that runs before that registration commits

    assert report.removed == []
    assert registry.artifacts.exists(sha)


# -- crash safety -----------------------------------------------------------------------------

KILLED_REGISTRATION = textwrap.dedent("""
    import os
    import sys

    from sklearn.datasets import load_iris
    from sklearn.linear_model import LogisticRegression

    import ferry
    from ferry.registry import Registry

    def die(self, name, draft):
        # the artifacts are stored; the process dies before the metadata commit
        missing = [s for s in draft.artifacts() if not self.artifacts.exists(s)]
        sys.stdout.write(f"stored={len(draft.artifacts())} missing={len(missing)}\\n")
        sys.stdout.flush()
        os._exit(1)

    Registry.create_version = die
    X, y = load_iris(return_X_y=True, as_frame=True)
    ferry.register(LogisticRegression(C=0.3, max_iter=1000).fit(X, y), sys.argv[1], sample=X)
    sys.stdout.write("survived\\n")
""")


def test_registration_killed_half_way_leaves_no_version(registry: Registry, iris: Any) -> None:
    X, _ = iris
    ferry.register(_fit(iris), "iris", sample=X, registry=registry)
    before = _snapshot(registry)
    env = {**os.environ, "FERRY_REGISTRY_URL": str(registry.url),
           "FERRY_ARTIFACTS_URL": str(registry.artifacts_url)}

    result = subprocess.run([sys.executable, "-c", KILLED_REGISTRATION, "brand-new"], env=env,
                            capture_output=True, text=True, timeout=120, check=False)

    assert result.returncode == 1, result.stderr
    assert result.stdout.strip() == "stored=4 missing=0", result.stderr
    orphans = _stored(registry) - before["artifacts"]
    assert len(orphans) == 3  # original, ONNX, profile; the sample is the same bytes as v1's
    after = _snapshot(registry)
    assert {k: v for k, v in after.items() if k != "artifacts"} == {
        k: v for k, v in before.items() if k != "artifacts"}
    assert [m.name for m in registry.models()] == ["iris"]
    with pytest.raises(ModelNotFoundError):
        registry.get("brand-new")

    assert registry.gc().removed == []  # still inside the grace period
    report = registry.gc(grace_s=0)

    assert sorted(report.removed) == sorted(orphans)
    assert _stored(registry) == before["artifacts"]
    assert ferry.load("iris", registry=registry).predict(X).shape == (len(X),)
    assert ferry.register(_fit(iris, C=0.3), "brand-new", sample=X,
                          registry=registry).version == 1
    assert ferry.register(_fit(iris, C=0.3), "iris", sample=X, registry=registry).version == 2


# -- persistence and migrations ---------------------------------------------------------------


def test_reopened_registry_sees_the_same_data(registry: Registry, iris: Any) -> None:
    X, _ = iris
    model = _fit(iris)
    ferry.register(model, "iris", sample=X, registry=registry, metrics={"acc": 0.97})
    _new(registry, "other", b"1")
    _new(registry, "other", b"2")
    registry.set_alias("iris", "production", 1)
    registry.archive("other", 2)
    before = _snapshot(registry)
    registry.close()

    reopened = Registry(registry.url, artifacts_url=registry.artifacts_url, actor="later")
    try:
        assert _snapshot(reopened) == before
        assert reopened.aliases("iris") == {"production": 1}
        assert reopened.get("iris@production").metrics == {"acc": 0.97}
        assert reopened.get("other").version == 1
        predictor = ferry.load("iris@production", registry=reopened)
        np.testing.assert_array_equal(predictor.predict(X), model.predict(X))
        assert _new(reopened, "other", b"3") == 3
        assert reopened.history("other")[-1].actor == "later"
    finally:
        reopened.close()
    # the original object reconnects on use after close()
    assert registry.get("other").version == 3


def test_migrations_run_twice_are_a_no_op(registry: Registry) -> None:
    _new(registry, "m")
    registry.set_alias("m", "production", 1)
    before = _snapshot(registry)
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    head = ScriptDirectory.from_config(config).get_current_head()

    def state() -> tuple[list[str], list[str]]:
        with registry.engine.connect() as connection:
            revisions = [r[0] for r in connection.execute(
                text("SELECT version_num FROM alembic_version"))]
            tables = sorted(inspect(connection).get_table_names())
        return revisions, tables

    first = state()
    migrate(registry.engine)
    migrate(registry.engine)
    second_engine = open_engine(str(registry.url))
    second_engine.dispose()

    assert first[0] == [head]
    assert set(first[1]) >= {"alembic_version", "models", "versions", "aliases", "events"}
    assert state() == first
    assert _snapshot(registry) == before
    assert _new(registry, "m", b"next") == 2


# -- reports ----------------------------------------------------------------------------------


def test_reports_are_kept_with_their_version_and_survive_gc(registry: Registry) -> None:
    _new(registry, "reported")
    _new(registry, "reported", b"weights 2")
    first = registry.add_report("reported", 2, ReportDraft(
        kind="gate", status="failed", content=b'{"checks": []}', baseline_version=1,
        summary={"failures": ["latency.server.p99_ms"]}))
    second = registry.add_report("reported", 2, ReportDraft(kind="test", status="passed",
                                                           content=b"{}"))

    assert [r.id for r in registry.reports("reported")] == [first.id, second.id]
    assert registry.reports("reported", 2, "gate") == [first]
    assert registry.reports("reported", 1) == []
    assert registry.read_report(first) == b'{"checks": []}'
    assert first.summary == {"failures": ["latency.server.p99_ms"]}
    assert first.created_by == "tester" and first.baseline_version == 1
    assert _events(registry, "reported", "gate_failed", "test_passed") == [
        ("gate_failed", 2, None, None, None, "tester"),
        ("test_passed", 2, None, None, None, "tester")]
    registry.gc(grace_s=0)
    assert registry.read_report(second) == b"{}"


def test_a_report_names_an_existing_version(registry: Registry) -> None:
    _new(registry, "reported")
    with pytest.raises(VersionNotFoundError):
        registry.add_report("reported", 7, ReportDraft(kind="gate", status="passed",
                                                       content=b"{}"))


def test_an_alias_move_keeps_its_details_in_history(registry: Registry) -> None:
    _new(registry, "moved")
    _new(registry, "moved", b"weights 2")
    registry.set_alias("moved", "production", 1)
    registry.set_alias("moved", "production", 2,
                       details={"gate": "failed", "override": True, "reason": "hotfix"})

    event = registry.history("moved")[-1]
    assert (event.event, event.from_version, event.to_version) == ("alias_moved", 1, 2)
    assert event.details == {"gate": "failed", "override": True, "reason": "hotfix"}
