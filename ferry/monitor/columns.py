"""A version's tensors as named columns: what the capture samples and what the reference
profile describes, named the same way so that drift compares like with like.

- an input `[rows]` or `[rows, 1]` is one column named after it;
- an input `[rows, k]` (k up to `MAX_FEATURE_COLUMNS`) is k columns, named by the signature's
  feature names when it has them and a single tensor input, else `X[0]` ... `X[k-1]`;
- outputs the same, prefixed: `output:label`, `output:probabilities[1]`;
- wider or deeper tensors (images, embeddings) are left out.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from ferry.monitor.events import output_column
from ferry.signature import Layout, Signature

MAX_FEATURE_COLUMNS = 100


def input_columns(signature: Signature, arrays: Mapping[str, Any]) -> dict[str, np.ndarray]:
    names = signature.feature_names if signature.layout == Layout.TENSOR \
        and len(arrays) == 1 else None
    columns: dict[str, np.ndarray] = {}
    for name, values in arrays.items():
        columns.update(flat_columns(name, values, names))
    return columns


def output_columns(signature: Signature, outputs: Mapping[str, Any]) -> dict[str, np.ndarray]:
    columns: dict[str, np.ndarray] = {}
    for spec in signature.outputs:
        if spec.name in outputs:
            columns.update(flat_columns(output_column(spec.name), outputs[spec.name]))
    return columns


def flat_columns(name: str, values: Any, feature_names: Any = None) -> dict[str, np.ndarray]:
    """One tensor as 1-D columns (see the module's docstring); {} for tensors left out."""
    array = np.asarray(values)
    if array.ndim == 1 or (array.ndim == 2 and array.shape[1] == 1):
        return {name: array.reshape(-1)}
    if array.ndim != 2 or array.shape[1] > MAX_FEATURE_COLUMNS:
        return {}
    labels = list(feature_names) if feature_names is not None \
        and len(feature_names) == array.shape[1] else \
        [f"{name}[{j}]" for j in range(array.shape[1])]
    return {str(label): array[:, j] for j, label in enumerate(labels)}
