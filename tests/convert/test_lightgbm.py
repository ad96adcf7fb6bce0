"""LightGBMConverter against real LightGBM models trained on scikit-learn's bundled data sets."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import lightgbm
import numpy as np
import pandas as pd
import pytest
from sklearn.datasets import load_breast_cancer, load_diabetes, load_iris
from sklearn.linear_model import LinearRegression
from tree_helpers import assert_same_outputs, check, split

from ferry.convert import converter_for
from ferry.convert.lightgbm import LightGBMConverter, LightGBMModel
from ferry.errors import UnsupportedModelError
from ferry.signature import Layout, Role, Task

SMALL = {"n_estimators": 20, "num_leaves": 15, "n_jobs": 1, "verbose": -1}


@pytest.fixture(scope="module")
def converter() -> LightGBMConverter:
    return LightGBMConverter()


@pytest.fixture(scope="module")
def regressor() -> tuple[lightgbm.LGBMRegressor, pd.DataFrame, pd.DataFrame]:
    X, y, held_out = split(load_diabetes)
    return lightgbm.LGBMRegressor(**SMALL).fit(X, y), X, held_out


@pytest.fixture(scope="module")
def binary() -> tuple[lightgbm.LGBMClassifier, pd.DataFrame, pd.DataFrame]:
    X, y, held_out = split(load_breast_cancer)
    return lightgbm.LGBMClassifier(**SMALL).fit(X, y), X, held_out


@pytest.fixture(scope="module")
def named_classes() -> tuple[lightgbm.LGBMClassifier, pd.DataFrame, pd.DataFrame]:
    """Iris with its species names as labels, which the booster alone does not know."""
    X, y, held_out = split(load_iris)
    species = np.asarray(load_iris().target_names)[y.to_numpy()]
    return lightgbm.LGBMClassifier(**SMALL).fit(X, species), X, held_out


def test_registered_by_name() -> None:
    assert isinstance(converter_for("lightgbm"), LightGBMConverter)


def test_regressor_converts(converter: LightGBMConverter, regressor: Any) -> None:
    model, X, held_out = regressor
    conversion = converter.convert(model, X.head(20))

    result = check(converter, model, conversion, held_out)

    assert result.passed, [o.describe() for o in result.outputs]
    assert conversion.task == Task.REGRESSION
    signature = conversion.signature
    assert signature.layout == Layout.TENSOR
    assert [(i.name, i.dtype, i.shape) for i in signature.inputs] == [("X", "float32", (-1, 10))]
    assert signature.feature_names == tuple(X.columns)
    assert [o.role for o in signature.outputs] == [Role.VALUE]
    assert signature.class_labels is None


def test_binary_classifier_converts(converter: LightGBMConverter, binary: Any) -> None:
    model, X, held_out = binary
    conversion = converter.convert(model, X.head(20))

    result = check(converter, model, conversion, held_out)

    assert result.passed, [o.describe() for o in result.outputs]
    assert conversion.signature.class_labels == (0, 1)
    assert [(o.role, o.shape) for o in conversion.signature.outputs] == [
        (Role.LABEL, (-1,)), (Role.PROBABILITIES, (-1, 2))]  # label's batch axis made dynamic
    assert "ZipMap" not in {node.op_type for node in conversion.onnx_model.graph.node}


def test_classifier_with_string_classes_converts(converter: LightGBMConverter,
                                                 named_classes: Any) -> None:
    model, X, held_out = named_classes
    conversion = converter.convert(model, X.head(20))

    result = check(converter, model, conversion, held_out)

    assert result.passed, [o.describe() for o in result.outputs]
    assert conversion.signature.class_labels == ("setosa", "versicolor", "virginica")
    label = conversion.signature.output(Role.LABEL)
    assert label is not None and label.dtype == "string"


@pytest.mark.parametrize(("fixture", "saved_format"), [
    ("regressor", "lightgbm-text:LGBMRegressor"),
    ("binary", "lightgbm-text:LGBMClassifier"),
    ("named_classes", "lightgbm-json:LGBMClassifier"),
])
def test_save_load_round_trip(converter: LightGBMConverter, fixture: str, saved_format: str,
                              request: pytest.FixtureRequest) -> None:
    model, _, held_out = request.getfixturevalue(fixture)

    saved = converter.save(model)
    loaded = converter.load(saved)

    assert saved.format == saved_format
    text = json.loads(saved.data)["model"] if "json" in saved_format else saved.data.decode()
    assert text == model.booster_.model_to_string()
    assert isinstance(loaded, LightGBMModel)
    assert converter.matches(loaded)
    assert converter.task(loaded) == converter.task(model)
    assert_same_outputs(converter.reference(model, held_out), converter.reference(loaded, held_out))


def test_loaded_model_converts_and_saves_again(converter: LightGBMConverter,
                                               named_classes: Any) -> None:
    model, X, held_out = named_classes
    loaded = converter.load(converter.save(model))

    conversion = converter.convert(loaded, X.head(20))

    assert check(converter, loaded, conversion, held_out).passed
    assert conversion.signature.class_labels == ("setosa", "versicolor", "virginica")
    assert converter.save(loaded) == converter.save(model)


def test_read_file(converter: LightGBMConverter, regressor: Any, tmp_path: Path) -> None:
    model, _, held_out = regressor
    path = tmp_path / "model.txt"
    model.booster_.save_model(path)

    read = converter.read_file(path)

    assert isinstance(read, lightgbm.Booster)
    np.testing.assert_array_equal(converter.reference(read, held_out)[Role.VALUE],
                                  model.predict(held_out))


def test_read_file_refuses_other_files(converter: LightGBMConverter, tmp_path: Path) -> None:
    garbage = tmp_path / "model.lgb"
    garbage.write_text("not a model\n")

    with pytest.raises(UnsupportedModelError, match=r"model\.lgb"):
        converter.read_file(garbage)
    with pytest.raises(UnsupportedModelError, match=r"model\.pkl"):
        converter.read_file(tmp_path / "model.pkl")


BOOSTERS = [
    (load_breast_cancer, {"objective": "binary"}, Task.CLASSIFICATION, (0, 1)),
    (load_iris, {"objective": "multiclass", "num_class": 3}, Task.CLASSIFICATION, (0, 1, 2)),
    (load_diabetes, {"objective": "l2"}, Task.REGRESSION, None),
]


@pytest.mark.parametrize(("loader", "params", "task", "labels"), BOOSTERS,
                         ids=[p["objective"] for _, p, _, _ in BOOSTERS])
def test_raw_booster(converter: LightGBMConverter, loader: Callable[..., Any],
                     params: dict[str, Any], task: Task, labels: tuple[int, ...] | None) -> None:
    X, y, held_out = split(loader)
    params = {**params, "num_leaves": 15, "num_threads": 1, "verbose": -1}
    booster = lightgbm.train(params, lightgbm.Dataset(X.to_numpy(), y), num_boost_round=20)
    rows = held_out.to_numpy()

    conversion = converter.convert(booster, None)
    result = check(converter, booster, conversion, rows)

    assert converter.matches(booster)
    assert converter.task(booster) == task
    assert result.passed, [o.describe() for o in result.outputs]
    assert conversion.signature.class_labels == labels
    saved = converter.save(booster)
    loaded = converter.load(saved)
    assert saved.format == "lightgbm-text:Booster"
    assert isinstance(loaded, lightgbm.Booster)
    assert_same_outputs(converter.reference(booster, rows), converter.reference(loaded, rows))


def test_raw_booster_outputs_match_the_wrapper(converter: LightGBMConverter,
                                               binary: Any) -> None:
    model, _, held_out = binary

    outputs = converter.reference(model.booster_, held_out)

    np.testing.assert_array_equal(outputs[Role.PROBABILITIES], model.predict_proba(held_out))
    np.testing.assert_array_equal(outputs[Role.LABEL], model.predict(held_out))


def test_unconvertible_model_names_its_class(converter: LightGBMConverter) -> None:
    X, y, _ = split(load_diabetes)
    model = lightgbm.LGBMRegressor(**SMALL, objective="mape").fit(X, y)  # onnxmltools refuses it

    with pytest.raises(UnsupportedModelError) as caught:
        converter.convert(model, X.head(5))

    message = str(caught.value)
    assert "LGBMRegressor" in message and "force=True" in message
    assert "\n" not in message


def test_matches(converter: LightGBMConverter, regressor: Any) -> None:
    model = regressor[0]
    assert converter.matches(model)
    assert converter.matches(model.booster_)
    assert not converter.matches(LinearRegression())
    assert not converter.matches(object())


def test_matching_a_sklearn_model_does_not_import_lightgbm(
        converter: LightGBMConverter, regressor: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "lightgbm", None)  # `import lightgbm` now raises ImportError

    assert not converter.matches(LinearRegression())
    with pytest.raises(ImportError):  # the guard bites: a LightGBM model does import it
        converter.matches(regressor[0])
