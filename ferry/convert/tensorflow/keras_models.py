"""Keras models: their inputs as named tensors, and a SavedModel that serves them.

Keras 3 models are converted through a SavedModel written with `keras.export.ExportArchive`,
not `tf2onnx.convert.from_keras`: on Keras 3 `from_keras` fails for Sequential models (no
`output_names`: `KeyError: 'keras_tensor_...'`), and `from_function` loses the lookup tables of
StringLookup layers ("Could not determine table shared name"). The archive's endpoint calls
the model with `training=False` (Dropout off, BatchNormalization on its moving statistics) and
returns a dict, so the ONNX graph's inputs and outputs get the names chosen here:
- inputs: the names given to `keras.Input(name=...)`; generated ones (`keras_tensor_3`,
  `input_layer`) become `input` (or `input_0`, `input_1`, ...); the batch axis stays open;
- outputs: `output` for one; the model's output names (or `output_0`, ...) for several.

TextVectorization is refused before conversion: tf2onnx has no ONNX form for its string ops
(`StringSplitV2`, `StaticRegexReplace`), and onnxruntime-extensions' versions agree on 72 % of
rows. Such models can be registered with `force=True` and served by TensorFlow itself.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ferry.convert.tensorflow.runtime import as_tensor, keras, tensorflow
from ferry.errors import InvalidInputError, SampleMismatchError, UnsupportedModelError

REFUSED_LAYERS = {
    "TextVectorization": "tf2onnx has no ONNX form for its string splitting and regex ops"
                         " (StringSplitV2, StaticRegexReplace)",
}
"""Layers whose ONNX form is missing or wrong, with the reason given to the user."""
_GENERATED_NAME = re.compile(r"^(keras_tensor|input_layer|input)(_\d+)?$")
ENDPOINT = "serving_default"


@dataclass(frozen=True)
class KerasInputs:
    """How the model is called: its inputs' names and specs, and the call's structure."""

    specs: dict[str, Any]
    """ONNX/serving input name -> `tf.TensorSpec` with an open batch axis."""
    keras_names: dict[str, str]
    """Serving input name -> the Keras input's own name (the dict key the model takes)."""
    structure: str
    """`single`, `list` or `dict`: what the model's `call` takes."""

    def call_arguments(self, arrays: dict[str, Any]) -> Any:
        """The model's argument for `arrays` (serving name -> array or tensor)."""
        return self.structured({name: _tensor(arrays[name], self.specs[name].dtype)
                                for name in self.specs})

    def structured(self, tensors: dict[str, Any]) -> Any:
        """Tensors by serving name arranged as the model's `call` takes them (plain Python:
        it runs inside `tf.function` traces)."""
        if self.structure == "single":
            return next(iter(tensors.values()))
        if self.structure == "list":
            return list(tensors.values())
        return {self.keras_names[name]: value for name, value in tensors.items()}


def _tensor(value: Any, dtype: Any) -> Any:
    tf = tensorflow()
    return value if isinstance(value, tf.Tensor) else as_tensor(value, dtype)


def is_keras_model(model: object) -> bool:
    return isinstance(model, keras().Model)


def refuse_unconvertible(model: Any) -> None:
    for layer in _all_layers(model):
        reason = REFUSED_LAYERS.get(type(layer).__name__)
        if reason is not None:
            raise UnsupportedModelError(
                f"{type(model).__name__} has a {type(layer).__name__} layer"
                f" ({layer.name!r}), which does not convert to ONNX: {reason}; register it"
                " with force=True to serve it with TensorFlow (runtime native)")


def _all_layers(model: Any) -> Iterator[Any]:
    for layer in getattr(model, "layers", []):
        yield layer
        yield from _all_layers(layer)


def keras_inputs(model: Any, sample: Any) -> KerasInputs:
    """The model's inputs, from its `inputs` when it has them, else from the sample."""
    declared = _declared_inputs(model)
    if declared:
        return _from_declared(model, declared)
    if sample is None:
        raise InvalidInputError(
            f"{type(model).__name__} declares no inputs (it was built without keras.Input):"
            " pass sample= (rows it takes, or a dict of arrays by input name)")
    return _from_sample(sample)


def _declared_inputs(model: Any) -> list[Any]:
    try:
        return list(model.inputs or [])
    except (AttributeError, ValueError):
        return []


def _from_declared(model: Any, declared: list[Any]) -> KerasInputs:
    tf = tensorflow()
    keras_names = [str(t.name) for t in declared]
    serving = _serving_names(keras_names)
    specs = {name: tf.TensorSpec((None, *t.shape[1:]), t.dtype, name=name)
             for name, t in zip(serving, declared, strict=True)}
    structure = "dict" if isinstance(_input_structure(model), dict) else (
        "list" if len(declared) > 1 else "single")
    return KerasInputs(specs, dict(zip(serving, keras_names, strict=True)), structure)


def _input_structure(model: Any) -> Any:
    try:
        return model.input
    except (AttributeError, ValueError):
        return None


def _serving_names(keras_names: list[str]) -> list[str]:
    if len(keras_names) == 1:
        return ["input" if _GENERATED_NAME.match(keras_names[0]) else keras_names[0]]
    names = [f"input_{i}" if _GENERATED_NAME.match(n) else n for i, n in enumerate(keras_names)]
    if len(set(names)) != len(names):
        return [f"input_{i}" for i in range(len(names))]
    return names


def _from_sample(sample: Any) -> KerasInputs:
    tf = tensorflow()
    arrays = sample if isinstance(sample, dict) else {"input": np.asarray(sample)}
    specs = {name: tf.TensorSpec((None, *np.shape(a)[1:]), _tf_dtype(np.asarray(a)), name=name)
             for name, a in arrays.items()}
    structure = "dict" if isinstance(sample, dict) else "single"
    return KerasInputs(specs, {name: name for name in specs}, structure)


def _tf_dtype(array: np.ndarray) -> Any:
    tf = tensorflow()
    if array.dtype.kind in "OSU":
        return tf.string
    return tf.as_dtype(array.dtype)


def output_names(model: Any, count: int) -> list[str]:
    if count == 1:
        return ["output"]
    names = [str(n) for n in (getattr(model, "output_names", None) or [])]
    if len(names) == count and len(set(names)) == count:
        return names
    return [f"output_{i}" for i in range(count)]


def call(model: Any, inputs: KerasInputs, arrays: dict[str, Any]) -> list[Any]:
    """The model's outputs on `arrays`, flattened, in inference mode."""
    try:
        result = model(inputs.call_arguments(arrays), training=False)
    except Exception as exc:
        shapes = {name: list(np.shape(a)) for name, a in arrays.items()}
        raise SampleMismatchError(f"{type(model).__name__} fails on inputs {shapes}:"
                                  f" {type(exc).__name__}: {str(exc).splitlines()[0][:300]}"
                                  ) from exc
    return flatten(result)


def flatten(outputs: Any) -> list[Any]:
    """A model's outputs as a list (one tensor, a list, or a dict in key order)."""
    if isinstance(outputs, dict):
        return [outputs[key] for key in sorted(outputs)]
    if isinstance(outputs, list | tuple):
        return [item for output in outputs for item in flatten(output)]
    return [outputs]


def export(model: Any, inputs: KerasInputs, count: int, directory: Path) -> list[str]:
    """Write a SavedModel serving `model` under `ENDPOINT`; the output names it uses."""
    names = output_names(model, count)
    archive = keras().export.ExportArchive()
    archive.track(model)

    def serve(arguments: dict[str, Any]) -> dict[str, Any]:
        outputs = model(inputs.structured(arguments), training=False)
        return dict(zip(names, flatten(outputs), strict=True))

    archive.add_endpoint(ENDPOINT, serve, input_signature=[inputs.specs])
    archive.write_out(str(directory), verbose=False)
    return names
