"""The predictor interface that `ferry.load` returns, whatever runs underneath."""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any

import numpy as np

from ferry.errors import InvalidInputError
from ferry.runtime.feeds import Feeds, to_feeds
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


class GraphPredictor(Predictor):
    """A predictor over arrays named as the signature's tensors (ONNX Runtime, OpenVINO, a
    compiled tree library). `run_feeds` is the call the server makes once per batch."""

    @abstractmethod
    def load(self) -> GraphPredictor:
        """Build the session / compiled model; returns self."""

    @abstractmethod
    def run_feeds(self, feeds: Feeds) -> dict[str, np.ndarray]:
        """Outputs by the signature's output names, for arrays shaped and typed as the
        signature's inputs."""

    def run(self, data: Any) -> dict[str, np.ndarray]:
        """Raw outputs by output name, for any data `to_feeds` accepts."""
        return self.run_feeds(to_feeds(self.signature, data))

    def outputs(self, data: Any) -> Outputs:
        return self.outputs_by_role(self.run(data))

    def outputs_by_role(self, raw: dict[str, np.ndarray]) -> Outputs:
        """`run_feeds`' outputs keyed by their role in the signature."""
        outputs: Outputs = {}
        for spec in self.signature.outputs:
            if spec.role is not None and spec.name in raw:
                outputs[spec.role] = raw[spec.name]
        if not outputs:
            outputs[Role.VALUE] = next(iter(raw.values()))
        if Role.VALUE in outputs:
            outputs[Role.VALUE] = squeeze_values(self.task, outputs[Role.VALUE])
        if Role.LABEL in outputs:
            outputs[Role.LABEL] = outputs[Role.LABEL].reshape(-1)
        return outputs
