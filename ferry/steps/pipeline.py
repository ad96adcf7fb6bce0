"""`ferry.Pipeline`: Python steps and registered models chained, stored as one JSON document.

    ferry.register(ferry.Pipeline([tokenize, "sentiment:2", label_names]), "sentiment-api",
                   raw_sample=texts)
    ferry.register(ferry.Pipeline([ferry.Ensemble(["iris-lr", "iris-trees"])]), "iris-vote",
                   raw_sample=rows)

Each stage receives the previous stage's result for the whole batch: a Python function (kept
as source, as `preprocess=` steps are), a registered model by URI (pinned at registration to
the version the URI names then), or an `Ensemble` of models given the same input, their
probabilities (classifiers) or values (regressors) averaged. The stored document:

    {"format": 1,
     "stages": [{"step": {"name", "source", ...}},
                {"model": {"name": "sentiment", "version": 2}},
                {"ensemble": {"members": [{"name", "version"}, ...], "weights": [...]}}],
     "signature": {...}}      # the pipeline's outer inputs and outputs

JSON only: reading it runs nothing. A pipeline with a Python stage runs user code when loaded,
so it needs `trust_code` as steps do. Where the whole chain fits in one ONNX graph (a
scikit-learn Pipeline does), register that instead: it is faster and exports everywhere.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from ferry.errors import CorruptArtifactError, InvalidInputError
from ferry.signature import Signature
from ferry.steps.record import read_document
from ferry.steps.source import StepSource, capture

PIPELINE_ARTIFACT = "pipeline"
"""Name of the document under `runtime_settings["artifacts"]`."""
FORMAT = 1


@dataclass(frozen=True)
class Ensemble:
    """Registered models (URIs) given the same input; their outputs averaged, weighted."""

    members: Sequence[str]
    weights: Sequence[float] | None = None


@dataclass(frozen=True)
class Pipeline:
    """Stages run in order on each whole batch: Python functions, model URIs, `Ensemble`s."""

    stages: Sequence[Callable[[Any], Any] | str | Ensemble]


@dataclass(frozen=True)
class Member:
    """A registered version a pipeline runs, pinned by number."""

    name: str
    version: int

    @property
    def uri(self) -> str:
        return f"{self.name}:{self.version}"

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "version": self.version}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Member:
        return cls(str(data["name"]), int(data["version"]))


@dataclass(frozen=True)
class StepStage:
    step: StepSource

    def to_dict(self) -> dict[str, Any]:
        return {"step": self.step.to_dict()}


@dataclass(frozen=True)
class ModelStage:
    member: Member

    def to_dict(self) -> dict[str, Any]:
        return {"model": self.member.to_dict()}


@dataclass(frozen=True)
class EnsembleStage:
    members: tuple[Member, ...]
    weights: tuple[float, ...]

    def to_dict(self) -> dict[str, Any]:
        return {"ensemble": {"members": [m.to_dict() for m in self.members],
                             "weights": list(self.weights)}}


Stage = StepStage | ModelStage | EnsembleStage


@dataclass(frozen=True)
class PipelineRecord:
    """A pipeline as stored: its stages, and its outer signature once known."""

    stages: tuple[Stage, ...]
    signature: Signature | None = None

    @property
    def runs_code(self) -> bool:
        return any(isinstance(stage, StepStage) for stage in self.stages)

    def members(self) -> list[Member]:
        """Every registered version the pipeline runs, in order."""
        found: list[Member] = []
        for stage in self.stages:
            if isinstance(stage, ModelStage):
                found.append(stage.member)
            elif isinstance(stage, EnsembleStage):
                found.extend(stage.members)
        return found

    def describe(self) -> str:
        """`step tokenize -> model sentiment:2 -> step label_names`."""
        return " -> ".join(_describe(stage) for stage in self.stages)

    def to_bytes(self) -> bytes:
        record: dict[str, Any] = {"format": FORMAT,
                                  "stages": [stage.to_dict() for stage in self.stages]}
        if self.signature is not None:
            record["signature"] = self.signature.to_dict()
        return json.dumps(record, indent=1, sort_keys=True).encode()


def _describe(stage: Stage) -> str:
    if isinstance(stage, StepStage):
        return f"step {stage.step.describe()}"
    if isinstance(stage, ModelStage):
        return f"model {stage.member.uri}"
    return f"ensemble of {', '.join(m.uri for m in stage.members)}"


def capture_pipeline(pipeline: Pipeline, pin: Callable[[str], Member]) -> PipelineRecord:
    """The stored form of `pipeline`: functions as source, URIs pinned by `pin`."""
    if not pipeline.stages:
        raise InvalidInputError("a Pipeline needs at least one stage")
    stages = tuple(_capture_stage(stage, number, pin)
                   for number, stage in enumerate(pipeline.stages, start=1))
    if not any(not isinstance(stage, StepStage) for stage in stages):
        raise InvalidInputError("a Pipeline needs a registered model among its stages: for"
                                " steps around one model, register it with preprocess= and"
                                " postprocess=")
    return PipelineRecord(stages)


def _capture_stage(stage: Any, number: int, pin: Callable[[str], Member]) -> Stage:
    if isinstance(stage, str):
        return ModelStage(pin(stage))
    if isinstance(stage, Ensemble):
        return _capture_ensemble(stage, number, pin)
    if callable(stage):
        return StepStage(capture(stage, f"stage {number}"))
    raise InvalidInputError(f"stage {number} of the Pipeline is a {type(stage).__name__}: give"
                            " a function, a model URI ('name:2', 'name@production') or an"
                            " Ensemble")


def _capture_ensemble(ensemble: Ensemble, number: int,
                      pin: Callable[[str], Member]) -> EnsembleStage:
    members = tuple(pin(uri) for uri in ensemble.members)
    if len(members) < 2:
        raise InvalidInputError(f"the Ensemble of stage {number} needs two members or more")
    weights = tuple(float(w) for w in (ensemble.weights or [1.0] * len(members)))
    if len(weights) != len(members) or min(weights) < 0 or sum(weights) <= 0:
        raise InvalidInputError(
            f"the Ensemble of stage {number} has {len(members)} members and weights"
            f" {list(weights)}: give one non-negative weight per member, not all zero")
    return EnsembleStage(members, weights)


def pipeline_from_bytes(data: bytes) -> PipelineRecord:
    """The pipeline stored in `data`; refuses a format this ferry does not know."""
    record = read_document(data, "pipeline", FORMAT)
    try:
        stages = tuple(_stage_from_dict(stage) for stage in record["stages"])
    except (ValueError, KeyError, TypeError) as exc:
        raise CorruptArtifactError(f"the pipeline artifact has a bad stage: {exc}") from exc
    signature = record.get("signature")
    return PipelineRecord(stages, None if signature is None else Signature.from_dict(signature))


def _stage_from_dict(data: dict[str, Any]) -> Stage:
    if "step" in data:
        return StepStage(StepSource.from_dict(data["step"]))
    if "model" in data:
        return ModelStage(Member.from_dict(data["model"]))
    ensemble = data["ensemble"]
    return EnsembleStage(tuple(Member.from_dict(m) for m in ensemble["members"]),
                         tuple(float(w) for w in ensemble["weights"]))
