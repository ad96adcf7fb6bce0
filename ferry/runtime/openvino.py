"""Predict with OpenVINO: a version's ONNX graph, or an OpenVINO IR the optimizer built.

A version whose `runtime` is `openvino` records under `runtime_settings`:

    {"openvino": {"precision": "f32", "threads": 1, "ir": false},
     "artifacts": {"model.xml": "<sha256>", "model.bin": "<sha256>"}}

- `precision`: `f32` (exact), `bf16` or `f16` (OpenVINO's `INFERENCE_PRECISION_HINT`), or
  `int8` (the IR holds NNCF's quantized graph; what is not quantized runs in f32). The hint is
  always set: left alone, OpenVINO silently computes in bf16 on CPUs with AVX512_BF16/AMX.
  A CPU without native bf16/f16 quietly computes a bf16/f16 version in f32.
- `threads`: `INFERENCE_NUM_THREADS`; 0 leaves OpenVINO's default (every core), and a
  version that records none takes the caller's ONNX Runtime `intra_op_threads`.
- `ir`: true when the graph is the IR stored as the artifacts `model.xml` and `model.bin`;
  false compiles the version's own ONNX graph (`onnx`) when it loads.
Every compiled model also gets `NUM_STREAMS=1` and `PERFORMANCE_HINT=LATENCY`. A key this
module does not know makes loading fail (`UnsupportedModelError`) rather than run differently.

OpenVINO's ONNX frontend lacks most of `ai.onnx.ml`, which skl2onnx graphs use, so the ONNX
graph is first made convertible (`openvino_graph`): the label output is cut off (its
`ArrayFeatureExtractor` has no conversion rule) and computed here as
`class_labels[argmax(probabilities)]`, and `LinearClassifier`, `LinearRegressor` and `Scaler`
are rewritten as standard operators. The IR the optimizer stores is that rewritten graph.

The predictor calls one pre-allocated infer request: inputs are copied into the request's own
tensors and outputs copied out (a dict-style `infer({0: x})` costs several times as much on
small models), under a lock so that concurrent callers take turns.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import openvino as ov
from onnx import helper, numpy_helper

from ferry.errors import UnsupportedModelError, one_line
from ferry.registry.entities import ModelVersion
from ferry.runtime.feeds import Feeds
from ferry.runtime.onnx_runtime import SessionSettings
from ferry.runtime.predictor import GraphPredictor
from ferry.runtime.runtimes import recorded_settings
from ferry.signature import DYNAMIC, Role, Signature, Task, TensorSpec

OPENVINO_SETTINGS = "openvino"
"""Key of `runtime_settings` holding `OpenVinoSettings` fields."""
IR_XML = "model.xml"
IR_BIN = "model.bin"
DEVICE = "CPU"
ML_DOMAIN = "ai.onnx.ml"

PRECISION_HINTS = {"f32": "f32", "bf16": "bf16", "f16": "f16", "int8": "f32"}
"""`INFERENCE_PRECISION_HINT` for each recorded precision (int8 runs its float parts in f32)."""

NATIVE_ML_OPS = frozenset({"Normalizer"})
"""`ai.onnx.ml` operators OpenVINO's ONNX frontend converts itself."""


@dataclass(frozen=True)
class OpenVinoSettings:
    """How a version runs on OpenVINO; recorded as `runtime_settings["openvino"]`."""

    precision: str = "f32"
    threads: int = 0
    ir: bool = False

    def __post_init__(self) -> None:
        if self.precision not in PRECISION_HINTS:
            raise UnsupportedModelError(
                f"unknown OpenVINO precision {self.precision!r}: use one of"
                f" {', '.join(PRECISION_HINTS)}")

    def config(self) -> dict[str, Any]:
        """`compile_model` properties."""
        config: dict[str, Any] = {
            "INFERENCE_PRECISION_HINT": PRECISION_HINTS[self.precision],
            "NUM_STREAMS": 1,
            "PERFORMANCE_HINT": "LATENCY",
        }
        if self.threads > 0:
            config["INFERENCE_NUM_THREADS"] = self.threads
        return config

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> OpenVinoSettings:
        return recorded_settings(cls, data, "OpenVINO")


# --- making an ONNX graph convertible ---------------------------------------------------------

def python_label(signature: Signature) -> TensorSpec | None:
    """The label output computed here from the probabilities, or None when the graph's own
    label output is kept (no probabilities or no class labels to map them to)."""
    label = signature.output(Role.LABEL)
    if label is None or signature.output(Role.PROBABILITIES) is None:
        return None
    return label if signature.class_labels else None


def graph_outputs(signature: Signature) -> list[str]:
    """The outputs OpenVINO computes: every signature output but a label computed here."""
    label = python_label(signature)
    return [o.name for o in signature.outputs if label is None or o.name != label.name]


def openvino_graph(onnx_bytes: bytes, signature: Signature) -> onnx.ModelProto:
    """The ONNX graph cut to `graph_outputs` with `ai.onnx.ml` operators rewritten where
    OpenVINO cannot convert them."""
    model = onnx.load_from_string(onnx_bytes)
    _prune(model.graph, graph_outputs(signature))
    _lower_ml_ops(model)
    return model


def unconvertible_ops(graph: onnx.ModelProto) -> list[str]:
    """`ai.onnx.ml` operators left in a graph from `openvino_graph`, which OpenVINO lacks."""
    found = {f"{n.domain}.{n.op_type}" for n in graph.graph.node
             if n.domain == ML_DOMAIN and n.op_type not in NATIVE_ML_OPS}
    return sorted(found)


def _prune(graph: onnx.GraphProto, outputs: list[str]) -> None:
    """Keep only the nodes, initializers and outputs that `outputs` need."""
    needed = set(outputs)
    kept: list[onnx.NodeProto] = []
    for node in reversed(graph.node):
        if needed.intersection(node.output):
            kept.append(node)
            needed.update(_node_inputs(node))
    kept.reverse()
    graph_outs = [o for o in graph.output if o.name in outputs]
    initializers = [i for i in graph.initializer if i.name in needed]
    del graph.node[:], graph.output[:], graph.initializer[:]
    graph.node.extend(kept)
    graph.output.extend(graph_outs)
    graph.initializer.extend(initializers)


def _node_inputs(node: onnx.NodeProto) -> set[str]:
    """A node's inputs, with the outer names its subgraphs (If, Loop, Scan) read."""
    names = {i for i in node.input if i}
    for attribute in node.attribute:
        for subgraph in [attribute.g, *attribute.graphs]:
            for inner in subgraph.node:
                names |= _node_inputs(inner)
    return names


Lowering = Callable[[onnx.NodeProto, "_Builder"], bool]


class _Builder:
    """Collects the standard nodes and constants that replace one `ai.onnx.ml` node."""

    def __init__(self, prefix: str):
        self.prefix = prefix
        self.nodes: list[onnx.NodeProto] = []
        self.initializers: list[onnx.TensorProto] = []

    def name(self, suffix: str) -> str:
        return f"{self.prefix}/{suffix}"

    def constant(self, suffix: str, values: np.ndarray) -> str:
        name = self.name(suffix)
        self.initializers.append(numpy_helper.from_array(values.astype(np.float32), name))
        return name

    def node(self, op_type: str, inputs: list[str], output: str, **attributes: Any) -> str:
        self.nodes.append(helper.make_node(op_type, inputs, [output],
                                           name=self.name(f"{op_type}{len(self.nodes)}"),
                                           **attributes))
        return output


def _lower_ml_ops(model: onnx.ModelProto) -> None:
    """Replace each `ai.onnx.ml` node that has a rewrite by standard operators; nodes whose
    rewrite does not apply (an unsupported attribute, an output the rewrite drops but the
    graph reads) stay, and `unconvertible_ops` names them."""
    graph = model.graph
    used = {name for node in graph.node for name in _node_inputs(node)}
    used.update(o.name for o in graph.output)
    nodes: list[onnx.NodeProto] = []
    for index, node in enumerate(graph.node):
        lowering = _LOWERINGS.get(node.op_type) if node.domain == ML_DOMAIN else None
        builder = _Builder(f"{node.name or node.op_type}_ov{index}")
        if lowering is not None and lowering(node, builder) and _outputs_covered(node, builder,
                                                                                 used):
            nodes.extend(builder.nodes)
            graph.initializer.extend(builder.initializers)
        else:
            nodes.append(node)
    del graph.node[:]
    graph.node.extend(nodes)


def _outputs_covered(node: onnx.NodeProto, builder: _Builder, used: set[str]) -> bool:
    """Whether the rewrite produces every output of `node` that the graph reads."""
    produced = {o for n in builder.nodes for o in n.output}
    return all(o in produced for o in node.output if o in used)


def _attributes(node: onnx.NodeProto) -> dict[str, Any]:
    values = {a.name: helper.get_attribute_value(a) for a in node.attribute}
    return {k: v.decode() if isinstance(v, bytes) else v for k, v in values.items()}


def _affine(builder: _Builder, source: str, coefficients: list[float],
            intercepts: list[float], rows: int) -> str:
    """`source @ coefficients.reshape(rows, -1).T + intercepts`, in float32."""
    weights = np.asarray(coefficients, dtype=np.float32).reshape(rows, -1).T
    cast = builder.node("Cast", [source], builder.name("x"), to=onnx.TensorProto.FLOAT)
    scores = builder.node("MatMul", [cast, builder.constant("weights", weights)],
                          builder.name("matmul"))
    if not intercepts:
        return scores
    bias = builder.constant("bias", np.asarray(intercepts, dtype=np.float32))
    return builder.node("Add", [scores, bias], builder.name("scores"))


def _lower_linear_classifier(node: onnx.NodeProto, builder: _Builder) -> bool:
    """Scores only: `Z = post_transform(X @ W.T + b)`; the label output is not rebuilt.

    A binary classifier with one row of coefficients scores as ONNX Runtime does under
    LOGISTIC, `Z = [1 - sigmoid(s), sigmoid(s)]`. Under the other transforms ONNX Runtime
    gives `[1 - s, s]` but labels by `s > 0`, not by the argmax the label here is computed
    from, so those stay unconverted."""
    attrs = _attributes(node)
    labels = attrs.get("classlabels_ints") or attrs.get("classlabels_strings") or []
    intercepts = list(attrs.get("intercepts") or [])
    transform = attrs.get("post_transform", "NONE")
    binary = len(intercepts) == 1 and len(labels) == 2
    if (not intercepts or transform not in ("NONE", "LOGISTIC", "SOFTMAX")
            or len(node.output) < 2 or (binary and transform != "LOGISTIC")):
        return False
    scores = _affine(builder, node.input[0], attrs["coefficients"], intercepts, len(intercepts))
    output = node.output[1]
    if binary:
        scores = builder.node("Sigmoid", [scores], builder.name("sigmoid"))
        one = builder.constant("one", np.ones(1))
        other = builder.node("Sub", [one, scores], builder.name("other"))
        builder.node("Concat", [other, scores], output, axis=1)
    elif transform == "LOGISTIC":
        builder.node("Sigmoid", [scores], output)
    elif transform == "SOFTMAX":
        builder.node("Softmax", [scores], output, axis=1)
    else:
        builder.node("Identity", [scores], output)
    return True


def _lower_linear_regressor(node: onnx.NodeProto, builder: _Builder) -> bool:
    attrs = _attributes(node)
    if attrs.get("post_transform", "NONE") != "NONE":
        return False
    targets = int(attrs.get("targets", 1))
    scores = _affine(builder, node.input[0], attrs["coefficients"],
                     list(attrs.get("intercepts") or []), targets)
    builder.node("Identity", [scores], node.output[0])
    return True


def _lower_scaler(node: onnx.NodeProto, builder: _Builder) -> bool:
    """`Y = (X - offset) * scale`."""
    attrs = _attributes(node)
    cast = builder.node("Cast", [node.input[0]], builder.name("x"), to=onnx.TensorProto.FLOAT)
    offset = builder.constant("offset", np.asarray(attrs.get("offset") or [0.0]))
    scale = builder.constant("scale", np.asarray(attrs.get("scale") or [1.0]))
    centred = builder.node("Sub", [cast, offset], builder.name("centred"))
    builder.node("Mul", [centred, scale], node.output[0])
    return True


_LOWERINGS: dict[str, Lowering] = {
    "LinearClassifier": _lower_linear_classifier,
    "LinearRegressor": _lower_linear_regressor,
    "Scaler": _lower_scaler,
}


# --- reading, saving and compiling ------------------------------------------------------------

_CORE: ov.Core | None = None
_CORE_LOCK = threading.Lock()


def core() -> ov.Core:
    """One OpenVINO Core for the process (creating one loads the plugins)."""
    global _CORE
    with _CORE_LOCK:
        if _CORE is None:
            _CORE = ov.Core()
        return _CORE


def read_onnx(onnx_bytes: bytes, signature: Signature) -> ov.Model:
    """The version's ONNX graph as an OpenVINO model, inputs dynamic where the signature's
    are."""
    graph = openvino_graph(onnx_bytes, signature)
    missing = unconvertible_ops(graph)
    if missing:
        raise UnsupportedModelError(
            f"OpenVINO cannot convert {', '.join(missing)}: run this model on ONNX Runtime")
    try:
        model = core().read_model(graph.SerializeToString())
    except RuntimeError as exc:
        raise UnsupportedModelError(
            f"OpenVINO cannot convert this graph ({_conversion_failure(exc)}):"
            " run this model on ONNX Runtime") from exc
    return with_signature_shapes(model, signature)


def _conversion_failure(exc: BaseException) -> str:
    """The useful line of an OpenVINO frontend error (the operators it could not convert)."""
    for line in str(exc).splitlines():
        if "No conversion rule" in line or "Unsupported" in line:
            return line.strip(" -")[:300]
    return one_line(exc)


def with_signature_shapes(model: ov.Model, signature: Signature) -> ov.Model:
    """Make the model's inputs as dynamic as the signature's (a batch axis fixed at export
    becomes dynamic), so that one compiled model takes any batch size."""
    specs = {spec.name: spec for spec in signature.inputs if spec.shape}
    shapes: dict[str, ov.PartialShape] = {}
    for port in model.inputs:
        spec = next((specs[n] for n in port.get_names() if n in specs), None)
        if spec is None:
            continue
        wanted = ov.PartialShape([ov.Dimension() if d == DYNAMIC else ov.Dimension(d)
                                  for d in spec.shape])
        if port.get_partial_shape() != wanted:
            shapes[spec.name] = wanted
    if shapes:
        try:
            model.reshape(shapes)
        except RuntimeError as exc:
            raise UnsupportedModelError(
                f"OpenVINO cannot make the inputs {sorted(shapes)} take any batch size"
                f" ({one_line(exc)}): run this model on ONNX Runtime") from exc
    return model


def read_ir(xml: bytes, weights: bytes) -> ov.Model:
    """An OpenVINO model from stored IR bytes."""
    return core().read_model(xml, weights)


def save_ir(model: ov.Model, directory: Path) -> dict[str, bytes]:
    """Serialize `model` as IR under `directory`; the artifacts to store, by name. Weights
    stay as they are (no fp16 compression: that would change an f32 model's numbers)."""
    directory.mkdir(parents=True, exist_ok=True)
    xml = directory / IR_XML
    ov.save_model(model, str(xml), compress_to_fp16=False)
    return {IR_XML: xml.read_bytes(), IR_BIN: (directory / IR_BIN).read_bytes()}


# --- the predictor ----------------------------------------------------------------------------

class OpenVinoPredictor(GraphPredictor):
    """Runs an OpenVINO model on the CPU; `load()` compiles it and allocates the request."""

    def __init__(self, ov_model: ov.Model, signature: Signature, task: Task, *,
                 settings: OpenVinoSettings | None = None, model: str = "", version: int = 0):
        super().__init__(signature, task, model=model, version=version)
        self.ov_model = ov_model
        self.settings = settings or OpenVinoSettings()
        self.compiled_: ov.CompiledModel | None = None
        self._request: ov.InferRequest | None = None
        self._inputs: list[_InputSlot] = []
        self._outputs: list[tuple[int, str, np.dtype[Any]]] = []
        self._labels = _LabelRule.of(signature)
        self._lock = threading.Lock()

    def load(self) -> OpenVinoPredictor:
        try:
            compiled = core().compile_model(self.ov_model, DEVICE, self.settings.config())
        except RuntimeError as exc:
            raise UnsupportedModelError(
                f"OpenVINO cannot compile this model ({one_line(exc)}):"
                " run it on ONNX Runtime") from exc
        request = compiled.create_infer_request()
        self._inputs = [_InputSlot(_port_name(port, self.signature.inputs),
                                   request.get_input_tensor(i))
                        for i, port in enumerate(compiled.inputs)]
        self._outputs = [(i, name, self._output_dtype(name, port))
                         for i, port in enumerate(compiled.outputs)
                         if (name := _port_name(port, self.signature.outputs))]
        self.compiled_, self._request = compiled, request
        return self

    def _output_dtype(self, name: str, port: ov.Output) -> np.dtype[Any]:
        spec = next((o for o in self.signature.outputs if o.name == name), None)
        return spec.numpy_dtype() if spec is not None else _port_dtype(port)

    def run_feeds(self, feeds: Feeds) -> dict[str, np.ndarray]:
        """Outputs by the signature's names, for arrays shaped and typed as its inputs."""
        with self._lock:
            request = self._request or self.load()._request
            assert request is not None
            for slot in self._inputs:
                slot.fill(feeds[slot.name])
            request.infer()
            outputs = {name: _copy_out(request.get_output_tensor(index), dtype)
                       for index, name, dtype in self._outputs}
        if self._labels is not None:
            outputs[self._labels.name] = self._labels.compute(outputs)
        return outputs


class _InputSlot:
    """One input tensor of the infer request, filled in place on every call."""

    def __init__(self, name: str, tensor: ov.Tensor):
        self.name = name
        self.tensor = tensor
        self.shape: tuple[int, ...] | None = None
        """The shape last set, kept here: `tuple(tensor.shape)` costs ~25 µs (pybind11
        iteration), more than the whole inference of a small model."""

    def fill(self, values: np.ndarray) -> None:
        if values.shape != self.shape:
            self.tensor.set_shape(values.shape)
            self.shape = values.shape
        np.copyto(self.tensor.data, values, casting="unsafe")


@dataclass(frozen=True)
class _LabelRule:
    """The label output, computed as `class_labels[argmax(probabilities)]`."""

    name: str
    probabilities: str
    classes: np.ndarray
    column: bool
    """Whether the label output is `[n, 1]` rather than `[n]`."""

    @classmethod
    def of(cls, signature: Signature) -> _LabelRule | None:
        label, probabilities = python_label(signature), signature.output(Role.PROBABILITIES)
        if label is None or probabilities is None or signature.class_labels is None:
            return None
        classes = np.asarray(signature.class_labels, dtype=label.numpy_dtype())
        return cls(label.name, probabilities.name, classes, len(label.shape) == 2)

    def compute(self, outputs: dict[str, np.ndarray]) -> np.ndarray:
        labels = self.classes[np.argmax(outputs[self.probabilities], axis=1)]
        return labels.reshape(-1, 1) if self.column else labels


def _port_name(port: ov.Output, specs: Iterable[TensorSpec]) -> str:
    """The signature name a port carries (ports can carry several tensor names)."""
    names = port.get_names()
    return next((s.name for s in specs if s.name in names), port.get_any_name())


def _port_dtype(port: ov.Output) -> np.dtype[Any]:
    return np.dtype(port.get_element_type().to_dtype())


def _copy_out(tensor: ov.Tensor, dtype: np.dtype[Any]) -> np.ndarray:
    data = tensor.data
    return data.astype(dtype) if data.dtype != dtype else data.copy()


# --- the runtime loader -----------------------------------------------------------------------

def version_settings(version: ModelVersion,
                     default_session: SessionSettings | None = None) -> OpenVinoSettings:
    """The OpenVINO settings a version records; threads default to the caller's."""
    recorded: dict[str, Any] = dict(version.runtime_settings.get(OPENVINO_SETTINGS) or {})
    if "threads" not in recorded and default_session is not None:
        recorded["threads"] = default_session.intra_op_threads
    return OpenVinoSettings.from_dict(recorded)


def load_openvino(version: ModelVersion, read: Callable[[str], bytes],
                  default_session: SessionSettings | None) -> GraphPredictor:
    """The `openvino` runtime's loader (see `ferry.runtime.runtimes`)."""
    settings = version_settings(version, default_session)
    if settings.ir:
        ov_model = read_ir(read(IR_XML), read(IR_BIN))
    else:
        ov_model = read_onnx(read("onnx"), version.signature)
    return OpenVinoPredictor(ov_model, version.signature, version.task, settings=settings,
                             model=version.name, version=version.version).load()
