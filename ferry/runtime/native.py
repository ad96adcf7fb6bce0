"""Predict with a model in its own framework, for versions no converter could carry to ONNX."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pandas as pd

from ferry.convert.base import Converter
from ferry.runtime.feeds import as_frame_or_array
from ferry.runtime.predictor import Outputs, Predictor
from ferry.signature import Layout, Signature, Task


class NativePredictor(Predictor):
    """Calls the original model through its converter's `reference` (the same call the
    conversion check uses), with the columns the model was registered with."""

    def __init__(self, converter: Converter, original: object, signature: Signature,
                 task: Task, *, model: str = "", version: int = 0):
        super().__init__(signature, task, model=model, version=version)
        self.converter = converter
        self.original = original

    def outputs(self, data: Any) -> Outputs:
        if self._names_every_input(data):
            return self.converter.reference(
                self.original, {spec.name: data[spec.name] for spec in self.signature.inputs})
        frame = as_frame_or_array(data)
        names = self.signature.feature_names
        if isinstance(frame, pd.DataFrame) and names and set(names) <= set(frame.columns):
            frame = frame[list(names)]
        return self.converter.reference(self.original, frame)

    def _names_every_input(self, data: Any) -> bool:
        """Whether `data` is one array per tensor input, by name (models with several inputs,
        such as a Keras model taking a text and a number)."""
        inputs = self.signature.inputs
        return (self.converter.named_inputs and isinstance(data, Mapping)
                and self.signature.layout == Layout.TENSOR
                and all(spec.name in data for spec in inputs))
