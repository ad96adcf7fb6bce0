"""What a model takes and gives: tensor names, dtypes, shapes, feature names and labels.

A signature has one of two input layouts:
- `tensor`: one input holding every feature (`X`, shape `[-1, n_features]`, or an image batch);
- `columns`: one `[-1, 1]` input per feature column, as skl2onnx builds for pipelines whose
  columns have different types (numbers and strings).
Outputs carry a role (`label`, `probabilities` or `value`) so that `predict` and
`predict_proba` know which output to read whatever the converter named it.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from enum import StrEnum
from typing import Any

import numpy as np
import onnx

DYNAMIC = -1
"""A dimension whose size varies between calls (the batch axis)."""


class Task(StrEnum):
    CLASSIFICATION = "classification"
    REGRESSION = "regression"
    OTHER = "other"


class Role(StrEnum):
    LABEL = "label"
    PROBABILITIES = "probabilities"
    VALUE = "value"


class Layout(StrEnum):
    TENSOR = "tensor"
    COLUMNS = "columns"


_ONNX_TO_DTYPE: dict[int, str] = {
    onnx.TensorProto.FLOAT: "float32",
    onnx.TensorProto.DOUBLE: "float64",
    onnx.TensorProto.FLOAT16: "float16",
    onnx.TensorProto.INT8: "int8",
    onnx.TensorProto.INT16: "int16",
    onnx.TensorProto.INT32: "int32",
    onnx.TensorProto.INT64: "int64",
    onnx.TensorProto.UINT8: "uint8",
    onnx.TensorProto.UINT16: "uint16",
    onnx.TensorProto.UINT32: "uint32",
    onnx.TensorProto.UINT64: "uint64",
    onnx.TensorProto.BOOL: "bool",
    onnx.TensorProto.STRING: "string",
}


@dataclass(frozen=True)
class TensorSpec:
    """One named input or output tensor."""

    name: str
    dtype: str
    shape: tuple[int, ...]
    role: Role | None = None

    def numpy_dtype(self) -> np.dtype[Any]:
        return np.dtype(object) if self.dtype == "string" else np.dtype(self.dtype)

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "dtype": self.dtype, "shape": list(self.shape),
                "role": None if self.role is None else str(self.role)}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TensorSpec:
        role = data.get("role")
        return cls(name=data["name"], dtype=data["dtype"], shape=tuple(data["shape"]),
                   role=None if role is None else Role(role))


@dataclass(frozen=True)
class Signature:
    """Inputs, outputs and the names a person knows them by."""

    inputs: tuple[TensorSpec, ...]
    outputs: tuple[TensorSpec, ...]
    layout: Layout = Layout.TENSOR
    feature_names: tuple[str, ...] | None = None
    class_labels: tuple[Any, ...] | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def output(self, role: Role) -> TensorSpec | None:
        return next((o for o in self.outputs if o.role == role), None)

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["inputs"] = [i.to_dict() for i in self.inputs]
        data["outputs"] = [o.to_dict() for o in self.outputs]
        data["layout"] = str(self.layout)
        data["feature_names"] = None if self.feature_names is None else list(self.feature_names)
        data["class_labels"] = None if self.class_labels is None else _plain(self.class_labels)
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Signature:
        names, labels = data.get("feature_names"), data.get("class_labels")
        return cls(
            inputs=tuple(TensorSpec.from_dict(i) for i in data["inputs"]),
            outputs=tuple(TensorSpec.from_dict(o) for o in data["outputs"]),
            layout=Layout(data.get("layout", Layout.TENSOR)),
            feature_names=None if names is None else tuple(names),
            class_labels=None if labels is None else tuple(labels),
            extra=dict(data.get("extra") or {}),
        )


def _plain(values: tuple[Any, ...]) -> list[Any]:
    """Class labels as JSON-friendly Python scalars."""
    return [v.item() if isinstance(v, np.generic) else v for v in values]


def tensor_specs(values: Any, roles: dict[str, Role] | None = None) -> tuple[TensorSpec, ...]:
    """Specs for an ONNX graph's inputs or outputs (`graph.input` / `graph.output`)."""
    roles = roles or {}
    specs = []
    for value in values:
        tensor_type = value.type.tensor_type
        dtype = _ONNX_TO_DTYPE.get(tensor_type.elem_type, "unknown")
        shape = tuple(
            d.dim_value if d.HasField("dim_value") else DYNAMIC for d in tensor_type.shape.dim
        )
        specs.append(TensorSpec(value.name, dtype, shape, roles.get(value.name)))
    return tuple(specs)
