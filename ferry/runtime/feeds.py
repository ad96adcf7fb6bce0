"""Turn what a user passes (numpy, pandas, pyarrow, a dict of columns) into model inputs.

`to_feeds` is the one place that maps tabular data onto a signature's input tensors, so the
Python API, the CLI and the conversion check all hand a model the same arrays. A dict whose
keys are the input names and whose arrays have the inputs' ranks gives the tensors as they are
(a model with several tensor inputs); any other dict is a table of columns.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa

from ferry.errors import SampleMismatchError
from ferry.signature import DYNAMIC, Layout, Signature, TensorSpec

Feeds = dict[str, np.ndarray]


def as_frame_or_array(data: Any) -> pd.DataFrame | np.ndarray:
    """Normalise the accepted input types to a DataFrame (named columns) or an ndarray."""
    if isinstance(data, pd.DataFrame | np.ndarray):
        return data
    if isinstance(data, pa.Table | pa.RecordBatch):
        return data.to_pandas()
    if isinstance(data, pd.Series):
        return data.to_frame().T
    if isinstance(data, Mapping):
        return pd.DataFrame({k: np.asarray(v).reshape(-1) for k, v in data.items()})
    if isinstance(data, list):
        return np.asarray(data)
    raise SampleMismatchError(
        f"cannot read input of type {type(data).__name__}: pass a numpy array,"
        " a pandas DataFrame, a pyarrow Table or a dict of columns"
    )


def to_feeds(signature: Signature, data: Any) -> Feeds:
    """Build the input tensors for one call from `data`."""
    if isinstance(data, Mapping) and _names_tensors(signature, data):
        return {spec.name: _tensor(spec, np.asarray(data[spec.name]), None)
                for spec in signature.inputs}
    frame = as_frame_or_array(data)
    if signature.layout == Layout.COLUMNS:
        return _column_feeds(signature, frame)
    if len(signature.inputs) != 1:
        if isinstance(frame, pd.DataFrame):
            return _column_feeds(signature, frame)
        names = ", ".join(i.name for i in signature.inputs)
        raise SampleMismatchError(f"the model takes several inputs ({names}): pass a DataFrame")
    spec = signature.inputs[0]
    return {spec.name: _tensor(spec, frame, signature.feature_names)}


def _names_tensors(signature: Signature, data: Mapping[str, Any]) -> bool:
    """Whether `data` holds one array per input, by name, each of the input's rank; a dict
    of arrays of rank 2 or more that does not is refused, naming the inputs."""
    specs = {spec.name: spec for spec in signature.inputs}
    if all(name in data and np.ndim(data[name]) == len(spec.shape)
           for name, spec in specs.items()):
        return True
    if any(np.ndim(values) > 1 for values in data.values()):
        wanted = ", ".join(f"{name} {_show(spec.shape)}" for name, spec in specs.items())
        raise SampleMismatchError(
            f"got arrays {sorted(data)} of shapes {[list(np.shape(v)) for v in data.values()]};"
            f" the model takes {wanted}: name each array after its input")
    return False


def _tensor(spec: TensorSpec, frame: pd.DataFrame | np.ndarray, names: Any) -> np.ndarray:
    if isinstance(frame, pd.DataFrame):
        frame = _select(frame, names, spec)
    array = np.asarray(frame)
    if array.ndim == len(spec.shape) - 1:
        array = array[np.newaxis, ...]
    _check_shape(spec, array)
    return _cast(spec, array)


def _select(frame: pd.DataFrame, names: Any, spec: TensorSpec) -> np.ndarray:
    if names is not None:
        missing = [n for n in names if n not in frame.columns]
        if missing:
            raise SampleMismatchError(
                f"input lacks the model's columns {missing[:5]}"
                f"{' and more' if len(missing) > 5 else ''}: the model was trained on"
                f" {list(names)[:10]}"
            )
        return frame[list(names)].to_numpy()
    return frame.to_numpy()


def _check_shape(spec: TensorSpec, array: np.ndarray) -> None:
    if array.ndim != len(spec.shape):
        raise SampleMismatchError(
            f"input {spec.name!r} has {array.ndim} dimensions, the model expects"
            f" {len(spec.shape)} (shape {_show(spec.shape)})"
        )
    for got, want in zip(array.shape[1:], spec.shape[1:], strict=True):
        if want != DYNAMIC and got != want:
            raise SampleMismatchError(
                f"input {spec.name!r} has shape {list(array.shape)}, the model expects"
                f" {_show(spec.shape)}"
            )


def _show(shape: tuple[int, ...]) -> str:
    return "[" + ", ".join("batch" if d == DYNAMIC else str(d) for d in shape) + "]"


def _cast(spec: TensorSpec, array: np.ndarray) -> np.ndarray:
    if spec.dtype == "string":
        return array.astype(str).astype(object)
    try:
        return np.ascontiguousarray(array.astype(spec.numpy_dtype(), copy=False))
    except (ValueError, TypeError) as exc:
        raise SampleMismatchError(
            f"input {spec.name!r} must be {spec.dtype}, got values of type {array.dtype}: {exc}"
        ) from exc


def _column_feeds(signature: Signature, frame: pd.DataFrame | np.ndarray) -> Feeds:
    if isinstance(frame, np.ndarray):
        if frame.ndim == 1:
            frame = frame[np.newaxis, :]
        if frame.ndim != 2 or frame.shape[1] != len(signature.inputs):
            raise SampleMismatchError(
                f"array input has shape {list(frame.shape)}, the model expects"
                f" {len(signature.inputs)} columns: {[i.name for i in signature.inputs]}"
            )
        frame = pd.DataFrame(frame, columns=[i.name for i in signature.inputs])
    missing = [i.name for i in signature.inputs if i.name not in frame.columns]
    if missing:
        raise SampleMismatchError(
            f"input lacks the model's columns {missing}: the model takes"
            f" {[i.name for i in signature.inputs]}"
        )
    feeds = {}
    for spec in signature.inputs:
        column = frame[spec.name].to_numpy().reshape(-1, 1)
        feeds[spec.name] = _cast(spec, column)
    return feeds
