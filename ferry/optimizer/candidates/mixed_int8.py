"""Mixed int8: ONNX Runtime dynamic quantization that leaves in float32 the weight groups
that move the outputs most.

Plain int8 fails the gate on models with a few sensitive layers (all-MiniLM-L6-v2: minimum
cosine 0.94 with every MatMul in int8; 0.992 with the six feed-forward output MatMuls, whose
inputs come out of GELU with outliers, kept in float32). This candidate finds such a mix on
its own, on the calibration rows (never the gate's held-out rows):

1. The graph's quantizable nodes (MatMul with a constant weight) are grouped by
   operator and weight shape; in a transformer that is one group per kind of projection.
2. Every group in int8, weights per channel. If that passes the search's lossy gate against
   the float32 graph on the calibration rows, it is the candidate.
3. Otherwise each group is quantized alone to measure how far it moves the outputs, and the
   groups are put back to float32 in order of that damage until the mix passes.
4. The nodes of the groups kept in float32 are then tried back in int8 one at a time, in
   graph order; each stays int8 if the mix still passes with half the gate's slack (a margin
   against fitting the calibration rows).

It gives up (a build failure with the reason) when the groups are too many to search in a
reasonable time, or when only an all-float32 graph passes. The search then judges the result
on the held-out rows like any other lossy candidate.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import onnx

from ferry.errors import UnsupportedModelError
from ferry.optimizer.candidate import BuiltCandidate, OptimizeContext, Precision, Threads
from ferry.optimizer.candidates.onnxruntime import (
    QuantizedCandidate,
    built_on_ort,
    quantizer_paths,
    quiet_quantizer,
    reduce_range,
    session_for,
)
from ferry.optimizer.equivalence import Gate, judge
from ferry.runtime.onnx_runtime import OnnxPredictor
from ferry.runtime.predictor import Outputs

MIXED_OPS = ("MatMul",)
"""Operators whose dynamic int8 form saves time. Not `Conv`: its dynamic form (ConvInteger)
ran 5.8x slower than float32 on the digits CNN, where static QDQ is the int8 route; not
`Gather` (embedding tables), which only saves size."""
MAX_GROUPS = 12
"""More weight groups than this and the search (up to twice as many quantizations) takes
too long; the plain int8 candidates still run."""
MAX_CHECK_ROWS = 128
"""Calibration rows each mix is checked on."""
MARGIN = 0.5
"""Share of the gate's lossy slack the node-by-node step may use."""


@dataclass(frozen=True)
class WeightGroup:
    """Quantizable nodes sharing an operator and a weight shape."""

    op_type: str
    shape: tuple[int, ...]
    nodes: tuple[str, ...]

    @property
    def label(self) -> str:
        return f"{len(self.nodes)} {self.op_type} [{'x'.join(map(str, self.shape))}]"


def weight_groups(model: onnx.ModelProto) -> list[WeightGroup]:
    """The nodes dynamic quantization would change, grouped; every node must be named."""
    weights = {init.name: tuple(init.dims) for init in model.graph.initializer}
    grouped: dict[tuple[str, tuple[int, ...]], list[str]] = {}
    for node in model.graph.node:
        if node.op_type in MIXED_OPS and len(node.input) > 1 and node.input[1] in weights:
            grouped.setdefault((node.op_type, weights[node.input[1]]), []).append(node.name)
    return [WeightGroup(op, shape, tuple(nodes)) for (op, shape), nodes in grouped.items()]


class OnnxRuntimeMixedInt8(QuantizedCandidate):
    name = "onnxruntime-int8-mixed"
    description = ("ONNX Runtime dynamic int8 (weights per channel) with the weight groups"
                   " that move the outputs most kept in float32, chosen on calibration rows")

    def unavailable(self, context: OptimizeContext) -> str | None:
        reason = super().unavailable(context)
        if reason is not None:
            return reason
        if not context.op_types & set(MIXED_OPS):
            return "no MatMul to quantize (dynamic int8 convolutions run slower than float32)"
        return None

    def build(self, context: OptimizeContext, threads: Threads) -> BuiltCandidate:
        source, _ = quantizer_paths(context, self.name)
        groups = weight_groups(onnx.load(str(source)))
        if not groups:
            raise UnsupportedModelError("no MatMul with a constant weight to quantize")
        if len(groups) > MAX_GROUPS:
            raise UnsupportedModelError(
                f"{len(groups)} weight groups, over the {MAX_GROUPS} this search tries")
        search = _MixSearch(context, source, threads)
        kept = search.smallest_passing_mix(groups)
        kept_nodes = {node for group in kept for node in group.nodes}
        quantized = [WeightGroup(g.op_type, g.shape,
                                 tuple(n for n in g.nodes if n not in kept_nodes))
                     for g in groups]
        quantized = [g for g in quantized if g.nodes]
        notes = (f"int8: {', '.join(g.label for g in quantized)}"
                 + (f"; float32: {', '.join(g.label for g in kept)}" if kept else ""))
        return built_on_ort(context, search.graph(kept), threads, rewritten=True, notes=notes)


class _MixSearch:
    """Quantizes the graph with some groups kept in float32 and judges the result against the
    float32 graph on calibration rows."""

    def __init__(self, context: OptimizeContext, source: Path, threads: Threads):
        self.context = context
        self.source = source
        self.threads = threads
        self.rows = {name: values[:MAX_CHECK_ROWS]
                     for name, values in context.calibration.items()}
        self.gate = context.gate or Gate()
        self.margined_gate = with_margin(self.gate)
        self._graphs: dict[frozenset[str], bytes] = {}
        assert context.onnx is not None
        self.reference = self._outputs(context.onnx)

    def smallest_passing_mix(self, groups: list[WeightGroup]) -> list[WeightGroup]:
        """The groups to keep in float32: none if all-int8 passes, else the most damaging
        ones, added one at a time until the mix passes."""
        if self._passes([]):
            return []
        damage = {group: self._damage(group) for group in groups}
        ranked = sorted(groups, key=lambda g: damage[g], reverse=True)
        for count in range(1, len(ranked)):
            if self._passes(ranked[:count]):
                return self._fewest_nodes(ranked[:count])
        raise UnsupportedModelError(
            "no mix with an int8 weight group passes the lossy gate on the calibration rows")

    def _fewest_nodes(self, kept: list[WeightGroup]) -> list[WeightGroup]:
        """Try the kept groups' nodes back in int8 one at a time (graph order), keeping
        each in int8 while the mix still passes with half the gate's slack: tuned node by
        node to the edge of the gate on calibration rows, a mix failed on held-out rows
        (MiniLM: 0.9901 on calibration, 0.9898 held out)."""
        float_nodes = [(group, node) for group in kept for node in group.nodes]
        for group, node in list(float_nodes):
            trial = [pair for pair in float_nodes if pair != (group, node)]
            if trial and self._passes(_regroup(trial), self.margined_gate):
                float_nodes = trial
        return _regroup(float_nodes)

    def graph(self, kept: Sequence[WeightGroup]) -> bytes:
        excluded = frozenset(name for group in kept for name in group.nodes)
        if excluded not in self._graphs:
            self._graphs[excluded] = self._quantize(exclude=sorted(excluded))
        return self._graphs[excluded]

    def _passes(self, kept: Sequence[WeightGroup], gate: Gate | None = None) -> bool:
        version = self.context.version
        verdict = judge(self.reference, self._outputs(self.graph(kept)), Precision.LOSSY,
                        version.task, gate or self.gate)
        return verdict.passed

    def _damage(self, group: WeightGroup) -> float:
        """How far quantizing `group` alone moves the float outputs (mean squared error)."""
        only = self._quantize(include=list(group.nodes))
        outputs = self._outputs(only)
        errors = [float(np.mean((np.asarray(outputs[role], dtype=np.float64)
                                 - np.asarray(want, dtype=np.float64)) ** 2))
                  for role, want in self.reference.items()
                  if role in outputs and np.issubdtype(np.asarray(want).dtype, np.floating)]
        return sum(errors)

    def _quantize(self, *, exclude: Sequence[str] = (),
                  include: Sequence[str] = ()) -> bytes:
        from onnxruntime.quantization import QuantType, quantize_dynamic

        target = self.source.with_name(f"{self.source.stem}-{len(self._graphs)}-"
                                       f"{len(include)}.onnx")
        with quiet_quantizer():
            quantize_dynamic(self.source, target, weight_type=QuantType.QInt8,
                             per_channel=True, reduce_range=reduce_range(self.context.cpu_flags),
                             op_types_to_quantize=list(MIXED_OPS),
                             nodes_to_exclude=list(exclude),
                             nodes_to_quantize=list(include) or None)
        graph = target.read_bytes()
        target.unlink()
        return graph

    def _outputs(self, graph: bytes) -> Outputs:
        version = self.context.version
        predictor = OnnxPredictor(graph, version.signature, version.task,
                                  settings=session_for(self.threads)).load()
        return predictor.outputs_by_role(predictor.run_feeds(self.rows))


def with_margin(gate: Gate) -> Gate:
    """`gate` with its lossy bounds moved halfway towards exact."""
    return replace(
        gate,
        lossy_min_label_agreement=1 - (1 - gate.lossy_min_label_agreement) * MARGIN,
        lossy_max_accuracy_drop=gate.lossy_max_accuracy_drop * MARGIN,
        lossy_probability_p999=gate.lossy_probability_p999 * MARGIN,
        lossy_value_range_share=gate.lossy_value_range_share * MARGIN,
        lossy_min_cosine=1 - (1 - gate.lossy_min_cosine) * MARGIN)


def _regroup(pairs: list[tuple[WeightGroup, str]]) -> list[WeightGroup]:
    """(group, node) pairs back into groups holding only those nodes."""
    nodes: dict[WeightGroup, list[str]] = {}
    for group, node in pairs:
        nodes.setdefault(group, []).append(node)
    return [WeightGroup(g.op_type, g.shape, tuple(names)) for g, names in nodes.items()]


CANDIDATES = [OnnxRuntimeMixedInt8()]
