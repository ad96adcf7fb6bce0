"""The pipeline's outer signature: what a version with steps takes and gives.

With a preprocess step the version takes what the step takes (texts, say: one tensor, named
as the model's input when it has one), not the model's features; with a postprocess step it
gives what the step returns (label names, say). Both are read from a run of the steps on
`raw_sample` at registration and stored with the steps, so model metadata (`ferry serve`)
shows the pipeline's inputs and outputs.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ferry.runtime.predictor import Outputs
from ferry.signature import DYNAMIC, Layout, Signature, TensorSpec

RAW_INPUT = "input"
"""Name of the pipeline's input when the model's own input name does not carry over."""


def outer_signature(inner: Signature, raw_sample: Any, outputs: Outputs,
                    preprocessed: bool) -> Signature:
    """`inner` with its inputs (when `preprocessed`) and outputs as seen around the steps."""
    inputs = inner.inputs
    if preprocessed:
        name = inner.inputs[0].name if len(inner.inputs) == 1 else RAW_INPUT
        inputs = (_spec(name, np.asarray(raw_sample), None),)
    names = {spec.role: spec.name for spec in inner.outputs if spec.role is not None}
    specs = tuple(_spec(names.get(role, str(role)), np.asarray(values), role)
                  for role, values in outputs.items())
    layout = Layout.TENSOR if preprocessed else inner.layout
    return Signature(inputs=inputs, outputs=specs, layout=layout,
                     feature_names=None if preprocessed else inner.feature_names,
                     class_labels=inner.class_labels, extra=dict(inner.extra))


def _spec(name: str, values: np.ndarray, role: Any) -> TensorSpec:
    """A tensor of any number of rows shaped and typed as `values`' rows."""
    dtype = "string" if values.dtype.kind in "OUS" else str(values.dtype)
    shape = (DYNAMIC, *values.shape[1:])
    return TensorSpec(name, dtype, shape, role)
