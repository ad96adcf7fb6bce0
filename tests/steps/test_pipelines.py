"""`ferry.Pipeline`: registered models chained (one's output feeding the next), ensembles
averaging several, and Python steps among them; pinned members, trust, served with each stage
timed, and refused where they cannot work."""

from __future__ import annotations

import json
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from sklearn.datasets import load_diabetes, load_iris
from sklearn.ensemble import RandomForestClassifier
from sklearn.linear_model import LinearRegression, LogisticRegression
from steps_fixtures import label_names, texts, tokenize

import ferry
from ferry.errors import (
    CorruptArtifactError,
    InvalidInputError,
    SampleMismatchError,
    UnsafeFileError,
    UnsupportedModelError,
)
from ferry.registry import Registry, Runtime
from ferry.steps.pipeline import pipeline_from_bytes
from ferry.steps.stored import pipeline_of

X, Y = load_iris(return_X_y=True)
X = X.astype(np.float32)


@pytest.fixture(scope="module")
def members(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Registry]:
    """iris-base (a classifier), iris-stack (trained on iris-base's probabilities),
    iris-trees (another classifier of the same classes) and a regressor."""
    root = tmp_path_factory.mktemp("pipelines")
    registry = Registry(f"sqlite:///{root / 'registry.db'}", artifacts_url=str(root / "art"))
    base = LogisticRegression(max_iter=500).fit(X, Y)
    stack = LogisticRegression(max_iter=500).fit(base.predict_proba(X), Y)
    trees = RandomForestClassifier(n_estimators=10, max_depth=4, random_state=0).fit(X, Y)
    ferry.register(base, "iris-base", sample=X, registry=registry)
    ferry.register(stack, "iris-stack", sample=base.predict_proba(X).astype(np.float32),
                   registry=registry)
    ferry.register(trees, "iris-trees", sample=X, registry=registry)
    diabetes, target = load_diabetes(return_X_y=True)
    ferry.register(LinearRegression().fit(diabetes[:, :4], target), "diabetes",
                   sample=diabetes[:, :4].astype(np.float32), registry=registry)
    register_pipelines(registry)
    yield registry
    registry.close()


def register_pipelines(registry: Registry) -> None:
    """iris-chain (base, then stack), iris-vote (an ensemble), words-api (steps, a model)."""
    ferry.register(ferry.Pipeline(["iris-base", "iris-stack"]), "iris-chain",
                   raw_sample=X, registry=registry)
    ferry.register(ferry.Pipeline([ferry.Ensemble(["iris-base", "iris-trees"],
                                                  weights=[3, 1])]),
                   "iris-vote", raw_sample=X, registry=registry)
    rows, labels = texts(200)
    model = LogisticRegression(max_iter=500).fit(tokenize(rows), labels)
    ferry.register(model, "words", sample=tokenize(rows), registry=registry)
    raw, _ = texts(20, seed=1)
    ferry.register(ferry.Pipeline([tokenize, "words", label_names]), "words-api",
                   raw_sample=raw, registry=registry)


def test_a_chain_feeds_one_models_probabilities_to_the_next(members: Registry) -> None:
    version = members.get("iris-chain")
    base, stack = (ferry.load(uri, registry=members) for uri in ("iris-base", "iris-stack"))
    expected = stack.predict(base.predict_proba(X))
    chain = ferry.load("iris-chain", registry=members)
    assert version.runtime == Runtime.PIPELINE
    assert "fits in one ONNX graph" in version.conversion_check["advice"]
    assert "advice" not in members.get("words-api").conversion_check  # a Python step
    assert version.lineage["members"] == ["iris-base:1", "iris-stack:1"]
    assert version.signature.inputs == base.signature.inputs
    np.testing.assert_array_equal(chain.predict(X), expected)
    np.testing.assert_allclose(chain.predict_proba(X), stack.predict_proba(
        base.predict_proba(X)), atol=1e-6)


def test_an_ensemble_averages_its_members_probabilities(members: Registry) -> None:
    base, trees = (ferry.load(uri, registry=members) for uri in ("iris-base", "iris-trees"))
    expected = 0.75 * base.predict_proba(X) + 0.25 * trees.predict_proba(X)
    vote = ferry.load("iris-vote", registry=members)
    np.testing.assert_allclose(vote.predict_proba(X), expected, atol=1e-6)
    np.testing.assert_array_equal(vote.predict(X), np.argmax(expected, axis=1))


def test_members_are_pinned_to_the_version_their_uri_named(members: Registry) -> None:
    first = ferry.register(LogisticRegression(max_iter=500).fit(X, Y), "pin-base", sample=X,
                           registry=members)
    members.set_alias("pin-base", "production", first.version)
    ferry.register(ferry.Pipeline(["pin-base@production", "iris-stack"]), "iris-pinned",
                   raw_sample=X, registry=members)
    before = ferry.load("iris-pinned", registry=members).predict(X)
    flipped = LogisticRegression(max_iter=500).fit(X, 2 - Y)
    members.set_alias("pin-base", "production",
                      ferry.register(flipped, "pin-base", sample=X, registry=members).version)
    stored = pipeline_of(members.get("iris-pinned"), members)
    assert stored is not None and stored.describe() == "model pin-base:1 -> model iris-stack:1"
    np.testing.assert_array_equal(ferry.load("iris-pinned", registry=members).predict(X),
                                  before)


def test_steps_and_models_chain_and_trust_is_needed_only_for_steps(members: Registry) -> None:
    raw, _ = texts(20, seed=1)
    model = ferry.load("words", registry=members)
    with pytest.raises(UnsafeFileError, match="trust_code"):
        ferry.load("words-api", registry=members)
    api = ferry.load("words-api", registry=members, trust_code=True)
    expected = np.asarray(["negative", "positive"])[model.predict(tokenize(raw))]
    assert members.get("words-api").signature.inputs[0].dtype == "string"
    np.testing.assert_array_equal(api.predict(raw), expected)
    assert ferry.load("iris-vote", registry=members) is not None  # models only: no code


def test_a_member_with_its_own_steps_is_refused(members: Registry) -> None:
    rows, labels = texts(100)
    model = LogisticRegression(max_iter=500).fit(tokenize(rows), labels)
    ferry.register(model, "words-steps", raw_sample=rows, preprocess=tokenize,
                   registry=members)
    with pytest.raises(UnsafeFileError, match="stages of this Pipeline"):
        ferry.register(ferry.Pipeline(["words-steps"]), "nested", raw_sample=rows,
                       registry=members)


@pytest.mark.parametrize(("stages", "match"), [
    ([], "at least one stage"),
    ([tokenize], "registered model among its stages"),
    ([42], "stage 1 of the Pipeline is a int"),
    ([ferry.Ensemble(["iris-base"])], "two members or more"),
    ([ferry.Ensemble(["iris-base", "iris-trees"], weights=[1])], "one non-negative weight"),
    ([ferry.Ensemble(["iris-base", "diabetes"])], "different tasks"),
])
def test_pipelines_that_cannot_work_are_refused_naming_why(members: Registry, stages: list,
                                                           match: str) -> None:
    with pytest.raises(InvalidInputError, match=match):
        ferry.register(ferry.Pipeline(stages), "broken", raw_sample=X, registry=members)


def test_a_pipeline_needs_rows_that_run_through_it(members: Registry) -> None:
    with pytest.raises(SampleMismatchError, match="raw_sample="):
        ferry.register(ferry.Pipeline(["iris-base"]), "no-rows", registry=members)
    with pytest.raises(SampleMismatchError, match="does not run on raw_sample"):
        ferry.register(ferry.Pipeline(["iris-base", "iris-stack"]), "bad-rows",
                       raw_sample=X[:, :2], registry=members)
    assert "bad-rows" not in [model.name for model in members.models()]


def test_the_stored_document_is_json_that_reads_back(members: Registry) -> None:
    version = members.get("iris-vote")
    record = pipeline_from_bytes(members.read_artifact(version, "original"))
    assert record.describe() == "ensemble of iris-base:1, iris-trees:1"
    assert record.signature == version.signature


def test_served_pipelines_answer_and_time_each_stage(members: Registry) -> None:
    from http_helpers import post_json

    from ferry.monitor.capture.settings import CaptureSettings
    from ferry.serve.server import serve_in_thread
    from ferry.serve.settings import ServeSettings

    settings = ServeSettings(capture=CaptureSettings(enabled=False), drift_every_s=0,
                             access_log=False, trust_code=True)
    running = serve_in_thread(["iris-chain", "words-api"], grpc_port=None, registry=members,
                              settings=settings)
    try:
        _, iris = post_json(running.http_url, "/v2/models/iris-chain/infer", {"inputs": [
            {"name": "X", "datatype": "FP32", "shape": [2, 4], "data": X[:2].ravel().tolist()}]})
        status, words = post_json(running.http_url, "/v2/models/words-api/infer", {"inputs": [
            {"name": "X", "datatype": "BYTES", "shape": [2], "data": ["good fine", "sad"]}]})
        metrics = urllib.request.urlopen(running.http_url + "/metrics", timeout=10).read()
    finally:
        running.stop()
    chain = ferry.load("iris-chain", registry=members)
    assert status == 200, words
    assert {o["name"]: o["data"] for o in iris["outputs"]}["label"] == chain.predict(
        X[:2]).tolist()
    assert {o["name"]: o["data"] for o in words["outputs"]}["label"] == ["positive", "negative"]
    for stage in ("preprocess", "compute", "postprocess"):
        assert (f'ferry_stage_duration_seconds_count{{model="words-api",stage="{stage}",'
                f'version="1"}} 1.0').encode() in metrics
    assert b'model="iris-chain",stage="compute",version="1"} 2.0' in metrics  # two models


def test_show_export_batch_and_optimize_say_what_a_pipeline_is(
        members: Registry, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from ferry.cli import app

    monkeypatch.setenv("FERRY_REGISTRY_URL", members.url)
    monkeypatch.setenv("FERRY_ARTIFACTS_URL", str(members.artifacts_url))
    import pandas as pd

    pd.DataFrame(X, columns=list("abcd")).to_parquet(tmp_path / "rows.parquet")
    runner = CliRunner()
    shown = runner.invoke(app, ["show", "words-api"])
    assert shown.exit_code == 0, shown.output
    assert "pipeline: step tokenize" in shown.output and "--trust-code" in shown.output
    as_json = json.loads(runner.invoke(app, ["show", "iris-vote", "--json"]).stdout)
    assert as_json["pipeline"]["stages"][0]["ensemble"]["weights"] == [3.0, 1.0]
    for command in (["export", "iris-chain", str(tmp_path / "bundle")],
                    ["optimize", "iris-chain"],
                    ["batch", "iris-chain", "--input", str(tmp_path / "rows.parquet")]):
        result = runner.invoke(app, command)
        assert result.exit_code != 0 and "is a pipeline of registered versions" in \
            result.output, (command, result.output)


def test_the_drift_reference_is_what_requests_carry_and_answers_give(members: Registry
                                                                     ) -> None:
    """Requests to a version with steps carry texts and get label names: the stored profile
    is of those, not of the model's hashed features."""
    from ferry.monitor.reference import profile_from_bytes

    rows, labels = texts(100)
    model = LogisticRegression(max_iter=500).fit(tokenize(rows), labels)
    with_steps = ferry.register(model, "words-around", raw_sample=rows, preprocess=tokenize,
                                postprocess=label_names, registry=members)
    for version in (with_steps, members.get("words-api")):
        assert version.profile_sha256 is not None, version.uri
        profile = profile_from_bytes(members.artifacts.get(version.profile_sha256))
        assert list(profile.columns) == ["X"], version.uri
        assert profile.outputs["output:label"].kind == "categorical"


@pytest.mark.parametrize(("data", "error"), [
    (b'{"format": 9, "stages": []}', UnsupportedModelError),
    (b"[1]", CorruptArtifactError),
    (b"not json", CorruptArtifactError),
    (b'{"format": 1, "stages": [{"model": {"name": "x"}}]}', CorruptArtifactError),
])
def test_an_unreadable_pipeline_document_is_refused(data: bytes, error: type) -> None:
    with pytest.raises(error):
        pipeline_from_bytes(data)
