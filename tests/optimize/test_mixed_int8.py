"""The mixed int8 candidate: quantize what int8 does not hurt, keep in float32 what it does,
decided on calibration rows; the search's gate then checks the held-out rows."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper
from optimize_helpers import FAST

import ferry
from ferry.optimizer import Gate, optimize
from ferry.optimizer.candidates.mixed_int8 import (
    OnnxRuntimeMixedInt8,
    weight_groups,
    with_margin,
)
from ferry.optimizer.candidates.onnxruntime import (
    OnnxRuntimeDynamicInt8,
    name_nodes,
    reduce_range,
)
from ferry.optimizer.search import Status
from ferry.registry import Registry

OUTLIER = 2000.0


def _two_layer_graph(seed: int = 0) -> onnx.ModelProto:
    """x[N, 8] -> MatMul [8x32] -> Mul (one column scaled by OUTLIER) -> MatMul [32x16].

    The first layer quantizes well. The second's input has one huge column, so int8 with one
    scale per tensor rounds every other column to zero: quantizing it ruins the output."""
    rng = np.random.default_rng(seed)
    w1 = rng.normal(size=(8, 32)).astype(np.float32)
    scale = np.ones(32, dtype=np.float32)
    scale[0] = OUTLIER
    w2 = rng.normal(size=(32, 16)).astype(np.float32)
    w2[0] /= OUTLIER
    nodes = [helper.make_node("MatMul", ["x", "w1"], ["h"]),
             helper.make_node("Mul", ["h", "scale"], ["hs"]),
             helper.make_node("MatMul", ["hs", "w2"], ["y"])]
    graph = helper.make_graph(
        nodes, "two_layers",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 8])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 16])],
        [numpy_helper.from_array(w1, "w1"), numpy_helper.from_array(scale, "scale"),
         numpy_helper.from_array(w2, "w2")])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=9)


@pytest.fixture
def two_layers(sqlite_registry: Registry) -> str:
    rows = np.random.default_rng(1).normal(size=(400, 8)).astype(np.float32)
    return ferry.register(_two_layer_graph(), "two_layers", sample=rows,
                          registry=sqlite_registry).uri


def test_groups_nodes_by_operator_and_weight_shape() -> None:
    model = _two_layer_graph()
    name_nodes(model)
    names = [node.name for node in model.graph.node]
    assert len(set(names)) == 3 and all(names)
    groups = weight_groups(model)
    assert [(g.op_type, g.shape, len(g.nodes)) for g in groups] == [
        ("MatMul", (8, 32), 1), ("MatMul", (32, 16), 1)]
    assert groups[1].label == "1 MatMul [32x16]"


def test_margin_moves_lossy_bounds_halfway_to_exact() -> None:
    gate = with_margin(Gate(lossy_min_cosine=0.98, lossy_probability_p999=0.2))
    assert gate.lossy_min_cosine == pytest.approx(0.99)
    assert gate.lossy_probability_p999 == pytest.approx(0.1)
    assert gate.min_cosine == Gate().min_cosine


def test_keeps_the_damaging_layer_in_float32_where_plain_int8_fails(
        two_layers: str, sqlite_registry: Registry) -> None:
    result = optimize(two_layers, batch_sizes=(1,), threads=1, registry=sqlite_registry,
                      timing=FAST,
                      candidates=[OnnxRuntimeDynamicInt8(), OnnxRuntimeMixedInt8()])
    by_name = {c.name: c for c in result.candidates}
    plain, mixed = by_name["onnxruntime-int8-dynamic"], by_name["onnxruntime-int8-mixed"]
    assert plain.status == Status.FAILED_GATE
    assert mixed.status == Status.PASSED, mixed.reason
    assert mixed.notes == "int8: 1 MatMul [8x32]; float32: 1 MatMul [32x16]"
    assert result.version is not None
    stored = onnx.load_from_string(sqlite_registry.read_artifact(result.version, "onnx"))
    ops = [node.op_type for node in stored.graph.node]
    assert "MatMulInteger" in ops and "MatMul" in ops
    rows = np.random.default_rng(2).normal(size=(50, 8)).astype(np.float32)
    original = ferry.load(two_layers, registry=sqlite_registry).run(rows)["y"]
    optimized = ferry.load(result.version.uri, registry=sqlite_registry).run(rows)["y"]
    cosine = np.sum(original * optimized, axis=1) / (
        np.linalg.norm(original, axis=1) * np.linalg.norm(optimized, axis=1))
    assert cosine.min() >= Gate().lossy_min_cosine


def test_gives_up_when_only_float32_passes(two_layers: str,
                                           sqlite_registry: Registry) -> None:
    strict = Gate(lossy_min_cosine=1.0)
    result = optimize(two_layers, batch_sizes=(1,), threads=1, registry=sqlite_registry,
                      timing=FAST, gate=strict, register=False,
                      candidates=[OnnxRuntimeMixedInt8()])
    (mixed,) = result.candidates
    assert mixed.status == Status.FAILED_BUILD
    assert "no mix with an int8 weight group passes" in mixed.reason


def test_seven_bit_weights_only_without_int8_dot_instructions() -> None:
    assert reduce_range(frozenset({"avx2", "fma"}))
    assert reduce_range(frozenset())
    assert not reduce_range(frozenset({"avx2", "avx512_vnni"}))
    assert not reduce_range(frozenset({"avx2", "avx_vnni"}))
