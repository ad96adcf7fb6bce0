"""Which predictor runs a version, by its `runtime`: one loader per runtime, registered here.

A loader gets the version, a reader for its artifacts (`read("onnx")`, or a name the runtime
recorded in `runtime_settings["artifacts"]`) and the caller's default ONNX Runtime settings,
and returns a loaded `GraphPredictor`. Runtimes whose package is optional (OpenVINO, TL2cgen)
are registered by import path and imported on first use, so ferry imports without them.
`native` versions are not here: they run through their converter (`ferry.loading`).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from dataclasses import fields
from typing import Any, TypeVar

from ferry.errors import UnsupportedModelError
from ferry.registry.entities import ModelVersion, Runtime
from ferry.runtime.onnx_runtime import OnnxPredictor, SessionSettings
from ferry.runtime.predictor import GraphPredictor

ReadArtifact = Callable[[str], bytes]
RuntimeLoader = Callable[[ModelVersion, ReadArtifact, SessionSettings | None], GraphPredictor]

ONNXRUNTIME_SETTINGS = "onnxruntime"
"""Key of `runtime_settings` holding `SessionSettings` fields."""

_LOADERS: dict[str, RuntimeLoader | str] = {}
Settings = TypeVar("Settings")


def recorded_settings(kind: type[Settings], data: Mapping[str, Any], engine: str) -> Settings:
    """A runtime's settings dataclass from what a version records; keys this ferry does not
    know are refused (a newer ferry wrote them) rather than ignored."""
    known = {f.name for f in fields(kind)}  # type: ignore[arg-type]
    unknown = sorted(set(data) - known)
    if unknown:
        raise UnsupportedModelError(f"{engine} settings {unknown} are unknown to this ferry:"
                                    " upgrade ferry to load this version")
    return kind(**dict(data))


def register_runtime(runtime: str, loader: RuntimeLoader | str) -> None:
    """Register the loader for `runtime`: a function, or `"module:function"` to import
    when a version of that runtime is first loaded."""
    _LOADERS[runtime] = loader


def runtime_loader(runtime: str) -> RuntimeLoader:
    loader = _LOADERS.get(runtime)
    if loader is None:
        raise UnsupportedModelError(f"no runtime named {runtime!r} is registered; known:"
                                    f" {', '.join(sorted(_LOADERS))}")
    if isinstance(loader, str):
        module, _, name = loader.partition(":")
        try:
            loaded: RuntimeLoader = getattr(importlib.import_module(module), name)
        except ImportError as exc:
            raise UnsupportedModelError(
                f"runtime {runtime!r} needs a package that is not installed ({exc.name}):"
                " pip install 'ferry-ml[optimize]'") from exc
        _LOADERS[runtime] = loader = loaded
    return loader


def session_settings(version: ModelVersion,
                     default: SessionSettings | None = None) -> SessionSettings:
    """The ONNX Runtime settings recorded on the version (by the optimizer), else `default`."""
    recorded: dict[str, Any] | None = version.runtime_settings.get(ONNXRUNTIME_SETTINGS)
    if recorded is not None:
        return SessionSettings(**recorded)
    return default or SessionSettings()


def load_onnx(version: ModelVersion, read: ReadArtifact,
              default_session: SessionSettings | None) -> GraphPredictor:
    return OnnxPredictor(read("onnx"), version.signature, version.task,
                         settings=session_settings(version, default_session),
                         model=version.name, version=version.version).load()


register_runtime(Runtime.ONNX, load_onnx)
register_runtime(Runtime.OPENVINO, "ferry.runtime.openvino:load_openvino")
register_runtime(Runtime.TL2CGEN, "ferry.runtime.tl2cgen:load_tl2cgen")
