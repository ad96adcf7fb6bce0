"""Stored steps compiled again and run around a model's predictor, on whole batches.

Each step is compiled from its stored imports, constants and source in a fresh module (never
the caller's), then taken by name. The preprocess step receives the batch as given to the
predictor and returns the model's input; the postprocess step receives the model's outputs as
a dict by role name (`{"label": ..., "probabilities": ...}`) and returns that dict (changed),
or a single array (the label of a classifier, the value otherwise).

A `ValueError` raised by a step means the input was wrong: it becomes an `InvalidInputError`
naming the step (a 4xx in the server); any other exception is a `StepError` naming it.
"""

from __future__ import annotations

import types
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from ferry.errors import FerryError, InvalidInputError, StepError, one_line
from ferry.runtime.predictor import Outputs, Predictor
from ferry.signature import Role, Task
from ferry.steps.record import Steps
from ferry.steps.source import StepSource

Step = Callable[[Any], Any]


def compile_step(step: StepSource) -> Step:
    """The function `step` stores, defined in a module of its own."""
    module = types.ModuleType(f"ferry_step_{step.name}")
    try:
        exec(compile(step.code(), f"<ferry step {step.name}>", "exec"), module.__dict__)
    except ImportError as exc:
        raise StepError(f"step {step.name!r} imports {exc.name!r}, which is not installed here:"
                        f" install the packages it was registered with ({step.describe()})"
                        ) from exc
    except Exception as exc:
        raise StepError(f"step {step.name!r} cannot be loaded: {one_line(exc)}") from exc
    function = module.__dict__.get(step.name)
    if not callable(function):
        raise StepError(f"the stored source does not define a function {step.name!r}")
    return function


def run_step(role: str, name: str, function: Step, batch: Any) -> Any:
    """`function(batch)`, its errors named after the step: a `ValueError` is the input's."""
    try:
        return function(batch)
    except FerryError:
        raise
    except ValueError as exc:
        raise InvalidInputError(f"{role} step {name!r} refused the input: {one_line(exc)}"
                                ) from exc
    except Exception as exc:
        raise StepError(f"{role} step {name!r} failed: {one_line(exc)}") from exc


class StepsPredictor(Predictor):
    """`inner`, with the version's steps run before and after it on each whole batch."""

    def __init__(self, inner: Predictor, steps: Steps) -> None:
        super().__init__(steps.signature or inner.signature, inner.task, model=inner.model,
                         version=inner.version)
        self.inner = inner
        self.steps = steps
        self.functions = {role: compile_step(step) for role, step in steps.items()}

    def preprocess(self, batch: Any) -> Any:
        """The model's input for `batch` (the batch itself without a preprocess step)."""
        if self.steps.preprocess is None:
            return batch
        return run_step("preprocess", self.steps.preprocess.name,
                        self.functions["preprocess"], batch)

    def postprocess(self, outputs: Outputs) -> Outputs:
        """The model's outputs after the postprocess step (unchanged without one)."""
        if self.steps.postprocess is None:
            return outputs
        result = run_step("postprocess", self.steps.postprocess.name,
                          self.functions["postprocess"], {str(k): v for k, v in outputs.items()})
        return as_outputs(result, self.task, self.steps.postprocess.name)

    def outputs(self, data: Any) -> Outputs:
        return self.postprocess(self.inner.outputs(self.preprocess(data)))


def as_outputs(result: Any, task: Task, name: str) -> Outputs:
    """A postprocess step's result keyed by role: a mapping by role name, or one array."""
    if not isinstance(result, Mapping):
        role = Role.LABEL if task == Task.CLASSIFICATION else Role.VALUE
        return {role: np.asarray(result)}
    try:
        return {Role(str(key)): np.asarray(value) for key, value in result.items()}
    except ValueError as exc:
        raise StepError(f"postprocess step {name!r} returned keys {sorted(map(str, result))}:"
                        f" return a dict keyed by {', '.join(r.value for r in Role)}, or one"
                        " array") from exc
