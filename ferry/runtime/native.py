"""Predict with a model in its own framework, for versions no converter could carry to ONNX."""

from __future__ import annotations

from typing import Any

import pandas as pd

from ferry.convert.base import Converter
from ferry.runtime.feeds import as_frame_or_array
from ferry.runtime.predictor import Outputs, Predictor
from ferry.signature import Signature, Task


class NativePredictor(Predictor):
    """Calls the original model through its converter's `reference` (the same call the
    conversion check uses), with the columns the model was registered with."""

    def __init__(self, converter: Converter, original: object, signature: Signature,
                 task: Task, *, model: str = "", version: int = 0):
        super().__init__(signature, task, model=model, version=version)
        self.converter = converter
        self.original = original

    def outputs(self, data: Any) -> Outputs:
        frame = as_frame_or_array(data)
        names = self.signature.feature_names
        if isinstance(frame, pd.DataFrame) and names and set(names) <= set(frame.columns):
            frame = frame[list(names)]
        return self.converter.reference(self.original, frame)
