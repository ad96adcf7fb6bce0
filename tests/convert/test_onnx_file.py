"""OnnxConverter: ONNX files registered as they are, checked, described and run."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper
from skl2onnx import to_onnx
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression

from ferry.convert import converter_for, find_converter
from ferry.convert.base import SavedOriginal
from ferry.convert.check import compare
from ferry.convert.onnx_file import OnnxConverter
from ferry.convert.sklearn import TARGET_OPSET
from ferry.errors import CorruptArtifactError, InvalidInputError, UnsupportedModelError
from ferry.runtime.onnx_runtime import OnnxPredictor
from ferry.signature import DYNAMIC, Layout, Role, Task

WEIGHTS = np.array([[1.0, -2.0], [0.5, 0.0], [-1.5, 3.0]], dtype=np.float32)
BIAS = np.array([0.25, -1.0], dtype=np.float32)


def _affine_model(batch: int | str = "N",
                  output_shape: list[int | str | None] | None = None) -> onnx.ModelProto:
    """Y = X @ WEIGHTS + BIAS, built with onnx.helper (IR 10, which every current ORT runs)."""
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["X", "W"], ["XW"]),
         helper.make_node("Add", ["XW", "B"], ["Y"])],
        "affine",
        [helper.make_tensor_value_info("X", TensorProto.FLOAT, [batch, 3])],
        [helper.make_tensor_value_info("Y", TensorProto.FLOAT, output_shape or [batch, 2])],
        initializer=[onnx.numpy_helper.from_array(WEIGHTS, "W"),
                     onnx.numpy_helper.from_array(BIAS, "B")],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=10)


def _write(tmp_path: Path, name: str, data: bytes) -> Path:
    path = tmp_path / name
    path.write_bytes(data)
    return path


@pytest.fixture(scope="module")
def iris() -> tuple[np.ndarray, np.ndarray]:
    data = load_iris()
    return data.data.astype(np.float32), data.target


@pytest.fixture(scope="module")
def logistic(iris: tuple[np.ndarray, np.ndarray]) -> LogisticRegression:
    X, y = iris
    return LogisticRegression(max_iter=1000).fit(X, y)


def _logistic_onnx(model: LogisticRegression, X: np.ndarray, zipmap: bool) -> onnx.ModelProto:
    return to_onnx(model, X[:1], options={"zipmap": zipmap}, target_opset=TARGET_OPSET)


def test_skl2onnx_classifier_gets_label_and_probabilities(
    tmp_path: Path, iris: tuple[np.ndarray, np.ndarray], logistic: LogisticRegression
) -> None:
    X, _ = iris
    path = _write(tmp_path, "iris.onnx",
                  _logistic_onnx(logistic, X, zipmap=False).SerializeToString())
    converter = OnnxConverter()
    model = converter.read_file(path)
    conversion = converter.convert(model, X[:20])

    assert conversion.task == Task.CLASSIFICATION == converter.task(model)
    assert conversion.onnx_model is model
    signature = conversion.signature
    assert [(o.name, o.role) for o in signature.outputs] == [
        ("label", Role.LABEL), ("probabilities", Role.PROBABILITIES)]
    assert signature.output(Role.LABEL).dtype == "int64"  # type: ignore[union-attr]
    assert [(i.name, i.dtype, i.shape) for i in signature.inputs] == [("X", "float32",
                                                                        (DYNAMIC, 4))]
    assert signature.layout == Layout.TENSOR
    assert signature.class_labels is None

    outputs = OnnxPredictor(model.SerializeToString(), signature, conversion.task).load().outputs(X)
    check = compare(converter.reference(model, X), outputs, data="sample")
    assert check.passed
    assert np.mean(outputs[Role.LABEL] == logistic.predict(X)) == 1.0
    np.testing.assert_allclose(outputs[Role.PROBABILITIES], logistic.predict_proba(X),
                               rtol=1e-4, atol=1e-5)


def test_zipmap_output_is_not_a_probability_tensor(
    iris: tuple[np.ndarray, np.ndarray], logistic: LogisticRegression
) -> None:
    X, _ = iris
    conversion = OnnxConverter().convert(_logistic_onnx(logistic, X, zipmap=True), None)
    assert conversion.task == Task.OTHER
    assert [o.role for o in conversion.signature.outputs] == [Role.VALUE, None]


def test_helper_graph_is_other_and_runs(tmp_path: Path) -> None:
    path = _write(tmp_path, "affine.onnx", _affine_model().SerializeToString())
    converter = OnnxConverter()
    model = converter.read_file(path)
    conversion = converter.convert(model, None)

    assert conversion.task == Task.OTHER
    assert [(o.name, o.dtype, o.shape, o.role) for o in conversion.signature.outputs] == [
        ("Y", "float32", (DYNAMIC, 2), Role.VALUE)]
    assert [i.name for i in conversion.signature.inputs] == ["X"]  # initializers are not inputs
    rows = np.random.default_rng(0).normal(size=(7, 3)).astype(np.float32)
    predictor = OnnxPredictor(model.SerializeToString(), conversion.signature,
                              conversion.task).load()
    outputs = predictor.outputs(rows)
    np.testing.assert_allclose(outputs[Role.VALUE], rows @ WEIGHTS + BIAS, rtol=1e-6)
    assert compare(converter.reference(model, rows), outputs, data="sample").passed


def test_fixed_batch_dimension_is_recorded_as_is() -> None:
    conversion = OnnxConverter().convert(_affine_model(batch=1), None)
    assert conversion.signature.inputs[0].shape == (1, 3)
    assert conversion.signature.outputs[0].shape == (1, 2)


def test_output_shapes_come_from_inference() -> None:
    model = _affine_model(output_shape=[None, None])
    conversion = OnnxConverter().convert(model, None)
    assert conversion.signature.outputs[0].shape == (DYNAMIC, 2)


def test_truncated_file_is_refused_in_one_line(tmp_path: Path) -> None:
    data = _affine_model().SerializeToString()
    path = _write(tmp_path, "truncated.onnx", data[: len(data) // 2])
    with pytest.raises(InvalidInputError, match=r"truncated\.onnx") as raised:
        OnnxConverter().read_file(path)
    assert "\n" not in str(raised.value)


def test_garbage_file_is_refused_in_one_line(tmp_path: Path) -> None:
    path = _write(tmp_path, "garbage.onnx", bytes(range(256)) * 8)
    with pytest.raises(InvalidInputError, match=r"garbage\.onnx") as raised:
        OnnxConverter().read_file(path)
    assert "\n" not in str(raised.value)


def test_empty_file_is_refused(tmp_path: Path) -> None:
    with pytest.raises(InvalidInputError, match=r"empty\.onnx is not a valid ONNX model"):
        OnnxConverter().read_file(_write(tmp_path, "empty.onnx", b""))


def test_invalid_graph_is_refused(tmp_path: Path) -> None:
    model = _affine_model()
    model.graph.node[1].input[0] = "missing"
    path = _write(tmp_path, "invalid.onnx", model.SerializeToString())
    with pytest.raises(InvalidInputError, match=r"invalid\.onnx is not a valid") as raised:
        OnnxConverter().read_file(path)
    assert "\n" not in str(raised.value)


def test_mistyped_graph_fails_strict_shape_inference() -> None:
    model = _affine_model()
    model.graph.output[0].type.tensor_type.elem_type = TensorProto.INT64
    with pytest.raises(InvalidInputError, match="not a valid ONNX model"):
        OnnxConverter().convert(model, None)


def test_save_and_load_round_trip() -> None:
    converter = OnnxConverter()
    model = _affine_model()
    saved = converter.save(model)
    assert saved.format == "onnx"
    assert converter.load(saved) == model
    with pytest.raises(CorruptArtifactError):
        converter.load(SavedOriginal(b"\xff" * 64, "onnx"))


def test_matches_and_registration() -> None:
    converter = OnnxConverter()
    model = _affine_model()
    assert converter.matches(model)
    assert not converter.matches(object())
    assert isinstance(converter_for("onnx"), OnnxConverter)
    assert find_converter(model).framework == "onnx"
    with pytest.raises(UnsupportedModelError):
        converter.convert(object(), None)


def test_other_suffixes_are_not_read(tmp_path: Path) -> None:
    path = _write(tmp_path, "model.bin", _affine_model().SerializeToString())
    with pytest.raises(UnsupportedModelError):
        OnnxConverter().read_file(path)


def test_model_the_runtime_cannot_load_is_refused_in_one_line() -> None:
    model = _affine_model()
    model.ir_version = onnx.IR_VERSION
    try:
        ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    except Exception:
        pass
    else:
        pytest.skip(f"onnxruntime {ort.__version__} runs IR version {onnx.IR_VERSION}")
    with pytest.raises(UnsupportedModelError, match="cannot load the ONNX model") as raised:
        OnnxConverter().reference(model, np.zeros((2, 3), dtype=np.float32))
    assert "\n" not in str(raised.value)


def test_skl2onnx_gradient_boosting_file_that_strict_inference_cannot_type(
        tmp_path: Path) -> None:
    """ONNX's strict shape inference cannot type the Identity after skl2onnx's
    TreeEnsembleClassifier; ONNX Runtime runs the file, so ferry accepts it."""
    from sklearn.datasets import make_classification
    from sklearn.ensemble import GradientBoostingClassifier
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import StandardScaler

    x, y = make_classification(200, 20, random_state=0)
    x = x.astype(np.float32)
    pipe = Pipeline([("scale", StandardScaler()),
                     ("boost", GradientBoostingClassifier(n_estimators=5))]).fit(x, y)
    model = to_onnx(pipe, x[:1], options={id(pipe.steps[-1][1]): {"zipmap": False}},
                    target_opset={"": 17, "ai.onnx.ml": 3})
    path = tmp_path / "gb.onnx"
    path.write_bytes(model.SerializeToString())
    with pytest.raises(onnx.shape_inference.InferenceError):
        onnx.shape_inference.infer_shapes(model, strict_mode=True)

    converter = OnnxConverter()
    conversion = converter.convert(converter.read_file(path), x[:10])

    assert conversion.task == Task.CLASSIFICATION
    predictor = OnnxPredictor(conversion.onnx_model.SerializeToString(), conversion.signature,
                              conversion.task).load()
    np.testing.assert_array_equal(predictor.predict(x[:20]), pipe.predict(x[:20]))
