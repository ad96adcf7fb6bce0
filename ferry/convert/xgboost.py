"""XGBoost models (`XGBClassifier`, `XGBRegressor`, a raw `Booster`), through onnxmltools.

Conversion path: `onnxmltools.convert_xgboost(model, initial_types=[("X", FloatTensorType([None,
n_features]))], target_opset=15)`. onnxmltools 1.16 takes `target_opset` as an int only (a dict
such as `{"": 15, "ai.onnx.ml": 3}` raises TypeError) and refuses anything above 15 ("higher
than ... the converter support (15)"); the graph it writes imports only `ai.onnx.ml` 1 (the
TreeEnsemble operators), which every current ONNX Runtime runs. Classifiers give `label`
(int64, `[N]`) and `probabilities` (float32, `[N, n_classes]`, no ZipMap); regressors give
one `variable` (float32, `[N, 1]`).

onnxmltools reads split features as `f<index>`, so a model trained on a DataFrame (whose
booster carries the column names) is converted from a copy whose booster has no feature names;
the signature keeps the names, taken from the model when it knows them, else from a DataFrame
sample's columns. For `multi:softmax` models onnxmltools writes raw margins as probabilities;
the converter sets the ensemble's post-transform to SOFTMAX, as `predict_proba` does.
Thresholds go through `ferry.convert.trees.exact_thresholds`; XGBoost's are float32 already
and compared as `x < t`, so they come out unchanged.

A raw Booster's task comes from its objective: `binary:*` and `multi:*` classify (the reference
understands `binary:logistic`, `multi:softprob` and `multi:softmax`), `reg:*`, `count:*` and
`survival:*` regress, anything else (ranking) is `other`. Originals are saved in XGBoost's own
JSON format, never pickled: format `xgboost-json:<class>`, where the class (`Booster`,
`XGBClassifier`, `XGBRegressor`, ...) says what `load()` rebuilds.
"""

from __future__ import annotations

import copy
import json
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import onnx
import pandas as pd

from ferry.convert.base import (
    Conversion,
    Converter,
    Sample,
    SavedOriginal,
    class_labels,
    comes_from,
    signature_from_sample,
)
from ferry.convert.sklearn import build_signature, estimator_outputs
from ferry.convert.trees import Splits, exact_thresholds
from ferry.errors import SampleMismatchError, UnsupportedModelError, one_line
from ferry.runtime.predictor import Outputs
from ferry.signature import Layout, Role, Signature, Task

if TYPE_CHECKING:
    import xgboost

XGBOOST_OPSET = 15
"""The highest opset onnxmltools 1.16 converts XGBoost models to (16 and above raise)."""

FORMAT_PREFIX = "xgboost-json:"
"""`SavedOriginal.format` is this prefix and the class `load()` rebuilds."""

WRAPPERS = ("XGBClassifier", "XGBRegressor", "XGBRFClassifier", "XGBRFRegressor", "XGBRanker")
"""The scikit-learn wrappers `save()` records and `load()` rebuilds."""

_ESTIMATOR_TYPES = {"classifier": "XGBClassifier", "regressor": "XGBRegressor",
                    "ranker": "XGBRanker"}
"""The wrapper that `XGBModel.save_model` meant, by the `_estimator_type` it records."""


class XGBoostConverter(Converter):
    framework = "xgboost"
    file_suffixes = (".json", ".ubj")

    def matches(self, model: object) -> bool:
        if not comes_from(model, "xgboost"):
            return False
        import xgboost

        return isinstance(model, xgboost.XGBModel | xgboost.Booster)

    def framework_version(self) -> str:
        import xgboost

        return str(xgboost.__version__)

    def task(self, model: object) -> Task:
        import xgboost

        if isinstance(model, xgboost.Booster):
            return _objective_task(_objective(model))
        if isinstance(model, xgboost.XGBClassifier):
            return Task.CLASSIFICATION
        return Task.OTHER if isinstance(model, xgboost.XGBRanker) else Task.REGRESSION

    def convert(self, model: object, sample: Sample | None) -> Conversion:
        from onnxmltools import convert_xgboost
        from onnxmltools.convert.common.data_types import FloatTensorType

        booster = _booster(model)
        names = _feature_names(booster, sample)
        initial_types = [("X", FloatTensorType([None, booster.num_features()]))]
        try:
            onnx_model = convert_xgboost(_without_feature_names(model),
                                         initial_types=initial_types, target_opset=XGBOOST_OPSET)
        except Exception as exc:
            raise UnsupportedModelError(
                f"onnxmltools cannot convert {type(model).__name__}: {one_line(exc)};"
                " register it with force=True to serve it natively"
            ) from exc
        if _objective(booster) == "multi:softmax":
            _softmax_scores(onnx_model)
        exact_thresholds(onnx_model, _splits(booster))
        task = self.task(model)
        signature = build_signature(onnx_model, task, Layout.TENSOR, names, self._labels(model))
        return Conversion(onnx_model=onnx_model, signature=signature, task=task)

    def reference(self, model: object, data: Sample) -> Outputs:
        import xgboost

        if isinstance(model, xgboost.Booster):
            return _booster_outputs(model, data, self.task(model))
        return estimator_outputs(model, data, self.task(model))

    def save(self, model: object, sample: Sample | None = None) -> SavedOriginal:
        import xgboost

        class_name = _class_name(model)
        assert isinstance(model, xgboost.Booster | xgboost.XGBModel)
        with tempfile.TemporaryDirectory() as folder:
            path = Path(folder) / "model.json"
            model.save_model(path)
            return SavedOriginal(path.read_bytes(), FORMAT_PREFIX + class_name)

    def load(self, saved: SavedOriginal) -> object:
        import xgboost

        class_name = _saved_class(saved.format)
        if class_name == "Booster":
            return xgboost.Booster(model_file=bytearray(saved.data))
        wrapper = getattr(xgboost, class_name)()
        wrapper.load_model(bytearray(saved.data))
        return wrapper

    def read_file(self, path: Path) -> object:
        if path.suffix.lower() not in self.file_suffixes:
            return super().read_file(path)
        import xgboost

        try:
            booster = xgboost.Booster(model_file=str(path))
        except (xgboost.core.XGBoostError, ValueError) as exc:
            raise UnsupportedModelError(
                f"xgboost cannot read {path.name}: {one_line(exc)}"
            ) from exc
        class_name = _saved_wrapper(booster)
        if class_name is None:
            return booster
        wrapper = getattr(xgboost, class_name)()
        wrapper.load_model(str(path))
        return wrapper

    def native_signature(self, model: object, sample: Sample | None) -> Signature:
        return signature_from_sample(sample, self.task(model), self._labels(model))

    def _labels(self, model: object) -> tuple[Any, ...] | None:
        """The wrapper's classes; a classifying Booster's are its class indices."""
        import xgboost

        if not isinstance(model, xgboost.Booster):
            return class_labels(model)
        if self.task(model) != Task.CLASSIFICATION:
            return None
        return tuple(range(max(_num_class(model), 2)))



def _booster(model: object) -> xgboost.Booster:
    import xgboost

    if isinstance(model, xgboost.Booster):
        return model
    if isinstance(model, xgboost.XGBModel):
        return model.get_booster()
    raise UnsupportedModelError(f"{type(model).__name__} is not an XGBoost model")


def _without_feature_names(model: object) -> object:
    """A copy whose booster has no feature names, so that splits read `f<index>`."""
    import xgboost

    if isinstance(model, xgboost.Booster):
        booster = model.copy()
        booster.feature_names = None
        return booster
    clone = copy.deepcopy(model)
    _booster(clone).feature_names = None
    return clone


def _splits(booster: xgboost.Booster) -> Splits:
    """Every numerical split's threshold, by tree in the model's order (as onnxmltools numbers
    them). XGBoost holds float32 thresholds and compares `x < t` in float32, so the exact
    float32 is the threshold itself and the graph's nodes normally come out unchanged."""
    model = json.loads(booster.save_raw(raw_format="json"))["learner"]["gradient_booster"]
    trees = model.get("gbtree", model).get("model", {}).get("trees", [])
    return Splits.from_trees((index, *_tree_splits(tree)) for index, tree in enumerate(trees))


def _tree_splits(tree: dict[str, Any]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Node ids -1: onnxmltools renumbers XGBoost's nodes, so they are matched by value."""
    thresholds = np.asarray(tree["split_conditions"], dtype=np.float32)
    kinds = np.asarray(tree.get("split_type") or np.zeros(len(thresholds)))
    split = (np.asarray(tree["left_children"]) != -1) & (kinds == 0)
    features = np.asarray(tree["split_indices"])[split]
    return np.full(len(features), -1), features, thresholds[split]


def _softmax_scores(onnx_model: onnx.ModelProto) -> None:
    """onnxmltools leaves `multi:softmax` scores as raw margins, where XGBoost's `predict_proba`
    applies softmax to them: make the tree ensemble apply it too (labels are unchanged)."""
    for node in onnx_model.graph.node:
        if node.op_type != "TreeEnsembleClassifier":
            continue
        for attribute in node.attribute:
            if attribute.name == "post_transform":
                attribute.s = b"SOFTMAX"


def _feature_names(booster: xgboost.Booster, sample: Sample | None) -> tuple[str, ...] | None:
    """The names the model was trained with, else the sample's columns, else none."""
    n_features = booster.num_features()
    if booster.feature_names is not None:
        return tuple(booster.feature_names)
    if not isinstance(sample, pd.DataFrame):
        return None
    if len(sample.columns) != n_features:
        raise SampleMismatchError(
            f"the sample has {len(sample.columns)} columns, the model takes {n_features}"
        )
    return tuple(str(c) for c in sample.columns)


def _objective(booster: xgboost.Booster) -> str:
    return str(json.loads(booster.save_config())["learner"]["objective"]["name"])


def _num_class(booster: xgboost.Booster) -> int:
    config = json.loads(booster.save_config())
    return int(config["learner"]["learner_model_param"]["num_class"])


def _objective_task(objective: str) -> Task:
    family = objective.partition(":")[0]
    if family in ("binary", "multi"):
        return Task.CLASSIFICATION
    return Task.REGRESSION if family in ("reg", "count", "survival") else Task.OTHER


def _booster_outputs(booster: xgboost.Booster, data: Sample, task: Task) -> Outputs:
    matrix = _dmatrix(booster, data)
    if task != Task.CLASSIFICATION:
        return {Role.VALUE: np.asarray(booster.predict(matrix))}
    probabilities = _probabilities(booster, matrix)
    return {Role.LABEL: np.argmax(probabilities, axis=1), Role.PROBABILITIES: probabilities}


def _dmatrix(booster: xgboost.Booster, data: Sample) -> xgboost.DMatrix:
    """The rows as the booster expects them: its own columns, in its order, when it has names."""
    import xgboost

    names = booster.feature_names
    if isinstance(data, pd.DataFrame):
        return xgboost.DMatrix(data[list(names)] if names else data.to_numpy())
    return xgboost.DMatrix(np.asarray(data), feature_names=names)


def _probabilities(booster: xgboost.Booster, matrix: xgboost.DMatrix) -> np.ndarray:
    """Class probabilities `[N, n_classes]`, as `XGBClassifier.predict_proba` gives them."""
    if _objective(booster) == "multi:softmax":
        margins = np.asarray(booster.predict(matrix, output_margin=True))
        exp = np.exp(margins - margins.max(axis=1, keepdims=True))
        return np.asarray(exp / exp.sum(axis=1, keepdims=True))
    predicted = np.asarray(booster.predict(matrix))
    if predicted.ndim == 1:
        return np.column_stack([1.0 - predicted, predicted])
    return predicted


def _class_name(model: object) -> str:
    """`Booster`, or the nearest XGBoost wrapper class among `model`'s bases."""
    for cls in type(model).__mro__:
        if cls.__module__.startswith("xgboost") and cls.__name__ in (*WRAPPERS, "Booster"):
            return cls.__name__
    raise UnsupportedModelError(
        f"cannot save a {type(model).__name__}: not one of Booster, {', '.join(WRAPPERS)}"
    )


def _saved_class(saved_format: str) -> str:
    prefix, _, class_name = saved_format.partition(":")
    if f"{prefix}:" != FORMAT_PREFIX or class_name not in (*WRAPPERS, "Booster"):
        raise UnsupportedModelError(
            f"xgboost cannot load format {saved_format!r}: expected {FORMAT_PREFIX}<class>"
            f" with class Booster or one of {', '.join(WRAPPERS)}"
        )
    return class_name


def _saved_wrapper(booster: xgboost.Booster) -> str | None:
    """The wrapper class `XGBModel.save_model` recorded in the file, if it wrote it."""
    meta = booster.attr("scikit_learn")
    if meta is None:
        return None
    return _ESTIMATOR_TYPES.get(str(json.loads(meta).get("_estimator_type")))

