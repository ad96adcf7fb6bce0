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
from collections.abc import Callable
from typing import Any

from ferry.errors import FerryError, InvalidInputError, StepError, one_line
from ferry.runtime.predictor import Predictor
from ferry.steps.chain import ChainPredictor, StageRun
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


def step_run(label: str, step: StepSource) -> StageRun:
    """`step` compiled, as a stage whose errors are named `label` (preprocess, stage 2)."""
    function = compile_step(step)
    return StageRun(step.name, call=lambda batch: run_step(label, step.name, function, batch))


class StepsPredictor(ChainPredictor):
    """`inner`, with the version's steps run before and after it on each whole batch."""

    def __init__(self, inner: Predictor, steps: Steps) -> None:
        stages = [step_run(role, step) for role, step in steps.items()
                  if role == "preprocess"]
        stages.append(StageRun(inner.model, predictor=inner))
        stages += [step_run(role, step) for role, step in steps.items() if role == "postprocess"]
        super().__init__(stages, steps.signature or inner.signature, inner.task,
                         model=inner.model, version=inner.version)
        self.inner = inner
        self.steps = steps
