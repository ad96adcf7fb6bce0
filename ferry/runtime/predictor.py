"""The predictor interface that `ferry.load` returns, whatever runs underneath."""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any

import numpy as np

from ferry.errors import InvalidInputError
from ferry.signature import Role, Signature, Task

Outputs = dict[Role, np.ndarray]


class Predictor(ABC):
    """Predicts with one model version. `predict_proba` exists for classifiers only."""

    def __init__(self, signature: Signature, task: Task, *, model: str = "", version: int = 0):
        self.signature = signature
        self.task = task
        self.model = model
        self.version = version

    @abstractmethod
    def outputs(self, data: Any) -> Outputs:
        """Every output the model gives for `data`, keyed by role."""

    def predict(self, data: Any) -> np.ndarray:
        """Labels for a classifier, values otherwise."""
        outputs = self.outputs(data)
        role = Role.LABEL if self.task == Task.CLASSIFICATION else Role.VALUE
        return outputs[role] if role in outputs else next(iter(outputs.values()))

    def predict_proba(self, data: Any) -> np.ndarray:
        """Class probabilities, one column per entry of `signature.class_labels`."""
        outputs = self.outputs(data)
        if Role.PROBABILITIES not in outputs:
            raise InvalidInputError(
                f"model {self.model}:{self.version} gives no probabilities (task {self.task})",
                model=self.model, version=self.version,
            )
        return outputs[Role.PROBABILITIES]


def squeeze_values(task: Task, values: np.ndarray) -> np.ndarray:
    """Regressors give one value per row: `(n, 1)` becomes `(n,)` as in scikit-learn."""
    if task == Task.REGRESSION and values.ndim == 2 and values.shape[1] == 1:
        return values[:, 0]
    return values
