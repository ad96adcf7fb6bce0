"""Stages run one after another on a whole batch, each timed: what serves steps and pipelines.

What a stage receives is what the stage before gave, except after a model:
- a Python step after a model receives the model's outputs as a dict by role name
  (`{"label": ..., "probabilities": ...}`), and may return that dict (changed) or one array;
- a model after a model receives its value (regressors), else its probabilities, else its
  labels.
Each stage's time is reported under a fixed name: `preprocess` for steps before the first
model, `compute` for models and ensembles, `postprocess` for steps after a model.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ferry.errors import InvalidInputError, StepError
from ferry.runtime.predictor import Outputs, Predictor
from ferry.signature import Role, Signature, Task

StageObserver = Callable[[str, float], None]
"""Called with a stage's name (preprocess, compute, postprocess) and its seconds."""

CARRIED = (Role.VALUE, Role.PROBABILITIES, Role.LABEL)
"""Which output of a model the next model receives: the first of these it gives."""


@dataclass(frozen=True)
class StageRun:
    """One stage: a Python step (`call` takes and gives anything) or a model (`predictor`)."""

    name: str
    call: Callable[[Any], Any] | None = None
    predictor: Predictor | None = None


class ChainPredictor(Predictor):
    """`stages` in order over each whole batch; at least one of them a model."""

    def __init__(self, stages: Sequence[StageRun], signature: Signature, task: Task, *,
                 model: str = "", version: int = 0) -> None:
        super().__init__(signature, task, model=model, version=version)
        self.stages = tuple(stages)

    def outputs(self, data: Any) -> Outputs:
        return self.timed_outputs(data, None)

    def timed_outputs(self, data: Any, observe: StageObserver | None) -> Outputs:
        """The outputs for `data`, each stage's seconds given to `observe`."""
        value: Any = data
        after_model = False
        for stage in self.stages:
            started = time.perf_counter()
            value = self._run(stage, value, after_model)
            if observe is not None:
                observe(_stage_label(stage, after_model), time.perf_counter() - started)
            after_model = after_model or stage.predictor is not None
        if self.stages[-1].predictor is not None:
            return dict(value)
        return as_outputs(value, self.task, self.stages[-1].name)

    def _run(self, stage: StageRun, value: Any, after_model: bool) -> Any:
        if stage.predictor is not None:
            return stage.predictor.outputs(carried(value) if after_model else value)
        assert stage.call is not None
        if after_model and _is_outputs(value):
            value = {str(role): array for role, array in value.items()}
        return stage.call(value)


def _stage_label(stage: StageRun, after_model: bool) -> str:
    if stage.predictor is not None:
        return "compute"
    return "postprocess" if after_model else "preprocess"


def _is_outputs(value: Any) -> bool:
    return isinstance(value, dict) and all(isinstance(key, Role) for key in value)


def carried(value: Any) -> Any:
    """What a model hands to the model after it (see the module's docstring)."""
    if not _is_outputs(value):
        return value
    for role in CARRIED:
        if role in value:
            return value[role]
    raise StepError("the model before gives no output to pass on")


def as_outputs(result: Any, task: Task, name: str) -> Outputs:
    """A last step's result keyed by role: a mapping by role name, or one array."""
    if not isinstance(result, Mapping):
        role = Role.LABEL if task == Task.CLASSIFICATION else Role.VALUE
        return {role: np.asarray(result)}
    try:
        return {Role(str(key)): np.asarray(value) for key, value in result.items()}
    except ValueError as exc:
        raise StepError(f"step {name!r} returned keys {sorted(map(str, result))}: return a"
                        f" dict keyed by {', '.join(r.value for r in Role)}, or one array"
                        ) from exc


class EnsemblePredictor(Predictor):
    """Members given the same input; probabilities (classifiers) or values averaged."""

    def __init__(self, members: Sequence[Predictor], weights: Sequence[float]) -> None:
        first = members[0]
        super().__init__(first.signature, first.task, model=first.model,
                         version=first.version)
        self.members = tuple(members)
        self.weights = np.asarray(weights, dtype=np.float64) / float(np.sum(weights))
        check_members(self.members)

    def outputs(self, data: Any) -> Outputs:
        if self.task == Task.CLASSIFICATION:
            probabilities = self._mean(Role.PROBABILITIES, data)
            labels = self.signature.class_labels
            index = np.argmax(probabilities, axis=1)
            label = np.asarray(labels)[index] if labels is not None else index
            return {Role.LABEL: label, Role.PROBABILITIES: probabilities.astype(np.float32)}
        return {Role.VALUE: self._mean(Role.VALUE, data).astype(np.float32)}

    def _mean(self, role: Role, data: Any) -> np.ndarray:
        values = [np.asarray(m.outputs(data)[role], dtype=np.float64) for m in self.members]
        return np.tensordot(self.weights, np.stack(values), axes=1)


def check_members(members: Sequence[Predictor]) -> None:
    """Members an ensemble can average: one task, and for classifiers the same classes in
    the same order, with probabilities."""
    first = members[0]
    for member in members[1:]:
        if member.task != first.task:
            raise InvalidInputError(
                f"ensemble members {first.model}:{first.version} ({first.task}) and"
                f" {member.model}:{member.version} ({member.task}) do different tasks")
        if member.signature.class_labels != first.signature.class_labels:
            raise InvalidInputError(
                f"ensemble members {first.model}:{first.version} and"
                f" {member.model}:{member.version} have different classes"
                f" ({first.signature.class_labels} and {member.signature.class_labels}):"
                " ensemble models trained on the same labels")
    if first.task == Task.CLASSIFICATION and not all(
            any(s.role == Role.PROBABILITIES for s in m.signature.outputs) for m in members):
        raise InvalidInputError("every classifier of an ensemble must give probabilities")
