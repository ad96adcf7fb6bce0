"""Repairs to the graphs onnxmltools 1.16 writes for Spark ML pipelines, each found by
running them against Spark's own `transform`:

- `NaiveBayesModel` writes its `MatMul`, `Add` and the like in the domain `ai.onnx`, which
  ONNX Runtime and the checker do not know as the default domain `""`: they are moved there.
- `VectorAssembler` becomes one `Concat` of its inputs, whatever their types: a
  `StringIndexer`'s int64 index next to float32 columns makes a graph ONNX Runtime refuses
  ("Type parameter (T) of Optype (Concat) bound to different types"). Spark's vectors hold
  doubles: every input that is not float32 is cast to it.
- `GBTRegressionModel` goes through the classifier's code, which ends in an `ArgMax` over
  `[-margin, margin]`: the graph predicts 0 or 1. The prediction is the margin itself.
- A multinomial `LogisticRegressionModel` gets a logistic post-transform and an L1
  normaliser, where Spark applies softmax to the margins: the linear classifier is set to
  softmax (binary models, whose logistic form is Spark's, are left as they are).
- A `StringIndexer` with `handleInvalid="keep"` gives a category it has not seen the index
  after the known ones; onnxmltools' `LabelEncoder` gives -1: its default becomes that index.
  (With "error", Spark fails on such a row where the graph gives -1; "skip" drops the row.)
- The predicted class is an int64 index (Spark's `prediction`, a double). When the label
  indexer's labels name every class, a `LabelEncoder` maps the index to them, so that the
  graph predicts the labels trained on, as an `IndexToString` stage would.
- Split thresholds are stored as the nearest float32; Spark compares the double of a
  float32 input with its double threshold (`x <= t`), so each becomes the largest float32
  not above `t` (`ferry.convert.trees`), with Spark's thresholds read from `toDebugString`.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

import onnx
from onnx import TensorProto, helper

from ferry.convert.trees import Splits, exact_thresholds

if TYPE_CHECKING:
    from pyspark.ml import Transformer

ML_DOMAIN = "ai.onnx.ml"
LABEL_ENCODER_OPSET = 2
"""The ai.onnx.ml version whose LabelEncoder maps int64 keys to strings."""
_SPLIT = re.compile(r"If \(feature (\d+) <= ([^)\s]+)\)")
_TREE = re.compile(r"^\s*Tree \d+", re.MULTILINE)


def default_domain(onnx_model: onnx.ModelProto) -> None:
    """Nodes in the domain `ai.onnx` moved to the default domain, whose opset they need."""
    for node in onnx_model.graph.node:
        if node.domain == "ai.onnx":
            node.domain = ""
    versions = {o.domain: o.version for o in onnx_model.opset_import}
    if "ai.onnx" not in versions:
        return
    versions[""] = max(versions.pop("ai.onnx"), versions.get("", 1))
    del onnx_model.opset_import[:]
    onnx_model.opset_import.extend(helper.make_opsetid(d, v) for d, v in versions.items())


def cast_concat_inputs(onnx_model: onnx.ModelProto) -> None:
    """Cast to float32 every non-float32 input of a `Concat` that has a float32 one."""
    types = _elem_types(onnx_model)
    nodes: list[onnx.NodeProto] = []
    for node in onnx_model.graph.node:
        if node.op_type == "Concat" and TensorProto.FLOAT in {types.get(i) for i in node.input}:
            nodes += _casts(node, types)
        nodes.append(node)
    _replace_nodes(onnx_model, nodes)


def _casts(node: onnx.NodeProto, types: dict[str, int]) -> list[onnx.NodeProto]:
    casts = []
    for position, name in enumerate(node.input):
        if types.get(name, TensorProto.FLOAT) != TensorProto.FLOAT:
            cast = f"{name}_as_float"
            casts.append(helper.make_node("Cast", [name], [cast], to=TensorProto.FLOAT,
                                          name=f"{node.name}_cast{position}"))
            node.input[position] = cast
    return casts


def _elem_types(onnx_model: onnx.ModelProto) -> dict[str, int]:
    inferred = onnx.shape_inference.infer_shapes(onnx_model)
    graph = inferred.graph
    values = [*graph.input, *graph.value_info, *graph.output]
    return {v.name: v.type.tensor_type.elem_type for v in values if v.type.tensor_type.elem_type}


def _replace_nodes(onnx_model: onnx.ModelProto, nodes: Sequence[onnx.NodeProto]) -> None:
    del onnx_model.graph.node[:]
    onnx_model.graph.node.extend(nodes)


def unseen_after_known(onnx_model: onnx.ModelProto, labels: Sequence[str]) -> None:
    """The `LabelEncoder` whose keys are `labels` maps any other string to `len(labels)`."""
    for node in onnx_model.graph.node:
        keys = next((list(a.strings) for a in node.attribute if a.name == "keys_strings"), None)
        if node.op_type != "LabelEncoder" or keys != [k.encode() for k in labels]:
            continue
        kept = [a for a in node.attribute if a.name != "default_int64"]
        del node.attribute[:]
        node.attribute.extend([*kept, helper.make_attribute("default_int64", len(labels))])


def margin_as_prediction(onnx_model: onnx.ModelProto, prediction: str) -> None:
    """A GBT regressor's prediction: the weighted trees' sum, not the `ArgMax` over
    `[-sum, sum]` that onnxmltools ends it with."""
    producers = {out: node for node in onnx_model.graph.node for out in node.output}
    argmax = producers.get(prediction)
    concat = producers.get(argmax.input[0]) if argmax is not None else None
    if argmax is None or argmax.op_type != "ArgMax" or concat is None:
        return
    margin = concat.input[1]
    nodes = [helper.make_node("Identity", [margin], [prediction], name=f"{argmax.name}_margin")
             if node is argmax else node for node in onnx_model.graph.node]
    _replace_nodes(onnx_model, nodes)
    _set_output_type(onnx_model, prediction, TensorProto.FLOAT, [None, 1])


def softmax_probabilities(onnx_model: onnx.ModelProto) -> None:
    """A multinomial logistic regression's probabilities: softmax of the margins."""
    for node in onnx_model.graph.node:
        if node.op_type != "LinearClassifier" or len(_ints(node, "classlabels_ints")) <= 2:
            continue
        for attribute in node.attribute:
            if attribute.name == "post_transform":
                attribute.s = b"SOFTMAX"


def _ints(node: onnx.NodeProto, name: str) -> list[int]:
    return next((list(a.ints) for a in node.attribute if a.name == name), [])


def index_to_label(onnx_model: onnx.ModelProto, prediction: str, labels: Sequence[str]) -> None:
    """Map the predicted class index (output `prediction`) to `labels[index]`."""
    index = f"{prediction}_index"
    for node in onnx_model.graph.node:
        node.output[:] = [index if out == prediction else out for out in node.output]
        node.input[:] = [index if inp == prediction else inp for inp in node.input]
    encoder = helper.make_node(
        "LabelEncoder", [index], [prediction], domain=ML_DOMAIN, name=f"{prediction}_labels",
        keys_int64s=list(range(len(labels))), values_strings=list(labels), default_string="")
    onnx_model.graph.node.append(encoder)
    _set_output_type(onnx_model, prediction, TensorProto.STRING, [None])
    _require_ml_opset(onnx_model, LABEL_ENCODER_OPSET)


def int64_prediction(onnx_model: onnx.ModelProto, prediction: str) -> None:
    """Cast a float prediction index (some converters give one) to int64."""
    producers = {out: node for node in onnx_model.graph.node for out in node.output}
    output = next((o for o in onnx_model.graph.output if o.name == prediction), None)
    if output is None or output.type.tensor_type.elem_type == TensorProto.INT64:
        return
    index = f"{prediction}_float"
    producers[prediction].output[:] = [index if o == prediction else o
                                       for o in producers[prediction].output]
    onnx_model.graph.node.append(helper.make_node(
        "Cast", [index], [prediction], to=TensorProto.INT64, name=f"{prediction}_int64"))
    _set_output_type(onnx_model, prediction, TensorProto.INT64, [None])


def _set_output_type(onnx_model: onnx.ModelProto, name: str, elem_type: int,
                     shape: list[Any]) -> None:
    for position, output in enumerate(onnx_model.graph.output):
        if output.name == name:
            onnx_model.graph.output[position].CopyFrom(
                helper.make_tensor_value_info(name, elem_type, shape))


def _require_ml_opset(onnx_model: onnx.ModelProto, version: int) -> None:
    for opset in onnx_model.opset_import:
        if opset.domain == ML_DOMAIN:
            opset.version = max(opset.version, version)
            return
    onnx_model.opset_import.append(helper.make_opsetid(ML_DOMAIN, version))


def dynamic_batch(onnx_model: onnx.ModelProto) -> None:
    """Every input's and output's first axis dynamic (onnxmltools may fix some at 1)."""
    for value in [*onnx_model.graph.input, *onnx_model.graph.output]:
        dims = value.type.tensor_type.shape.dim
        if dims:
            dims[0].Clear()


def exact_tree_thresholds(onnx_model: onnx.ModelProto, predictor: Transformer | None) -> None:
    """Rewrite the graph's split thresholds to Spark's decisions (module docstring)."""
    trees = tree_splits(predictor)
    if trees:
        exact_thresholds(onnx_model, Splits.from_trees(trees))


def tree_splits(predictor: Transformer | None) -> list[tuple[int, list[int], list[int],
                                                              list[float]]]:
    """The numerical splits of a tree model, by tree as onnxmltools numbers them: a forest's
    trees 0..n-1 in one ensemble; a single tree, and each of a GBT's trees (one ensemble
    each, all numbered 0), as tree 0. Node ids are -1: onnxmltools renumbers nodes."""
    text = _debug_string(predictor)
    if text is None:
        return []
    trees = _TREE.split(text)[1:] if _TREE.search(text) else [text]
    numbered = type(predictor).__name__.startswith("RandomForest")
    return [_splits_of(index if numbered else 0, tree) for index, tree in enumerate(trees)]


def _debug_string(predictor: Transformer | None) -> str | None:
    from pyspark.ml.tree import _DecisionTreeModel, _TreeEnsembleModel

    if not isinstance(predictor, _DecisionTreeModel | _TreeEnsembleModel):
        return None
    return str(predictor.toDebugString)


def _splits_of(tree: int, text: str) -> tuple[int, list[int], list[int], list[float]]:
    found: Iterable[tuple[str, str]] = _SPLIT.findall(text)
    pairs = [(int(feature), float(threshold)) for feature, threshold in found]
    return tree, [-1] * len(pairs), [f for f, _ in pairs], [t for _, t in pairs]
