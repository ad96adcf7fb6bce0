"""Pre/post steps stored with a version as source (never pickled), loaded only when trusted."""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression
from steps_fixtures import broken, label_names, texts, tokenize, uses_helper
from typer.testing import CliRunner

import ferry
from ferry.cli import app
from ferry.errors import (
    InvalidInputError,
    SampleMismatchError,
    StepError,
    UnsafeFileError,
    UnsupportedModelError,
)
from ferry.registry import ModelVersion, Registry
from ferry.signature import Role
from ferry.steps import steps_from_bytes


@pytest.fixture(scope="module")
def model() -> LogisticRegression:
    rows, labels = texts(200)
    return LogisticRegression(max_iter=500).fit(tokenize(rows), labels)


def register(model: LogisticRegression, registry: Registry | None, **steps: Any
             ) -> ModelVersion:
    raw, _ = texts(50, seed=1)
    steps = {"preprocess": tokenize, "postprocess": label_names, **steps}
    return ferry.register(model, "sentiment", sample=tokenize(raw), raw_sample=raw,
                          registry=registry, **steps)


def test_steps_are_stored_as_json_source_with_package_versions(
        model: LogisticRegression, sqlite_registry: Registry) -> None:
    version = register(model, sqlite_registry)
    data = sqlite_registry.read_artifact(version, "steps")
    assert b"\x80" not in data  # no pickle
    stored = json.loads(data)
    assert stored["format"] == 1
    pre = stored["preprocess"]
    assert pre["name"] == "tokenize"
    assert "def tokenize(batch: Any) -> np.ndarray:" in pre["source"]
    assert pre["imports"] == ["import zlib", "from typing import Any", "import numpy as np"]
    assert pre["constants"] == ["N_FEATURES = 64"]
    assert pre["packages"] == {"numpy": np.__version__, "typing": None, "zlib": None}
    assert stored["postprocess"]["name"] == "label_names"
    assert version.runtime_settings["artifacts"]["steps"]


def test_a_version_with_steps_is_refused_without_trust(model: LogisticRegression,
                                                       sqlite_registry: Registry) -> None:
    register(model, sqlite_registry)
    with pytest.raises(UnsafeFileError, match=r"trust_code=True.*--trust-code"):
        ferry.load("sentiment:1", registry=sqlite_registry)


def test_trusted_load_runs_the_steps_around_the_model(model: LogisticRegression,
                                                      sqlite_registry: Registry) -> None:
    register(model, sqlite_registry)
    predictor = ferry.load("sentiment:1", registry=sqlite_registry, trust_code=True)
    raw, _ = texts(40, seed=2)
    expected = np.asarray(["negative", "positive"])[model.predict(tokenize(raw))]
    assert predictor.predict(raw).tolist() == expected.tolist()
    np.testing.assert_allclose(predictor.predict_proba(raw),
                               model.predict_proba(tokenize(raw)), rtol=1e-4, atol=1e-5)


def test_a_version_without_postprocess_gives_the_models_labels(
        model: LogisticRegression, sqlite_registry: Registry) -> None:
    register(model, sqlite_registry, postprocess=None)
    predictor = ferry.load("sentiment:1", registry=sqlite_registry, trust_code=True)
    raw, _ = texts(10, seed=3)
    assert predictor.predict(raw).tolist() == model.predict(tokenize(raw)).tolist()


def test_a_step_refusing_its_input_is_an_input_error_naming_it(
        model: LogisticRegression, sqlite_registry: Registry) -> None:
    register(model, sqlite_registry)
    predictor = ferry.load("sentiment:1", registry=sqlite_registry, trust_code=True)
    with pytest.raises(InvalidInputError, match=r"preprocess step 'tokenize'.*not text with words"):
        predictor.predict(np.asarray([3.5], dtype=object))


def test_a_failing_step_is_refused_at_registration(model: LogisticRegression,
                                                   sqlite_registry: Registry) -> None:
    with pytest.raises(SampleMismatchError, match="postprocess step 'broken' failed"):
        register(model, sqlite_registry, postprocess=broken)


def test_a_step_error_names_the_step() -> None:
    from ferry.steps.loaded import run_step

    with pytest.raises(StepError, match="postprocess step 'broken' failed"):
        run_step("postprocess", "broken", broken, {})


@pytest.mark.parametrize("step", [lambda batch: batch, LogisticRegression().fit,
                                  uses_helper], ids=["lambda", "method", "helper"])
def test_steps_that_cannot_be_stored_as_source_are_refused(
        model: LogisticRegression, sqlite_registry: Registry, step: Any) -> None:
    with pytest.raises(InvalidInputError, match=r"top-level function|import it inside"):
        register(model, sqlite_registry, preprocess=step)


def test_a_closure_is_refused(model: LogisticRegression, sqlite_registry: Registry) -> None:
    def inner(batch: Any) -> Any:
        return batch

    with pytest.raises(InvalidInputError, match="not a lambda, a closure or a method"):
        register(model, sqlite_registry, postprocess=inner)


def test_an_unknown_steps_format_is_refused() -> None:
    with pytest.raises(UnsupportedModelError, match="upgrade ferry"):
        steps_from_bytes(b'{"format": 2}')


def test_show_says_a_version_has_steps(model: LogisticRegression) -> None:
    register(model, None)
    result = CliRunner().invoke(app, ["show", "sentiment:1"])
    assert result.exit_code == 0, result.stderr
    assert f"steps: preprocess tokenize (numpy {np.__version__}), postprocess label_names" \
        in result.stdout
    assert "--trust-code" in result.stdout
    result = CliRunner().invoke(app, ["show", "sentiment:1", "--json"])
    shown = json.loads(result.stdout)
    assert shown["steps"]["preprocess"]["packages"]["numpy"] == np.__version__


def test_the_pipelines_outer_signature_is_stored_with_the_steps(
        model: LogisticRegression, sqlite_registry: Registry) -> None:
    version = register(model, sqlite_registry)
    predictor = ferry.load("sentiment:1", registry=sqlite_registry, trust_code=True)
    (text,) = predictor.signature.inputs
    assert (text.dtype, text.shape) == ("string", (-1,))
    outputs = {spec.role: spec for spec in predictor.signature.outputs}
    assert outputs[Role.LABEL].dtype == "string"
    assert outputs[Role.PROBABILITIES].shape == (-1, 2)
    assert version.signature.inputs[0].dtype == "float32"  # the model's own, unchanged


def test_without_sample_the_model_is_checked_on_the_preprocessed_raw_sample(
        model: LogisticRegression, sqlite_registry: Registry) -> None:
    raw, _ = texts(30, seed=4)
    version = ferry.register(model, "sentiment", raw_sample=raw, preprocess=tokenize,
                             registry=sqlite_registry)
    assert version.conversion_check["passed"] is True
    assert ferry.load_sample("sentiment:1", registry=sqlite_registry).shape == (30, 64)


def test_an_optimized_variant_keeps_its_parents_steps(model: LogisticRegression,
                                                      sqlite_registry: Registry) -> None:
    from ferry.steps.stored import carry_steps

    version = register(model, sqlite_registry)
    settings = carry_steps(version, {"onnxruntime": {"intra_op_threads": 2},
                                     "artifacts": {"model.xml": "abc"}})
    assert settings == {"onnxruntime": {"intra_op_threads": 2}, "artifacts": {
        "model.xml": "abc", "steps": version.runtime_settings["artifacts"]["steps"]}}
