"""`ferry.load`: a registered version back as a predictor, checksums verified.

A version with Python pre/post steps (`ferry.steps`) loads only when the caller trusts its
code (`trust_code=True`), and then predicts through its steps.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from ferry.convert import SavedOriginal, converter_for
from ferry.data import AnySample, sample_from_parquet
from ferry.registry import ModelVersion, Registry, Runtime
from ferry.runtime.native import NativePredictor
from ferry.runtime.onnx_runtime import SessionSettings
from ferry.runtime.predictor import Predictor
from ferry.runtime.runtimes import runtime_loader
from ferry.steps import StepsPredictor, require_trust, steps_of
from ferry.steps.chain import ChainPredictor, EnsemblePredictor, StageRun
from ferry.steps.loaded import step_run
from ferry.steps.pipeline import EnsembleStage, Member, ModelStage, PipelineRecord, Stage
from ferry.steps.stored import pipeline_of
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
    pipeline = pipeline_of(version, registry)
    if pipeline is not None:
        loader = MemberLoader(registry, default_session, trust_code)
        return load_pipeline(pipeline, loader, version)
    predictor = _load_model(version, registry, default_session)
    steps = steps_of(version, registry)
    return predictor if steps is None else StepsPredictor(predictor, steps)


@dataclass(frozen=True)
class MemberLoader:
    """Loads the versions a pipeline runs, as the pipeline itself is loaded."""

    registry: Registry
    default_session: SessionSettings | None = None
    trust_code: bool = False

    def __call__(self, member: Member) -> Predictor:
        version = self.registry.get(member.uri)
        return load_version(version, self.registry, self.default_session,
                            trust_code=self.trust_code)


def load_pipeline(record: PipelineRecord, load_member: Callable[[Member], Predictor],
                  version: ModelVersion | None = None) -> ChainPredictor:
    """The predictor running `record`'s stages, with `version`'s signature and task (the
    last model's while the pipeline is being registered)."""
    stages = [_stage_run(stage, number, load_member)
              for number, stage in enumerate(record.stages, start=1)]
    if version is None:
        last = [stage.predictor for stage in stages if stage.predictor is not None][-1]
        return ChainPredictor(stages, last.signature, last.task)
    return ChainPredictor(stages, version.signature, version.task, model=version.name,
                          version=version.version)


def _stage_run(stage: Stage, number: int,
               load_member: Callable[[Member], Predictor]) -> StageRun:
    if isinstance(stage, ModelStage):
        return StageRun(stage.member.uri, predictor=load_member(stage.member))
    if isinstance(stage, EnsembleStage):
        members = [load_member(member) for member in stage.members]
        return StageRun("ensemble", predictor=EnsemblePredictor(members, stage.weights))
    return step_run(f"stage {number}", stage.step)


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
