"""The engine-neutral scoring kernel: record batches in, output batches out.

`ScorerSpec` is what an engine ships to its workers (the version, its artifacts' bytes, the
column map and the output layout; picklable, broadcast by Spark); `Scorer` is what a worker
builds from it once and calls per batch. Every engine scores through this one kernel, so
their outputs agree row by row.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pyarrow as pa

from ferry.batch.features import FeatureMap
from ferry.batch.outputs import OutputLayout
from ferry.errors import InvalidInputError
from ferry.registry import ModelVersion, Registry, Runtime
from ferry.runtime.onnx_runtime import SessionSettings
from ferry.runtime.predictor import GraphPredictor
from ferry.runtime.runtimes import ONNXRUNTIME_SETTINGS, runtime_loader
from ferry.steps.stored import require_one_model, runs_code

THREAD_SETTINGS = {ONNXRUNTIME_SETTINGS: "intra_op_threads", "openvino": "threads",
                   "tl2cgen": "threads"}
"""Where each runtime records its thread count, overridden by the batch's `threads`."""


@dataclass(frozen=True)
class ScorerSpec:
    """Everything a worker needs to score, with no registry access of its own."""

    version: ModelVersion
    artifacts: dict[str, bytes]
    features: FeatureMap
    layout: OutputLayout
    threads: int = 1

    def build(self) -> Scorer:
        loader = runtime_loader(self.version.runtime)
        predictor = loader(self.version, self.artifacts.__getitem__,
                           SessionSettings(intra_op_threads=self.threads))
        return Scorer(predictor, self.features, self.layout)


@dataclass
class Scorer:
    predictor: GraphPredictor
    features: FeatureMap
    layout: OutputLayout

    def score(self, batch: pa.RecordBatch) -> pa.RecordBatch:
        raw = self.predictor.run_feeds(self.features.feeds(batch))
        return self.layout.build(batch, self.predictor.outputs_by_role(raw))

    def score_batches(self, batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        return (self.score(batch) for batch in batches if batch.num_rows)


def scorer_spec(registry: Registry, version: ModelVersion, features: FeatureMap,
                layout: OutputLayout, threads: int) -> ScorerSpec:
    """The spec for `version`, loaded once here to prove it loads and to learn which
    artifacts its runtime reads."""
    check_runtime(version)
    version = with_threads(version, threads)
    artifacts: dict[str, bytes] = {}

    def read(kind: str) -> bytes:
        artifacts[kind] = registry.read_artifact(version, kind)
        return artifacts[kind]

    runtime_loader(version.runtime)(version, read, SessionSettings(intra_op_threads=threads))
    return ScorerSpec(version, artifacts, features, layout, threads)


def check_runtime(version: ModelVersion) -> None:
    require_one_model(version, "batch scoring")
    if runs_code(version):
        raise InvalidInputError(
            f"{version.uri} has Python steps, which batch scoring does not run (it scores"
            " features with the model alone): score a version without steps, with the"
            " step's output as the input's columns")
    if version.runtime == Runtime.NATIVE:
        raise InvalidInputError(
            f"{version.uri} runs on its own framework (native); batch scoring runs converted"
            " versions (onnx, openvino, tl2cgen): register its ONNX form")


def with_threads(version: ModelVersion, threads: int) -> ModelVersion:
    """`version` with every recorded thread count set to `threads` (workers share cores)."""
    settings: dict[str, Any] = dict(version.runtime_settings)
    for runtime, name in THREAD_SETTINGS.items():
        if isinstance(settings.get(runtime), dict):
            settings[runtime] = {**settings[runtime], name: threads}
    return dataclasses.replace(version, runtime_settings=settings)
