"""Plain scikit-learn estimators rebuilt from sklearn-pmml-model's, and their ONNX form.

skl2onnx converts the plain estimators; sklearn-pmml-model 1.0.8's compiled `Tree` needs
`numpy.NPY_DEFAULT`, which numpy 2 removed, to hand out its node arrays, so the name is
provided while the nodes are copied into scikit-learn's own `Tree`.
"""

from __future__ import annotations

import threading
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np
from sklearn.base import is_classifier

from ferry.convert.pmml.document import SUPPORTED
from ferry.convert.sklearn import TARGET_OPSET
from ferry.errors import UnsupportedModelError, one_line

_NPY_ARRAY_DEFAULT = 0x0501
"""numpy's NPY_ARRAY_DEFAULT (C-contiguous, aligned, writeable)."""
_numpy_name_lock = threading.Lock()


@contextmanager
def node_arrays_readable() -> Iterator[None]:
    """Let sklearn-pmml-model 1.0.8's compiled `Tree` hand out its node arrays under numpy 2.

    Its `_get_node_ndarray`, behind `__getstate__` and every node property, looks up
    `numpy.NPY_DEFAULT`, a name numpy 2 removed. The name (numpy's NPY_ARRAY_DEFAULT flags)
    is provided only while the nodes are read.
    """
    with _numpy_name_lock:
        added = not hasattr(np, "NPY_DEFAULT")
        if added:
            setattr(np, "NPY_DEFAULT", _NPY_ARRAY_DEFAULT)  # noqa: B010
        try:
            yield
        finally:
            if added:
                delattr(np, "NPY_DEFAULT")


def leaf_fractions(values: np.ndarray) -> np.ndarray:
    """Leaf values (record counts) as fractions of each leaf's total (zeros where it is 0)."""
    totals = values.sum(axis=-1, keepdims=True)
    return np.ascontiguousarray(
        np.divide(values, totals, out=np.zeros_like(values), where=totals > 0))


def feature_count(source: Any) -> int:
    """sklearn-pmml-model sets `n_features_` (read-only `n_features_in_` on old scikit-learn)."""
    count = getattr(source, "n_features_in_", None)
    return int(source.n_features_ if count is None else count)


def plain_estimator(estimator: object) -> Any:
    """The scikit-learn estimator equal to sklearn-pmml-model's `estimator`."""
    builder = _BUILDERS.get(type(estimator).__name__)
    if builder is None:
        raise UnsupportedModelError(
            f"no ONNX conversion for sklearn-pmml-model's {type(estimator).__name__}:"
            f" ferry converts {SUPPORTED}"
        )
    with node_arrays_readable():
        return builder(estimator)


def _linear_regression(source: Any) -> Any:
    from sklearn.linear_model import LinearRegression

    model = LinearRegression()
    model.coef_ = np.asarray(source.coef_, dtype=np.float64).reshape(-1)
    model.intercept_ = float(np.asarray(source.intercept_, dtype=np.float64).reshape(-1)[0])
    model.n_features_in_ = model.coef_.size
    return model


def _logistic_regression(source: Any) -> Any:
    from sklearn.linear_model import LogisticRegression

    model = LogisticRegression()
    model.coef_ = np.atleast_2d(np.asarray(source.coef_, dtype=np.float64))
    model.intercept_ = np.asarray(source.intercept_, dtype=np.float64).reshape(-1)
    model.classes_ = np.asarray(source.classes_)
    model.n_features_in_ = model.coef_.shape[1]
    return model


def _tree_classifier(source: Any) -> Any:
    return _decision_tree(source, feature_count(source), source.classes_)


def _tree_regressor(source: Any) -> Any:
    return _decision_tree(source, feature_count(source))


def _forest_classifier(source: Any) -> Any:
    from sklearn.ensemble import RandomForestClassifier

    n_features = feature_count(source)
    model = RandomForestClassifier(n_estimators=len(source.estimators_))
    model.estimators_ = [_decision_tree(t, n_features, source.classes_)
                         for t in source.estimators_]
    model.classes_ = np.asarray(source.classes_)
    model.n_classes_ = len(model.classes_)
    model.n_outputs_ = 1
    model.n_features_in_ = n_features
    return model


def _forest_regressor(source: Any) -> Any:
    from sklearn.ensemble import RandomForestRegressor

    n_features = feature_count(source)
    model = RandomForestRegressor(n_estimators=len(source.estimators_))
    model.estimators_ = [_decision_tree(t, n_features) for t in source.estimators_]
    model.n_outputs_ = 1
    model.n_features_in_ = n_features
    return model


def _boosting_regressor(source: Any) -> Any:
    from sklearn.ensemble import GradientBoostingRegressor

    return _boosting(source, GradientBoostingRegressor(learning_rate=source.learning_rate))


def _boosting_classifier(source: Any) -> Any:
    from sklearn.ensemble import GradientBoostingClassifier

    model = _boosting(source, GradientBoostingClassifier(learning_rate=source.learning_rate))
    model.classes_ = np.asarray(source.classes_)
    model.n_classes_ = len(model.classes_)
    return model


def _boosting(source: Any, model: Any) -> Any:
    """`model` with `source`'s stages, initial estimator and loss."""
    n_features = feature_count(source)
    stages = np.empty(source.estimators_.shape, dtype=object)
    for index in np.ndindex(stages.shape):
        stages[index] = _decision_tree(source.estimators_[index], n_features)
    model.estimators_ = stages
    model.n_estimators = model.n_estimators_ = stages.shape[0]
    model.n_trees_per_iteration_ = stages.shape[1]
    model.init_ = source.init_
    model._loss = source._loss
    model.n_features_in_ = n_features
    return model


def _decision_tree(source: Any, n_features: int, classes: Any = None) -> Any:
    """A scikit-learn tree with the nodes of sklearn-pmml-model's tree `source`."""
    from sklearn.tree import DecisionTreeClassifier, DecisionTreeRegressor

    classifier = classes is not None
    model = DecisionTreeClassifier() if classifier else DecisionTreeRegressor()
    model.tree_ = _sklearn_tree(source.tree_, n_features, len(classes) if classifier else 1,
                                classifier)
    model.n_outputs_ = 1
    model.n_features_in_ = model.max_features_ = n_features
    if classifier:
        model.classes_ = np.asarray(classes)
        model.n_classes_ = len(classes)
    return model


_NODE_FIELDS = ("left_child", "right_child", "feature", "impurity", "n_node_samples",
                "weighted_n_node_samples")


def _sklearn_tree(tree: Any, n_features: int, n_classes: int, classifier: bool) -> Any:
    from sklearn.tree._tree import NODE_DTYPE, Tree

    state = tree.__getstate__()
    nodes = np.array(state["nodes"])
    converted = np.zeros(len(nodes), dtype=NODE_DTYPE)
    for name in _NODE_FIELDS:
        converted[name] = nodes[name]
    converted["threshold"] = np.ascontiguousarray(nodes["split_value"]).view(np.float64)
    values = np.array(state["values"], dtype=np.float64)
    result = Tree(n_features, np.array([n_classes], dtype=np.intp), 1)
    result.__setstate__({"max_depth": _depth(converted), "node_count": len(converted),
                         "nodes": converted,
                         "values": leaf_fractions(values) if classifier else values})
    return result


def _depth(nodes: np.ndarray) -> int:
    """The number of splits on the longest path from the root (node 0) to a leaf."""
    level, depth = np.array([0]), 0
    while True:
        children = np.concatenate([nodes["left_child"][level], nodes["right_child"][level]])
        level = children[children >= 0]
        if level.size == 0:
            return depth
        depth += 1


_BUILDERS: dict[str, Callable[[Any], Any]] = {
    "PMMLLinearRegression": _linear_regression,
    "PMMLLogisticRegression": _logistic_regression,
    "PMMLTreeClassifier": _tree_classifier,
    "PMMLTreeRegressor": _tree_regressor,
    "PMMLForestClassifier": _forest_classifier,
    "PMMLForestRegressor": _forest_regressor,
    "PMMLGradientBoostingClassifier": _boosting_classifier,
    "PMMLGradientBoostingRegressor": _boosting_regressor,
}
"""sklearn-pmml-model's class -> the scikit-learn estimator skl2onnx converts."""


def to_onnx(estimator: Any, n_features: int) -> Any:
    from skl2onnx import convert_sklearn
    from skl2onnx.common.data_types import FloatTensorType

    options = {"zipmap": False} if is_classifier(estimator) else None
    initial_types = [("X", FloatTensorType([None, n_features]))]
    try:
        with warnings.catch_warnings():
            # skl2onnx lists the estimator's attributes, so the forest's feature_importances_
            # divides the (unknown, zero) impurity decreases by their zero sum.
            warnings.filterwarnings("ignore", category=RuntimeWarning,
                                    module="sklearn.ensemble._forest")
            return convert_sklearn(estimator, initial_types=initial_types, options=options,
                                   target_opset=TARGET_OPSET)
    except Exception as exc:
        raise UnsupportedModelError(
            f"skl2onnx cannot convert the PMML's {type(estimator).__name__}: {one_line(exc)}"
        ) from exc
