"""`ferry.load`: a registered version back as a predictor, checksums verified."""

from __future__ import annotations

import numpy as np
import pandas as pd

from ferry.convert import SavedOriginal, converter_for
from ferry.data import sample_from_parquet
from ferry.registry import ModelVersion, Registry, Runtime
from ferry.runtime.native import NativePredictor
from ferry.runtime.onnx_runtime import OnnxPredictor, SessionSettings
from ferry.runtime.predictor import Predictor
from ferry.uri import ModelURI


def load(uri: str | ModelURI, *, registry: Registry | None = None) -> Predictor:
    """The predictor for `uri` (`name`, `name:3` or `name@production`)."""
    registry = registry or Registry()
    return load_version(registry.get(uri), registry)


def load_version(version: ModelVersion, registry: Registry,
                 default_session: SessionSettings | None = None) -> Predictor:
    """The predictor for `version`; ONNX Runtime settings recorded on the version (by the
    optimizer) win over `default_session`."""
    if version.runtime == Runtime.ONNX:
        recorded = version.runtime_settings.get("onnxruntime")
        settings = (SessionSettings(**recorded) if recorded is not None
                    else default_session or SessionSettings())
        return OnnxPredictor(registry.read_artifact(version, "onnx"), version.signature,
                             version.task, settings=settings, model=version.name,
                             version=version.version).load()
    converter = converter_for(version.framework)
    original = converter.load(SavedOriginal(registry.read_artifact(version, "original"),
                                            version.original_format))
    return NativePredictor(converter, original, version.signature, version.task,
                           model=version.name, version=version.version)


def load_sample(uri: str | ModelURI, *, registry: Registry | None = None
                ) -> pd.DataFrame | np.ndarray:
    """The reference sample stored with a version."""
    registry = registry or Registry()
    return sample_from_parquet(registry.read_artifact(registry.get(uri), "sample"))


__all__ = ["load", "load_sample", "load_version"]
