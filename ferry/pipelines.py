"""Registering a `ferry.Pipeline`: steps and registered models chained, as one version.

`ferry.register(ferry.Pipeline([...]), name, raw_sample=rows)` pins each model URI to the
version it names now, stores the steps as source and the chain as a JSON document
(`ferry.steps.pipeline`), runs the whole chain on `raw_sample` to prove the stages fit and to
read the pipeline's outer signature, and records a version whose runtime is `pipeline`.
Members are loaded without trusting stored code: a member with its own steps is refused (put
those steps in the pipeline, where the caller passes them).
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ferry import __version__
from ferry.data import as_sample, head, sample_to_parquet
from ferry.errors import FerryError, SampleMismatchError, UnsafeFileError, one_line
from ferry.loading import MemberLoader, load_pipeline
from ferry.monitor.reference import profile_bytes, profile_of
from ferry.registry import ModelVersion, Registry, Runtime, VersionDraft
from ferry.runtime.predictor import Outputs, Predictor
from ferry.signature import Signature
from ferry.steps.chain import ChainPredictor
from ferry.steps.outer import outer_signature
from ferry.steps.pipeline import Member, Pipeline, PipelineRecord, StepStage, capture_pipeline
from ferry.steps.stored import pipeline_settings

log = logging.getLogger("ferry.pipelines")

FRAMEWORK = "pipeline"
DOCUMENT_FORMAT = "ferry-pipeline-json"
SAMPLE_ROWS = 1000


@dataclass(frozen=True)
class Details:
    """What the user says about the version (as `ferry.register` takes it)."""

    description: str = ""
    metrics: dict[str, Any] = field(default_factory=dict)
    params: dict[str, Any] = field(default_factory=dict)
    tags: dict[str, Any] = field(default_factory=dict)
    lineage: dict[str, Any] = field(default_factory=dict)


def register_pipeline(pipeline: Pipeline, name: str, raw_sample: Any, registry: Registry,
                      details: Details) -> ModelVersion:
    """Register `pipeline` as the next version of `name` (see the module's docstring)."""
    if raw_sample is None:
        raise SampleMismatchError("a Pipeline is registered with raw_sample=: rows as the"
                                  " pipeline receives them, to check its stages fit")
    record = capture_pipeline(pipeline, lambda uri: _pin(registry, uri))
    advice = one_graph_advice(record, registry)
    if advice:
        log.warning("%s", advice)
    predictor = _chain(record, registry)
    rows = head(as_sample(raw_sample), SAMPLE_ROWS)
    signature = _signature(record, predictor, rows)
    record = dataclasses.replace(record, signature=signature)
    predictor = ChainPredictor(predictor.stages, signature, predictor.task)
    draft = _draft(record, predictor, rows, registry, details)
    if advice:
        draft = dataclasses.replace(draft, conversion_check={**draft.conversion_check,
                                                             "advice": advice})
    return registry.create_version(name, draft)


def one_graph_advice(record: PipelineRecord, registry: Registry) -> str | None:
    """What to register instead when the whole pipeline fits in one ONNX graph: scikit-learn
    models only, no Python step (one graph is faster and exports everywhere)."""
    if record.runs_code:
        return None
    frameworks = {registry.get(member.uri).framework for member in record.members()}
    if frameworks != {"sklearn"}:
        return None
    return ("every stage is a scikit-learn model, so the whole pipeline fits in one ONNX"
            " graph: register a scikit-learn Pipeline, StackingClassifier or VotingClassifier"
            " (VotingRegressor) of them instead; it serves faster and exports to every"
            " consumer")


def _pin(registry: Registry, uri: str) -> Member:
    version = registry.get(uri)
    return Member(version.name, version.version)


def _chain(record: PipelineRecord, registry: Registry) -> ChainPredictor:
    """The pipeline loaded as it will be served, members without trusting their code."""
    try:
        return load_pipeline(record, MemberLoader(registry))
    except UnsafeFileError as exc:
        raise UnsafeFileError(f"{exc}; or make its steps stages of this Pipeline") from exc


def _signature(record: PipelineRecord, predictor: ChainPredictor, rows: Any) -> Signature:
    """What the pipeline takes (a first model's inputs, else rows like `rows`) and gives."""
    outputs = _run(predictor, rows)
    starts_with_step = isinstance(record.stages[0], StepStage)
    signature = outer_signature(predictor.signature, rows, outputs, preprocessed=True)
    if starts_with_step:
        return signature
    first = _first_model(predictor).signature
    return dataclasses.replace(signature, inputs=first.inputs, layout=first.layout,
                               feature_names=first.feature_names)


def _first_model(predictor: ChainPredictor) -> Predictor:
    return next(stage.predictor for stage in predictor.stages if stage.predictor is not None)


def _run(predictor: ChainPredictor, rows: Any) -> Outputs:
    try:
        return predictor.outputs(rows)
    except Exception as exc:
        raise SampleMismatchError(f"the pipeline does not run on raw_sample: {one_line(exc)}"
                                  ) from exc


def _draft(record: PipelineRecord, predictor: ChainPredictor, rows: Any, registry: Registry,
           details: Details) -> VersionDraft:
    store = registry.artifacts
    profile = _profile(predictor, rows)
    return VersionDraft(
        framework=FRAMEWORK, framework_version=__version__, task=predictor.task,
        runtime=Runtime.PIPELINE, signature=predictor.signature,
        original_sha256=store.put(record.to_bytes()), original_format=DOCUMENT_FORMAT,
        sample_sha256=_sample(rows, store.put),
        profile_sha256=None if profile is None else store.put(profile),
        runtime_settings=pipeline_settings(record, registry),
        conversion_check={"skipped": "pipeline", "stages": record.describe()},
        description=details.description, metrics=dict(details.metrics),
        params=dict(details.params), tags=dict(details.tags),
        lineage={**details.lineage, "members": [m.uri for m in record.members()]})


def _sample(rows: Any, put: Callable[[bytes], str]) -> str | None:
    try:
        return str(put(sample_to_parquet(rows)))
    except (FerryError, ValueError, TypeError) as exc:
        log.warning("raw_sample not kept with the pipeline: %s", one_line(exc))
        return None


def _profile(predictor: Predictor, rows: Any) -> bytes | None:
    try:
        return profile_bytes(profile_of(predictor, rows))
    except (FerryError, ValueError, TypeError) as exc:
        log.warning("no reference profile for drift: %s", one_line(exc))
        return None
