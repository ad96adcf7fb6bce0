"""scikit-learn estimators and pipelines, through skl2onnx.

A DataFrame sample with string columns, or a pipeline with a ColumnTransformer, gives the
`columns` layout (one input per column), so that the exported graph applies the pipeline's
own preprocessing to named columns. Numbers-only data gives one float32 `X` input. The
thresholds of tree models (and of a pipeline's final tree model) are set to the float32 on
which every float32 input takes the original's branch (`ferry.convert.trees`): skl2onnx
already does so for trees and forests, not for HistGradientBoosting, which compares doubles.
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import joblib
import numpy as np
import pandas as pd
import sklearn
from sklearn.base import BaseEstimator, is_classifier, is_regressor
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import (
    ExtraTreesClassifier,
    ExtraTreesRegressor,
    GradientBoostingClassifier,
    GradientBoostingRegressor,
    HistGradientBoostingClassifier,
    HistGradientBoostingRegressor,
    RandomForestClassifier,
    RandomForestRegressor,
)
from sklearn.pipeline import Pipeline
from sklearn.tree import BaseDecisionTree

from ferry.convert.base import (
    Conversion,
    Converter,
    Sample,
    SavedOriginal,
    class_labels,
)
from ferry.convert.trees import Splits, exact_thresholds
from ferry.errors import UnsupportedModelError, one_line
from ferry.runtime.predictor import Outputs
from ferry.signature import Layout, Role, Signature, Task, tensor_specs

TARGET_OPSET = {"": 17, "ai.onnx.ml": 3}
"""ONNX opsets the converters target: opset 17 with ONNX-ML 3 runs on every current ORT."""


class SklearnConverter(Converter):
    framework = "sklearn"

    def matches(self, model: object) -> bool:
        """Any estimator following scikit-learn's API (tried after XGBoost and LightGBM)."""
        return isinstance(model, BaseEstimator)

    def framework_version(self) -> str:
        return str(sklearn.__version__)

    def task(self, model: object) -> Task:
        if is_classifier(model):
            return Task.CLASSIFICATION
        return Task.REGRESSION if is_regressor(model) else Task.OTHER

    def convert(self, model: object, sample: Sample | None) -> Conversion:
        from skl2onnx import convert_sklearn

        layout, initial_types, names = _initial_types(model, sample)
        task = self.task(model)
        options = {"zipmap": False} if task == Task.CLASSIFICATION else None
        try:
            with _protobuf_bool_fix():
                onnx_model = convert_sklearn(model, initial_types=initial_types,
                                             options=options, target_opset=TARGET_OPSET)
        except Exception as exc:
            raise UnsupportedModelError(
                f"skl2onnx cannot convert {type(model).__name__}: {one_line(exc)};"
                " register it with force=True to serve it natively"
            ) from exc
        exact_thresholds(onnx_model, tree_splits(model))
        signature = build_signature(onnx_model, task, layout, names, class_labels(model))
        return Conversion(onnx_model=onnx_model, signature=signature, task=task)

    def reference(self, model: object, data: Sample) -> Outputs:
        return estimator_outputs(model, data, self.task(model))

    def save(self, model: object, sample: Sample | None = None) -> SavedOriginal:
        buffer = io.BytesIO()
        joblib.dump(model, buffer)
        return SavedOriginal(buffer.getvalue(), "joblib")

    def load(self, saved: SavedOriginal) -> object:
        return joblib.load(io.BytesIO(saved.data))


def estimator_outputs(model: Any, data: Sample, task: Task) -> Outputs:
    """The outputs of any estimator with scikit-learn's `predict` / `predict_proba`."""
    if task == Task.CLASSIFICATION:
        outputs: Outputs = {Role.LABEL: np.asarray(model.predict(data)).reshape(-1)}
        if hasattr(model, "predict_proba"):
            outputs[Role.PROBABILITIES] = np.asarray(model.predict_proba(data))
        return outputs
    return {Role.VALUE: np.asarray(model.predict(data))}


def build_signature(onnx_model: Any, task: Task, layout: Layout, names: tuple[str, ...] | None,
                    labels: tuple[Any, ...] | None) -> Signature:
    """The signature of a converted classifier (label, probabilities) or regressor (value)."""
    graph = onnx_model.graph
    outputs = [o.name for o in graph.output]
    if task == Task.CLASSIFICATION and len(outputs) >= 2:
        roles = {outputs[0]: Role.LABEL, outputs[1]: Role.PROBABILITIES}
    else:
        roles = {outputs[0]: Role.VALUE}
    return Signature(inputs=tensor_specs(graph.input), outputs=tensor_specs(graph.output, roles),
                     layout=layout, feature_names=names, class_labels=labels)


FORESTS = (RandomForestClassifier, RandomForestRegressor, ExtraTreesClassifier,
           ExtraTreesRegressor)
BOOSTED = (GradientBoostingClassifier, GradientBoostingRegressor)
HISTOGRAM_BOOSTED = (HistGradientBoostingClassifier, HistGradientBoostingRegressor)


def tree_splits(model: object) -> Splits:
    """The double thresholds of a tree model (or a pipeline ending in one), numbered by tree
    as skl2onnx numbers them; none for other estimators. Trees compare `float32(x) <= t`,
    HistGradientBoosting `double(x) <= t`: on float32 inputs both keep the same float32."""
    estimator = model.steps[-1][1] if isinstance(model, Pipeline) else model
    return Splits.from_trees(_numbered_trees(estimator))


def _numbered_trees(estimator: Any) -> Iterator[tuple[int, np.ndarray, np.ndarray, np.ndarray]]:
    if isinstance(estimator, BaseDecisionTree):
        yield 0, *_cart_splits(estimator.tree_)
    elif isinstance(estimator, FORESTS):
        for index, tree in enumerate(estimator.estimators_):
            yield index, *_cart_splits(tree.tree_)
    elif isinstance(estimator, BOOSTED):
        per_stage = estimator.estimators_.shape[1]
        for (stage, output), tree in np.ndenumerate(estimator.estimators_):
            yield stage * per_stage + output, *_cart_splits(tree.tree_)
    elif isinstance(estimator, HISTOGRAM_BOOSTED):
        for stage, predictors in enumerate(estimator._predictors):  # as skl2onnx reads them
            for output, predictor in enumerate(predictors):
                yield stage * len(predictors) + output, *_histogram_splits(predictor.nodes)


def _cart_splits(tree: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """skl2onnx keeps the tree's node ids."""
    split = np.flatnonzero(tree.children_left != -1)
    return split, tree.feature[split], tree.threshold[split]


def _histogram_splits(nodes: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """skl2onnx keeps the predictor's node ids; categorical splits are not compared."""
    split = ~nodes["is_leaf"].astype(bool)
    if "is_categorical" in (nodes.dtype.names or ()):
        split &= ~nodes["is_categorical"].astype(bool)
    ids = np.flatnonzero(split)
    return ids, nodes["feature_idx"][ids], nodes["num_threshold"][ids]


def _initial_types(model: object, sample: Sample | None) -> tuple[Layout, list[Any], Any]:
    from skl2onnx.common.data_types import FloatTensorType, StringTensorType

    expected = getattr(model, "feature_names_in_", None)
    if isinstance(sample, pd.DataFrame) and expected is not None:
        sample = sample[[str(c) for c in expected]]
    if isinstance(sample, pd.DataFrame):
        names = tuple(str(c) for c in sample.columns)
        numeric = [pd.api.types.is_numeric_dtype(sample[c]) for c in sample.columns]
        if not all(numeric) or _has_column_transformer(model):
            types = [(name, FloatTensorType([None, 1]) if is_num else StringTensorType([None, 1]))
                     for name, is_num in zip(names, numeric, strict=True)]
            return Layout.COLUMNS, types, names
        return Layout.TENSOR, [("X", FloatTensorType([None, len(names)]))], names
    n_features = (sample.shape[1] if isinstance(sample, np.ndarray)
                  else getattr(model, "n_features_in_", None))
    if n_features is None:
        raise UnsupportedModelError(
            f"cannot tell how many features {type(model).__name__} takes: pass a sample"
        )
    return Layout.TENSOR, [("X", FloatTensorType([None, int(n_features)]))], None


def _has_column_transformer(model: object) -> bool:
    if isinstance(model, ColumnTransformer):
        return True
    params = model.get_params(deep=True) if isinstance(model, BaseEstimator) else {}
    return any(isinstance(v, ColumnTransformer) for v in params.values())


@contextmanager
def _protobuf_bool_fix() -> Iterator[None]:
    """skl2onnx 1.20 passes Python booleans for the integer attribute
    `nodes_missing_value_tracks_true` of tree ensembles from HistGradientBoosting*;
    protobuf 7 refuses them ("Expected an int, got a boolean"). Cast them while converting."""
    import skl2onnx.common.tree_ensemble as tree_ensemble

    original = tree_ensemble.add_node

    def add_node(*args: Any, nodes_missing_value_tracks_true: Any = 0, **kwargs: Any) -> Any:
        return original(*args, nodes_missing_value_tracks_true=int(nodes_missing_value_tracks_true),
                        **kwargs)

    tree_ensemble.add_node = add_node
    try:
        yield
    finally:
        tree_ensemble.add_node = original

