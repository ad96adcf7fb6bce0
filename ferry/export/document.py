"""The bundle's JSON: tensors as `{"dtype", "shape", "data"}` and signature.json.

Tensors are flattened in C order; int64 values are JSON integers, strings JSON strings, and
floating values the shortest decimal that reads back to the same float32 or float64. dtypes
use ferry's names (`ferry.signature`): float32, float64, int64, ..., bool, string.
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import onnx

from ferry import __version__
from ferry.registry import ModelVersion, Runtime
from ferry.runtime.runtimes import session_settings
from ferry.signature import Signature, TensorSpec, tensor_specs

BUNDLE_FORMAT = 1
"""The bundle format this ferry writes (`format` in signature.json and golden.json)."""
_DEFAULT_DOMAINS = ("", "ai.onnx")


def dtype_name(array: np.ndarray) -> str:
    """ferry's name of an array's dtype (`string` for text)."""
    return "string" if array.dtype.kind in "OUS" else str(array.dtype)


def tensor_document(array: np.ndarray) -> dict[str, Any]:
    """One tensor as the bundle writes it."""
    return {"dtype": dtype_name(array), "shape": list(array.shape), "data": _values(array)}


def _values(array: np.ndarray) -> list[Any]:
    flat = np.ravel(array, order="C")
    if array.dtype.kind in "OUS":
        return [v.decode() if isinstance(v, bytes) else str(v) for v in flat]
    values: list[Any] = flat.tolist()
    return values


def graph_outputs(signature: Signature, model: onnx.ModelProto) -> tuple[TensorSpec, ...]:
    """Every output of the graph, in its order: the signature's spec (with its role) where
    it names the output, else the graph's own."""
    known = {spec.name: spec for spec in signature.outputs}
    return tuple(known.get(spec.name, spec) for spec in tensor_specs(model.graph.output))


def signature_document(version: ModelVersion, model: onnx.ModelProto) -> dict[str, Any]:
    """signature.json: what the exported model takes and gives."""
    signature = version.signature.to_dict()
    return {
        "format": BUNDLE_FORMAT, "model": version.name, "version": version.version,
        "uri": version.uri, "task": str(version.task), "layout": signature["layout"],
        "inputs": [_spec(spec, role=False) for spec in version.signature.inputs],
        "outputs": [_spec(spec, role=True)
                    for spec in graph_outputs(version.signature, model)],
        "feature_names": signature["feature_names"],
        "class_labels": signature["class_labels"],
        "runtime": runtime_document(version, model),
        "ferry_version": __version__,
    }


def _spec(spec: TensorSpec, *, role: bool) -> dict[str, Any]:
    document: dict[str, Any] = {"name": spec.name, "dtype": spec.dtype,
                                "shape": list(spec.shape)}
    if role:
        document["role"] = None if spec.role is None else str(spec.role)
    return document


def runtime_document(version: ModelVersion, model: onnx.ModelProto) -> dict[str, Any]:
    """How ferry runs the model: ONNX Runtime's graph optimization level, the opsets, and
    the runtime a version optimized for another one (OpenVINO, TL2cgen) is served on."""
    import onnxruntime

    document: dict[str, Any] = {
        "graph_optimization": session_settings(version).graph_optimization,
        "opset": {("" if entry.domain in _DEFAULT_DOMAINS else entry.domain): entry.version
                  for entry in model.opset_import},
        "onnxruntime": onnxruntime.__version__,
    }
    if version.runtime != Runtime.ONNX:
        document["optimized_for"] = version.runtime
        document["note"] = (f"ferry serves this version on {version.runtime}; the bundle holds"
                            " its ONNX form, which ferry checked against the original")
    return document


def json_bytes(document: Any) -> bytes:
    """Indented JSON; NaN and infinity are refused (the format has none)."""
    return (json.dumps(document, indent=2, allow_nan=False) + "\n").encode()
