"""ONNX files registered as they are: the original of an ONNX model is the model itself.

`read_file` opens a `.onnx` file (with any external data next to it); `read_file` and
`convert` check the model with `onnx.checker.check_model(full_check=True)` and
`onnx.shape_inference.infer_shapes(strict_mode=True)` (lenient where ONNX cannot infer an
ai.onnx.ml operator's output type, see `_checked`), so a truncated, corrupt or invalid file is
refused with one line saying what is wrong. The conversion returns the same graph;
its signature is read off the graph (with shapes filled in by inference). The task is read
off the outputs: exactly two, the first an int64 or string tensor of rank 1 and the second a
floating-point tensor of rank 2, make a classifier (`label`, `probabilities`); anything else is
`other`, with the first output as its `value` (a regression cannot be told from the graph).
Class labels are unknown. Fixed dimensions, the batch axis included, are recorded as they are.

The reference runs the original on ONNX Runtime, so the conversion check of an ONNX file
compares the model with itself: it passes trivially, and proves the model loads and runs (a
model the installed ONNX Runtime cannot load, say of a newer IR version, is refused there with
`UnsupportedModelError`).
"""

from __future__ import annotations

from pathlib import Path

import onnx
import onnxruntime as ort

from ferry.convert.base import Conversion, Converter, Sample, SavedOriginal
from ferry.errors import CorruptArtifactError, InvalidInputError, UnsupportedModelError, one_line
from ferry.runtime.onnx_runtime import OnnxPredictor
from ferry.runtime.predictor import Outputs
from ferry.signature import Layout, Role, Signature, Task, TensorSpec, tensor_specs

FORMAT = "onnx"
_LABEL_DTYPES = ("int64", "string")
_SCORE_DTYPES = ("float16", "float32", "float64")


class OnnxConverter(Converter):
    framework = "onnx"
    file_suffixes = (".onnx",)
    named_inputs = True

    def matches(self, model: object) -> bool:
        return isinstance(model, onnx.ModelProto)

    def framework_version(self) -> str:
        return str(onnx.__version__)

    def task(self, model: object) -> Task:
        outputs = tensor_specs(_checked(_model(model), "the ONNX model").graph.output)
        return _task(outputs)

    def convert(self, model: object, sample: Sample | None) -> Conversion:
        onnx_model = _model(model)
        signature, task = graph_signature(_checked(onnx_model, "the ONNX model"))
        return Conversion(onnx_model=onnx_model, signature=signature, task=task)

    def reference(self, model: object, data: Sample) -> Outputs:
        onnx_model = _model(model)
        signature, task = graph_signature(_checked(onnx_model, "the ONNX model"))
        predictor = OnnxPredictor(onnx_model.SerializeToString(), signature, task)
        try:
            predictor.load()
        except Exception as exc:
            raise UnsupportedModelError(
                f"onnxruntime {ort.__version__} cannot load the ONNX model: {one_line(exc)}"
            ) from exc
        return predictor.outputs(data)

    def save(self, model: object, sample: Sample | None = None) -> SavedOriginal:
        return SavedOriginal(_model(model).SerializeToString(), FORMAT)

    def load(self, saved: SavedOriginal) -> object:
        if saved.format != FORMAT:
            raise CorruptArtifactError(f"an ONNX original has format {FORMAT!r}, not"
                                       f" {saved.format!r}")
        try:
            return onnx.load_model_from_string(saved.data)
        except Exception as exc:
            raise CorruptArtifactError(
                f"the stored ONNX original cannot be parsed: {one_line(exc)}"
            ) from exc

    def read_file(self, path: Path) -> object:
        if path.suffix.lower() not in self.file_suffixes:
            return super().read_file(path)
        try:
            model = onnx.load(str(path))
        except Exception as exc:
            raise InvalidInputError(
                f"{path.name} is not a readable ONNX model: {one_line(exc)}"
            ) from exc
        _checked(model, path.name)
        return model

    def native_signature(self, model: object, sample: Sample | None) -> Signature:
        return graph_signature(_checked(_model(model), "the ONNX model"))[0]


def graph_signature(model: onnx.ModelProto) -> tuple[Signature, Task]:
    """The signature and task of a checked model whose shapes have been inferred."""
    graph = model.graph
    initializers = {i.name for i in graph.initializer} | {i.name for i in graph.sparse_initializer}
    inputs = tensor_specs([i for i in graph.input if i.name not in initializers])
    _require_tensor_inputs(inputs)
    outputs = tensor_specs(graph.output)
    task = _task(outputs)
    roles = ({outputs[0].name: Role.LABEL, outputs[1].name: Role.PROBABILITIES}
             if task == Task.CLASSIFICATION else {outputs[0].name: Role.VALUE})
    signature = Signature(inputs=inputs, outputs=tensor_specs(graph.output, roles),
                          layout=_layout(inputs))
    return signature, task


def _model(model: object) -> onnx.ModelProto:
    if not isinstance(model, onnx.ModelProto):
        raise UnsupportedModelError(f"{type(model).__name__} is not an onnx.ModelProto")
    return model


def _checked(model: onnx.ModelProto, source: str) -> onnx.ModelProto:
    """`model` with inferred shapes, once the checker accepts it.

    The structural check must pass. Strict shape inference is tried next; where it fails
    only on a type it cannot infer (ONNX's inference is incomplete for some ai.onnx.ml
    operators: skl2onnx's TreeEnsembleClassifier followed by Identity, for one), inference
    runs again leniently, and ONNX Runtime loading the model in the check decides."""
    try:
        onnx.checker.check_model(model)
    except Exception as exc:
        raise InvalidInputError(f"{source} is not a valid ONNX model: {one_line(exc)}") from exc
    try:
        onnx.checker.check_model(model, full_check=True)
        return onnx.shape_inference.infer_shapes(model, strict_mode=True)
    except onnx.shape_inference.InferenceError as exc:
        if "TypeInferenceError" not in str(exc) or "is null" not in str(exc):
            raise InvalidInputError(f"{source} is not a valid ONNX model: {one_line(exc)}"
                                    ) from exc
        return onnx.shape_inference.infer_shapes(model)
    except Exception as exc:
        raise InvalidInputError(f"{source} is not a valid ONNX model: {one_line(exc)}") from exc


def _task(outputs: tuple[TensorSpec, ...]) -> Task:
    if (len(outputs) == 2 and outputs[0].dtype in _LABEL_DTYPES and len(outputs[0].shape) == 1
            and outputs[1].dtype in _SCORE_DTYPES and len(outputs[1].shape) == 2):
        return Task.CLASSIFICATION
    return Task.OTHER


def _layout(inputs: tuple[TensorSpec, ...]) -> Layout:
    """`columns` for several `[N, 1]` inputs (one per column, as skl2onnx builds them)."""
    if len(inputs) > 1 and all(len(i.shape) == 2 and i.shape[1] == 1 for i in inputs):
        return Layout.COLUMNS
    return Layout.TENSOR


def _require_tensor_inputs(inputs: tuple[TensorSpec, ...]) -> None:
    if not inputs:
        raise UnsupportedModelError("the ONNX graph takes no inputs")
    for spec in inputs:
        if spec.dtype == "unknown":
            raise UnsupportedModelError(
                f"ONNX input {spec.name!r} is not a tensor of a supported type:"
                " ferry feeds tensors only"
            )


__all__ = ["OnnxConverter", "graph_signature"]
