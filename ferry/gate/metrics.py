"""The task's metrics, each measured twice: once by scikit-learn, once over bootstrap weights.

    classification   accuracy, f1, roc_auc, log_loss (the last two need probabilities)
    regression       rmse, mae, r2

`value` is scikit-learn's number, the one reported. `resampled` is the same metric with each
row counted `weights[b, i]` times, for a whole matrix of resamples at once (numpy products
instead of a thousand scikit-learn calls); the tests hold it equal to scikit-learn's
`sample_weight` result.

Labels are matched to classes by value, whatever their type (1, 1.0, np.int64(1) and "1" are
one class), and both versions' probabilities are laid out in one class order: the candidate's
classes, then the baseline's, then any label neither knows (a column of zeros). F1 in the
binary case scores the last class (scikit-learn's positive label, `classes_[-1]`); with more
classes it is the macro average over the classes present in the labels. ROC AUC is binary, or
one-vs-rest macro over the classes present in the labels.

The primary metric is accuracy for classifiers and RMSE for regressors: what MLflow reports
first, defined for every model (log loss is not when a version has no probabilities), and read
in units a person knows ("three points of accuracy").
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike
from sklearn import metrics as skm

from ferry.errors import InvalidInputError
from ferry.gate.checks import Scores
from ferry.signature import Task

PRIMARY: dict[Task, str] = {Task.CLASSIFICATION: "accuracy", Task.REGRESSION: "rmse"}
"""The default primary metric per task (see the module docstring)."""
_EPS = float(np.finfo(np.float64).eps)


@dataclass(frozen=True)
class Labelled:
    """One version's predictions beside the truth, encoded: class positions for classifiers
    (in `classes` order), floats for regressors."""

    truth: np.ndarray
    prediction: np.ndarray
    probabilities: np.ndarray | None = None
    classes: tuple[Any, ...] | None = None
    """None for a regressor."""

    @property
    def rows(self) -> int:
        return len(self.truth)

    def take(self, rows: np.ndarray) -> Labelled:
        """The same predictions on a subset of rows (a slice, a group)."""
        probabilities = None if self.probabilities is None else self.probabilities[rows]
        return Labelled(self.truth[rows], self.prediction[rows], probabilities, self.classes)


@dataclass(frozen=True)
class Metric:
    """A metric's name, direction and two ways of measuring it."""

    name: str
    greater_is_better: bool
    value: Callable[[Labelled], float]
    resampled: Callable[[Labelled, np.ndarray], np.ndarray]
    """(data, weights of shape (resamples, rows)) -> the metric per resample."""
    best: float
    """A perfect model's value (for the gain over a naive model)."""
    needs_probabilities: bool = False

    def available(self, data: Labelled) -> bool:
        return data.probabilities is not None or not self.needs_probabilities


def encode(task: Task, y_true: ArrayLike, *versions: Scores) -> list[Labelled]:
    """Each version's predictions against `y_true`, classes aligned across versions."""
    truth = np.asarray(y_true)
    if pd.isna(truth).any():
        raise InvalidInputError(f"the labels have {int(pd.isna(truth).sum())} missing values; "
                                "drop those rows before comparing")
    for scores in versions:
        if len(scores.prediction) != len(truth):
            raise InvalidInputError(f"{len(scores.prediction)} predictions for {len(truth)} "
                                    "labels: score the same rows with both versions")
    if task == Task.REGRESSION:
        return [Labelled(_numbers(truth, "labels"), _numbers(s.prediction, "predictions"))
                for s in versions]
    classes = _classes(truth, versions)
    keys = [_key(label) for label in classes]
    return [Labelled(_positions(truth, keys), _positions(np.asarray(s.prediction), keys),
                     _aligned(s, keys), classes) for s in versions]


def _numbers(values: ArrayLike, what: str) -> np.ndarray:
    try:
        return np.asarray(values, dtype=np.float64).ravel()
    except (TypeError, ValueError) as error:
        raise InvalidInputError(f"a regressor's {what} must be numbers ({error})") from error


def _key(label: Any) -> str:
    """One key per class whatever type the label arrives as."""
    label = _plain(label)
    if isinstance(label, float) and label.is_integer():
        label = int(label)
    return str(label)


def _plain(label: Any) -> Any:
    """numpy scalars as Python ones (for keys, and JSON-friendly details)."""
    return label.item() if isinstance(label, np.generic) else label


def _classes(truth: np.ndarray, versions: Sequence[Scores]) -> tuple[Any, ...]:
    """The versions' classes in their order, then labels no version declared, sorted."""
    known: dict[str, Any] = {}
    for scores in versions:
        for label in scores.classes or ():
            known.setdefault(_key(label), _plain(label))
    seen = [truth, *(np.asarray(s.prediction) for s in versions)]
    extra = {_key(v): _plain(v) for values in seen for v in pd.unique(values.ravel())
             if _key(v) not in known}
    return (*known.values(), *(extra[k] for k in sorted(extra, key=_sort_key)))


def _sort_key(key: str) -> tuple[int, float, str]:
    """Numbers in numeric order (2 before 10), then text."""
    try:
        return 0, float(key), key
    except ValueError:
        return 1, 0.0, key


def _positions(values: np.ndarray, keys: list[str]) -> np.ndarray:
    codes, uniques = pd.factorize(values.ravel(), use_na_sentinel=False)
    where = {key: position for position, key in enumerate(keys)}
    return np.array([where[_key(u)] for u in uniques], dtype=np.int64)[codes]


def _aligned(scores: Scores, keys: list[str]) -> np.ndarray | None:
    """The version's probabilities with one column per class of `keys` (zeros where the
    version does not know the class)."""
    if scores.probabilities is None:
        return None
    probabilities = np.asarray(scores.probabilities, dtype=np.float64)
    own = scores.classes if scores.classes is not None else keys[:probabilities.shape[1]]
    if probabilities.ndim != 2 or probabilities.shape[1] != len(own):
        raise InvalidInputError(f"probabilities of shape {probabilities.shape} for "
                                f"{len(own)} classes")
    aligned = np.zeros((len(probabilities), len(keys)))
    aligned[:, [keys.index(_key(label)) for label in own]] = probabilities
    return aligned


# Per-row quantities -----------------------------------------------------------------------

def finite_rows(data: Labelled) -> np.ndarray:
    """Rows where the version gave a usable answer (no NaN or infinity)."""
    if data.probabilities is not None:
        return np.asarray(np.isfinite(data.probabilities).all(axis=1))
    if data.classes is None:
        return np.asarray(np.isfinite(data.prediction))
    return np.ones(data.rows, dtype=bool)


def row_loss(data: Labelled, probabilistic: bool = True) -> np.ndarray:
    """What each row costs a version, for finding slices: squared error (regression), log
    loss (a classifier with probabilities, unless `probabilistic` is off), else 0/1 error."""
    if data.classes is None:
        return np.square(data.prediction - data.truth)
    if probabilistic and data.probabilities is not None:
        return _row_log_loss(data)
    return (data.prediction != data.truth).astype(np.float64)


def _row_log_loss(data: Labelled) -> np.ndarray:
    assert data.probabilities is not None
    truth = data.probabilities[np.arange(data.rows), data.truth]
    return -np.log(np.clip(truth, _EPS, 1 - _EPS))


def _weighted_sums(weights: np.ndarray, columns: Sequence[np.ndarray]) -> np.ndarray:
    """Sum of each column over each resample, plus the rows' total weight as the last (in
    the weights' precision: float32 halves the memory read, the bootstrap's cost)."""
    matrix = np.column_stack([*columns, np.ones(weights.shape[1])]).astype(weights.dtype)
    return np.asarray(weights @ matrix, dtype=np.float64)


def _weighted_mean(weights: np.ndarray, values: np.ndarray) -> np.ndarray:
    sums = _weighted_sums(weights, [values])
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.asarray(sums[:, 0] / sums[:, 1])


# Classification ---------------------------------------------------------------------------

def _accuracy(data: Labelled) -> float:
    return float(skm.accuracy_score(data.truth, data.prediction))


def _accuracy_resampled(data: Labelled, weights: np.ndarray) -> np.ndarray:
    return _weighted_mean(weights, data.prediction == data.truth)


def _f1_classes(data: Labelled) -> list[int]:
    """The positive (last) class when binary, else every class present in the labels."""
    assert data.classes is not None
    if len(data.classes) == 2:
        return [1]
    return sorted(int(c) for c in np.unique(data.truth))


def _f1(data: Labelled) -> float:
    return float(skm.f1_score(data.truth, data.prediction, labels=_f1_classes(data),
                              average="macro", zero_division=0))


def _f1_resampled(data: Labelled, weights: np.ndarray) -> np.ndarray:
    columns = []
    for c in _f1_classes(data):
        predicted, actual = data.prediction == c, data.truth == c
        columns += [predicted & actual, predicted & ~actual, ~predicted & actual]
    sums = _weighted_sums(weights, columns)[:, :-1].reshape(len(weights), -1, 3)
    tp, fp, fn = sums[..., 0], sums[..., 1], sums[..., 2]
    denominator = 2 * tp + fp + fn
    scores = np.divide(2 * tp, denominator, out=np.zeros_like(tp), where=denominator > 0)
    return np.asarray(scores.mean(axis=1))


def _auc_classes(data: Labelled) -> list[int]:
    """Classes scored one-vs-rest: the last when binary, else each class in the labels."""
    assert data.classes is not None
    present = np.unique(data.truth)
    if len(present) < 2:
        return []
    return [len(data.classes) - 1] if len(data.classes) == 2 else [int(c) for c in present]


def _roc_auc(data: Labelled) -> float:
    assert data.probabilities is not None
    scores = [skm.roc_auc_score(data.truth == c, data.probabilities[:, c])
              for c in _auc_classes(data)]
    return float(np.mean(scores)) if scores else float("nan")


def _roc_auc_resampled(data: Labelled, weights: np.ndarray) -> np.ndarray:
    assert data.probabilities is not None
    classes = _auc_classes(data)
    if not classes:
        return np.full(len(weights), np.nan)
    return np.mean([_weighted_auc(data.truth == c, data.probabilities[:, c], weights)
                    for c in classes], axis=0)


def _weighted_auc(positive: np.ndarray, score: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Mann-Whitney AUC per resample: each positive's weight times the weight of the
    negatives scored below it, tied negatives counting half, over all positive-negative
    weight. Half credit for ties is the mean of counting tied negatives as below (negatives
    sorted first among ties) and as not below."""
    strict = np.lexsort((~positive, score))
    ordered = score[strict]
    credit = _credit(strict, positive, weights)
    if (ordered[1:] == ordered[:-1]).any():
        credit = (credit + _credit(np.lexsort((positive, score)), positive, weights)) / 2
    pairs = weights[:, positive].sum(axis=1) * weights[:, ~positive].sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.asarray(credit / pairs)


def _credit(order: np.ndarray, positive: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Per resample, the sum over (positive, negative) pairs with the negative before the
    positive in `order` of their weights' product. The running sum, numpy's slow step,
    runs over the smaller of the two sets."""
    late = positive[order]
    early_rows, late_rows = order[~late], order[late]
    if late.sum() > (~late).sum():
        below = _weight_before(weights, early_rows, np.cumsum(~late)[late])
        return np.asarray(np.einsum("ij,ij->i", weights[:, late_rows], below))
    above = weights[:, late_rows].sum(axis=1, keepdims=True) - _weight_before(
        weights, late_rows, np.cumsum(late)[~late])
    return np.asarray(np.einsum("ij,ij->i", weights[:, early_rows], above))


def _weight_before(weights: np.ndarray, rows: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """Per resample, the total weight of the first `counts[k]` of `rows`, for each k."""
    running = np.cumsum(weights[:, rows], axis=1)
    total = np.zeros((len(weights), len(counts)), dtype=weights.dtype)
    seen = counts > 0
    total[:, seen] = running[:, counts[seen] - 1]
    return total


def _log_loss(data: Labelled) -> float:
    assert data.probabilities is not None and data.classes is not None
    return float(skm.log_loss(data.truth, data.probabilities,
                              labels=np.arange(len(data.classes))))


def _log_loss_resampled(data: Labelled, weights: np.ndarray) -> np.ndarray:
    return _weighted_mean(weights, _row_log_loss(data))


# Regression -------------------------------------------------------------------------------

def _rmse(data: Labelled) -> float:
    return float(skm.root_mean_squared_error(data.truth, data.prediction))


def _rmse_resampled(data: Labelled, weights: np.ndarray) -> np.ndarray:
    return np.sqrt(_weighted_mean(weights, np.square(data.prediction - data.truth)))


def _mae(data: Labelled) -> float:
    return float(skm.mean_absolute_error(data.truth, data.prediction))


def _mae_resampled(data: Labelled, weights: np.ndarray) -> np.ndarray:
    return _weighted_mean(weights, np.abs(data.prediction - data.truth))


def _r2(data: Labelled) -> float:
    return float(skm.r2_score(data.truth, data.prediction))


def _r2_resampled(data: Labelled, weights: np.ndarray) -> np.ndarray:
    """1 - SSE / SST, SST from sums of the centred labels (exact, and free of cancellation)."""
    centred = data.truth - data.truth.mean()
    sums = _weighted_sums(weights, [np.square(data.prediction - data.truth), centred,
                                    np.square(centred)])
    total = sums[:, 2] - np.square(sums[:, 1]) / sums[:, 3]
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.asarray(1 - sums[:, 0] / total)


CLASSIFICATION_METRICS: tuple[Metric, ...] = (
    Metric("accuracy", True, _accuracy, _accuracy_resampled, 1.0),
    Metric("f1", True, _f1, _f1_resampled, 1.0),
    Metric("roc_auc", True, _roc_auc, _roc_auc_resampled, 1.0, needs_probabilities=True),
    Metric("log_loss", False, _log_loss, _log_loss_resampled, 0.0, needs_probabilities=True),
)
REGRESSION_METRICS: tuple[Metric, ...] = (
    Metric("rmse", False, _rmse, _rmse_resampled, 0.0),
    Metric("mae", False, _mae, _mae_resampled, 0.0),
    Metric("r2", True, _r2, _r2_resampled, 1.0),
)
METRICS: dict[Task, tuple[Metric, ...]] = {Task.CLASSIFICATION: CLASSIFICATION_METRICS,
                                           Task.REGRESSION: REGRESSION_METRICS}


ALIASES: dict[str, str] = {"accuracy_score": "accuracy", "f1_score": "f1",
                           "root_mean_squared_error": "rmse", "mean_absolute_error": "mae",
                           "r2_score": "r2"}
"""MLflow's names for the same metrics, accepted wherever a metric is named."""


def metric(task: Task, name: str) -> Metric:
    """The task's metric called `name` (or its MLflow name), or an error listing the names
    there are."""
    found = {m.name: m for m in METRICS.get(task, ())}
    name = ALIASES.get(name, name)
    if name not in found:
        raise InvalidInputError(f"no {task} metric {name!r}; the metrics are "
                                f"{', '.join(found) or 'none'}")
    return found[name]
