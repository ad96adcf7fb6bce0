"""The TL2cgen candidate: tree ensembles compiled with gcc, checked against the registered
version (ONNX Runtime) and the framework itself, and loaded back from the artifacts it stores.

Each model is trained, registered and compiled once per module (a few seconds of gcc each).
Labels of the boosters are compared with a 99.5 % floor against ONNX Runtime: ONNX's tree
ensembles hold float32 thresholds, where LightGBM (and so TL2cgen) keeps float64 ones, so a
row lying between the two roundings of a threshold can take the other branch.
"""

from __future__ import annotations

import dataclasses
import hashlib
import shutil
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from sklearn.compose import ColumnTransformer
from sklearn.datasets import load_breast_cancer, load_diabetes, load_iris
from sklearn.ensemble import RandomForestClassifier, RandomForestRegressor
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

import ferry
from ferry.errors import UnsupportedModelError
from ferry.optimizer.candidate import BuiltCandidate, OptimizeContext, Threads
from ferry.optimizer.candidates.trees import CANDIDATES, Tl2cgenCandidate
from ferry.registry import ModelVersion, Registry, Runtime
from ferry.runtime.predictor import GraphPredictor
from ferry.runtime.runtimes import runtime_loader
from ferry.runtime.tl2cgen import (
    LIBRARY,
    TL2CGEN_SETTINGS,
    Tl2cgenPredictor,
    Tl2cgenSettings,
    load_library,
    load_tl2cgen,
)
from ferry.signature import Task

pytest.importorskip("tl2cgen")
pytest.importorskip("treelite")
pytestmark = pytest.mark.skipif(shutil.which("gcc") is None, reason="TL2cgen compiles with gcc")

TREES = 20
DEPTH = 6
CALIBRATION_ROWS = 64
BATCHES = (1, 64)
PROBABILITY_ATOL = 1e-5
VALUE_RTOL = 1e-4
BOOSTER_LABEL_AGREEMENT = 0.995
IRIS_CLASSES = np.array(["setosa", "versicolor", "virginica"])


@dataclass
class Case:
    model: Any
    X: np.ndarray
    version: ModelVersion
    registry: Registry
    built: BuiltCandidate

    def onnx(self) -> ferry.Predictor:
        return ferry.load(self.version.uri, registry=self.registry)


def make_registry(folder: Path) -> Registry:
    return Registry(f"sqlite:///{folder / 'r.db'}", artifacts_url=str(folder / "art"))


def make_context(model: Any, X: np.ndarray, version: ModelVersion, registry: Registry,
                 workdir: Path) -> OptimizeContext:
    name = version.signature.inputs[0].name
    return OptimizeContext(version=version, onnx=registry.read_artifact(version, "onnx"),
                           calibration={name: X[:CALIBRATION_ROWS].astype(np.float32)},
                           workdir=workdir, load_original=lambda: model)


def registered(model: Any, sample: Any, name: str,
               folder: Path) -> tuple[ModelVersion, Registry]:
    registry = make_registry(folder)
    if isinstance(sample, np.ndarray):
        sample = sample.astype("float32")
    return ferry.register(model, name, sample=sample, registry=registry), registry


def compiled(factory: Callable[[], tuple[Any, np.ndarray]], name: str,
             tmp_path_factory: pytest.TempPathFactory) -> Case:
    model, X = factory()
    folder = tmp_path_factory.mktemp(name)
    version, registry = registered(model, X, name, folder)
    context = make_context(model, X, version, registry, folder)
    candidate = Tl2cgenCandidate()
    assert candidate.unavailable(context) is None
    built = candidate.build(context, Threads(intra_op=1))
    return Case(model, X.astype(np.float32), version, registry, built)


def _forest_binary() -> tuple[Any, np.ndarray]:
    X, y = load_breast_cancer(return_X_y=True)
    return RandomForestClassifier(TREES, max_depth=DEPTH, random_state=0).fit(X, y), X


def _forest_iris() -> tuple[Any, np.ndarray]:
    X, y = load_iris(return_X_y=True)
    model = RandomForestClassifier(TREES, max_depth=DEPTH, random_state=0)
    return model.fit(X, IRIS_CLASSES[y]), X


def _forest_regressor() -> tuple[Any, np.ndarray]:
    X, y = load_diabetes(return_X_y=True)
    return RandomForestRegressor(TREES, max_depth=DEPTH, random_state=0).fit(X, y), X


def _xgboost() -> tuple[Any, np.ndarray]:
    xgboost = pytest.importorskip("xgboost")
    X, y = load_breast_cancer(return_X_y=True)
    return xgboost.XGBClassifier(n_estimators=TREES, max_depth=DEPTH).fit(X, y), X


def _lightgbm() -> tuple[Any, np.ndarray]:
    lightgbm = pytest.importorskip("lightgbm")
    X, y = load_breast_cancer(return_X_y=True)
    model = lightgbm.LGBMClassifier(n_estimators=TREES, max_depth=DEPTH, verbose=-1)
    return model.fit(X, y), X


@pytest.fixture(scope="module")
def forest(tmp_path_factory: pytest.TempPathFactory) -> Case:
    return compiled(_forest_binary, "forest", tmp_path_factory)


@pytest.fixture(scope="module")
def iris(tmp_path_factory: pytest.TempPathFactory) -> Case:
    return compiled(_forest_iris, "iris", tmp_path_factory)


@pytest.fixture(scope="module")
def regressor(tmp_path_factory: pytest.TempPathFactory) -> Case:
    return compiled(_forest_regressor, "regressor", tmp_path_factory)


@pytest.fixture(scope="module")
def xgb(tmp_path_factory: pytest.TempPathFactory) -> Case:
    return compiled(_xgboost, "xgb", tmp_path_factory)


@pytest.fixture(scope="module")
def lgbm(tmp_path_factory: pytest.TempPathFactory) -> Case:
    return compiled(_lightgbm, "lgbm", tmp_path_factory)


def reloaded(case: Case) -> GraphPredictor:
    """The built library loaded as serving loads it: through the registered runtime loader,
    from the version's runtime settings and a reader over the artifacts."""
    shas = {name: hashlib.sha256(data).hexdigest() for name, data in case.built.artifacts.items()}
    version = dataclasses.replace(case.version, runtime=Runtime.TL2CGEN,
                                  runtime_settings={**case.built.settings, "artifacts": shas})
    loader = runtime_loader(Runtime.TL2CGEN)
    assert loader is load_tl2cgen
    return loader(version, lambda name: case.built.artifacts[name], None)


def assert_classifier_matches(case: Case, label_agreement: float) -> None:
    onnx, built = case.onnx(), case.built.predictor
    for rows in BATCHES:
        X = case.X[:rows]
        np.testing.assert_allclose(built.predict_proba(X), onnx.predict_proba(X),
                                   rtol=0, atol=PROBABILITY_ATOL)
        np.testing.assert_array_equal(built.predict(X), onnx.predict(X))
    agreement = np.mean(built.predict(case.X) == onnx.predict(case.X))
    assert agreement >= label_agreement
    np.testing.assert_allclose(built.predict_proba(case.X), onnx.predict_proba(case.X),
                               rtol=0, atol=PROBABILITY_ATOL)


def assert_round_trip(case: Case) -> None:
    again = reloaded(case)
    for rows in (*BATCHES, len(case.X)):
        feeds = {case.version.signature.inputs[0].name: case.X[:rows]}
        first, second = case.built.predictor.run_feeds(feeds), again.run_feeds(feeds)
        assert first.keys() == second.keys() == {o.name for o in case.version.signature.outputs}
        for name in first:
            np.testing.assert_array_equal(first[name], second[name])


def test_registered_with_the_search() -> None:
    assert [c.name for c in CANDIDATES] == ["tl2cgen"]


def test_random_forest_matches_onnx_and_scikit_learn(forest: Case) -> None:
    assert_classifier_matches(forest, label_agreement=1.0)
    # float64 thresholds and leaves, as scikit-learn's own: equal up to the float32 output
    np.testing.assert_allclose(forest.built.predictor.predict_proba(forest.X),
                               forest.model.predict_proba(forest.X), rtol=0, atol=1e-7)
    assert_round_trip(forest)


def test_random_forest_outputs_are_typed_as_the_graph(forest: Case) -> None:
    outputs = forest.built.predictor.run_feeds({"X": forest.X[:5]})
    expected = forest.onnx()
    assert isinstance(expected, GraphPredictor)
    graph = expected.run_feeds({"X": forest.X[:5]})
    assert {k: (v.dtype, v.shape) for k, v in outputs.items()} == \
        {k: (v.dtype, v.shape) for k, v in graph.items()}


def test_records_settings_and_artifact(forest: Case) -> None:
    built = forest.built
    assert built.runtime == Runtime.TL2CGEN
    assert set(built.artifacts) == {LIBRARY}
    assert built.artifacts[LIBRARY][:4] == b"\x7fELF"
    recorded = built.settings[TL2CGEN_SETTINGS]
    assert recorded["threads"] == 1 and recorded["scores"] == "probabilities"
    assert Tl2cgenSettings.from_dict(recorded).to_dict() == recorded
    assert "trees" in built.notes


def test_multiclass_forest_with_string_labels(iris: Case) -> None:
    assert_classifier_matches(iris, label_agreement=1.0)
    labels = iris.built.predictor.predict(iris.X)
    assert labels.dtype == object
    assert set(labels) <= set(IRIS_CLASSES)
    np.testing.assert_array_equal(labels, iris.model.predict(iris.X))
    assert_round_trip(iris)


def test_random_forest_regressor(regressor: Case) -> None:
    onnx, built = regressor.onnx(), regressor.built.predictor
    assert regressor.built.settings[TL2CGEN_SETTINGS]["scores"] == "values"
    for rows in (*BATCHES, len(regressor.X)):
        X = regressor.X[:rows]
        np.testing.assert_allclose(built.predict(X), onnx.predict(X), rtol=VALUE_RTOL)
        assert built.predict(X).shape == (rows,)
    raw = built.run_feeds({"X": regressor.X[:3]})
    assert set(raw) == {"variable"}
    assert raw["variable"].shape == (3, 1) and raw["variable"].dtype == np.float32
    assert_round_trip(regressor)


def test_xgboost_classifier(xgb: Case) -> None:
    assert xgb.built.settings[TL2CGEN_SETTINGS]["scores"] == "positive"
    assert_classifier_matches(xgb, label_agreement=BOOSTER_LABEL_AGREEMENT)
    np.testing.assert_allclose(xgb.built.predictor.predict_proba(xgb.X),
                               xgb.model.predict_proba(xgb.X), rtol=0, atol=PROBABILITY_ATOL)
    assert_round_trip(xgb)


def test_lightgbm_classifier(lgbm: Case) -> None:
    assert lgbm.built.settings[TL2CGEN_SETTINGS]["scores"] == "positive"
    assert_classifier_matches(lgbm, label_agreement=BOOSTER_LABEL_AGREEMENT)
    # LightGBM computes in float64 as the library does
    np.testing.assert_allclose(lgbm.built.predictor.predict_proba(lgbm.X),
                               lgbm.model.predict_proba(lgbm.X), rtol=0, atol=1e-7)
    assert_round_trip(lgbm)


def test_rethread_runs_the_same_library(forest: Case) -> None:
    assert forest.built.rethread is not None
    two = forest.built.rethread(Threads(intra_op=2))
    assert two.settings[TL2CGEN_SETTINGS]["threads"] == 2
    assert two.artifacts[LIBRARY] is forest.built.artifacts[LIBRARY]
    np.testing.assert_array_equal(two.predictor.predict_proba(forest.X),
                                  forest.built.predictor.predict_proba(forest.X))
    with pytest.raises(UnsupportedModelError, match="parallel"):
        forest.built.rethread(Threads(intra_op=2, parallel=True))


def test_missing_values_follow_the_framework(xgb: Case, lgbm: Case) -> None:
    for case in (xgb, lgbm):
        X = case.X.copy()
        X[::3, :8] = np.nan
        np.testing.assert_allclose(case.built.predictor.predict_proba(X),
                                   case.model.predict_proba(X), rtol=0, atol=PROBABILITY_ATOL)


def test_float64_rows_give_the_float32_results(forest: Case) -> None:
    predictor = forest.built.predictor
    np.testing.assert_array_equal(predictor.predict_proba(forest.X.astype(np.float64)),
                                  predictor.predict_proba(forest.X))


def test_concurrent_callers_get_their_own_rows(iris: Case) -> None:
    predictor, X = iris.built.predictor, iris.X
    expected = [predictor.predict_proba(X[i:i + 7]) for i in range(0, len(X), 7)]
    with ThreadPoolExecutor(max_workers=4) as pool:
        for _ in range(5):
            got = list(pool.map(lambda i: predictor.predict_proba(X[i:i + 7]),
                                range(0, len(X), 7)))
            for mine, theirs in zip(got, expected, strict=True):
                np.testing.assert_array_equal(mine, theirs)


def test_same_library_is_loaded_once(forest: Case) -> None:
    library = forest.built.artifacts[LIBRARY]
    assert load_library(library) is load_library(bytes(library))
    assert reloaded(forest).library_ is forest.built.predictor.library_


def test_wrong_width_is_refused(forest: Case) -> None:
    with pytest.raises(ValueError, match="features"):
        forest.built.predictor.run_feeds({"X": forest.X[:2, :10]})


def test_library_from_another_platform_is_refused(forest: Case) -> None:
    settings = Tl2cgenSettings(platform="plan9-mips")
    predictor = Tl2cgenPredictor(forest.built.artifacts[LIBRARY], forest.version.signature,
                                 forest.version.task, settings=settings)
    with pytest.raises(UnsupportedModelError, match="plan9-mips"):
        predictor.load()


def test_unknown_settings_are_refused() -> None:
    with pytest.raises(UnsupportedModelError, match="upgrade ferry"):
        Tl2cgenSettings.from_dict({"threads": 1, "vectorize": True})
    with pytest.raises(UnsupportedModelError, match="scores"):
        Tl2cgenSettings(scores="logits")


def unavailable(model: Any, sample: Any, tmp_path: Path) -> str | None:
    version, _ = registered(model, sample, "m", tmp_path)
    context = OptimizeContext(version=version, onnx=None, calibration={}, workdir=tmp_path,
                              load_original=lambda: model)
    return Tl2cgenCandidate().unavailable(context)


@pytest.mark.parametrize(("change", "reason"), [
    ({"framework": "torch"}, "not torch models"),
    ({"task": Task.OTHER}, "not other models"),
])
def test_other_families_are_refused_before_loading(forest: Case, tmp_path: Path,
                                                   change: dict[str, Any], reason: str) -> None:
    version = dataclasses.replace(forest.version, **change)
    context = OptimizeContext(version=version, onnx=None, calibration={}, workdir=tmp_path,
                              load_original=lambda: pytest.fail("loaded the original"))
    found = Tl2cgenCandidate().unavailable(context)
    assert found is not None and reason in found


def test_pipeline_is_not_a_bare_ensemble(tmp_path: Path) -> None:
    X, y = load_breast_cancer(return_X_y=True)
    forest = RandomForestClassifier(5, max_depth=3, random_state=0)
    model = make_pipeline(StandardScaler(), forest).fit(X, y)
    reason = unavailable(model, X, tmp_path)
    assert reason is not None and "not a bare tree ensemble" in reason


def test_string_columns_are_refused(tmp_path: Path) -> None:
    frame = pd.DataFrame({"size": np.arange(40.0), "colour": ["red", "blue"] * 20})
    y = np.arange(40) % 2
    encode = ColumnTransformer([("colour", OneHotEncoder(), ["colour"])], remainder="passthrough")
    forest = RandomForestClassifier(3, random_state=0)
    model = Pipeline([("encode", encode), ("forest", forest)]).fit(frame, y)
    version, _ = registered(model, frame, "m", tmp_path)
    context = OptimizeContext(version=version, onnx=None, calibration={}, workdir=tmp_path,
                              load_original=lambda: pytest.fail("loaded the original"))
    reason = Tl2cgenCandidate().unavailable(context)
    assert reason is not None and "non-numeric" in reason


def test_other_estimators_are_refused(tmp_path: Path) -> None:
    X, y = load_iris(return_X_y=True)
    model = LogisticRegression(max_iter=500).fit(X, y)
    reason = unavailable(model, X, tmp_path)
    assert reason is not None and "LogisticRegression" in reason
