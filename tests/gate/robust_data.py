"""Models and data for the robustness tests: scikit-learn's bundled data sets, a customer table
with strings and missing values, and models with a planted fragility."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from sklearn.compose import ColumnTransformer
from sklearn.datasets import load_iris
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler
from sklearn.tree import DecisionTreeClassifier

from ferry.gate.cases import Predict
from ferry.gate.checks import Scores

PINNED_WIDTH = 0.2
"""The iris petal width 29 of 150 flowers have; the fragile tree splits exactly there."""


def predict_with(model: object) -> Predict:
    """A scikit-learn-like model as the predict function the checks call."""
    return lambda frame: Scores(np.asarray(model.predict(frame)))  # type: ignore[attr-defined]


def iris() -> tuple[pd.DataFrame, pd.Series]:
    frame, target = load_iris(return_X_y=True, as_frame=True)
    return frame, target


def iris_trees() -> tuple[DecisionTreeClassifier, DecisionTreeClassifier]:
    """A fitted depth-2 tree (root split: petal width <= 0.8) and the same tree with the root
    threshold moved onto `PINNED_WIDTH`, where many rows sit: +1 % sends them the other way.
    The threshold is a float32, as the tree compares float32 features."""
    frame, target = iris()
    fixed = DecisionTreeClassifier(max_depth=2, random_state=0).fit(frame, target)
    fragile = DecisionTreeClassifier(max_depth=2, random_state=0).fit(frame, target)
    assert frame.columns[fragile.tree_.feature[0]] == "petal width (cm)"
    fragile.tree_.threshold[0] = float(np.float32(PINNED_WIDTH))
    return fragile, fixed


def churn_pipeline(handle_unknown: str = "ignore") -> Pipeline:
    """Imputes and scales numbers, one-hot encodes strings (`handle_unknown="error"`: raises
    on a category it was not fitted on)."""
    numeric = Pipeline([("impute", SimpleImputer(strategy="median")), ("scale", StandardScaler())])
    preprocess = ColumnTransformer([
        ("numeric", numeric, ["age", "monthly_spend"]),
        ("categorical", OneHotEncoder(handle_unknown=handle_unknown), ["plan", "region"]),
    ])
    return Pipeline([("preprocess", preprocess), ("classify", LogisticRegression())])


@dataclass
class Power:
    """A regressor whose output is `column ** power`: scaling the column by 1 % moves the
    output by 1.01 ** power - 1, on every row."""

    column: str = "bmi"
    power: float = 1.0

    def predict(self, frame: pd.DataFrame) -> np.ndarray:
        return np.asarray(frame[self.column], dtype=float) ** self.power


@dataclass
class Linear:
    """A linear regressor computed by hand: NaN in, NaN out (it never raises on missing)."""

    weights: np.ndarray

    def predict(self, frame: pd.DataFrame) -> np.ndarray:
        return np.asarray(frame, dtype=float) @ self.weights
