"""`ferry.optimize`: build every candidate, gate it, time it, register the fastest that passes.

1. the version's reference sample is split: calibration rows for the quantizers, held-out
   rows for the gate (or the user's own labelled validation rows);
2. each registered candidate says whether it applies; the ones that do are built with one
   thread, gated against the original model's outputs, and re-threaded for each thread
   setting tried;
3. the original framework's own predict and every built variant are timed together,
   interleaved, per batch size (`ferry.optimizer.timing`);
4. the fastest variant that passed its gate at the first batch size is registered as a new
   version whose parent is the original, with its runtime and settings, so that `ferry.load`
   and `ferry serve` use it as is. Nothing is written to the registry before that last step:
   an interrupted search leaves it as it was.
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ferry.convert import SavedOriginal, converter_for
from ferry.data import AnySample, as_sample, sample_from_parquet, sample_rows
from ferry.errors import FerryError, InvalidInputError, SampleMismatchError, one_line
from ferry.optimizer.candidate import (
    BuiltCandidate,
    Candidate,
    OptimizeContext,
    Precision,
    Threads,
)
from ferry.optimizer.candidates import candidates as registered_candidates
from ferry.optimizer.equivalence import Gate, Verdict, judge
from ferry.optimizer.machine import Machine, describe_machine
from ferry.optimizer.timing import Timing, TimingSettings, pinned, time_interleaved
from ferry.registry import ModelVersion, Registry, VersionDraft
from ferry.registry.entities import EXTRA_ARTIFACTS
from ferry.runtime.feeds import Feeds, to_feeds
from ferry.runtime.onnx_runtime import OnnxPredictor
from ferry.runtime.predictor import Outputs
from ferry.signature import Task
from ferry.steps.stored import carry_steps, require_one_model
from ferry.uri import ModelURI

DEFAULT_BATCH_SIZES = (1, 64)
MAX_CALIBRATION_ROWS = 256
MIN_SAMPLE_ROWS = 8
INPUT_VARIANTS = 8
"""Different input arrays per batch size, cycled through while timing."""
SPLIT_SEED = 0
BASELINE = "original"
TIE_SHARE = 0.03
"""Variants this close to the fastest count as tied (see `_fastest`)."""


class Status:
    PASSED = "passed"
    FAILED_GATE = "failed gate"
    FAILED_BUILD = "failed to build"
    SKIPPED = "skipped"


@dataclass
class CandidateResult:
    """One candidate (at one thread setting): why it was skipped, or its numbers."""

    name: str
    precision: str
    description: str
    status: str
    reason: str = ""
    threads: Threads | None = None
    """The thread settings it was built and timed with (None: not built)."""
    runtime: str = ""
    verdict: Verdict | None = None
    timings: dict[int, Timing] = field(default_factory=dict)
    size_bytes: int | None = None
    build_s: float | None = None
    notes: str = ""
    built: BuiltCandidate | None = field(default=None, repr=False)

    @property
    def label(self) -> str:
        return f"{self.name} [{self.threads.label}]" if self.threads else self.name

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "threads": self.threads.label if self.threads else "",
                "precision": self.precision,
                "runtime": self.runtime, "status": self.status, "reason": self.reason,
                "description": self.description, "notes": self.notes,
                "size_bytes": self.size_bytes, "build_s": self.build_s,
                "gate": self.verdict.to_dict() if self.verdict else None,
                "timings": {str(b): t.to_dict() for b, t in self.timings.items()}}


@dataclass
class OptimizeResult:
    """What `optimize` found and did."""

    source: ModelVersion
    batch_sizes: tuple[int, ...]
    machine: Machine
    baseline: dict[int, Timing]
    candidates: list[CandidateResult]
    other_baselines: dict[str, dict[int, Timing]] = field(default_factory=dict)
    """Further ways of calling the original (Keras eagerly, say), timed in the same run."""
    baseline_name: str = "predict"
    chosen: CandidateResult | None = None
    version: ModelVersion | None = None
    report_path: Path | None = None
    gate: Gate = field(default_factory=Gate)

    def to_dict(self) -> dict[str, Any]:
        return {"source": self.source.uri, "batch_sizes": list(self.batch_sizes),
                "machine": self.machine.to_dict(), "gate": self.gate.to_dict(),
                "baseline": {str(b): t.to_dict() for b, t in self.baseline.items()},
                "baseline_name": self.baseline_name,
                "other_baselines": {name: {str(b): t.to_dict() for b, t in timings.items()}
                                    for name, timings in self.other_baselines.items()},
                "chosen": self.chosen.label if self.chosen else None,
                "version": self.version.uri if self.version else None,
                "report": str(self.report_path) if self.report_path else None,
                "candidates": [c.to_dict() for c in self.candidates]}


class SearchProgress:
    """What the search reports as it goes; the CLI draws a progress bar from it."""

    def start(self, total: int) -> None:
        """The number of steps the search will take."""

    def advance(self, description: str) -> None:
        """One step done; `description` says what comes next."""


@dataclass
class _Inputs:
    """The reference rows, split, as the original and the candidates take them."""

    calibration: Feeds
    heldout_rows: AnySample
    heldout_feeds: Feeds
    y: np.ndarray | None
    all_rows: AnySample


def optimize(uri: str | ModelURI, *, batch_sizes: Sequence[int] = DEFAULT_BATCH_SIZES,
             threads: int | None = None, lossless_only: bool = False,
             gate: Gate | None = None, validation: tuple[Any, Any | None] | None = None,
             report: str | Path | None = None, registry: Registry | None = None,
             timing: TimingSettings | None = None,
             candidates: Sequence[Candidate] | None = None, register: bool = True,
             progress: SearchProgress | None = None) -> OptimizeResult:
    """Find, check and register the fastest variant of `uri` that predicts the same.

    batch_sizes: timed for every candidate; the first one picks the winner.
    threads: the most intra-op threads tried (1 and this; default: the usable cores).
    lossless_only: skip lossy candidates (int8, bf16, fp16).
    gate: the equivalence thresholds (`Gate`); validation: `(rows, labels)` to gate on
        instead of the held-out part of the reference sample (labels may be None; with labels
        the accuracy drop is bounded too).
    report: where to write the Markdown report (a .png chart and .json data beside it).
    candidates: the candidates to try (default: every registered one, in order).
    register: False searches and reports but registers nothing.
    """
    registry = registry or Registry()
    gate = gate or Gate()
    progress = progress or SearchProgress()
    sizes = _batch_sizes(batch_sizes)
    version = registry.get(uri)
    require_one_model(version, "optimize")
    machine = describe_machine()
    thread_settings = _thread_settings(threads, machine)
    chosen_candidates = list(candidates) if candidates is not None else registered_candidates()
    inputs = _inputs(version, registry, validation)
    original, baseline_calls = _original(version, registry)
    reference = _reference_outputs(version, original, inputs)
    with tempfile.TemporaryDirectory(prefix="ferry-optimize-") as scratch:
        context = OptimizeContext(
            version=version, onnx=_onnx(version, registry), calibration=inputs.calibration,
            workdir=Path(scratch), gpu=machine.gpu, load_original=lambda: original,
            cpu_flags=machine.flags, gate=gate)
        progress.start(len(chosen_candidates) + len(sizes) * _slices(timing))
        results = _build_all(chosen_candidates, context, thread_settings, lossless_only,
                             inputs, reference, gate, progress)
        baselines = _time_all(results, baseline_calls, inputs, sizes, version,
                              thread_settings, timing, progress)
    name, baseline = next(iter(baselines.items()))
    result = OptimizeResult(version, sizes, machine, baseline, results, gate=gate,
                            other_baselines=dict(list(baselines.items())[1:]),
                            baseline_name=name)
    result.chosen = _fastest(results, sizes[0])
    if register and result.chosen is not None:
        result.version = _register(registry, version, result)
    if report is not None:
        from ferry.optimizer.report import write_report

        result.report_path = write_report(result, Path(report))
    return result


def _batch_sizes(batch_sizes: Sequence[int]) -> tuple[int, ...]:
    sizes = tuple(int(b) for b in batch_sizes)
    if not sizes or any(b < 1 for b in sizes):
        raise InvalidInputError(f"batch sizes must be positive integers, got {list(sizes)}")
    return sizes


def _thread_settings(threads: int | None, machine: Machine) -> list[Threads]:
    most = machine.cores if threads is None else threads
    if most < 1:
        raise InvalidInputError(f"--threads must be at least 1, got {most}")
    settings = [Threads(1)]
    if most > 1:
        settings += [Threads(most), Threads(most, parallel=True)]
    return settings


def _slices(timing: TimingSettings | None) -> int:
    settings = timing or TimingSettings()
    return settings.repeats * settings.slices


# -- inputs and the original --------------------------------------------------------------

def _inputs(version: ModelVersion, registry: Registry,
            validation: tuple[Any, Any | None] | None) -> _Inputs:
    if version.sample_sha256 is None:
        raise InvalidInputError(
            f"{version.uri} has no reference sample to calibrate and check with: register it"
            " with sample= (rows like the training data)", model=version.name,
            version=version.version)
    rows = sample_from_parquet(registry.read_artifact(version, "sample"))
    count = sample_rows(rows)
    if count < MIN_SAMPLE_ROWS:
        raise InvalidInputError(f"{version.uri}'s reference sample has {count} rows;"
                                f" the optimizer needs at least {MIN_SAMPLE_ROWS}")
    order = np.random.default_rng(SPLIT_SEED).permutation(count)
    calibration_rows = min(MAX_CALIBRATION_ROWS, count // 2)
    calibration = _take(rows, order[:calibration_rows])
    heldout, y = _take(rows, order[calibration_rows:]), None
    if validation is not None:
        heldout = as_sample(validation[0])
        y = None if validation[1] is None else np.asarray(validation[1]).reshape(-1)
        if y is not None and len(heldout) != len(y):
            raise InvalidInputError(f"validation rows ({len(heldout)}) and labels ({len(y)})"
                                    " differ in length")
    return _Inputs(calibration=to_feeds(version.signature, calibration), heldout_rows=heldout,
                   heldout_feeds=to_feeds(version.signature, heldout), y=y, all_rows=rows)


def _take(rows: AnySample, index: np.ndarray) -> AnySample:
    if isinstance(rows, dict):
        return {name: array[index] for name, array in rows.items()}
    if isinstance(rows, pd.DataFrame):
        return rows.iloc[index].reset_index(drop=True)
    return rows[index]


def _onnx(version: ModelVersion, registry: Registry) -> bytes | None:
    return registry.read_artifact(version, "onnx") if version.onnx_sha256 else None


OriginalCall = Callable[[Any], object]
BaselineCalls = dict[str, OriginalCall]
"""Name -> a way of calling the original; the first is the baseline speed-ups are against."""


def _original(version: ModelVersion, registry: Registry) -> tuple[object, BaselineCalls]:
    """The original model and the calls timed as its framework's own."""
    converter = converter_for(version.framework)
    if version.framework == "onnx":
        onnx_bytes = registry.read_artifact(version, "onnx")
        predictor = OnnxPredictor(onnx_bytes, version.signature, version.task).load()
        return predictor, {"predict": predictor.outputs}
    original = converter.load(SavedOriginal(registry.read_artifact(version, "original"),
                                            version.original_format))
    own = converter.baseline_calls(original)
    if own:
        return original, own
    # ferry's stand-ins for wrappers it stores without a pickle (LightGBM) have no `fit`
    # but keep the wrapper's `predict_proba`
    if version.task == Task.CLASSIFICATION and hasattr(original, "predict_proba"):
        return original, {"predict_proba": original.predict_proba}
    if hasattr(original, "fit") and hasattr(original, "predict"):
        return original, {"predict": original.predict}
    return original, {"predict": lambda data: converter.reference(original, data)}


def _reference_outputs(version: ModelVersion, original: object, inputs: _Inputs) -> Outputs:
    try:
        if isinstance(original, OnnxPredictor):
            return original.outputs(inputs.heldout_rows)
        return converter_for(version.framework).reference(original, inputs.heldout_rows)
    except FerryError:
        raise
    except Exception as exc:
        raise SampleMismatchError(f"the original model of {version.uri} cannot predict its"
                                  f" held-out rows: {one_line(exc)}") from exc


# -- build and gate ----------------------------------------------------------------------

def _build_all(chosen: list[Candidate], context: OptimizeContext, thread_settings: list[Threads],
               lossless_only: bool, inputs: _Inputs, reference: Outputs, gate: Gate,
               progress: SearchProgress) -> list[CandidateResult]:
    results: list[CandidateResult] = []
    for candidate in chosen:
        progress.advance(f"building {candidate.name}")
        results += _build_one(candidate, context, thread_settings, lossless_only, inputs,
                              reference, gate)
    return results


def _build_one(candidate: Candidate, context: OptimizeContext, thread_settings: list[Threads],
               lossless_only: bool, inputs: _Inputs, reference: Outputs,
               gate: Gate) -> list[CandidateResult]:
    def result(status: str, reason: str = "") -> CandidateResult:
        return CandidateResult(candidate.name, str(candidate.precision), candidate.description,
                               status, reason)

    if lossless_only and candidate.precision == Precision.LOSSY:
        return [result(Status.SKIPPED, "lossy, and --lossless-only was given")]
    try:
        reason = candidate.unavailable(context)
    except Exception as exc:
        reason = f"{type(exc).__name__}: {one_line(exc)}"
    if reason is not None:
        return [result(Status.SKIPPED, reason)]
    started = time.perf_counter()
    try:
        built = candidate.build(context, thread_settings[0])
    except Exception as exc:
        return [result(Status.FAILED_BUILD, f"{type(exc).__name__}: {one_line(exc)}")]
    build_s = time.perf_counter() - started
    variants = [(thread_settings[0], built)]
    if built.rethread is not None:
        for threads in thread_settings[1:]:
            try:
                variants.append((threads, built.rethread(threads)))
            except Exception:  # a thread setting the runtime refuses is not a candidate
                continue
    return [_gated(candidate, threads, variant, build_s, context, inputs, reference, gate)
            for threads, variant in variants]


def _gated(candidate: Candidate, threads: Threads, built: BuiltCandidate, build_s: float,
           context: OptimizeContext, inputs: _Inputs, reference: Outputs,
           gate: Gate) -> CandidateResult:
    result = CandidateResult(candidate.name, str(candidate.precision), candidate.description,
                             Status.PASSED, threads=threads, runtime=built.runtime,
                             size_bytes=_size(built, context), build_s=build_s,
                             notes=built.notes, built=built)
    try:
        outputs = built.predictor.outputs(inputs.heldout_rows)
    except Exception as exc:
        result.status, result.reason = Status.FAILED_BUILD, \
            f"it cannot predict the held-out rows: {type(exc).__name__}: {one_line(exc)}"
        return result
    result.verdict = judge(reference, outputs, candidate.precision, context.version.task, gate,
                           inputs.y)
    if not result.verdict.passed:
        result.status, result.reason = Status.FAILED_GATE, result.verdict.summary()
    return result


def _size(built: BuiltCandidate, context: OptimizeContext) -> int | None:
    if built.artifacts:
        return sum(len(data) for data in built.artifacts.values())
    return len(context.onnx) if context.onnx is not None else None


# -- timing ------------------------------------------------------------------------------

def _time_all(results: list[CandidateResult], baseline_calls: BaselineCalls, inputs: _Inputs,
              sizes: tuple[int, ...], version: ModelVersion, thread_settings: list[Threads],
              timing: TimingSettings | None,
              progress: SearchProgress) -> dict[str, dict[int, Timing]]:
    """Every candidate and every baseline call timed together; the baselines' figures by
    name, the first being the one speed-ups are measured against."""
    timed = [r for r in results if r.built is not None and r.status != Status.FAILED_BUILD]
    labels = {name: BASELINE if i == 0 else f"{BASELINE} ({name})"
              for i, name in enumerate(baseline_calls)}
    baselines: dict[str, dict[int, Timing]] = {name: {} for name in baseline_calls}
    cores = max(t.intra_op for t in thread_settings)
    with pinned(cores):
        for size in sizes:
            row_batches = _batches(inputs.all_rows, size)
            feed_batches = [to_feeds(version.signature, rows) for rows in row_batches]
            calls: dict[str, Callable[[int], object]] = {
                labels[name]: _cycling(call, row_batches) for name, call in baseline_calls.items()}
            for entry in timed:
                assert entry.built is not None
                calls[entry.label] = _cycling(entry.built.predictor.run_feeds, feed_batches)
            figures = time_interleaved(calls, BASELINE, timing,
                                       on_slice=_announce(progress, f"timing batch {size}"))
            for name, label in labels.items():
                baselines[name][size] = figures[label]
            for entry in timed:
                entry.timings[size] = figures[entry.label]
    return baselines


def _cycling(call: Callable[[Any], object], batches: Sequence[Any]) -> Callable[[int], object]:
    """A timed call that takes the i-th prepared batch (cycling)."""
    count = len(batches)

    def timed(i: int) -> object:
        return call(batches[i % count])

    return timed


def _announce(progress: SearchProgress, description: str) -> Callable[[], None]:
    return lambda: progress.advance(description)


def _batches(rows: AnySample, size: int) -> list[AnySample]:
    """`INPUT_VARIANTS` different batches of `size` rows, wrapping around the sample."""
    count = sample_rows(rows)
    batches = []
    for variant in range(INPUT_VARIANTS):
        index = (np.arange(size) + variant * size) % count
        batches.append(_take(rows, index))
    return batches


# -- choose and register ----------------------------------------------------------------

def _fastest(results: list[CandidateResult], size: int) -> CandidateResult | None:
    """The fastest variant that passed; among those within `TIE_SHARE` of it, the simplest
    (exact before lossy, fewer threads, earlier in the candidate list), since differences
    that small are inside the timing noise."""
    passed = [r for r in results if r.status == Status.PASSED and size in r.timings]
    if not passed:
        return None
    best = min(r.timings[size].median_s for r in passed)
    close = [r for r in passed if r.timings[size].median_s <= best * (1 + TIE_SHARE)]
    return min(close, key=lambda r: (r.precision != Precision.EXACT,
                                     r.threads.intra_op if r.threads else 1,
                                     results.index(r)))


def _register(registry: Registry, parent: ModelVersion, result: OptimizeResult) -> ModelVersion:
    chosen = result.chosen
    assert chosen is not None and chosen.built is not None
    built = chosen.built
    store = registry.artifacts
    artifacts = dict(built.artifacts)
    onnx_sha = store.put(artifacts.pop("onnx")) if "onnx" in artifacts else parent.onnx_sha256
    settings = dict(built.settings)
    if artifacts:
        settings[EXTRA_ARTIFACTS] = {name: store.put(data) for name, data in artifacts.items()}
    settings = carry_steps(parent, settings)
    size = result.batch_sizes[0]
    optimization = {
        "candidate": chosen.name, "threads": chosen.threads.label if chosen.threads else "",
        "precision": chosen.precision,
        "speedup": {str(b): t.speedup for b, t in chosen.timings.items()},
        "median_s": {str(b): t.median_s for b, t in chosen.timings.items()},
        "baseline_median_s": {str(b): t.median_s for b, t in result.baseline.items()},
        "baseline": result.baseline_name,
        "other_baselines_median_s": {
            name: {str(b): t.median_s for b, t in timings.items()}
            for name, timings in result.other_baselines.items()},
        "machine": result.machine.to_dict(), "chosen_at_batch": size,
    }
    draft = VersionDraft(
        framework=parent.framework, framework_version=parent.framework_version,
        task=parent.task, runtime=built.runtime, original_sha256=parent.original_sha256,
        original_format=parent.original_format, signature=parent.signature,
        onnx_sha256=onnx_sha, sample_sha256=parent.sample_sha256,
        profile_sha256=parent.profile_sha256, runtime_settings=settings,
        description=f"{parent.description} (optimized: {chosen.label})".strip(),
        metrics=dict(parent.metrics), params=dict(parent.params),
        tags={**parent.tags, "optimized": chosen.name},
        lineage={**parent.lineage, "optimized_from": parent.uri, "optimization": optimization},
        parent_version=parent.version,
        conversion_check={"equivalence_gate": chosen.verdict.to_dict() if chosen.verdict
                          else None, "gate": result.gate.to_dict(), "against": "original"},
    )
    return registry.create_version(parent.name, draft)

