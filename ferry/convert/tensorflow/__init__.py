"""TensorFlow and Keras models, through tf2onnx (the `tensorflow` extra, imported lazily).

What registers: a Keras model object (Sequential, functional or subclassed), a `.keras` or
Keras 2 `.h5` file, and a SavedModel directory (`SavedModel(path, signature=...)`, its
`serving_default` signature unless told). Every one is converted the same way: a SavedModel
signature through tf2onnx (`onnx_export`); Keras models are first written as a SavedModel
whose endpoint names the inputs and outputs (`keras_models`).

The signature records the model's own input names, dtypes (strings as `string`) and shapes
with an open batch axis; the first output has the `value` role. Originals are stored without
a pickle: Keras models in the `.keras` format (format `keras`, reloaded with
`safe_mode=True`, which refuses Lambda layers' code), SavedModels as a zip of the directory
(format `tf-savedmodel:<signature>`).

The optimizer times the original as users call it: the model eagerly (`model(x)`) and
compiled (`tf.function` with an open batch axis, traced once); see `baseline_calls`.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ferry.convert.base import Conversion, Converter, Sample, SavedOriginal, comes_from
from ferry.convert.tensorflow import keras_models
from ferry.convert.tensorflow.keras_models import KerasInputs
from ferry.convert.tensorflow.onnx_export import saved_model_to_onnx
from ferry.convert.tensorflow.runtime import as_tensor, keras, tensorflow
from ferry.convert.tensorflow.saved_model import (
    DEFAULT_SIGNATURE,
    SavedModel,
    archive,
    is_saved_model,
    unpack,
)
from ferry.errors import InvalidInputError, UnsupportedModelError, one_line
from ferry.runtime.predictor import Outputs
from ferry.signature import DYNAMIC, Layout, Role, Signature, Task, TensorSpec, tensor_specs

KERAS_FORMAT = "keras"
SAVED_MODEL_FORMAT = "tf-savedmodel"
EXAMPLE_ROWS = 2


class TensorFlowConverter(Converter):
    framework = "tensorflow"
    file_suffixes = (".keras", ".h5", ".hdf5")
    named_inputs = True

    def matches(self, model: object) -> bool:
        return isinstance(model, SavedModel) or (
            comes_from(model, "keras") and keras_models.is_keras_model(model))

    def framework_version(self) -> str:
        return str(tensorflow().__version__)

    def task(self, model: object) -> Task:
        return Task.OTHER

    def convert(self, model: object, sample: Sample | None) -> Conversion:
        with tempfile.TemporaryDirectory(prefix="ferry-tf-") as scratch:
            saved, first_output = _as_saved_model(model, sample, Path(scratch))
            onnx_model = saved_model_to_onnx(saved.path, saved.signature)
        signature = Signature(inputs=tensor_specs(onnx_model.graph.input),
                              outputs=tensor_specs(onnx_model.graph.output,
                                                   {first_output: Role.VALUE}),
                              layout=Layout.TENSOR)
        return Conversion(onnx_model=onnx_model, signature=signature, task=Task.OTHER)

    def reference(self, model: object, data: Sample) -> Outputs:
        return {Role.VALUE: _outputs(model, data)[0]}

    def save(self, model: object, sample: Sample | None = None) -> SavedOriginal:
        if isinstance(model, SavedModel):
            return SavedOriginal(archive(model.path), f"{SAVED_MODEL_FORMAT}:{model.signature}")
        with tempfile.TemporaryDirectory(prefix="ferry-keras-") as scratch:
            path = Path(scratch) / "model.keras"
            _keras(model).save(path)
            return SavedOriginal(path.read_bytes(), KERAS_FORMAT)

    def load(self, saved: SavedOriginal) -> object:
        kind, _, signature = saved.format.partition(":")
        if kind == SAVED_MODEL_FORMAT:
            return unpack(saved.data, signature or DEFAULT_SIGNATURE)
        with tempfile.TemporaryDirectory(prefix="ferry-keras-") as scratch:
            path = Path(scratch) / "model.keras"
            path.write_bytes(saved.data)
            return _load_keras_file(path)

    def read_file(self, path: Path) -> object:
        if is_saved_model(path):
            return SavedModel(path)
        if path.suffix.lower() not in self.file_suffixes:
            return super().read_file(path)
        return _load_keras_file(path)

    def native_signature(self, model: object, sample: Sample | None) -> Signature:
        specs = _input_specs(model, sample)
        example = _example(sample, specs)
        outputs = _outputs(model, example)
        names = _output_names(model, len(outputs))
        return Signature(
            inputs=tuple(TensorSpec(name, _dtype_name(spec.dtype), _shape(spec.shape))
                         for name, spec in specs.items()),
            outputs=tuple(TensorSpec(name, str(out.dtype), (DYNAMIC, *out.shape[1:]),
                                     Role.VALUE if i == 0 else None)
                          for i, (name, out) in enumerate(zip(names, outputs, strict=True))),
            layout=Layout.TENSOR)

    def baseline_calls(self, model: object) -> dict[str, Callable[[Any], object]]:
        """The calls users make: a SavedModel's signature function; a Keras model compiled
        with `tf.function` and called eagerly."""
        if isinstance(model, SavedModel):
            return {"signature": lambda data: _outputs(model, data)}
        keras_model = _keras(model)
        inputs = keras_models.keras_inputs(keras_model, None)
        compiled = _compiled(keras_model, inputs)
        return {"tf.function": lambda data: compiled(_named(inputs, data)),
                "eager": lambda data: keras_models.call(keras_model, inputs,
                                                        _named(inputs, data))}


def _keras(model: object) -> Any:
    if not keras_models.is_keras_model(model):
        raise UnsupportedModelError(
            f"the tensorflow converter takes a Keras model or a SavedModel, not a"
            f" {type(model).__name__}")
    return model


def _as_saved_model(model: object, sample: Sample | None,
                    scratch: Path) -> tuple[SavedModel, str]:
    """The model as a SavedModel signature, and the name of the output `reference` gives
    (the ONNX graph lists outputs sorted by name, not in the model's order)."""
    if isinstance(model, SavedModel):
        return model, model.output_names()[0]
    keras_model = _keras(model)
    keras_models.refuse_unconvertible(keras_model)
    inputs = keras_models.keras_inputs(keras_model, sample)
    count = len(keras_models.call(keras_model, inputs, _example(sample, inputs.specs)))
    names = keras_models.export(keras_model, inputs, count, scratch)
    return SavedModel(scratch, keras_models.ENDPOINT), names[0]


def _outputs(model: object, data: Sample) -> list[np.ndarray]:
    if isinstance(model, SavedModel):
        results = model(_named_for(model.input_specs(), data))
        return [results[name] for name in model.output_names()]
    keras_model = _keras(model)
    inputs = keras_models.keras_inputs(keras_model, data)
    return [_numpy(out) for out in keras_models.call(keras_model, inputs, _named(inputs, data))]


def _numpy(tensor: Any) -> np.ndarray:
    return np.asarray(tensor.numpy() if hasattr(tensor, "numpy") else tensor)


def _named(inputs: KerasInputs, data: Any) -> dict[str, Any]:
    return _named_for(inputs.specs, data)


def _named_for(specs: dict[str, Any], data: Any) -> dict[str, Any]:
    """`data` as serving name -> array: a dict as given, anything else as the one input."""
    if isinstance(data, dict):
        missing = sorted(set(specs) - set(data))
        if missing:
            raise InvalidInputError(f"inputs {missing} are missing: the model takes"
                                    f" {sorted(specs)}")
        return {name: data[name] for name in specs}
    if len(specs) != 1:
        raise InvalidInputError(f"the model takes several inputs ({', '.join(specs)}): pass"
                                " a dict of arrays by input name")
    values = data.to_numpy(dtype=np.float32) if isinstance(data, pd.DataFrame) else data
    return {next(iter(specs)): values}


def _input_specs(model: object, sample: Sample | None) -> dict[str, Any]:
    if isinstance(model, SavedModel):
        return model.input_specs()
    return keras_models.keras_inputs(_keras(model), sample).specs


def _example(sample: Sample | None, specs: dict[str, Any]) -> dict[str, Any]:
    """A few rows to run the model on: the sample's, or zeros of the declared shapes."""
    if sample is not None:
        named = _named_for(specs, sample)
        return {name: np.asarray(values)[:EXAMPLE_ROWS] for name, values in named.items()}
    return {name: _zeros(spec) for name, spec in specs.items()}


def _zeros(spec: Any) -> np.ndarray:
    shape = [EXAMPLE_ROWS, *spec.shape[1:]]
    if any(size is None for size in shape):
        raise InvalidInputError(f"input {spec.name!r} has open axes {list(spec.shape)}: pass"
                                " sample= (rows the model takes)")
    dtype = object if spec.dtype == tensorflow().string else spec.dtype.as_numpy_dtype
    return np.zeros(shape, dtype=dtype) if dtype is not object else np.full(shape, "", object)


def _output_names(model: object, count: int) -> list[str]:
    if isinstance(model, SavedModel):
        return model.output_names()
    return keras_models.output_names(model, count)


def _dtype_name(dtype: Any) -> str:
    return "string" if dtype == tensorflow().string else str(dtype.as_numpy_dtype.__name__)


def _shape(shape: Any) -> tuple[int, ...]:
    return (DYNAMIC, *(DYNAMIC if size is None else int(size) for size in list(shape)[1:]))


def _compiled(model: Any, inputs: KerasInputs) -> Callable[[dict[str, Any]], Any]:
    """`model` as a `tf.function` over the inputs' specs (batch axis open: traced once)."""
    tf = tensorflow()

    @tf.function(input_signature=[inputs.specs], autograph=False)
    def run(arguments: dict[str, Any]) -> Any:
        return model(inputs.structured(arguments), training=False)

    return lambda arrays: run({name: as_tensor(arrays[name], spec.dtype)
                               for name, spec in inputs.specs.items()})


def _load_keras_file(path: Path) -> Any:
    try:
        return keras().saving.load_model(path, compile=False, safe_mode=True)
    except Exception as exc:
        raise UnsupportedModelError(f"cannot load {path.name} as a Keras model:"
                                    f" {one_line(exc)}") from exc


__all__ = ["DEFAULT_SIGNATURE", "SavedModel", "TensorFlowConverter"]
