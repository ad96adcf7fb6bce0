"""LightGBM models (`LGBMClassifier`, `LGBMRegressor`, a raw `Booster`), through onnxmltools.

Conversion path: `onnxmltools.convert_lightgbm(model, initial_types=[("X", FloatTensorType([None,
n_features]))], target_opset=15, zipmap=False)`. onnxmltools 1.16 takes `target_opset` as an int
only (a dict such as `{"": 15, "ai.onnx.ml": 3}` raises TypeError) and refuses anything above 15;
the graph it writes imports opset 8 or 9 and `ai.onnx.ml` 1, which every current ONNX Runtime
runs. Classifiers give `label` (int64, or string for string classes) and `probabilities`
(float32 `[N, n_classes]`); regressors give one `variable` (float32 `[N, 1]`). onnxmltools
declares the label output with a fixed batch size of 1: the converter makes every output's
first axis dynamic. Feature names come from a DataFrame sample's columns (LightGBM rewrites
the names it keeps, spaces becoming underscores, so they are no guide to the input columns).
onnxmltools rounds LightGBM's double thresholds to the nearest float32; the converter rewrites
them to the float32 on which every float32 input takes LightGBM's branch (LightGBM compares
`double(x) <= t` and reads `|x| <= 1e-35` as 0; see `ferry.convert.trees`).

A raw Booster's task comes from its objective: `binary*` and `multiclass*` classify (classes
`0..n-1`), `lambdarank` and `rank_xendcg` are `other`, anything else regresses. A raw Booster
is converted from a copy reloaded from its text model: onnxmltools reads the objective from
`Booster.params` as the user spelled it and refuses aliases such as `l2` or `mse`.

Originals are saved as LightGBM's own text model (`Booster.model_to_string`), never pickled:
- format `lightgbm-text:<class>` holds the text model as is, for a Booster, a regressor, a
  ranker, or a classifier whose classes are `0..n-1` (which the booster implies);
- format `lightgbm-json:LGBMClassifier` holds `{"model": <text model>, "classes": [...]}` for
  a classifier with other classes (strings, say), which the booster does not know.
`load()` gives a `Booster` back for a Booster; for a wrapper it gives a `LightGBMModel`: the
booster with the wrapper's `predict` / `predict_proba` (and `classes_`), whose outputs equal
the original wrapper's. LightGBM has no public way to rebuild a fitted `LGBMClassifier` from a
booster, and setting its private attributes would break with LightGBM's next release.
"""

from __future__ import annotations

import json
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
from ferry.errors import InvalidInputError, SampleMismatchError, UnsupportedModelError, one_line
from ferry.runtime.predictor import Outputs
from ferry.signature import Layout, Role, Signature, Task

if TYPE_CHECKING:
    import lightgbm

LIGHTGBM_OPSET = 15
"""The highest opset onnxmltools 1.16 converts LightGBM models to (16 and above raise)."""

TEXT_FORMAT = "lightgbm-text"
"""`<TEXT_FORMAT>:<class>`: the booster's text model."""
LABELLED_FORMAT = "lightgbm-json"
"""`<LABELLED_FORMAT>:<class>`: JSON holding the text model and the classifier's classes."""

WRAPPER_TASKS = {"LGBMClassifier": Task.CLASSIFICATION, "LGBMRegressor": Task.REGRESSION,
                 "LGBMRanker": Task.OTHER}
"""The scikit-learn wrappers `save()` records and `load()` stands in for, and their tasks."""


class LightGBMModel:
    """A saved LightGBM wrapper brought back by `load()`: its booster, with the wrapper's
    `predict` / `predict_proba` and `classes_` (None unless it classifies)."""

    def __init__(self, booster: lightgbm.Booster, wrapper: str, classes: np.ndarray | None) -> None:
        self.booster_ = booster
        self.wrapper = wrapper
        self.task = WRAPPER_TASKS[wrapper]
        self.classes_ = classes if self.task == Task.CLASSIFICATION else None

    @property
    def n_features_in_(self) -> int:
        return int(self.booster_.num_feature())

    def predict(self, data: Sample) -> np.ndarray:
        """Labels for a classifier (as the wrapper gives them), values otherwise."""
        if self.classes_ is None:
            return np.asarray(self.booster_.predict(data))
        return np.asarray(self.classes_[np.argmax(self.predict_proba(data), axis=1)])

    def predict_proba(self, data: Sample) -> np.ndarray:
        if self.classes_ is None:
            raise InvalidInputError(f"a LightGBM {self.wrapper} gives no probabilities")
        return _probabilities(self.booster_.predict(data))


class LightGBMConverter(Converter):
    framework = "lightgbm"
    file_suffixes = (".txt", ".lgb")

    def matches(self, model: object) -> bool:
        if isinstance(model, LightGBMModel):
            return True
        if not comes_from(model, "lightgbm"):
            return False
        import lightgbm

        return isinstance(model, lightgbm.LGBMModel | lightgbm.Booster)

    def framework_version(self) -> str:
        import lightgbm

        return str(lightgbm.__version__)

    def task(self, model: object) -> Task:
        import lightgbm

        if isinstance(model, LightGBMModel):
            return model.task
        if isinstance(model, lightgbm.LGBMClassifier):
            return Task.CLASSIFICATION
        if isinstance(model, lightgbm.LGBMRegressor):
            return Task.REGRESSION
        if isinstance(model, lightgbm.LGBMRanker):
            return Task.OTHER
        return _objective_task(_booster(model))

    def convert(self, model: object, sample: Sample | None) -> Conversion:
        from onnxmltools import convert_lightgbm
        from onnxmltools.convert.common.data_types import FloatTensorType

        booster = _booster(model)
        names = _feature_names(booster, sample)
        initial_types = [("X", FloatTensorType([None, booster.num_feature()]))]
        try:
            onnx_model = convert_lightgbm(_convertible(model), initial_types=initial_types,
                                          target_opset=LIGHTGBM_OPSET, zipmap=False)
        except Exception as exc:
            raise UnsupportedModelError(
                f"onnxmltools cannot convert {type(model).__name__}: {one_line(exc)};"
                " register it with force=True to serve it natively"
            ) from exc
        _dynamic_batch(onnx_model)
        exact_thresholds(onnx_model, _splits(booster))
        task = self.task(model)
        signature = build_signature(onnx_model, task, Layout.TENSOR, names, self._labels(model))
        return Conversion(onnx_model=onnx_model, signature=signature, task=task)

    def reference(self, model: object, data: Sample) -> Outputs:
        import lightgbm

        if isinstance(model, lightgbm.Booster):
            return _booster_outputs(model, data, self.task(model))
        return estimator_outputs(model, data, self.task(model))

    def save(self, model: object, sample: Sample | None = None) -> SavedOriginal:
        text = _booster(model).model_to_string()
        name = _wrapper_name(model)
        classes = class_labels(model) if self.task(model) == Task.CLASSIFICATION else None
        if classes is None or _implied_by_booster(classes):
            return SavedOriginal(text.encode(), f"{TEXT_FORMAT}:{name}")
        payload = {"model": text, "classes": list(classes)}
        return SavedOriginal(json.dumps(payload).encode(), f"{LABELLED_FORMAT}:{name}")

    def load(self, saved: SavedOriginal) -> object:
        import lightgbm

        kind, name = _saved_kind(saved.format)
        if kind == LABELLED_FORMAT:
            payload = json.loads(saved.data)
            booster = lightgbm.Booster(model_str=payload["model"])
            return LightGBMModel(booster, name, np.asarray(payload["classes"]))
        booster = lightgbm.Booster(model_str=saved.data.decode())
        if name == "Booster":
            return booster
        return LightGBMModel(booster, name, np.arange(_num_classes(booster)))

    def read_file(self, path: Path) -> object:
        if path.suffix.lower() not in self.file_suffixes:
            return super().read_file(path)
        import lightgbm

        try:
            return lightgbm.Booster(model_file=str(path))
        except lightgbm.basic.LightGBMError as exc:
            raise UnsupportedModelError(
                f"lightgbm cannot read {path.name}: {one_line(exc)}"
            ) from exc

    def native_signature(self, model: object, sample: Sample | None) -> Signature:
        return signature_from_sample(sample, self.task(model), self._labels(model))

    def _labels(self, model: object) -> tuple[Any, ...] | None:
        """The wrapper's classes; a classifying Booster's are its class indices."""
        import lightgbm

        if not isinstance(model, lightgbm.Booster):
            return class_labels(model)
        if self.task(model) != Task.CLASSIFICATION:
            return None
        return tuple(range(_num_classes(model)))


def _booster(model: object) -> lightgbm.Booster:
    import lightgbm

    if isinstance(model, lightgbm.Booster):
        return model
    if isinstance(model, LightGBMModel | lightgbm.LGBMModel):
        return model.booster_
    raise UnsupportedModelError(f"{type(model).__name__} is not a LightGBM model")


def _wrapper_name(model: object) -> str:
    """`Booster`, the recorded wrapper of a `LightGBMModel`, or the nearest LightGBM wrapper
    class among `model`'s bases."""
    if isinstance(model, LightGBMModel):
        return model.wrapper
    for cls in type(model).__mro__:
        if cls.__module__.startswith("lightgbm") and cls.__name__ in (*WRAPPER_TASKS, "Booster"):
            return cls.__name__
    raise UnsupportedModelError(
        f"cannot save a {type(model).__name__}: not one of Booster, {', '.join(WRAPPER_TASKS)}"
    )


def _convertible(model: object) -> object:
    """What onnxmltools takes: a wrapper as it is; a raw Booster reloaded from its text model,
    because onnxmltools reads the objective from `Booster.params`, spelled as the user wrote it
    ("l2", "mse" fail), where a reloaded booster names it canonically ("regression"); and for
    a `LightGBMModel`, its booster wrapped as onnxmltools wraps a raw Booster, with its classes.
    """
    import lightgbm

    if isinstance(model, lightgbm.Booster):
        return lightgbm.Booster(model_str=model.model_to_string())
    if not isinstance(model, LightGBMModel):
        return model
    from onnxmltools.convert.lightgbm._parse import WrappedBooster

    wrapped = WrappedBooster(model.booster_)
    if model.classes_ is not None:
        wrapped.classes_ = model.classes_
    return wrapped


def _feature_names(booster: lightgbm.Booster, sample: Sample | None) -> tuple[str, ...] | None:
    if not isinstance(sample, pd.DataFrame):
        return None
    n_features = booster.num_feature()
    if len(sample.columns) != n_features:
        raise SampleMismatchError(
            f"the sample has {len(sample.columns)} columns, the model takes {n_features}"
        )
    return tuple(str(c) for c in sample.columns)


def _dynamic_batch(onnx_model: onnx.ModelProto) -> None:
    """Make the first axis of every graph output dynamic (onnxmltools fixes `label` at 1)."""
    for output in onnx_model.graph.output:
        dims = output.type.tensor_type.shape.dim
        if dims and dims[0].HasField("dim_value"):
            dims[0].dim_param = "N"


ZERO_THRESHOLD = float(np.float32(1e-35))
"""LightGBM's `kZeroThreshold`: it reads an input `x` with `|x| <= 1e-35` as 0."""


def _splits(booster: lightgbm.Booster) -> Splits:
    """Every numerical split's threshold as LightGBM applies it to a float32 input (it
    compares `double(x) <= t`), by tree in the order of `dump_model()`'s `tree_info`, with
    node ids as onnxmltools numbers them."""
    trees = booster.dump_model()["tree_info"]
    return Splits.from_trees((index, *_tree_splits(tree["tree_structure"]))
                             for index, tree in enumerate(trees))


def _tree_splits(root: dict[str, Any]) -> tuple[list[int], list[int], list[float]]:
    """onnxmltools numbers a tree as it parses it, depth first, left before right: the root
    0, then, on parsing a node, its left and right children the next two ids."""
    nodes, features, thresholds = [], [], []
    pending, next_id = [(root, 0)], 1
    while pending:
        node, node_id = pending.pop()
        if "left_child" not in node:
            continue
        if node.get("decision_type") == "<=":
            nodes.append(node_id)
            features.append(int(node["split_feature"]))
            thresholds.append(_as_applied(float(node["threshold"])))
        pending += [(node["right_child"], next_id + 1), (node["left_child"], next_id)]
        next_id += 2
    return nodes, features, thresholds


def _as_applied(threshold: float) -> float:
    """The threshold that `x <= t` needs to decide as LightGBM does, which reads `|x| <= 1e-35`
    as 0: a threshold in [-1e-35, 0) sends only `x < -1e-35` left, one in [0, 1e-35) every
    `x <= 1e-35`."""
    if -ZERO_THRESHOLD <= threshold < 0:
        return float(np.nextafter(-ZERO_THRESHOLD, -np.inf))
    return ZERO_THRESHOLD if 0 <= threshold < ZERO_THRESHOLD else threshold


def _objective(booster: lightgbm.Booster) -> str:
    """The objective as LightGBM names it in the model (aliases resolved)."""
    return str(booster.dump_model(num_iteration=1)["objective"]).split()[0]


def _objective_task(booster: lightgbm.Booster) -> Task:
    objective = _objective(booster)
    if objective.startswith(("binary", "multiclass")):
        return Task.CLASSIFICATION
    return Task.OTHER if objective in ("lambdarank", "rank_xendcg") else Task.REGRESSION


def _num_classes(booster: lightgbm.Booster) -> int:
    return max(int(booster.num_model_per_iteration()), 2)


def _booster_outputs(booster: lightgbm.Booster, data: Sample, task: Task) -> Outputs:
    if task != Task.CLASSIFICATION:
        return {Role.VALUE: np.asarray(booster.predict(data))}
    probabilities = _probabilities(booster.predict(data))
    return {Role.LABEL: np.argmax(probabilities, axis=1), Role.PROBABILITIES: probabilities}


def _probabilities(predicted: Any) -> np.ndarray:
    """Class probabilities `[N, n_classes]`, as `LGBMClassifier.predict_proba` gives them."""
    values = np.asarray(predicted)
    if values.ndim == 1:
        return np.column_stack([1.0 - values, values])
    return values


def _implied_by_booster(classes: tuple[Any, ...]) -> bool:
    """Whether the classes are `0..n-1` (integers), which `load()` can rebuild unaided."""
    return all(isinstance(c, int) and not isinstance(c, bool) and c == i
               for i, c in enumerate(classes))


def _saved_kind(saved_format: str) -> tuple[str, str]:
    kind, _, name = saved_format.partition(":")
    names = (*WRAPPER_TASKS, "Booster") if kind == TEXT_FORMAT else ("LGBMClassifier",)
    if kind not in (TEXT_FORMAT, LABELLED_FORMAT) or name not in names:
        raise UnsupportedModelError(
            f"lightgbm cannot load format {saved_format!r}: expected {TEXT_FORMAT}:<class>"
            f" or {LABELLED_FORMAT}:LGBMClassifier"
        )
    return kind, name

