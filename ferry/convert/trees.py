"""Tree ensembles in ONNX: split thresholds that keep every float32 input on its branch.

ferry's graphs take float32 `X`, and ONNX Runtime's `TreeEnsembleRegressor` /
`TreeEnsembleClassifier` compare that float32 with float32 thresholds (its double-threshold
form, `nodes_values_as_tensor`, runs only on double inputs). The frameworks compare in double:
scikit-learn trees compare `float32(x)` with a double threshold, HistGradientBoosting and
LightGBM compare the double of `x`. A converter that rounds a double threshold `t` to the
nearest float32 can land above `t`, and the float32 input equal to that rounding then takes
the other branch. For every float32 `x`, one float32 gives exactly the original decision:

- `x <= t` and `x > t`: the largest float32 not above `t`;
- `x < t` and `x >= t`: the smallest float32 not below `t`.

`exact_thresholds` rewrites each comparison node's `nodes_values` to that float32. It finds
the node's original `t` at the same tree and node id where the converter keeps the framework's
numbering (skl2onnx does; ferry replays onnxmltools' numbering of LightGBM trees) and the
feature and stored value agree, else among the same tree's thresholds on the same feature
within one float32 step of the stored value (XGBoost's, whose nodes onnxmltools renumbers).
XGBoost keeps float32 thresholds and compares `x < t` in float32, so its nodes come out
unchanged, as do scikit-learn forests' (skl2onnx already rounds them this way); the
HistGradientBoosting and LightGBM ones change. None of ferry's converters emits the opset-5
`TreeEnsemble` (`nodes_splits`); such nodes, and double-threshold ones, are left as they are.

An input that arrives as float64 is cast to float32 at the edge (`ferry.runtime.feeds`): the
graph decides on that float32, exactly as the framework decides on it, and the conversion
check runs on float32-cast rows, what is actually served. The framework given the double
itself may decide otherwise for a value within half a float32 step of a threshold: LightGBM
trained on float64 iris splits at 5.900000000000001, between 5.8 and 6.0, and sends 5.9 left
but float32(5.9) = 5.9000001 right. Only a graph taking float64 with double thresholds
(ONNX Runtime runs those for float64 inputs only) would agree on both.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from enum import StrEnum

import numpy as np
import onnx
import pandas as pd
from numpy.typing import ArrayLike

TREE_OPS = ("TreeEnsembleRegressor", "TreeEnsembleClassifier")
"""The ai.onnx.ml operators whose float thresholds are rewritten and probed."""


class Mode(StrEnum):
    """A node's comparison (`nodes_modes`); the ones not listed are left as they are."""

    LEQ = "BRANCH_LEQ"
    LT = "BRANCH_LT"
    GT = "BRANCH_GT"
    GTE = "BRANCH_GTE"


PASS_THROUGH = ("Cast", "Identity")
"""Operators between the graph's input and a tree ensemble that keep its columns."""
ROUND_DOWN = (Mode.LEQ, Mode.GT)
"""Modes whose exact float32 is the largest float32 not above the threshold (the others,
`BRANCH_LT` and `BRANCH_GTE`, take the smallest float32 not below it)."""


@dataclass(frozen=True)
class Splits:
    """The original model's thresholds, one row per split node: `tree` as the ONNX converter
    numbers it (`nodes_treeids`), `node` where the converter keeps the framework's node
    numbering (`nodes_nodeids`; -1 where it does not), the input `feature`, and the double
    `threshold` the framework compares with."""

    table: pd.DataFrame

    @classmethod
    def from_trees(cls, trees: Iterable[tuple[int, ArrayLike, ArrayLike, ArrayLike]]) -> Splits:
        """From each tree's number, and its split nodes' ids, features and thresholds."""
        frames = [_splits_frame(*tree) for tree in trees] or [_splits_frame(0, [], [], [])]
        return cls(pd.concat(frames, ignore_index=True))


def _splits_frame(tree: int, nodes: ArrayLike, features: ArrayLike,
                  thresholds: ArrayLike) -> pd.DataFrame:
    node_ids = np.asarray(nodes, dtype=np.int64)
    return pd.DataFrame({"tree": np.full(len(node_ids), tree, dtype=np.int64), "node": node_ids,
                         "feature": np.asarray(features, dtype=np.int64),
                         "threshold": np.asarray(thresholds, dtype=np.float64)})


@dataclass(frozen=True)
class ThresholdFix:
    """What `exact_thresholds` did to the comparison nodes."""

    rewritten: int
    exact: int
    """Already the exact float32 (XGBoost's, scikit-learn forests' as skl2onnx writes them)."""
    unmatched: int
    """No original threshold within one float32 step: left as they are."""
    ambiguous: int
    """Several original thresholds within one step whose exact float32s differ: left as
    they are (the conversion check's threshold probes show whether that matters)."""


def exact_float32(thresholds: ArrayLike, mode: Mode) -> np.ndarray:
    """The float32 threshold under which every float32 input takes its original branch."""
    values = np.asarray(thresholds, dtype=np.float64)
    with np.errstate(over="ignore", invalid="ignore"):
        nearest = values.astype(np.float32)
        if mode in ROUND_DOWN:
            return np.where(nearest > values, np.nextafter(nearest, np.float32(-np.inf)),
                            nearest)
        return np.where(nearest < values, np.nextafter(nearest, np.float32(np.inf)), nearest)


def exact_thresholds(onnx_model: onnx.ModelProto, splits: Splits) -> ThresholdFix:
    """Rewrite every tree ensemble's float thresholds in place (see the module docstring)."""
    fixes = [_fix_node(node, splits) for node in tree_nodes(onnx_model)]
    return ThresholdFix(*(sum(getattr(f, field) for f in fixes)
                          for field in ("rewritten", "exact", "unmatched", "ambiguous")))


def tree_nodes(onnx_model: onnx.ModelProto) -> Iterator[onnx.NodeProto]:
    """The graph's tree ensemble nodes with float thresholds."""
    for node in onnx_model.graph.node:
        if node.op_type in TREE_OPS and _attribute(node, "nodes_values") is not None:
            yield node


def input_thresholds(onnx_model: onnx.ModelProto) -> pd.DataFrame | None:
    """The distinct (feature, float32 threshold) pairs of the comparison nodes, as columns
    `feature` and `threshold`, when the trees read the graph's one input directly (or
    through a Cast); None when the graph has no trees or they read computed features."""
    graph = onnx_model.graph
    nodes = list(tree_nodes(onnx_model))
    if len(graph.input) != 1 or not nodes:
        return None
    sources = {n.output[0]: n.input[0] for n in graph.node if n.op_type in PASS_THROUGH}
    if any(_source(n.input[0], sources) != graph.input[0].name for n in nodes):
        return None
    tables = [_node_table(n) for n in nodes]
    table = pd.concat([t[t["mode"].isin(list(Mode))] for t in tables])
    pairs = table.rename(columns={"stored": "threshold"})[["feature", "threshold"]]
    return pairs.drop_duplicates().sort_values(["feature", "threshold"], ignore_index=True)


def _source(name: str, sources: dict[str, str]) -> str:
    seen = set()
    while name in sources and name not in seen:
        seen.add(name)
        name = sources[name]
    return name


def _node_table(node: onnx.NodeProto) -> pd.DataFrame:
    return pd.DataFrame({
        "tree": _ints(node, "nodes_treeids"), "node": _ints(node, "nodes_nodeids"),
        "feature": _ints(node, "nodes_featureids"), "mode": _strings(node, "nodes_modes"),
        "stored": np.asarray(_floats(node, "nodes_values"), dtype=np.float32).astype(float)})


def _fix_node(node: onnx.NodeProto, splits: Splits) -> ThresholdFix:
    table = _node_table(node)
    low, high = _candidates(table, splits)
    exact = _exact_by_mode(low, table["mode"])
    branch = table["mode"].isin(list(Mode)).to_numpy()
    found = branch & ~np.isnan(low)
    matched = found & (exact == _exact_by_mode(high, table["mode"]))
    stored = table["stored"].to_numpy()
    _set_floats(node, "nodes_values", np.where(matched, exact, stored))
    changed = int(np.sum(matched & (exact != stored)))
    return ThresholdFix(changed, int(matched.sum()) - changed, int(np.sum(branch & ~found)),
                        int(np.sum(found & ~matched)))


def _exact_by_mode(thresholds: np.ndarray, modes: pd.Series) -> np.ndarray:
    down = modes.isin(ROUND_DOWN).to_numpy()
    return np.where(down, exact_float32(thresholds, Mode.LEQ),
                    exact_float32(thresholds, Mode.LT))


def _candidates(table: pd.DataFrame, splits: Splits) -> tuple[np.ndarray, np.ndarray]:
    """Per ONNX node, the lowest and highest original threshold it may stand for: the one
    at the same node id when the feature agrees and the stored value is within one float32
    step, else those of the same tree and feature within one step (NaN: none)."""
    originals = splits.table
    numbered = originals[originals["node"] >= 0].drop_duplicates(["tree", "node"])
    by_node = table.merge(numbered, on=["tree", "node", "feature"], how="left")
    near = _neighbours(originals).groupby(["tree", "feature", "stored"])["threshold"]
    ranges = near.agg(["min", "max"]).reset_index()
    by_value = table.merge(ranges, on=["tree", "feature", "stored"], how="left")
    exact = (by_node["threshold"].notna()
             & _within_one_step(by_node["stored"], by_node["threshold"])).to_numpy()
    low = np.where(exact, by_node["threshold"], by_value["min"])
    return low, np.where(exact, by_node["threshold"], by_value["max"])


def _neighbours(originals: pd.DataFrame) -> pd.DataFrame:
    """Each original threshold under every float32 a converter may have stored for it: the
    nearest, and the float32 on either side of that."""
    with np.errstate(over="ignore"):
        nearest = originals["threshold"].to_numpy().astype(np.float32)
        stored = [nearest, np.nextafter(nearest, np.float32(-np.inf)),
                  np.nextafter(nearest, np.float32(np.inf))]
    return pd.concat([originals.assign(stored=values.astype(float)) for values in stored])


def _within_one_step(stored: pd.Series, thresholds: pd.Series) -> pd.Series:
    with np.errstate(over="ignore", invalid="ignore"):
        nearest = thresholds.to_numpy().astype(np.float32)
        below = np.nextafter(nearest, np.float32(-np.inf)).astype(float)
        above = np.nextafter(nearest, np.float32(np.inf)).astype(float)
    return (stored >= below) & (stored <= above)


def _attribute(node: onnx.NodeProto, name: str) -> onnx.AttributeProto | None:
    return next((a for a in node.attribute if a.name == name), None)


def _ints(node: onnx.NodeProto, name: str) -> list[int]:
    found = _attribute(node, name)
    return [] if found is None else list(found.ints)


def _floats(node: onnx.NodeProto, name: str) -> list[float]:
    found = _attribute(node, name)
    return [] if found is None else list(found.floats)


def _set_floats(node: onnx.NodeProto, name: str, values: np.ndarray) -> None:
    found = _attribute(node, name)
    assert found is not None
    del found.floats[:]
    found.floats.extend(values.tolist())


def _strings(node: onnx.NodeProto, name: str) -> list[str]:
    found = _attribute(node, name)
    return [] if found is None else [s.decode() for s in found.strings]
