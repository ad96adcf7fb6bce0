"""One served model version: protocol metadata, request validation and the batched call.

`ServedModel` checks a request against the version's signature (names, datatypes, shapes)
and turns it into arrays; the batcher merges arrays of concurrent requests; `run_arrays`
calls ONNX Runtime (or the native framework) once per batch.

A version with Python pre/post steps (`ferry.steps`, loaded only with `--trust-code`) takes
and gives what its steps do (its outer signature), and runs them on the whole batch in the
model call's worker thread, each stage timed (`ferry_stage_duration_seconds`).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from ferry.errors import InferenceError, InvalidInputError
from ferry.registry import ModelVersion
from ferry.runtime.feeds import to_feeds
from ferry.runtime.predictor import GraphPredictor, Outputs, Predictor
from ferry.serve.batching import (
    Arrays,
    BatchObserver,
    BatchSampler,
    BatchSettings,
    BatchTiming,
    DynamicBatcher,
    QueuedRequest,
)
from ferry.serve.datatypes import BYTES, from_signature, to_bytes_array
from ferry.serve.model_config import platform_of
from ferry.serve.statistics import ModelStatistics
from ferry.serve.types import (
    InferenceRequest,
    InferenceResponse,
    InferInput,
    InferOutput,
    ModelMetadata,
    TensorMetadata,
)
from ferry.signature import DYNAMIC, Layout, TensorSpec
from ferry.steps.chain import ChainPredictor, StageObserver


class ServedModel:
    """A loaded version, ready to answer inference requests."""

    def __init__(self, version: ModelVersion, predictor: Predictor,
                 batching: BatchSettings, observe: BatchObserver | None = None,
                 observe_stage: StageObserver | None = None, sample: BatchSampler | None = None):
        self.version = version
        self.predictor = predictor
        self.signature = predictor.signature
        """What requests send and get: the model's, or the pipeline's around its steps."""
        self.observe_stage = observe_stage
        self.name = version.name
        self.version_label = str(version.version)
        self._inputs = {spec.name: spec for spec in self.signature.inputs}
        self._outputs = [spec for spec in self.signature.outputs]
        self.input_metadata = tuple(_tensor_metadata(s) for s in self.signature.inputs)
        """The protocol's view of the inputs, built once (raw binary requests need it)."""
        self.output_metadata = tuple(_tensor_metadata(s) for s in self._outputs)
        self._datatypes = {m.name: m.datatype for m in (*self.input_metadata,
                                                        *self.output_metadata)}
        """Each input's and output's protocol datatype by name, for the request path."""
        self.batching = batching
        self.statistics = ModelStatistics(self.name, self.version_label, batching.max_batch_size)
        self.batcher = DynamicBatcher(self.run_arrays, batching, self._observer(observe),
                                      sample)

    @property
    def default_outputs(self) -> list[TensorSpec]:
        """What a request that names no outputs gets: all of them (this very list, so that
        whoever compares a request's `PendingInference.wanted` with it need not read it)."""
        return self._outputs

    def _observer(self, metrics: BatchObserver | None) -> BatchObserver:
        record = self.statistics.record_batch
        if metrics is None:
            return record

        def observe(timing: BatchTiming) -> None:
            record(timing)
            metrics(timing)

        return observe

    def metadata(self, versions: tuple[str, ...]) -> ModelMetadata:
        return ModelMetadata(
            name=self.name, versions=versions, platform=platform_of(self.version.runtime)[0],
            inputs=self.input_metadata, outputs=self.output_metadata)

    async def infer(self, request: InferenceRequest,
                    timeout_s: float | None = None) -> InferenceResponse:
        pending = self.begin(request, timeout_s)
        await pending.future
        return pending.response()

    def begin(self, request: InferenceRequest,
              timeout_s: float | None = None) -> PendingInference:
        """Check the request and queue it on the batcher; its future completes when the
        batch that carries it has run (for servers that answer from a callback)."""
        arrays, rows = self.arrays(request)
        wanted = self._wanted_outputs(request)
        return PendingInference(self, request, wanted,
                                self.batcher.enqueue_request(arrays, rows, timeout_s,
                                                             request.id or ""))

    def arrays(self, request: InferenceRequest) -> tuple[Arrays, int]:
        """The request's tensors as the model's input arrays, and the batch size."""
        given = {i.name: i for i in request.inputs}
        if not (given.keys() == self._inputs.keys() and len(given) == len(request.inputs)):
            problem = self._naming_error(request, given)
            raise InvalidInputError(problem, model=self.name, version=self.version.version)
        arrays = {name: self._array(spec, given[name]) for name, spec in self._inputs.items()}
        if len(arrays) == 1:
            return arrays, next(iter(arrays.values())).shape[0]
        batch_sizes = {a.shape[0] for a in arrays.values()}
        if len(batch_sizes) != 1:
            raise InvalidInputError(f"inputs disagree on the batch size: {sorted(batch_sizes)}",
                                    model=self.name, version=self.version.version)
        return arrays, batch_sizes.pop()

    def arrays_from_rows(self, frame: pd.DataFrame) -> tuple[Arrays, int]:
        """Arrays for the model from named rows, mapped through the signature."""
        return to_feeds(self.signature, frame), len(frame)

    def _naming_error(self, request: InferenceRequest, given: dict[str, InferInput]) -> str:
        """What is wrong with the request's input names (they are not the model's)."""
        if len(given) != len(request.inputs):
            repeated = _repeated([i.name for i in request.inputs])
            return f"input {repeated!r} appears more than once in the request: send each once"
        expected = ", ".join(self._inputs)
        unknown = sorted(set(given) - set(self._inputs))
        if unknown:
            return f"unknown input {unknown[0]!r} for model {self.name}: it takes {expected}"
        missing = [name for name in self._inputs if name not in given]
        return f"missing input {missing[0]!r} for model {self.name}: it takes {expected}"

    def _array(self, spec: TensorSpec, given: InferInput) -> np.ndarray:
        expected = self._datatypes[spec.name]
        if given.datatype != expected:
            raise InvalidInputError(
                f"input {spec.name!r} has datatype {given.datatype}, model {self.name} expects"
                f" {expected}", model=self.name, version=self.version.version)
        shape = given.shape
        if not _fits(shape, spec.shape):
            raise InvalidInputError(
                f"input {spec.name!r} has shape {list(shape)}, model {self.name} expects"
                f" {list(spec.shape)} (-1: any size)", model=self.name,
                version=self.version.version)
        if expected == BYTES:
            return self._texts(spec.name, given.data)
        return given.data

    def _texts(self, name: str, data: np.ndarray) -> np.ndarray:
        """BYTES data as the model's strings: UTF-8 text, refused naming the input if not."""
        if not data.size:
            return data
        try:
            return np.vectorize(_text, otypes=[object])(data)
        except UnicodeDecodeError as exc:
            raise InvalidInputError(
                f"input {name!r}: BYTES data are not valid UTF-8 ({exc.reason} at byte"
                f" {exc.start} of an element): send text encoded as UTF-8", model=self.name,
                version=self.version.version) from None

    def _wanted_outputs(self, request: InferenceRequest) -> list[TensorSpec]:
        if not request.outputs:
            return self._outputs
        names = [output.name for output in request.outputs]
        if len(set(names)) != len(names):
            raise InvalidInputError(
                f"output {_repeated(names)!r} is requested more than once: ask for each output"
                " once", model=self.name, version=self.version.version)
        by_name = {spec.name: spec for spec in self._outputs}
        for output in request.outputs:
            if output.name not in by_name:
                raise InvalidInputError(
                    f"unknown output {output.name!r} for model {self.name}: it gives"
                    f" {', '.join(by_name)}", model=self.name, version=self.version.version)
        return [by_name[o.name] for o in request.outputs]

    def run_arrays(self, arrays: Arrays) -> Arrays:
        """One model call over a (possibly merged) batch."""
        try:
            if isinstance(self.predictor, GraphPredictor):
                return self.predictor.run_feeds(arrays)
            if isinstance(self.predictor, ChainPredictor):
                return self._run_chain(self.predictor, arrays)
            return self._run_native(arrays)
        except InvalidInputError:
            raise
        except Exception as exc:
            raise InferenceError(
                f"model {self.name}:{self.version_label} failed: {type(exc).__name__}: {exc}",
                model=self.name, version=self.version.version) from exc

    def _run_native(self, arrays: Arrays) -> Arrays:
        return self._by_name(self.predictor.outputs(self._data(arrays)))

    def _run_chain(self, predictor: ChainPredictor, arrays: Arrays) -> Arrays:
        """Steps and models on the whole batch, each stage timed."""
        return self._by_name(predictor.timed_outputs(self._data(arrays), self.observe_stage))

    def _data(self, arrays: Arrays) -> Any:
        """The batch as the predictor takes it: rows by column, arrays by name, or one."""
        if self.signature.layout == Layout.COLUMNS:
            return pd.DataFrame({k: v.reshape(-1) for k, v in arrays.items()})
        if len(arrays) > 1:
            return dict(arrays)  # several tensor inputs, by name
        return next(iter(arrays.values()))

    def _by_name(self, outputs: Outputs) -> Arrays:
        return {spec.name: outputs[spec.role] for spec in self._outputs
                if spec.role is not None and spec.role in outputs}


@dataclass(slots=True)
class PendingInference:
    """A queued request: `future` gives the batch's outputs, `response()` the answer."""

    model: ServedModel
    request: InferenceRequest
    wanted: list[TensorSpec]
    queued: QueuedRequest

    @property
    def future(self) -> asyncio.Future[Arrays]:
        return self.queued.future

    def response(self) -> InferenceResponse:
        """The response, once `future` is done (raises the batch's error if it failed)."""
        results = self.future.result()
        datatypes = self.model._datatypes
        return InferenceResponse(
            model_name=self.model.name, model_version=self.model.version_label,
            outputs=[_output(spec.name, datatypes[spec.name], results[spec.name])
                     for spec in self.wanted],
            id=self.request.id)


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _repeated(names: list[str]) -> str:
    """The first name that comes twice."""
    seen: set[str] = set()
    for name in names:
        if name in seen:
            return name
        seen.add(name)
    raise ValueError("no name comes twice")


def _tensor_metadata(spec: TensorSpec) -> TensorMetadata:
    return TensorMetadata(spec.name, from_signature(spec.dtype), spec.shape)


def _fits(shape: tuple[int, ...], expected: tuple[int, ...]) -> bool:
    """Whether a request's shape is the signature's, -1 in it taking any size."""
    if len(shape) != len(expected):
        return False
    for got, want in zip(shape, expected, strict=True):
        if got != want and want != DYNAMIC:
            return False
    return True


def _output(name: str, datatype: str, values: np.ndarray) -> InferOutput:
    if datatype == BYTES:
        values = to_bytes_array(values).reshape(values.shape)
    return InferOutput(name, datatype, values.shape, values)
