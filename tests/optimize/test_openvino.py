"""The OpenVINO candidates and runtime: f32 checked against ONNX Runtime, int8 (NNCF) checked
for label agreement, both loaded back through the `openvino` runtime loader from the settings
and artifacts they record; bf16 only where the CPU computes it natively.

Each model is trained and registered once per module; its OpenVINO builds are cached per
module too (NNCF takes a few seconds to import and calibrate).
"""

from __future__ import annotations

import dataclasses
import hashlib
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper
from sklearn.datasets import load_breast_cancer, load_diabetes, load_iris
from sklearn.linear_model import LogisticRegression, Ridge
from sklearn.neural_network import MLPClassifier
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.tree import DecisionTreeClassifier

import ferry
from ferry.errors import UnsupportedModelError
from ferry.optimizer.candidate import BuiltCandidate, Candidate, OptimizeContext, Threads
from ferry.optimizer.candidates.openvino import CANDIDATES
from ferry.registry import ModelVersion, Registry, Runtime
from ferry.runtime.predictor import GraphPredictor
from ferry.runtime.runtimes import runtime_loader
from ferry.signature import Role, Signature, Task, TensorSpec

pytest.importorskip("openvino")
pytest.importorskip("nncf")

from ferry.runtime.openvino import (
    IR_BIN,
    IR_XML,
    OPENVINO_SETTINGS,
    OpenVinoPredictor,
    OpenVinoSettings,
    load_openvino,
    read_onnx,
)

CALIBRATION_ROWS = 128
BATCHES = (1, 64)
FLOAT_TOLERANCE = 1e-5
INT8_LABEL_AGREEMENT = 0.95
IRIS_CLASSES = np.array(["setosa", "versicolor", "virginica"])
SINGLE_THREAD = Threads(intra_op=1)


@dataclass
class Case:
    """A registered model, its held-out rows and the OpenVINO variants built from it."""

    version: ModelVersion
    registry: Registry
    X: np.ndarray
    """Rows the calibration never saw."""
    context: OptimizeContext
    built: dict[str, BuiltCandidate] = field(default_factory=dict)

    @property
    def onnx_bytes(self) -> bytes:
        assert self.context.onnx is not None
        return self.context.onnx

    def feeds(self, rows: int | None = None) -> dict[str, np.ndarray]:
        return {self.version.signature.inputs[0].name: self.X[:rows]}

    def onnx_runtime(self) -> GraphPredictor:
        predictor = ferry.load(self.version.uri, registry=self.registry)
        assert isinstance(predictor, GraphPredictor)
        return predictor

    def build(self, name: str) -> BuiltCandidate:
        if name not in self.built:
            candidate = candidate_named(name)
            assert candidate.unavailable(self.context) is None
            self.built[name] = candidate.build(self.context, SINGLE_THREAD)
        return self.built[name]


def candidate_named(name: str) -> Candidate:
    return next(c for c in CANDIDATES if c.name == name)


def registered(model: Any, X: np.ndarray, name: str, folder: Path) -> Case:
    """Register `model` and split its rows: calibration first, held-out rows after."""
    registry = Registry(f"sqlite:///{folder / 'r.db'}", artifacts_url=str(folder / "art"))
    X = X.astype(np.float32)
    order = np.random.default_rng(0).permutation(len(X))
    calibration, held_out = X[order[:CALIBRATION_ROWS]], X[order[CALIBRATION_ROWS:]]
    version = ferry.register(model, name, sample=calibration, registry=registry)
    context = OptimizeContext(
        version=version, onnx=registry.read_artifact(version, "onnx"),
        calibration={version.signature.inputs[0].name: calibration}, workdir=folder / "work")
    return Case(version, registry, held_out, context)


@pytest.fixture(scope="module")
def logistic(tmp_path_factory: pytest.TempPathFactory) -> Case:
    """Multiclass with string labels: ai.onnx.ml LinearClassifier + Normalizer."""
    X, y = load_iris(return_X_y=True)
    model = LogisticRegression(max_iter=1000).fit(X, IRIS_CLASSES[y])
    return registered(model, X, "iris", tmp_path_factory.mktemp("iris"))


@pytest.fixture(scope="module")
def mlp(tmp_path_factory: pytest.TempPathFactory) -> Case:
    """Binary with integer labels: ai.onnx.ml Scaler, then MatMul/Relu/Sigmoid."""
    X, y = load_breast_cancer(return_X_y=True)
    model = make_pipeline(StandardScaler(),
                          MLPClassifier((32, 16), max_iter=500, random_state=0)).fit(X, y)
    return registered(model, X, "cancer", tmp_path_factory.mktemp("cancer"))


@pytest.fixture(scope="module")
def regressor(tmp_path_factory: pytest.TempPathFactory) -> Case:
    """ai.onnx.ml Scaler + LinearRegressor."""
    X, y = load_diabetes(return_X_y=True)
    model = make_pipeline(StandardScaler(), Ridge()).fit(X, y)
    return registered(model, X, "diabetes", tmp_path_factory.mktemp("diabetes"))


@pytest.fixture(params=["logistic", "mlp", "regressor"])
def case(request: pytest.FixtureRequest) -> Case:
    value: Case = request.getfixturevalue(request.param)
    return value


@pytest.fixture(params=["logistic", "mlp"])
def classifier(request: pytest.FixtureRequest) -> Case:
    value: Case = request.getfixturevalue(request.param)
    return value


def reloaded(case: Case, built: BuiltCandidate) -> GraphPredictor:
    """The variant loaded as serving loads it: through the registered runtime loader, from
    the recorded settings and a reader over the stored artifacts and the version's ONNX."""
    shas = {name: hashlib.sha256(data).hexdigest() for name, data in built.artifacts.items()}
    version = dataclasses.replace(case.version, runtime=built.runtime,
                                  runtime_settings={**built.settings, "artifacts": shas})
    stored = {**built.artifacts, "onnx": case.onnx_bytes}
    loader = runtime_loader(Runtime.OPENVINO)
    assert loader is load_openvino
    return loader(version, lambda name: stored[name], None)


def assert_same_outputs(first: dict[str, np.ndarray], second: dict[str, np.ndarray]) -> None:
    assert first.keys() == second.keys()
    for name in first:
        assert first[name].dtype == second[name].dtype, name
        np.testing.assert_array_equal(first[name], second[name])


def test_candidates_are_listed() -> None:
    assert [c.name for c in CANDIDATES] == ["openvino-fp32", "openvino-bf16", "openvino-int8"]
    assert [str(c.precision) for c in CANDIDATES] == ["exact", "lossy", "lossy"]


def test_fp32_matches_onnx_runtime(case: Case) -> None:
    built, onnx = case.build("openvino-fp32"), case.onnx_runtime()
    assert built.runtime == Runtime.OPENVINO
    assert built.settings == {OPENVINO_SETTINGS: {"precision": "f32", "threads": 1,
                                                  "ir": False}}
    assert built.artifacts == {}
    names = {o.name for o in case.version.signature.outputs}
    for rows in (*BATCHES, None):
        ours, theirs = built.predictor.run_feeds(case.feeds(rows)), onnx.run_feeds(case.feeds(rows))
        assert ours.keys() == theirs.keys() == names
        for name, expected in theirs.items():
            assert ours[name].dtype == expected.dtype and ours[name].shape == expected.shape
            if expected.dtype.kind == "f":
                np.testing.assert_allclose(ours[name], expected, rtol=FLOAT_TOLERANCE,
                                           atol=FLOAT_TOLERANCE)
            else:
                np.testing.assert_array_equal(ours[name], expected)


def test_predictor_api_gives_labels_and_probabilities(logistic: Case) -> None:
    predictor = logistic.build("openvino-fp32").predictor
    labels = predictor.predict(logistic.X)
    assert set(labels) <= set(IRIS_CLASSES)
    np.testing.assert_array_equal(labels, logistic.onnx_runtime().predict(logistic.X))
    np.testing.assert_allclose(predictor.predict_proba(logistic.X).sum(axis=1), 1, atol=1e-5)


def test_fp32_round_trips_through_the_loader(case: Case) -> None:
    built = case.build("openvino-fp32")
    again = reloaded(case, built)
    assert isinstance(again, OpenVinoPredictor) and again.settings.threads == 1
    for rows in (*BATCHES, None):
        assert_same_outputs(built.predictor.run_feeds(case.feeds(rows)),
                            again.run_feeds(case.feeds(rows)))


def test_batch_sizes_change_between_calls(mlp: Case) -> None:
    predictor, onnx = mlp.build("openvino-fp32").predictor, mlp.onnx_runtime()
    for rows in (1, 64, 1, 7, 64, len(mlp.X)):
        ours, theirs = predictor.run_feeds(mlp.feeds(rows)), onnx.run_feeds(mlp.feeds(rows))
        assert ours["label"].shape == (min(rows, len(mlp.X)),)
        np.testing.assert_array_equal(ours["label"], theirs["label"])


def test_concurrent_callers_take_turns(mlp: Case) -> None:
    predictor = mlp.build("openvino-fp32").predictor
    expected = {rows: predictor.run_feeds(mlp.feeds(rows)) for rows in BATCHES}
    failures: list[str] = []

    def call(rows: int) -> None:
        for _ in range(50):
            got = predictor.run_feeds(mlp.feeds(rows))
            if not np.array_equal(got["probabilities"], expected[rows]["probabilities"]):
                failures.append(f"batch {rows} differed")

    workers = [threading.Thread(target=call, args=(BATCHES[i % 2],)) for i in range(4)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    assert failures == []


def test_int8_keeps_labels_and_round_trips(classifier: Case) -> None:
    built, onnx = classifier.build("openvino-int8"), classifier.onnx_runtime()
    assert built.settings[OPENVINO_SETTINGS]["precision"] == "int8"
    assert built.settings[OPENVINO_SETTINGS]["ir"] is True
    assert set(built.artifacts) == {IR_XML, IR_BIN}
    assert b"FakeQuantize" in built.artifacts[IR_XML]
    ours, theirs = built.predictor.run_feeds(classifier.feeds()), onnx.run_feeds(classifier.feeds())
    agreement = np.mean(ours["label"] == theirs["label"])
    assert agreement >= INT8_LABEL_AGREEMENT, agreement
    assert ours["label"].dtype == theirs["label"].dtype
    again = reloaded(classifier, built)
    for rows in (*BATCHES, None):
        assert_same_outputs(built.predictor.run_feeds(classifier.feeds(rows)),
                            again.run_feeds(classifier.feeds(rows)))


def test_int8_builds_for_a_regressor(regressor: Case) -> None:
    built = regressor.build("openvino-int8")
    values = built.predictor.run_feeds(regressor.feeds())["variable"]
    expected = regressor.onnx_runtime().run_feeds(regressor.feeds())["variable"]
    assert values.shape == expected.shape and values.dtype == np.float32
    assert np.corrcoef(values[:, 0], expected[:, 0])[0, 1] > 0.9


def test_rethread_recompiles_without_rebuilding(mlp: Case) -> None:
    for name in ("openvino-fp32", "openvino-int8"):
        built = mlp.build(name)
        assert built.rethread is not None
        other = built.rethread(Threads(intra_op=2))
        assert other.settings[OPENVINO_SETTINGS]["threads"] == 2
        assert isinstance(other.predictor, OpenVinoPredictor)
        assert other.predictor.settings.threads == 2
        assert other.predictor.ov_model is built.predictor.ov_model   # not quantized again
        assert other.artifacts is built.artifacts
        assert_same_outputs(built.predictor.run_feeds(mlp.feeds()),
                            other.predictor.run_feeds(mlp.feeds()))


def test_bf16_needs_native_bf16(mlp: Case) -> None:
    bf16 = candidate_named("openvino-bf16")
    reason = bf16.unavailable(dataclasses.replace(mlp.context, cpu_flags=frozenset({"avx2"})))
    assert reason is not None and "avx512_bf16" in reason and "amx_bf16" in reason
    with_amx = dataclasses.replace(mlp.context, cpu_flags=frozenset({"avx2", "amx_bf16"}))
    assert bf16.unavailable(with_amx) is None


def test_bf16_is_unavailable_on_this_machine(mlp: Case) -> None:
    from ferry.optimizer.machine import describe_machine

    flags = describe_machine().flags
    reason = candidate_named("openvino-bf16").unavailable(
        dataclasses.replace(mlp.context, cpu_flags=flags))
    if flags & {"avx512_bf16", "amx_bf16"}:
        pytest.skip("this CPU computes bf16 natively")
    assert reason is not None and "bf16" in reason


def test_unavailable_without_a_graph(mlp: Case) -> None:
    context = dataclasses.replace(mlp.context, onnx=None)
    for candidate in CANDIDATES:
        reason = candidate.unavailable(dataclasses.replace(
            context, cpu_flags=frozenset({"amx_bf16"})))
        assert reason is not None and "ONNX graph" in reason


def test_unavailable_for_string_inputs(mlp: Case) -> None:
    signature = dataclasses.replace(mlp.version.signature,
                                    inputs=(TensorSpec("plan", "string", (-1, 1)),))
    version = dataclasses.replace(mlp.version, signature=signature)
    reason = candidate_named("openvino-fp32").unavailable(
        dataclasses.replace(mlp.context, version=version))
    assert reason is not None and "plan" in reason and "strings" in reason


def test_unavailable_for_tree_ensembles(tmp_path: Path) -> None:
    X, y = load_iris(return_X_y=True)
    case = registered(DecisionTreeClassifier(max_depth=3).fit(X, y), X, "tree", tmp_path)
    reason = candidate_named("openvino-fp32").unavailable(case.context)
    assert reason is not None and "TreeEnsembleClassifier" in reason


def test_int8_unavailable_without_calibration_rows(mlp: Case) -> None:
    name = mlp.version.signature.inputs[0].name
    context = dataclasses.replace(mlp.context, calibration={name: mlp.X[:0]})
    reason = candidate_named("openvino-int8").unavailable(context)
    assert reason is not None and "calibration" in reason


def onnx_model(nodes: list[Any], inputs: list[Any], outputs: list[Any],
               initializers: list[Any] | None = None) -> bytes:
    graph = helper.make_graph(nodes, "g", inputs, outputs, initializers or [])
    opsets = [helper.make_opsetid("", 17), helper.make_opsetid("ai.onnx.ml", 1)]
    return helper.make_model(graph, opset_imports=opsets, ir_version=9).SerializeToString()


@pytest.mark.parametrize("transform", ["NONE", "LOGISTIC", "SOFTMAX"])
@pytest.mark.parametrize("rows", [1, 2, 3])
def test_linear_classifier_rewrite_scores_as_onnx_runtime(transform: str, rows: int) -> None:
    rng = np.random.default_rng(rows)
    classes = max(rows, 2)
    node = helper.make_node(
        "LinearClassifier", ["X"], ["label", "probabilities"], domain="ai.onnx.ml",
        coefficients=rng.normal(size=4 * rows).tolist(),
        intercepts=rng.normal(size=rows).tolist(),
        classlabels_ints=list(range(classes)), post_transform=transform)
    graph = onnx_model([node], [helper.make_tensor_value_info("X", TensorProto.FLOAT, [None, 4])],
                       [helper.make_tensor_value_info("label", TensorProto.INT64, [None]),
                        helper.make_tensor_value_info("probabilities", TensorProto.FLOAT,
                                                      [None, classes])])
    signature = Signature(
        inputs=(TensorSpec("X", "float32", (-1, 4)),),
        outputs=(TensorSpec("label", "int64", (-1,), Role.LABEL),
                 TensorSpec("probabilities", "float32", (-1, classes), Role.PROBABILITIES)),
        class_labels=tuple(range(classes)))
    if rows == 1 and transform != "LOGISTIC":   # ONNX Runtime labels these by s > 0
        with pytest.raises(UnsupportedModelError, match="LinearClassifier"):
            read_onnx(graph, signature)
        return
    X = rng.normal(size=(50, 4)).astype(np.float32)
    label, scores = ort.InferenceSession(graph).run(None, {"X": X})
    ours = OpenVinoPredictor(read_onnx(graph, signature), signature,
                             Task.CLASSIFICATION).load().run_feeds({"X": X})
    np.testing.assert_allclose(ours["probabilities"], scores, rtol=0, atol=FLOAT_TOLERANCE)
    np.testing.assert_array_equal(ours["label"], label)


def test_a_fixed_batch_becomes_dynamic() -> None:
    weights = numpy_helper.from_array(np.arange(12, dtype=np.float32).reshape(4, 3), "W")
    graph = onnx_model([helper.make_node("MatMul", ["X", "W"], ["Y"])],
                       [helper.make_tensor_value_info("X", TensorProto.FLOAT, [1, 4])],
                       [helper.make_tensor_value_info("Y", TensorProto.FLOAT, [1, 3])],
                       [weights])
    signature = Signature(inputs=(TensorSpec("X", "float32", (-1, 4)),),
                          outputs=(TensorSpec("Y", "float32", (-1, 3), Role.VALUE),))
    predictor = OpenVinoPredictor(read_onnx(graph, signature), signature, Task.OTHER,
                                  settings=OpenVinoSettings(threads=1)).load()
    for rows in BATCHES:
        X = np.ones((rows, 4), dtype=np.float32)
        np.testing.assert_array_equal(predictor.run_feeds({"X": X})["Y"],
                                      X @ numpy_helper.to_array(weights))


@pytest.mark.parametrize("targets", [1, 2])
def test_linear_regressor_and_scaler_rewrites_match_onnx_runtime(targets: int) -> None:
    rng = np.random.default_rng(targets)
    nodes = [helper.make_node("Scaler", ["X"], ["scaled"], domain="ai.onnx.ml",
                              offset=rng.normal(size=4).tolist(), scale=[0.5, 2, 1, 3]),
             helper.make_node("LinearRegressor", ["scaled"], ["Y"], domain="ai.onnx.ml",
                              coefficients=rng.normal(size=4 * targets).tolist(),
                              intercepts=rng.normal(size=targets).tolist(), targets=targets)]
    graph = onnx_model(nodes, [helper.make_tensor_value_info("X", TensorProto.FLOAT, [None, 4])],
                       [helper.make_tensor_value_info("Y", TensorProto.FLOAT, [None, targets])])
    signature = Signature(inputs=(TensorSpec("X", "float32", (-1, 4)),),
                          outputs=(TensorSpec("Y", "float32", (-1, targets), Role.VALUE),))
    X = rng.normal(size=(50, 4)).astype(np.float32)
    (expected,) = ort.InferenceSession(graph).run(None, {"X": X})
    ours = OpenVinoPredictor(read_onnx(graph, signature), signature,
                             Task.REGRESSION).load().run_feeds({"X": X})
    np.testing.assert_allclose(ours["Y"], expected, rtol=FLOAT_TOLERANCE, atol=FLOAT_TOLERANCE)
