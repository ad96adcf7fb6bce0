"""`ferry.load`: a registered version back as a predictor, checksums verified.

A version with Python pre/post steps (`ferry.steps`) loads only when the caller trusts its
code (`trust_code=True`), and then predicts through its steps.
"""

from __future__ import annotations

from ferry.convert import SavedOriginal, converter_for
from ferry.data import AnySample, sample_from_parquet
from ferry.registry import ModelVersion, Registry, Runtime
from ferry.runtime.native import NativePredictor
from ferry.runtime.onnx_runtime import SessionSettings
from ferry.runtime.predictor import Predictor
from ferry.runtime.runtimes import runtime_loader
from ferry.steps import StepsPredictor, require_trust, steps_of
from ferry.uri import ModelURI


def load(uri: str | ModelURI, *, registry: Registry | None = None,
         trust_code: bool = False) -> Predictor:
    """The predictor for `uri` (`name`, `name:3` or `name@production`). A version with
    pre/post steps needs `trust_code=True` (read them first with `ferry show`)."""
    registry = registry or Registry()
    return load_version(registry.get(uri), registry, trust_code=trust_code)


def load_version(version: ModelVersion, registry: Registry,
                 default_session: SessionSettings | None = None, *,
                 trust_code: bool = False) -> Predictor:
    """The predictor for `version`, on the runtime it records; ONNX Runtime settings recorded
    on the version (by the optimizer) win over `default_session`. Its steps, if any, run
    around the model once `trust_code` allows them."""
    require_trust(version, trust_code)
    predictor = _load_model(version, registry, default_session)
    steps = steps_of(version, registry)
    return predictor if steps is None else StepsPredictor(predictor, steps)


def _load_model(version: ModelVersion, registry: Registry,
                default_session: SessionSettings | None) -> Predictor:
    """The model's own predictor, without its steps."""
    if version.runtime != Runtime.NATIVE:
        loader = runtime_loader(version.runtime)
        return loader(version, lambda kind: registry.read_artifact(version, kind),
                      default_session)
    converter = converter_for(version.framework)
    original = converter.load(SavedOriginal(registry.read_artifact(version, "original"),
                                            version.original_format))
    return NativePredictor(converter, original, version.signature, version.task,
                           model=version.name, version=version.version)


def load_sample(uri: str | ModelURI, *, registry: Registry | None = None) -> AnySample:
    """The reference sample stored with a version (a dict of arrays for a sample given as one
    array per input)."""
    registry = registry or Registry()
    return sample_from_parquet(registry.read_artifact(registry.get(uri), "sample"))


__all__ = ["load", "load_sample", "load_version"]
