"""Shared by the XGBoost and LightGBM converter tests."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd

from ferry.convert.base import Conversion, Converter
from ferry.convert.check import ConversionCheck, compare
from ferry.convert.probes import as_served
from ferry.runtime.onnx_runtime import OnnxPredictor
from ferry.runtime.predictor import Outputs

HELD_OUT = 60


def split(loader: Callable[..., Any]) -> tuple[pd.DataFrame, pd.Series, pd.DataFrame]:
    """Training rows, their targets and held-out rows, shuffled with a fixed seed."""
    X, y = loader(return_X_y=True, as_frame=True)
    order = np.random.default_rng(0).permutation(len(X))
    X, y = X.iloc[order].reset_index(drop=True), y.iloc[order].reset_index(drop=True)
    return X.iloc[:-HELD_OUT], y.iloc[:-HELD_OUT], X.iloc[-HELD_OUT:]


def check(converter: Converter, model: object, conversion: Conversion,
          held_out: pd.DataFrame | np.ndarray) -> ConversionCheck:
    """The ONNX form against the original on `held_out` as served: float64 values cast to
    float32, as every request is (see `ferry.convert.trees`)."""
    rows = as_served(held_out, conversion.signature)
    predictor = OnnxPredictor(conversion.onnx_model.SerializeToString(), conversion.signature,
                              conversion.task).load()
    return compare(converter.reference(model, rows), predictor.outputs(rows), data="sample")


def assert_same_outputs(want: Outputs, got: Outputs) -> None:
    assert want.keys() == got.keys()
    for role in want:
        np.testing.assert_array_equal(want[role], got[role])
