"""PyTorch modules, through the torch.export-based ("dynamo") ONNX exporter.

Exporter choice: `torch.onnx.export(..., dynamo=True, dynamic_shapes=...)`. Since PyTorch 2.9
it is the default exporter; the TorchScript one (`dynamo=False`, `dynamic_axes`) still runs in
torch 2.13 but warns that it is deprecated and due for removal. The dynamo exporter traces
with `torch.export`, the same tracer `save()` uses for the original, so a model that exports
to ONNX can also be saved without a pickle, and a model that cannot be traced fails both ways
with the same `UnsupportedModelError`. The batch axis is a `torch.export.Dim` named `batch`,
which comes out as the ONNX dimension parameter `batch`.

Other input axes are fixed at the sample's sizes unless the version is registered with
`dynamic_axes={axis: name}` (token ids of any length, images of any size): those axes are
exported as `torch.export.Dim.AUTO`, which lets the tracer infer the sizes the model allows
(a BERT's sequence up to its position table) instead of failing on a range it cannot prove,
and come out in the ONNX graph, and in every output that shares them, under `name`.

Opset 18 is the lowest the exporter has implementations for (asking for 17 makes it export
at 18 and convert down with the ONNX version converter, which may fail) and runs on every
ONNX Runtime since 1.14.

`torch.export` specialises an axis whose example size is 0 or 1, so the example used for
tracing is two rows of the sample (the one row repeated when the sample has only one).

The original is saved as a `.pt2` file (`torch.export.save`): the traced graph and weights,
no pickled Python code. `torch.export.save` traces too, so `save()` needs the sample.
"""

from __future__ import annotations

import io
import logging
import re
import warnings
from collections.abc import Iterator, Mapping
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import onnx
import pandas as pd

from ferry.convert.base import Conversion, Converter, Sample, SavedOriginal, comes_from
from ferry.errors import InvalidInputError, SampleMismatchError, UnsupportedModelError
from ferry.runtime.predictor import Outputs
from ferry.signature import DYNAMIC, Layout, Role, Signature, Task, TensorSpec, tensor_specs

if TYPE_CHECKING:
    import torch

TARGET_OPSET = 18
"""The lowest opset the torch.export-based exporter implements without a version conversion."""
BATCH = "batch"
"""Name of the dynamic batch axis, in `torch.export` and in the ONNX graph."""
EXPORT_ROWS = 2
"""Rows of the sample traced: `torch.export` specialises axes whose example size is 0 or 1."""
_ANSI = re.compile(r"\x1b\[[0-9;]*m")
_NOISY_LOGGER = "torch.onnx._internal.exporter._registration"
"""Warns once per process that torchvision's operators are skipped when it is not installed."""


class TorchConverter(Converter):
    framework = "torch"
    file_suffixes = (".pt2",)

    def __init__(self, dynamic_axes: Mapping[int, str] | None = None) -> None:
        self.dynamic_axes = dict(dynamic_axes or {})
        """Input axis -> name of the axes exported dynamic besides the batch."""

    def with_dynamic_axes(self, axes: Mapping[int, str]) -> TorchConverter:
        return TorchConverter(_checked_axes(axes))

    def matches(self, model: object) -> bool:
        if not comes_from(model, "torch"):
            return False
        import torch

        return isinstance(model, torch.nn.Module)

    def framework_version(self) -> str:
        import torch

        return str(torch.__version__)

    def task(self, model: object) -> Task:
        return Task.OTHER

    def convert(self, model: object, sample: Sample | None) -> Conversion:
        module = _module(model)
        array, names = _sample_array(module, sample)
        _check_axes_fit(self.dynamic_axes, array)
        example = _export_rows(array)
        n_outputs = len(_output_arrays(module, example))
        onnx_model = _export_onnx(module, example, n_outputs, self.dynamic_axes)
        _make_batch_dynamic(onnx_model, len(example))
        _name_dynamic_axes(onnx_model, self.dynamic_axes, type(module).__name__)
        _check_other_sizes(module, onnx_model, example, self.dynamic_axes)
        outputs = onnx_model.graph.output
        signature = Signature(
            inputs=(_input_spec(array, self.dynamic_axes),),
            outputs=tensor_specs(outputs, {outputs[0].name: Role.VALUE}),
            layout=Layout.TENSOR,
            feature_names=names,
        )
        return Conversion(onnx_model=onnx_model, signature=signature, task=self.task(model))

    def reference(self, model: object, data: Sample) -> Outputs:
        module = _module(model)
        return {Role.VALUE: _output_arrays(module, _rows(data))[0]}

    def save(self, model: object, sample: Sample | None = None) -> SavedOriginal:
        module = _module(model)
        array, _ = _sample_array(module, sample)
        example = _export_rows(array)
        import torch

        buffer = io.BytesIO()
        torch.export.save(_export_program(module, example, self.dynamic_axes), buffer)
        return SavedOriginal(buffer.getvalue(), "pt2")

    def load(self, saved: SavedOriginal) -> object:
        import torch

        return torch.export.load(io.BytesIO(saved.data)).module()

    def read_file(self, path: Path) -> object:
        if path.suffix not in self.file_suffixes:
            return super().read_file(path)
        import torch

        try:
            return torch.export.load(str(path)).module()
        except Exception as exc:
            raise UnsupportedModelError(
                f"cannot read {path.name} as a torch.export program: {_first_line(exc)}"
            ) from exc

    def native_signature(self, model: object, sample: Sample | None) -> Signature:
        module = _module(model)
        array, names = _sample_array(module, sample)
        outputs = _output_arrays(module, _export_rows(array))
        specs = tuple(
            TensorSpec(_output_name(i, len(outputs)), str(out.dtype),
                       (DYNAMIC, *out.shape[1:]), Role.VALUE if i == 0 else None)
            for i, out in enumerate(outputs)
        )
        return Signature(inputs=(_input_spec(array, self.dynamic_axes),), outputs=specs,
                         layout=Layout.TENSOR,
                         feature_names=names)


def _module(model: object) -> torch.nn.Module:
    import torch

    if not isinstance(model, torch.nn.Module):
        raise UnsupportedModelError(
            f"the torch converter takes a torch.nn.Module, not a {type(model).__name__}"
        )
    _set_eval(model)
    return model


def _set_eval(module: torch.nn.Module) -> None:
    """Eval mode; modules loaded from `torch.export` refuse `eval()` and are traced in it."""
    with suppress(NotImplementedError):
        module.eval()


def _sample_array(module: torch.nn.Module, sample: Sample | None) -> tuple[np.ndarray, Any]:
    """The sample as the array the module is fed, with its feature names (for a DataFrame)."""
    array, names = _raw_sample(module, sample)
    return _in_module_dtype(module, array), names


def _raw_sample(model: object, sample: Sample | None) -> tuple[np.ndarray, Any]:
    if sample is None:
        raise InvalidInputError(
            f"a PyTorch model ({type(model).__name__}) needs an example input to export:"
            " pass example_input=... (an array whose first axis is the batch)"
        )
    if isinstance(sample, pd.DataFrame):
        names = tuple(str(c) for c in sample.columns)
        return sample.to_numpy(dtype=np.float32), names
    array = np.asarray(sample)
    if array.ndim == 0 or len(array) == 0:
        raise InvalidInputError(
            f"the example input for {type(model).__name__} needs at least one row,"
            f" got shape {list(array.shape)}"
        )
    return array, None


def _export_rows(array: np.ndarray) -> np.ndarray:
    """`EXPORT_ROWS` rows of the sample, repeating rows when it has fewer."""
    rows = array[:EXPORT_ROWS]
    repeats = -(-EXPORT_ROWS // len(rows))
    return np.ascontiguousarray(np.concatenate([rows] * repeats)[:EXPORT_ROWS])


def _input_spec(array: np.ndarray, dynamic_axes: Mapping[int, str]) -> TensorSpec:
    shape = tuple(DYNAMIC if axis in dynamic_axes else size
                  for axis, size in enumerate(array.shape[1:], start=1))
    return TensorSpec("input", str(array.dtype), (DYNAMIC, *shape))


def _checked_axes(axes: Mapping[int, str]) -> dict[int, str]:
    """`axes` as given to `register(dynamic_axes=...)`, or a clear refusal."""
    checked: dict[int, str] = {}
    for axis, name in axes.items():
        if not isinstance(axis, int) or isinstance(axis, bool) or axis < 1:
            raise InvalidInputError(
                f"dynamic axis {axis!r}: give input axes from 1 (axis 0 is the batch, always"
                " dynamic), e.g. dynamic_axes={1: 'sequence'}")
        if not isinstance(name, str) or not name.isidentifier() or name == BATCH:
            raise InvalidInputError(
                f"dynamic axis {axis} is named {name!r}: use a plain name other than"
                f" {BATCH!r}, e.g. 'sequence'")
        checked[axis] = name
    if len(set(checked.values())) != len(checked):
        raise InvalidInputError(f"dynamic axes {checked} repeat a name: give each its own")
    return checked


def _check_axes_fit(axes: Mapping[int, str], array: np.ndarray) -> None:
    for axis in axes:
        if axis >= array.ndim:
            raise InvalidInputError(
                f"dynamic axis {axis} does not exist: the sample has shape"
                f" {list(array.shape)} (axes 0 to {array.ndim - 1})")


def _output_name(index: int, count: int) -> str:
    return "output" if count == 1 else f"output_{index}"


def _rows(data: Sample) -> np.ndarray:
    if isinstance(data, pd.DataFrame):
        return data.to_numpy(dtype=np.float32)
    return np.asarray(data)


def _in_module_dtype(module: torch.nn.Module, array: np.ndarray) -> np.ndarray:
    """Floating rows in the dtype of the module's floating parameters, as the ONNX graph
    takes them (float64 data for a float32 model becomes float32)."""
    import torch

    param = next((p for p in module.parameters() if p.is_floating_point()), None)
    if param is None or not np.issubdtype(array.dtype, np.floating):
        return array
    try:
        dtype = torch.empty(0, dtype=param.dtype).numpy().dtype
    except TypeError:  # bfloat16 has no numpy dtype: `_as_tensor` casts in torch
        return array
    return array.astype(dtype, copy=False)


def _as_tensor(module: torch.nn.Module, array: np.ndarray) -> torch.Tensor:
    """`array` on the module's device; floats in the dtype of its floating parameters."""
    import torch

    tensor = torch.from_numpy(np.ascontiguousarray(array))
    param = next((p for p in module.parameters() if p.is_floating_point()), None)
    if param is None:
        return tensor
    if tensor.is_floating_point():
        tensor = tensor.to(param.dtype)
    return tensor.to(param.device)


def _output_arrays(module: torch.nn.Module, array: np.ndarray) -> list[np.ndarray]:
    """Every tensor the module returns for `array`, flattened, as numpy arrays."""
    import torch
    from torch.utils import _pytree

    try:
        with torch.no_grad():
            result = module(_as_tensor(module, array))
    except Exception as exc:
        raise SampleMismatchError(
            f"{type(module).__name__} fails on input of shape {list(array.shape)}"
            f" ({array.dtype}): {_first_line(exc)}"
        ) from exc
    leaves = [t for t in _pytree.tree_leaves(result) if isinstance(t, torch.Tensor)]
    if not leaves:
        raise UnsupportedModelError(f"{type(module).__name__} returns no tensor")
    return [t.detach().cpu().numpy() for t in leaves]


def _dynamic_shapes(dynamic_axes: Mapping[int, str]) -> tuple[dict[int, Any]]:
    import torch

    others = {axis: torch.export.Dim.AUTO for axis in dynamic_axes}
    return ({0: torch.export.Dim(BATCH), **others},)


def _export_onnx(module: torch.nn.Module, example: np.ndarray, n_outputs: int,
                 dynamic_axes: Mapping[int, str]) -> onnx.ModelProto:
    import torch

    names = [_output_name(i, n_outputs) for i in range(n_outputs)]
    try:
        with _quiet_export():
            program = torch.onnx.export(
                module, (_as_tensor(module, example),), dynamo=True, verbose=False,
                input_names=["input"], output_names=names, opset_version=TARGET_OPSET,
                dynamic_shapes=_dynamic_shapes(dynamic_axes),
            )
    except Exception as exc:
        raise UnsupportedModelError(
            f"torch.onnx cannot export {type(module).__name__}: {_first_line(exc)};"
            " register it with force=True to serve it natively"
        ) from exc
    if program is None:
        raise UnsupportedModelError(f"torch.onnx returned no program for {type(module).__name__}")
    model_proto: onnx.ModelProto = program.model_proto
    return model_proto


def _export_program(module: torch.nn.Module, example: np.ndarray,
                    dynamic_axes: Mapping[int, str]) -> Any:
    """`module` traced by `torch.export` with a dynamic batch axis (and `dynamic_axes`)."""
    import torch

    try:
        with _quiet_export():
            return torch.export.export(module, (_as_tensor(module, example),),
                                       dynamic_shapes=_dynamic_shapes(dynamic_axes))
    except Exception as exc:
        raise UnsupportedModelError(
            f"torch.export cannot trace {type(module).__name__}: {_first_line(exc)}"
        ) from exc


def _make_batch_dynamic(model: onnx.ModelProto, export_rows: int) -> None:
    """Where the exporter left the input's first axis fixed at the traced size, name it
    `batch`, and the outputs' first axes of that size too (shape metadata only: the
    conversion check on rows of another count shows whether the graph agrees)."""
    graph = model.graph
    if not _fixed_first_axis(graph.input[0], export_rows):
        return
    for value in [graph.input[0], *graph.output]:
        if _fixed_first_axis(value, export_rows):
            value.type.tensor_type.shape.dim[0].dim_param = BATCH


def _name_dynamic_axes(model: onnx.ModelProto, dynamic_axes: Mapping[int, str],
                       module_name: str) -> None:
    """Name the input's dynamic axes as the user did, in every tensor that shares them; an
    axis the tracer kept fixed means the module only takes that size."""
    dims = model.graph.input[0].type.tensor_type.shape.dim
    renamed: dict[str, str] = {}
    for axis, name in dynamic_axes.items():
        dim = dims[axis]
        if not dim.dim_param:
            raise UnsupportedModelError(
                f"{module_name} only takes size {dim.dim_value} on input axis {axis}: it"
                f" cannot be exported with a dynamic {name!r} axis")
        renamed[dim.dim_param] = name
    graph = model.graph
    for value in [*graph.input, *graph.output, *graph.value_info]:
        for dim in value.type.tensor_type.shape.dim:
            if dim.dim_param in renamed:
                dim.dim_param = renamed[dim.dim_param]


def _check_other_sizes(module: torch.nn.Module, onnx_model: onnx.ModelProto,
                       example: np.ndarray, dynamic_axes: Mapping[int, str]) -> None:
    """Run the module and the graph on the example cut one shorter along each dynamic axis:
    the tracer drops the runtime checks of a size it could not prove, so a graph exported
    with a dynamic axis the module cannot vary (a Linear over a flattened input) would
    otherwise fail only when served."""
    if not dynamic_axes:
        return
    import onnxruntime as ort

    session = ort.InferenceSession(onnx_model.SerializeToString(),
                                   providers=["CPUExecutionProvider"])
    for axis, name in dynamic_axes.items():
        size = example.shape[axis]
        if size - 1 <= 1:  # torch.export specialises sizes 0 and 1: nothing to probe
            continue
        shorter = np.ascontiguousarray(np.take(example, np.arange(size - 1), axis=axis))
        try:
            want = _output_arrays(module, shorter)[0]
        except SampleMismatchError as exc:
            raise UnsupportedModelError(
                f"{type(module).__name__} only takes size {size} on input axis {axis}: it"
                f" cannot be exported with a dynamic {name!r} axis") from exc
        try:
            got = session.run(None, {session.get_inputs()[0].name: shorter})[0]
        except Exception as exc:
            raise UnsupportedModelError(
                f"the ONNX form of {type(module).__name__} fails with {name!r} of size"
                f" {size - 1}: {_first_line(exc)}") from exc
        if got.shape != want.shape or not np.allclose(got, want, rtol=1e-3, atol=1e-4):
            raise UnsupportedModelError(
                f"the ONNX form of {type(module).__name__} differs from the module with"
                f" {name!r} of size {size - 1}: export it without that dynamic axis")


def _fixed_first_axis(value: onnx.ValueInfoProto, size: int) -> bool:
    dims = value.type.tensor_type.shape.dim
    return bool(dims) and dims[0].HasField("dim_value") and dims[0].dim_value == size


@contextmanager
def _quiet_export() -> Iterator[None]:
    """Silence messages from torch's internals that say nothing about the user's model."""
    logger = logging.getLogger(_NOISY_LOGGER)
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=r".*isinstance\(treespec, LeafSpec\)",
                                    category=FutureWarning)
            # a module loaded from a .pt2 refuses eval() but was traced in eval mode
            warnings.filterwarnings("ignore", message="Exporting a model while it is in"
                                    " training mode", category=UserWarning)
            yield
    finally:
        logger.setLevel(level)


def _first_line(exc: BaseException) -> str:
    """The first line of the innermost cause: torch.onnx wraps the tracer's own error."""
    while exc.__cause__ is not None:
        exc = exc.__cause__
    for line in _ANSI.sub("", str(exc)).splitlines():
        if line.strip():
            return f"{type(exc).__name__}: {line.strip()[:300]}"
    return type(exc).__name__
