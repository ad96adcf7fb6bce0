"""Hold-out rows and real scikit-learn models' predictions for the gate's tests."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from sklearn.datasets import make_classification
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import train_test_split
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from ferry.gate.checks import Check, Scores


def scores(model: Any, features: Any) -> Scores:
    """A fitted scikit-learn model's answers, as the gate receives them."""
    if not hasattr(model, "predict_proba"):
        return Scores(np.asarray(model.predict(features), dtype=np.float64))
    return Scores(model.predict(features), model.predict_proba(features), tuple(model.classes_))


def measured(check: Check) -> tuple[float, float]:
    """A check's (candidate, baseline) values, both present."""
    assert check.candidate is not None and check.baseline is not None, check
    return check.candidate, check.baseline


def logistic() -> Any:
    return make_pipeline(StandardScaler(), LogisticRegression(max_iter=5000))


@dataclass(frozen=True)
class Pair:
    """Two versions scored on the same hold-out rows."""

    frame: pd.DataFrame
    labels: np.ndarray
    candidate: Scores
    baseline: Scores


def retrained_pair(load: Callable[..., Any], make: Callable[[int], Any], seed: int,
                   hold_out: float = 0.4) -> Pair:
    """One model type trained twice, on two different random 80 % draws of the training
    rows (and seeds): equal models, scored on one hold-out."""
    data = load(as_frame=True)
    train, test, y_train, y_test = train_test_split(data.data, data.target,
                                                    test_size=hold_out, random_state=seed)
    rng = np.random.default_rng(seed)
    fitted = []
    for offset in (0, 1):
        rows = rng.choice(len(train), int(0.8 * len(train)), replace=False)
        fitted.append(make(seed + offset).fit(train.iloc[rows], y_train.iloc[rows]))
    return Pair(test.reset_index(drop=True), y_test.to_numpy(), scores(fitted[0], test),
                scores(fitted[1], test))


def flip(pred: Scores, rows: np.ndarray) -> Scores:
    """A binary classifier's answers turned around on `rows` (label and probabilities)."""
    assert pred.probabilities is not None and pred.classes is not None
    prediction, probabilities = pred.prediction.copy(), pred.probabilities.copy()
    prediction[rows] = np.where(prediction[rows] == pred.classes[0], pred.classes[1],
                                pred.classes[0])
    probabilities[rows] = probabilities[rows, ::-1]
    return Scores(prediction, probabilities, pred.classes)


def planted_slice(rows: int = 40_000, seed: int = 0, share: float = 0.05,
                  gap: float = 0.10) -> tuple[Pair, np.ndarray]:
    """A gradient-boosted candidate better than a logistic baseline overall, made `gap`
    (accuracy) worse than the baseline on the rows where feature `x3` is in its top `share`
    by answering wrong some of the rows it had right there. The frame has a column `region`
    that is "north" on those rows and "south", "east" or "west" elsewhere. Returns the pair
    and the slice's rows."""
    features, target = make_classification(n_samples=rows, n_features=8, n_informative=5,
                                           n_redundant=1, random_state=seed)
    frame = pd.DataFrame(features, columns=[f"x{i}" for i in range(8)])
    train, test, y_train, y_test = train_test_split(frame, target, test_size=0.5,
                                                    random_state=seed)
    test = test.reset_index(drop=True)
    baseline = scores(logistic().fit(train, y_train), test)
    candidate = scores(HistGradientBoostingClassifier(random_state=seed).fit(train, y_train),
                       test)
    top = (test["x3"] > test["x3"].quantile(1 - share)).to_numpy()
    rng = np.random.default_rng(seed)
    right = np.flatnonzero(top & (candidate.prediction == y_test))
    wanted = (np.mean(baseline.prediction[top] == y_test[top]) - gap) * top.sum()
    broken = rng.choice(right, max(len(right) - int(wanted), 0), replace=False)
    test["region"] = np.where(top, "north", rng.choice(["south", "east", "west"], len(test)))
    return Pair(test, y_test, flip(candidate, broken), baseline), np.flatnonzero(top)
