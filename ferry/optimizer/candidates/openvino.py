"""OpenVINO candidates: the version's graph compiled in f32 (exact), in bf16 (lossy; only on
CPUs that compute bf16 natively), and quantized to int8 by NNCF post-training quantization
calibrated on the reference sample (lossy; the IR is stored).

All of them run on OpenVINO's CPU plugin with the settings they record
(`runtime_settings["openvino"]`, see `ferry.runtime.openvino`). f32 and bf16 store nothing:
the loader compiles the version's own ONNX graph, exactly as `build` does. int8 stores the
quantized IR as the artifacts `model.xml` and `model.bin`, and `build` loads it back from
those bytes, so that what is checked and timed is what the version will load.
"""

from __future__ import annotations

import importlib
import io
import logging
from collections.abc import Iterator
from contextlib import contextmanager, redirect_stdout
from dataclasses import replace
from functools import cache
from typing import TYPE_CHECKING, Any

from ferry.errors import UnsupportedModelError, one_line
from ferry.optimizer.candidate import (
    BuiltCandidate,
    Candidate,
    OptimizeContext,
    Precision,
    Threads,
)
from ferry.registry import Runtime
from ferry.runtime.feeds import Feeds

if TYPE_CHECKING:
    import openvino as ov

    from ferry.runtime.openvino import OpenVinoSettings

BF16_FLAGS = frozenset({"avx512_bf16", "amx_bf16"})
"""CPU flags of native bf16 arithmetic; without them OpenVINO would emulate bf16 slowly."""
CALIBRATION_SUBSET = 300
"""NNCF's default number of calibration samples; fewer rows are all used."""
TRANSFORMER_OPS = frozenset({"Softmax", "MatMul", "LayerNormalization"})
"""Operators whose presence marks a transformer graph (see `is_transformer`)."""
TABULAR_RANK = 2
"""Inputs of at most this rank are tables: their activation ranges are calibrated as the
global min/max. NNCF's default (the mean of per-sample min/max) suits images but clips
tables, whose rows differ widely: it flipped 19 % of labels on a logistic regression."""
INSTALL_HINT = "pip install 'ferry-ml[optimize]'"


@cache
def _missing(module: str) -> str | None:
    """Why `module` cannot be imported, or None when it can (imported once per process)."""
    try:
        importlib.import_module(module)
    except ImportError as exc:
        return f"{module} is not importable ({one_line(exc)}): {INSTALL_HINT}"
    return None


def _common_reason(context: OptimizeContext) -> str | None:
    """Why no OpenVINO candidate applies to this version."""
    reason = _missing("openvino")
    if reason is not None:
        return reason
    if context.onnx is None:
        return "the version runs natively: it has no ONNX graph for OpenVINO"
    strings = [s.name for s in context.version.signature.inputs if s.dtype == "string"]
    if strings:
        return f"OpenVINO takes numeric inputs only; {', '.join(strings)} hold strings"
    from ferry.runtime.openvino import openvino_graph, unconvertible_ops

    missing = unconvertible_ops(openvino_graph(context.onnx, context.version.signature))
    if missing:
        return f"OpenVINO cannot convert {', '.join(missing)}"
    return None


def built_on_openvino(context: OptimizeContext, ov_model: ov.Model, settings: OpenVinoSettings,
                      threads: Threads, artifacts: dict[str, bytes],
                      notes: str = "") -> BuiltCandidate:
    """A candidate that runs `ov_model` with `settings` and `threads`; `rethread` compiles
    the same model again with other threads."""
    from ferry.runtime.openvino import OPENVINO_SETTINGS, OpenVinoPredictor

    version = context.version
    settings = replace(settings, threads=threads.intra_op)
    predictor = OpenVinoPredictor(ov_model, version.signature, version.task, settings=settings,
                                  model=version.name, version=version.version).load()
    return BuiltCandidate(
        predictor=predictor, runtime=Runtime.OPENVINO,
        settings={OPENVINO_SETTINGS: settings.to_dict()}, artifacts=artifacts, notes=notes,
        rethread=lambda other: built_on_openvino(context, ov_model, settings, other,
                                                 artifacts, notes))


class OpenVinoCompiled(Candidate):
    """The version's ONNX graph compiled by OpenVINO with one precision hint."""

    def __init__(self, name: str, precision: Precision, hint: str, description: str):
        self.name = name
        self.precision = precision
        self.hint = hint
        self.description = description

    def unavailable(self, context: OptimizeContext) -> str | None:
        return _common_reason(context)

    def build(self, context: OptimizeContext, threads: Threads) -> BuiltCandidate:
        from ferry.runtime.openvino import OpenVinoSettings, read_onnx

        assert context.onnx is not None
        ov_model = read_onnx(context.onnx, context.version.signature)
        return built_on_openvino(context, ov_model, OpenVinoSettings(precision=self.hint),
                                 threads, artifacts={})


class OpenVinoBf16(OpenVinoCompiled):
    def unavailable(self, context: OptimizeContext) -> str | None:
        if not context.cpu_flags & BF16_FLAGS:
            return ("this CPU has no native bf16 (avx512_bf16 or amx_bf16):"
                    " OpenVINO would only emulate it")
        return super().unavailable(context)


class OpenVinoInt8(Candidate):
    """NNCF post-training quantization of the OpenVINO model, stored as IR."""

    name = "openvino-int8"
    precision = Precision.LOSSY
    description = "OpenVINO int8: NNCF post-training quantization calibrated on the sample"

    def unavailable(self, context: OptimizeContext) -> str | None:
        reason = _missing("nncf") or _common_reason(context)
        if reason is None and not _rows(context.calibration):
            reason = "the reference sample left no calibration rows"
        return reason

    def build(self, context: OptimizeContext, threads: Threads) -> BuiltCandidate:
        from ferry.runtime.openvino import (
            IR_BIN,
            IR_XML,
            OpenVinoSettings,
            read_ir,
            read_onnx,
            save_ir,
        )

        assert context.onnx is not None
        signature = context.version.signature
        quantized = _quantize(read_onnx(context.onnx, signature), context.calibration,
                              transformer=is_transformer(context.op_types))
        artifacts = save_ir(quantized, context.workdir / self.name)
        ov_model = read_ir(artifacts[IR_XML], artifacts[IR_BIN])
        settings = OpenVinoSettings(precision="int8", ir=True)
        rows = min(_rows(context.calibration), CALIBRATION_SUBSET)
        kind = " (transformer scheme)" if is_transformer(context.op_types) else ""
        return built_on_openvino(context, ov_model, settings, threads, artifacts,
                                 notes=f"NNCF int8{kind} calibrated on {rows} rows")


def is_transformer(op_types: frozenset[str]) -> bool:
    """Attention (Softmax over MatMul scores) with layer norms: NNCF's transformer scheme
    applies. Without it NNCF failed on all-MiniLM-L6-v2's graph ('node_embedding');
    with it the graph quantized at minimum cosine 0.993."""
    return op_types >= TRANSFORMER_OPS


def _rows(feeds: Feeds) -> int:
    return min((len(values) for values in feeds.values()), default=0)


def _quantize(ov_model: ov.Model, calibration: Feeds, *, transformer: bool) -> ov.Model:
    """NNCF post-training quantization, one calibration row per sample; `transformer` picks
    NNCF's scheme for transformers (which leaves some attention ops in float)."""
    import nncf

    rows = min(_rows(calibration), CALIBRATION_SUBSET)
    samples = [{name: values[i:i + 1] for name, values in calibration.items()}
               for i in range(rows)]
    try:
        with _quiet_nncf():
            quantized: ov.Model = nncf.quantize(
                ov_model, nncf.Dataset(samples), subset_size=rows,
                preset=nncf.QuantizationPreset.MIXED,
                model_type=nncf.ModelType.TRANSFORMER if transformer else None,
                advanced_parameters=_advanced_parameters(calibration))
    except Exception as exc:  # NNCF raises many kinds; the search records one line
        raise UnsupportedModelError(
            f"NNCF could not quantize this graph ({one_line(exc)}): keep it in f32") from exc
    return quantized


def _advanced_parameters(calibration: Feeds) -> Any:
    """Global min/max activation ranges for tables (see `TABULAR_RANK`), NNCF's defaults
    otherwise."""
    import nncf
    from nncf.quantization.range_estimator import RangeEstimatorParametersSet

    if all(values.ndim <= TABULAR_RANK for values in calibration.values()):
        return nncf.AdvancedQuantizationParameters(
            activations_range_estimator_params=RangeEstimatorParametersSet.MINMAX)
    return nncf.AdvancedQuantizationParameters()


@contextmanager
def _quiet_nncf() -> Iterator[None]:
    """NNCF logs at INFO and draws progress bars on stdout while it calibrates; the search
    reports what matters itself."""
    logger = logging.getLogger("nncf")
    level = logger.level
    logger.setLevel(logging.WARNING)
    try:
        with redirect_stdout(io.StringIO()):
            yield
    finally:
        logger.setLevel(level)


CANDIDATES: list[Candidate] = [
    OpenVinoCompiled("openvino-fp32", Precision.EXACT, "f32",
                     "the graph compiled by OpenVINO, computing in f32"),
    OpenVinoBf16("openvino-bf16", Precision.LOSSY, "bf16",
                 "the graph compiled by OpenVINO, computing in bf16 (AVX512_BF16/AMX CPUs)"),
    OpenVinoInt8(),
]
