"""Live performance: the version's predictions scored against the labels that feedback
attached late, and compared with the metric registered with the version.

Drift says the inputs changed; only labels say whether the model got worse. A classifier is
scored by accuracy, macro F1 and ROC AUC (binary, or one-vs-rest over the
`output:probabilities[j]` columns, which follow `signature.class_labels`), a regressor by RMSE
and MAE, all with scikit-learn's metrics. Decay is the relative change from the registered
value (`version.metrics`, e.g. `{"accuracy": 0.95}`), signed so that a negative decay is
always worse; `stale_performance` says some metric is more than `DECAY_THRESHOLD` worse.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, TypeGuard

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from sklearn import metrics as skm

from ferry.monitor.events import output_column
from ferry.signature import Role, Signature, Task

if TYPE_CHECKING:
    from ferry.registry import ModelVersion

DECAY_THRESHOLD = 0.05
"""Relative loss against the registered metric beyond which performance is stale (5 %)."""
MIN_LABELLED_ROWS = 30
"""Labelled rows below which metrics are reported but judge nothing: with fewer, one wrong
answer moves accuracy by more than the threshold."""
LOWER_IS_BETTER = frozenset({"rmse", "mae"})
REGISTERED_NAMES: dict[str, tuple[str, ...]] = {
    "accuracy": ("accuracy", "acc"),
    "macro_f1": ("macro_f1", "f1_macro", "f1"),
    "roc_auc": ("roc_auc", "auc"),
    "rmse": ("rmse",),
    "mae": ("mae",),
}
"""The names a registered metric may go by, per live metric (matched ignoring case)."""

Scores = dict[str, float]


def live_performance(version: ModelVersion, samples: pa.Table) -> dict[str, Any] | None:
    """Metrics on the labelled rows of `samples` (a store's `samples()` table), compared with
    the registered ones; None when the window has no labelled rows or the task has no
    metric."""
    scorer = SCORERS.get(version.task)
    prediction = _prediction_column(version.signature, version.task)
    if scorer is None or prediction is None or prediction not in samples.column_names:
        return None
    labelled = _labelled(samples, prediction)
    if labelled.num_rows == 0:
        return None
    scores = scorer(version.signature, labelled, prediction)
    return _report(version, scores, labelled.num_rows)


def _prediction_column(signature: Signature, task: Task) -> str | None:
    spec = signature.output(Role.LABEL if task == Task.CLASSIFICATION else Role.VALUE)
    return None if spec is None else output_column(spec.name)


def _labelled(samples: pa.Table, prediction: str) -> pa.Table:
    if "label" not in samples.column_names:
        return samples.slice(0, 0)
    keep = pc.and_(pc.is_valid(samples["label"]), pc.is_valid(samples[prediction]))
    return samples.filter(keep)


def _classification(signature: Signature, table: pa.Table, prediction: str) -> Scores:
    truth, predicted = table["label"].to_pylist(), table[prediction].to_pylist()
    classes = signature.class_labels or tuple(sorted(set(truth) | set(predicted), key=str))
    index = {label: position for position, label in enumerate(classes)}
    y_true = np.array([index.get(label, -1) for label in truth])
    y_pred = np.array([index.get(label, -1) for label in predicted])
    scores = {"accuracy": float(skm.accuracy_score(y_true, y_pred)),
              "macro_f1": float(skm.f1_score(y_true, y_pred, average="macro", zero_division=0))}
    auc = _roc_auc(_probabilities(signature, table, len(classes)), y_true, len(classes))
    return scores if auc is None else {**scores, "roc_auc": auc}


def _probabilities(signature: Signature, table: pa.Table, classes: int) -> np.ndarray | None:
    """The rows' class probabilities in class order, when every class has its column."""
    spec = signature.output(Role.PROBABILITIES)
    names = [] if spec is None else [f"{output_column(spec.name)}[{j}]" for j in range(classes)]
    if not names or any(name not in table.column_names for name in names):
        return None
    return np.column_stack([table[name].to_numpy(zero_copy_only=False) for name in names])


def _roc_auc(probabilities: np.ndarray | None, y_true: np.ndarray, classes: int) -> float | None:
    """ROC AUC where it is defined: every class among the known labels, finite scores."""
    if probabilities is None or classes < 2:
        return None
    known = y_true >= 0
    scores, truth = probabilities[known].astype(np.float64), y_true[known]
    if len(np.unique(truth)) < classes or not np.isfinite(scores).all():
        return None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            value = skm.roc_auc_score(truth, scores[:, 1]) if classes == 2 else \
                skm.roc_auc_score(truth, scores, multi_class="ovr", labels=list(range(classes)))
        except ValueError:  # scores that are not probabilities (rows not summing to 1)
            return None
    return None if math.isnan(value) else float(value)


def _regression(_signature: Signature, table: pa.Table, prediction: str) -> Scores:
    truth = np.asarray(table["label"].to_pylist(), dtype=np.float64)
    predicted = table[prediction].to_numpy(zero_copy_only=False).astype(np.float64)
    return {"rmse": float(skm.root_mean_squared_error(truth, predicted)),
            "mae": float(skm.mean_absolute_error(truth, predicted))}


SCORERS: dict[Task, Callable[[Signature, pa.Table, str], Scores]] = {
    Task.CLASSIFICATION: _classification,
    Task.REGRESSION: _regression,
}


def _report(version: ModelVersion, scores: Scores, rows: int) -> dict[str, Any]:
    registered = registered_metrics(version.metrics, scores)
    decay = {name: _decay(name, scores[name], value) for name, value in registered.items()
             if value != 0}
    worse = sorted(name for name, change in decay.items() if change < -DECAY_THRESHOLD)
    enough = rows >= MIN_LABELLED_ROWS
    return {"task": str(version.task), "labelled_rows": rows, "metrics": scores,
            "registered": registered, "decay": decay, "worse": worse,
            "enough_labels": enough, "stale_performance": enough and bool(worse),
            "threshold": DECAY_THRESHOLD}


def registered_metrics(metrics: dict[str, Any], live: Sequence[str] | Scores) -> Scores:
    """The registered value of each live metric that was registered, by the live name."""
    by_name = {str(key).lower(): value for key, value in metrics.items()}
    found: Scores = {}
    for name in live:
        value = next((by_name[alias] for alias in REGISTERED_NAMES.get(name, (name,))
                      if alias in by_name), None)
        if _is_number(value):
            found[name] = float(value)
    return found


def _is_number(value: Any) -> TypeGuard[int | float]:
    return isinstance(value, int | float) and not isinstance(value, bool) \
        and math.isfinite(value)


def _decay(name: str, live: float, registered: float) -> float:
    """Relative change from the registered value, negative when worse (an error that grew
    is a decay too)."""
    change = (live - registered) / abs(registered)
    return -change if name in LOWER_IS_BETTER else change
