"""ONNX Runtime candidates: the graph as served, optimized offline, simplified by onnxslim,
quantized to int8 (dynamic, and static QDQ calibrated on the reference sample with uint8 or
int8 activations), fp16 (GPU only), and Apache TVM listed as an opt-in job.

All of them run on ONNX Runtime's CPU provider with the session settings they record
(`runtime_settings["onnxruntime"]`); a rewritten graph becomes the new version's ONNX artifact.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict
from pathlib import Path

import numpy as np
import onnx

from ferry.errors import UnsupportedModelError
from ferry.optimizer.candidate import (
    BuiltCandidate,
    Candidate,
    OptimizeContext,
    Precision,
    Threads,
)
from ferry.registry import Runtime
from ferry.runtime.onnx_runtime import OnnxPredictor, SessionSettings
from ferry.runtime.runtimes import ONNXRUNTIME_SETTINGS

QUANTIZABLE_OPS = frozenset({"MatMul", "Gemm", "Conv"})
CALIBRATION_BATCH = 16
INT8_DOT_FLAGS = frozenset({"avx512_vnni", "avx_vnni", "amx_int8"})
"""Processor flags of int8 dot-product instructions. Without them ONNX Runtime multiplies
uint8 by int8 with AVX2's `vpmaddubsw`, whose int16 pair sums saturate on full-range
weights; 7-bit weights (`reduce_range`) avoid it. On this repository's Zen 3 a toy layer
went from minimum cosine 0.91 to 0.999 with it."""
OFFLINE_LEVEL = "extended"
"""Saved graphs stop at ONNX Runtime's extended level: `all` adds layout changes tied to the
machine that made them."""


def session_for(threads: Threads, graph_optimization: str = "all") -> SessionSettings:
    return SessionSettings(intra_op_threads=threads.intra_op, inter_op_threads=1,
                           sequential=not threads.parallel, spinning=False,
                           graph_optimization=graph_optimization)


def built_on_ort(context: OptimizeContext, graph: bytes, threads: Threads,
                 rewritten: bool, notes: str = "") -> BuiltCandidate:
    """A candidate that runs `graph` on ONNX Runtime with `threads`; `rewritten` graphs are
    stored as the new version's ONNX artifact."""
    version = context.version
    settings = session_for(threads)
    predictor = OnnxPredictor(graph, version.signature, version.task, settings=settings,
                              model=version.name, version=version.version).load()
    return BuiltCandidate(
        predictor=predictor, runtime=Runtime.ONNX,
        settings={ONNXRUNTIME_SETTINGS: asdict(settings)},
        artifacts={"onnx": graph} if rewritten else {}, notes=notes,
        rethread=lambda other: built_on_ort(context, graph, other, rewritten, notes))


def reduce_range(cpu_flags: frozenset[str]) -> bool:
    """Whether int8 weights should use 7 bits on a processor with `cpu_flags` (see
    `INT8_DOT_FLAGS`)."""
    return not cpu_flags & INT8_DOT_FLAGS


def _no_graph(context: OptimizeContext) -> str | None:
    if context.onnx is None:
        return "the version runs natively: it has no ONNX graph"
    return None


class OnnxRuntimeAsServed(Candidate):
    name = "onnxruntime"
    precision = Precision.EXACT
    description = "the version's graph on ONNX Runtime, optimized when the session starts"

    def unavailable(self, context: OptimizeContext) -> str | None:
        return _no_graph(context)

    def build(self, context: OptimizeContext, threads: Threads) -> BuiltCandidate:
        assert context.onnx is not None
        return built_on_ort(context, context.onnx, threads, rewritten=False)


class OnnxRuntimeOffline(Candidate):
    name = "onnxruntime-offline"
    precision = Precision.EXACT
    description = "ONNX Runtime's graph optimizations applied once and the result saved"

    def unavailable(self, context: OptimizeContext) -> str | None:
        return _no_graph(context)

    def build(self, context: OptimizeContext, threads: Threads) -> BuiltCandidate:
        import onnxruntime as ort

        assert context.onnx is not None
        target = context.workdir / "ort-offline.onnx"
        options = session_for(threads, OFFLINE_LEVEL).options()
        options.optimized_model_filepath = str(target)
        ort.InferenceSession(context.onnx, sess_options=options,
                             providers=["CPUExecutionProvider"])
        graph = target.read_bytes()
        before, after = len(onnx.load_from_string(context.onnx).graph.node), \
            len(onnx.load_from_string(graph).graph.node)
        return built_on_ort(context, graph, threads, rewritten=True,
                            notes=f"{before} -> {after} nodes")


class OnnxSlim(Candidate):
    name = "onnxslim"
    precision = Precision.EXACT
    description = "graph simplified by onnxslim (constant folding, dead nodes, fusions)"

    def unavailable(self, context: OptimizeContext) -> str | None:
        try:
            import onnxslim  # noqa: F401
        except ImportError:
            return "onnxslim is not installed (pip install 'ferry-ml[optimize]')"
        return _no_graph(context)

    def build(self, context: OptimizeContext, threads: Threads) -> BuiltCandidate:
        import onnxslim

        assert context.onnx is not None
        model = onnx.load_from_string(context.onnx)
        before = len(model.graph.node)
        slimmed = onnxslim.slim(model)
        graph = slimmed.SerializeToString()
        return built_on_ort(context, graph, threads, rewritten=True,
                            notes=f"{before} -> {len(slimmed.graph.node)} nodes")


class QuantizedCandidate(Candidate):
    precision = Precision.LOSSY

    def unavailable(self, context: OptimizeContext) -> str | None:
        reason = _no_graph(context)
        if reason is not None:
            return reason
        if not context.op_types & QUANTIZABLE_OPS:
            return "no MatMul, Gemm or Conv to quantize (a tree or linear-op graph)"
        return None


class OnnxRuntimeDynamicInt8(QuantizedCandidate):
    name = "onnxruntime-int8-dynamic"
    description = "ONNX Runtime dynamic quantization: int8 weights, activations per call"

    def build(self, context: OptimizeContext, threads: Threads) -> BuiltCandidate:
        from onnxruntime.quantization import QuantType, quantize_dynamic

        source, target = quantizer_paths(context, self.name)
        with quiet_quantizer():
            quantize_dynamic(source, target, weight_type=QuantType.QInt8,
                             reduce_range=reduce_range(context.cpu_flags))
        return built_on_ort(context, target.read_bytes(), threads, rewritten=True)


class OnnxRuntimeStaticInt8(QuantizedCandidate):
    """Static QDQ quantization calibrated on the reference sample's calibration rows. uint8
    activations (U8S8) ran 3x faster than the documented int8 default on CNNs here."""

    def __init__(self, unsigned_activations: bool):
        self.unsigned_activations = unsigned_activations
        kind = "u8s8" if unsigned_activations else "s8s8"
        self.name = f"onnxruntime-int8-static-{kind}"
        self.description = (f"ONNX Runtime static QDQ int8 ({kind.upper()}, per channel),"
                            " calibrated on the reference sample")

    def build(self, context: OptimizeContext, threads: Threads) -> BuiltCandidate:
        from onnxruntime.quantization import QuantFormat, QuantType, quantize_static

        source, target = quantizer_paths(context, self.name)
        activation = QuantType.QUInt8 if self.unsigned_activations else QuantType.QInt8
        with quiet_quantizer():
            quantize_static(source, target, _CalibrationReader(context),
                            quant_format=QuantFormat.QDQ, activation_type=activation,
                            weight_type=QuantType.QInt8, per_channel=True,
                            reduce_range=reduce_range(context.cpu_flags))
        return built_on_ort(context, target.read_bytes(), threads, rewritten=True)


class _CalibrationReader:
    """The calibration rows in small batches, as ONNX Runtime's quantizer reads them."""

    def __init__(self, context: OptimizeContext):
        rows = len(next(iter(context.calibration.values())))
        self._batches: Iterator[dict[str, np.ndarray]] = iter([
            {name: values[start:start + CALIBRATION_BATCH]
             for name, values in context.calibration.items()}
            for start in range(0, rows, CALIBRATION_BATCH)])

    def get_next(self) -> dict[str, np.ndarray] | None:
        return next(self._batches, None)

    def rewind(self) -> None:
        raise UnsupportedModelError("calibration data can be read once")


@contextmanager
def quiet_quantizer() -> Iterator[None]:
    """ONNX Runtime's quantizer warns on the root logger (about its optional pre-processing
    step) on every call; the search reports what matters itself."""
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)
    try:
        yield
    finally:
        root.setLevel(level)


def quantizer_paths(context: OptimizeContext, name: str) -> tuple[Path, Path]:
    """The graph to quantize, without its recorded intermediate shapes: the quantizer infers
    them again and refuses a graph whose exporter recorded shapes it infers differently
    (the PyTorch exporter's fixed-size `value_info` against a dynamic batch). Every node is
    named, since the quantizer selects nodes by name."""
    assert context.onnx is not None
    model = onnx.load_from_string(context.onnx)
    del model.graph.value_info[:]
    name_nodes(model)
    source = context.workdir / f"{name}-in.onnx"
    source.write_bytes(model.SerializeToString())
    return source, context.workdir / f"{name}.onnx"


def name_nodes(model: onnx.ModelProto) -> None:
    """Give unnamed nodes a unique name: the quantizer selects nodes by name."""
    taken = {node.name for node in model.graph.node if node.name}
    for index, node in enumerate(model.graph.node):
        if not node.name:
            name = f"{node.op_type}_{index}"
            while name in taken:
                name += "_"
            node.name = name
            taken.add(name)


class OnnxRuntimeFp16(Candidate):
    name = "onnxruntime-fp16"
    precision = Precision.LOSSY
    description = "fp16 weights and activations, for GPU targets"

    def unavailable(self, context: OptimizeContext) -> str | None:
        if not context.gpu:
            return "fp16 is for GPU targets and this machine has no GPU (on the CPU provider" \
                   " most kernels are fp32-only and casts make it slower)"
        return "fp16 on a GPU needs onnxruntime-gpu, which ferry does not install yet"

    def build(self, context: OptimizeContext, threads: Threads) -> BuiltCandidate:
        raise UnsupportedModelError(self.unavailable(context) or "not available")


class TvmAutoTune(Candidate):
    name = "tvm-autotune"
    precision = Precision.EXACT
    description = "Apache TVM with MetaSchedule auto-tuning"

    def unavailable(self, context: OptimizeContext) -> str | None:
        return ("an opt-in long job, not in the default search: tuning takes about 50 s a"
                " trial on a 2-core machine and a useful budget is thousands of trials")

    def build(self, context: OptimizeContext, threads: Threads) -> BuiltCandidate:
        raise UnsupportedModelError(self.unavailable(context) or "not available")


CANDIDATES: list[Candidate] = [
    OnnxRuntimeAsServed(),
    OnnxRuntimeOffline(),
    OnnxSlim(),
    OnnxRuntimeDynamicInt8(),
    OnnxRuntimeStaticInt8(unsigned_activations=True),
    OnnxRuntimeStaticInt8(unsigned_activations=False),
    OnnxRuntimeFp16(),
    TvmAutoTune(),
]
