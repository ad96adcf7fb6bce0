"""XGBoostConverter against real XGBoost models trained on scikit-learn's bundled data sets."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import xgboost
from sklearn.datasets import load_breast_cancer, load_diabetes, load_iris
from sklearn.linear_model import LogisticRegression
from tree_helpers import assert_same_outputs, check, split

from ferry.convert import converter_for
from ferry.convert.xgboost import XGBoostConverter
from ferry.errors import UnsupportedModelError
from ferry.runtime.onnx_runtime import OnnxPredictor
from ferry.signature import Layout, Role, Task


@pytest.fixture(scope="module")
def converter() -> XGBoostConverter:
    return XGBoostConverter()


@pytest.fixture(scope="module")
def binary() -> tuple[xgboost.XGBClassifier, pd.DataFrame, pd.DataFrame]:
    X, y, held_out = split(load_breast_cancer)
    return xgboost.XGBClassifier(n_estimators=20, max_depth=3, n_jobs=1).fit(X, y), X, held_out


@pytest.fixture(scope="module")
def multiclass() -> tuple[xgboost.XGBClassifier, pd.DataFrame, pd.DataFrame]:
    X, y, held_out = split(load_iris)
    return xgboost.XGBClassifier(n_estimators=20, max_depth=3, n_jobs=1).fit(X, y), X, held_out


@pytest.fixture(scope="module")
def regressor() -> tuple[xgboost.XGBRegressor, pd.DataFrame, pd.DataFrame]:
    X, y, held_out = split(load_diabetes)
    return xgboost.XGBRegressor(n_estimators=20, max_depth=3, n_jobs=1).fit(X, y), X, held_out


def test_registered_by_name() -> None:
    assert isinstance(converter_for("xgboost"), XGBoostConverter)


def test_binary_classifier_converts(converter: XGBoostConverter, binary: Any) -> None:
    model, X, held_out = binary
    conversion = converter.convert(model, X.head(20))

    result = check(converter, model, conversion, held_out)

    assert result.passed, [o.describe() for o in result.outputs]
    assert conversion.task == Task.CLASSIFICATION
    signature = conversion.signature
    assert signature.layout == Layout.TENSOR
    assert [(i.name, i.dtype, i.shape) for i in signature.inputs] == [("X", "float32", (-1, 30))]
    assert signature.feature_names == tuple(X.columns)
    assert signature.class_labels == (0, 1)
    assert [(o.role, o.shape) for o in signature.outputs] == [
        (Role.LABEL, (-1,)), (Role.PROBABILITIES, (-1, 2))]
    assert "ZipMap" not in {node.op_type for node in conversion.onnx_model.graph.node}


def test_multiclass_classifier_converts(converter: XGBoostConverter, multiclass: Any) -> None:
    model, X, held_out = multiclass
    conversion = converter.convert(model, X.head(20))

    result = check(converter, model, conversion, held_out)

    assert result.passed, [o.describe() for o in result.outputs]
    assert {o.role: o.label_agreement for o in result.outputs}["label"] == 1.0
    assert conversion.signature.class_labels == (0, 1, 2)
    probabilities = conversion.signature.output(Role.PROBABILITIES)
    assert probabilities is not None and probabilities.shape == (-1, 3)


def test_regressor_converts(converter: XGBoostConverter, regressor: Any) -> None:
    model, X, held_out = regressor
    conversion = converter.convert(model, X.head(20))

    result = check(converter, model, conversion, held_out)

    assert result.passed, [o.describe() for o in result.outputs]
    assert conversion.task == Task.REGRESSION
    assert [o.role for o in conversion.signature.outputs] == [Role.VALUE]
    assert conversion.signature.class_labels is None


def test_onnx_form_reads_columns_by_name(converter: XGBoostConverter, regressor: Any) -> None:
    model, X, held_out = regressor
    conversion = converter.convert(model, X.head(20))
    predictor = OnnxPredictor(conversion.onnx_model.SerializeToString(), conversion.signature,
                              conversion.task).load()

    shuffled = held_out[list(reversed(held_out.columns))]

    np.testing.assert_array_equal(predictor.predict(shuffled), predictor.predict(held_out))


@pytest.mark.parametrize("fixture", ["binary", "multiclass", "regressor"])
def test_save_load_round_trip(converter: XGBoostConverter, fixture: str,
                              request: pytest.FixtureRequest) -> None:
    model, _, held_out = request.getfixturevalue(fixture)

    saved = converter.save(model)
    loaded = converter.load(saved)

    assert saved.format == f"xgboost-json:{type(model).__name__}"
    assert json.loads(saved.data)["learner"]  # XGBoost's own JSON, not a pickle
    assert type(loaded) is type(model)
    assert_same_outputs(converter.reference(model, held_out), converter.reference(loaded, held_out))


@pytest.mark.parametrize("suffix", [".json", ".ubj"])
def test_read_file_rebuilds_the_saved_wrapper(converter: XGBoostConverter, binary: Any,
                                              tmp_path: Path, suffix: str) -> None:
    model, _, held_out = binary
    path = tmp_path / f"model{suffix}"
    model.save_model(path)

    read = converter.read_file(path)

    assert isinstance(read, xgboost.XGBClassifier)
    assert_same_outputs(converter.reference(model, held_out), converter.reference(read, held_out))


def test_read_file_gives_a_booster_for_a_booster_file(converter: XGBoostConverter, regressor: Any,
                                                      tmp_path: Path) -> None:
    model, _, held_out = regressor
    path = tmp_path / "booster.ubj"
    model.get_booster().save_model(path)

    read = converter.read_file(path)

    assert isinstance(read, xgboost.Booster)
    np.testing.assert_array_equal(converter.reference(read, held_out)[Role.VALUE],
                                  model.predict(held_out))


def test_read_file_refuses_other_files(converter: XGBoostConverter, tmp_path: Path) -> None:
    garbage = tmp_path / "model.json"
    garbage.write_text("{not a model")

    with pytest.raises(UnsupportedModelError, match=r"model\.json"):
        converter.read_file(garbage)
    with pytest.raises(UnsupportedModelError, match=r"model\.pkl"):
        converter.read_file(tmp_path / "model.pkl")


BOOSTERS = [
    (load_breast_cancer, {"objective": "binary:logistic"}, Task.CLASSIFICATION, (0, 1)),
    (load_iris, {"objective": "multi:softprob", "num_class": 3}, Task.CLASSIFICATION, (0, 1, 2)),
    (load_iris, {"objective": "multi:softmax", "num_class": 3}, Task.CLASSIFICATION, (0, 1, 2)),
    (load_diabetes, {"objective": "reg:squarederror"}, Task.REGRESSION, None),
]


@pytest.mark.parametrize(("loader", "params", "task", "labels"), BOOSTERS,
                         ids=[p["objective"] for _, p, _, _ in BOOSTERS])
def test_raw_booster(converter: XGBoostConverter, loader: Callable[..., Any],
                     params: dict[str, Any], task: Task, labels: tuple[int, ...] | None) -> None:
    X, y, held_out = split(loader)
    params = {**params, "max_depth": 3, "nthread": 1}
    booster = xgboost.train(params, xgboost.DMatrix(X.to_numpy(), y), num_boost_round=10)
    rows = held_out.to_numpy()

    conversion = converter.convert(booster, None)
    result = check(converter, booster, conversion, rows)

    assert converter.matches(booster)
    assert converter.task(booster) == task
    assert result.passed, [o.describe() for o in result.outputs]
    assert conversion.signature.class_labels == labels
    assert conversion.signature.feature_names is None
    loaded = converter.load(converter.save(booster))
    assert isinstance(loaded, xgboost.Booster)
    assert_same_outputs(converter.reference(booster, rows), converter.reference(loaded, rows))


def test_raw_booster_probabilities_match_the_wrapper(converter: XGBoostConverter,
                                                     multiclass: Any) -> None:
    model, _, held_out = multiclass

    outputs = converter.reference(model.get_booster(), held_out)

    np.testing.assert_allclose(outputs[Role.PROBABILITIES], model.predict_proba(held_out))
    np.testing.assert_array_equal(outputs[Role.LABEL], model.predict(held_out))


def test_unconvertible_model_names_its_class(converter: XGBoostConverter) -> None:
    X, y, _ = split(load_breast_cancer)
    model = xgboost.XGBClassifier(n_estimators=2, objective="binary:logitraw", n_jobs=1)
    model.fit(X, y)

    with pytest.raises(UnsupportedModelError) as caught:
        converter.convert(model, X.head(5))

    message = str(caught.value)
    assert "XGBClassifier" in message and "force=True" in message
    assert "\n" not in message


def test_matches(converter: XGBoostConverter, binary: Any) -> None:
    model = binary[0]
    assert converter.matches(model)
    assert converter.matches(model.get_booster())
    assert not converter.matches(LogisticRegression())
    assert not converter.matches(object())


def test_matching_a_sklearn_model_does_not_import_xgboost(
        converter: XGBoostConverter, binary: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "xgboost", None)  # `import xgboost` now raises ImportError

    assert not converter.matches(LogisticRegression())
    with pytest.raises(ImportError):  # the guard bites: an XGBoost model does import it
        converter.matches(binary[0])
