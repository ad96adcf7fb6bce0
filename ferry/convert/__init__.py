"""Converters to ONNX, one per framework, registered explicitly.

`find_converter(model)` picks the first registered converter whose `matches` accepts the
model (framework-specific ones before scikit-learn, since XGBoost and LightGBM wrappers are
scikit-learn estimators too); `converter_for("xgboost")` picks one by name. Built-in
converters import their framework only when used, so a missing extra costs nothing until
a model of that framework arrives.
"""

from __future__ import annotations

import importlib

from ferry.convert.base import Conversion, Converter, Sample, SavedOriginal
from ferry.errors import UnknownFrameworkError, UnsupportedModelError

BUILTIN_CONVERTERS: dict[str, str] = {
    "onnx": "ferry.convert.onnx_file:OnnxConverter",
    "pmml": "ferry.convert.pmml:PmmlConverter",
    "xgboost": "ferry.convert.xgboost:XGBoostConverter",
    "lightgbm": "ferry.convert.lightgbm:LightGBMConverter",
    "torch": "ferry.convert.torch:TorchConverter",
    "tensorflow": "ferry.convert.tensorflow:TensorFlowConverter",
    "sparkml": "ferry.convert.sparkml:SparkMLConverter",
    "sklearn": "ferry.convert.sklearn:SklearnConverter",
}
"""Framework name -> converter class, in the order `find_converter` tries them."""

_registered: dict[str, Converter] = {}


def register_converter(converter: Converter) -> None:
    """Add or replace the converter for `converter.framework`."""
    _registered[converter.framework] = converter


def frameworks() -> list[str]:
    return list(dict.fromkeys([*BUILTIN_CONVERTERS, *_registered]))


def converter_for(framework: str) -> Converter:
    """The converter registered for `framework`."""
    if framework in _registered:
        return _registered[framework]
    if framework not in BUILTIN_CONVERTERS:
        raise UnknownFrameworkError(
            f"unknown framework {framework!r}: use one of {', '.join(frameworks())}"
        )
    module_name, _, class_name = BUILTIN_CONVERTERS[framework].partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise UnknownFrameworkError(
            f"framework {framework!r} needs an extra: pip install 'ferry-ml[{framework}]'"
            f" ({exc})"
        ) from exc
    converter: Converter = getattr(module, class_name)()
    _registered[framework] = converter
    return converter


def find_converter(model: object, framework: str | None = None) -> Converter:
    """The converter for `model`: the one named, or the first whose `matches` accepts it."""
    if framework is not None:
        return converter_for(framework)
    for name in frameworks():
        try:
            converter = converter_for(name)
        except UnknownFrameworkError:
            continue
        if converter.matches(model):
            return converter
    raise UnsupportedModelError(
        f"no converter recognises a {type(model).__module__}.{type(model).__name__}:"
        f" name its framework (one of {', '.join(frameworks())}) or register a converter"
    )


__all__ = [
    "BUILTIN_CONVERTERS",
    "Conversion",
    "Converter",
    "Sample",
    "SavedOriginal",
    "converter_for",
    "find_converter",
    "frameworks",
    "register_converter",
]
