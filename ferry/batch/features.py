"""From a record batch's columns to the model's input tensors, checked before scoring starts.

A model with one `[batch, n]` input reads its feature columns (by the names it was trained
on, else `f0..fN-1` as an array sample is stored); a model with one `[batch, 1]` input per
column (`Layout.COLUMNS`) reads the column of each input's name. A column that is missing,
or whose type cannot become the input's dtype, is refused here, naming the column and the
type the signature wants, before a single row is scored.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from ferry.errors import SampleMismatchError
from ferry.runtime.feeds import Feeds
from ferry.signature import DYNAMIC, Layout, Signature, TensorSpec


@dataclass(frozen=True)
class TensorColumns:
    """One model input and the input columns it is built from, in order."""

    name: str
    dtype: str
    columns: tuple[str, ...]

    def tensor(self, batch: pa.RecordBatch) -> np.ndarray:
        if self.dtype == "string":
            return np.asarray(batch.column(self.columns[0]).to_pylist(),
                              dtype=object).astype(str).astype(object).reshape(-1, 1)
        out = np.empty((batch.num_rows, len(self.columns)), dtype=self.dtype)
        for index, name in enumerate(self.columns):
            out[:, index] = batch.column(name).to_numpy(zero_copy_only=False)
        return out


@dataclass(frozen=True)
class FeatureMap:
    """Every model input and its columns."""

    tensors: tuple[TensorColumns, ...]

    @property
    def columns(self) -> list[str]:
        return list(dict.fromkeys(c for t in self.tensors for c in t.columns))

    def feeds(self, batch: pa.RecordBatch) -> Feeds:
        return {tensor.name: tensor.tensor(batch) for tensor in self.tensors}


def feature_map(signature: Signature, schema: pa.Schema,
                reserved: tuple[str, ...] = ()) -> FeatureMap:
    """The map from `schema`'s columns to the signature's inputs; raises
    `SampleMismatchError` for a missing or mistyped column."""
    if signature.layout == Layout.COLUMNS:
        tensors = tuple(TensorColumns(spec.name, spec.dtype, (spec.name,))
                        for spec in signature.inputs)
    else:
        tensors = (_table_tensor(signature, schema, reserved),)
    for tensor in tensors:
        for column in tensor.columns:
            _check_column(schema, column, tensor.dtype)
    return FeatureMap(tensors)


def _table_tensor(signature: Signature, schema: pa.Schema,
                  reserved: tuple[str, ...]) -> TensorColumns:
    if len(signature.inputs) != 1 or len(signature.inputs[0].shape) != 2:
        wanted = ", ".join(f"{s.name} {list(s.shape)}" for s in signature.inputs)
        raise SampleMismatchError(f"batch scoring reads table columns; the model takes"
                                  f" tensors {wanted}: score it through the server")
    spec = signature.inputs[0]
    return TensorColumns(spec.name, spec.dtype, _feature_columns(signature, spec, schema,
                                                                 reserved))


def _feature_columns(signature: Signature, spec: TensorSpec, schema: pa.Schema,
                     reserved: tuple[str, ...]) -> tuple[str, ...]:
    if signature.feature_names is not None:
        return tuple(signature.feature_names)
    width = spec.shape[1]
    numbered = tuple(f"f{i}" for i in range(width)) if width != DYNAMIC else ()
    if numbered and all(name in schema.names for name in numbered):
        return numbered
    others = tuple(n for n in schema.names if n not in reserved)
    if width in (DYNAMIC, len(others)):
        return others
    raise SampleMismatchError(
        f"the model takes {width} features and records no feature names; the input has"
        f" {len(others)} columns besides the key and kept ones ({list(others)[:6]}): give"
        f" columns f0..f{width - 1}")


def _check_column(schema: pa.Schema, column: str, dtype: str) -> None:
    index = schema.get_field_index(column)
    if index < 0:
        raise SampleMismatchError(
            f"input lacks column {column!r}, which the model takes as {dtype};"
            f" the input has {schema.names[:8]}{' ...' if len(schema.names) > 8 else ''}")
    kind = schema.field(index).type
    if not _fits(kind, dtype):
        raise SampleMismatchError(
            f"input column {column!r} is {str(kind).replace('large_', '')}; the model takes"
            f" it as {dtype}:"
            " convert the column or fix the input")


def _fits(kind: pa.DataType, dtype: str) -> bool:
    if pa.types.is_dictionary(kind):
        kind = kind.value_type
    if dtype == "string":
        return pa.types.is_string(kind) or pa.types.is_large_string(kind)
    numeric = (pa.types.is_integer(kind) or pa.types.is_floating(kind)
               or pa.types.is_boolean(kind) or pa.types.is_decimal(kind) or pa.types.is_null(kind))
    return numeric
