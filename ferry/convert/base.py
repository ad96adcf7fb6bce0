"""The converter interface: one small class per framework, registered in `ferry.convert`.

A converter knows how to recognise its framework's models, save and reload the original,
predict with the original (the reference the ONNX form is checked against), and build the
ONNX form with its signature. It does no I/O of its own: the registry stores what it returns.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import onnx
import pandas as pd

from ferry.data import NamedTensors
from ferry.errors import InvalidInputError, UnsupportedModelError
from ferry.runtime.predictor import Outputs
from ferry.signature import DYNAMIC, Layout, Role, Signature, Task, TensorSpec

Sample = pd.DataFrame | np.ndarray | NamedTensors
"""Rows a model can take: named columns, an array whose first axis is the batch, or (for
converters with `named_inputs`) one such array per graph input, by name."""


@dataclass(frozen=True)
class Conversion:
    """The ONNX form of a model and what it takes and gives."""

    onnx_model: onnx.ModelProto
    signature: Signature
    task: Task


@dataclass(frozen=True)
class SavedOriginal:
    """The original model's bytes and their format (`joblib`, `onnx`, `pmml`, `pt2`, ...)."""

    data: bytes
    format: str


class Converter(ABC):
    """Carries one framework's models to ONNX. Subclasses set `framework`."""

    framework: ClassVar[str]
    file_suffixes: ClassVar[tuple[str, ...]] = ()
    """Suffixes of the framework's own safe file formats that `read_file` opens."""
    named_inputs: ClassVar[bool] = False
    """Whether a sample may give one array per named input (a dict): graphs with several
    tensor inputs. The others take rows (a DataFrame or an array)."""

    @abstractmethod
    def matches(self, model: object) -> bool:
        """Whether `model` belongs to this framework."""

    @abstractmethod
    def framework_version(self) -> str:
        """The installed version of the framework."""

    @abstractmethod
    def task(self, model: object) -> Task:
        """Classification, regression or other."""

    def with_dynamic_axes(self, axes: Mapping[int, str]) -> Converter:
        """This converter, exporting the input's `axes` (index -> name) as dynamic. Only
        tracing converters have fixed axes to free; the others refuse."""
        raise InvalidInputError(
            f"dynamic_axes is for PyTorch models, whose export traces fixed sizes;"
            f" {self.framework} graphs keep the axes their converter gives")

    @abstractmethod
    def convert(self, model: object, sample: Sample | None) -> Conversion:
        """The ONNX form; raises `UnsupportedModelError` when no converter handles `model`."""

    @abstractmethod
    def reference(self, model: object, data: Sample) -> Outputs:
        """The original model's outputs on `data`, keyed by role."""

    @abstractmethod
    def save(self, model: object, sample: Sample | None = None) -> SavedOriginal:
        """The original model as bytes (`sample`: rows it takes, for formats that trace)."""

    @abstractmethod
    def load(self, saved: SavedOriginal) -> object:
        """The original model back from `save()`'s bytes (used to serve native versions)."""

    def read_file(self, path: Path) -> object:
        """A model from one of `file_suffixes` (never a pickle: `ferry.files` handles those)."""
        raise UnsupportedModelError(
            f"{self.framework} cannot read {path.name}: use one of {self.file_suffixes or 'none'}"
        )

    def baseline_calls(self, model: object) -> dict[str, Callable[[Any], object]] | None:
        """The ways users call the original, by name, for the optimizer to time (the first
        is the baseline); None: its `predict` / `predict_proba`, or `reference`."""
        return None

    def native_signature(self, model: object, sample: Sample | None) -> Signature:
        """The signature of a version served by its own framework (no ONNX form)."""
        return signature_from_sample(sample, self.task(model), class_labels(model))


def comes_from(model: object, package: str) -> bool:
    """Whether `model`'s class or one of its bases is defined in `package` (no import)."""
    return any(cls.__module__.partition(".")[0] == package for cls in type(model).__mro__)


def class_labels(model: object) -> tuple[Any, ...] | None:
    classes = getattr(model, "classes_", None)
    return None if classes is None else tuple(np.asarray(classes).tolist())


def signature_from_sample(
    sample: Sample | None, task: Task, labels: tuple[Any, ...] | None
) -> Signature:
    """A signature read off sample data, for models whose ONNX graph does not give one."""
    if sample is None:
        inputs: tuple[TensorSpec, ...] = ()
        names = None
    elif isinstance(sample, pd.DataFrame):
        names = tuple(str(c) for c in sample.columns)
        inputs = (TensorSpec("X", "float32", (DYNAMIC, len(names))),)
    elif isinstance(sample, dict):
        names = None
        inputs = tuple(TensorSpec(name, str(array.dtype), (DYNAMIC, *array.shape[1:]))
                       for name, array in sample.items())
    else:
        names = None
        inputs = (TensorSpec("X", str(sample.dtype), (DYNAMIC, *sample.shape[1:])),)
    outputs = _role_outputs(task, labels)
    return Signature(inputs=inputs, outputs=outputs, layout=Layout.TENSOR,
                     feature_names=names, class_labels=labels)


def _role_outputs(task: Task, labels: tuple[Any, ...] | None) -> tuple[TensorSpec, ...]:
    if task == Task.CLASSIFICATION:
        label_dtype = "string" if labels and isinstance(labels[0], str) else "int64"
        n_classes = len(labels) if labels else DYNAMIC
        return (TensorSpec("label", label_dtype, (DYNAMIC,), Role.LABEL),
                TensorSpec("probabilities", "float32", (DYNAMIC, n_classes), Role.PROBABILITIES))
    return (TensorSpec("variable", "float32", (DYNAMIC,), Role.VALUE),)
