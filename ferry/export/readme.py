"""The bundle's README.md: a short page for the team that runs the model, from its signature."""

from __future__ import annotations

from typing import Any

_PYTHON = '''```python
import json
import numpy as np
import onnxruntime as ort

session = ort.InferenceSession("model.onnx", providers=["CPUExecutionProvider"])
names = [output.name for output in session.get_outputs()]
for case in json.load(open("golden.json"))["cases"]:
    feeds = {name: np.array(t["data"], dtype=object if t["dtype"] == "string" else t["dtype"])
             .reshape(t["shape"]) for name, t in case["inputs"].items()}
    outputs = dict(zip(names, session.run(names, feeds)))
```'''


def readme_text(signature: dict[str, Any], cases: list[str], files: list[str]) -> str:
    """README.md for a bundle: `signature` is signature.json's document, `cases` the golden
    case names, `files` the files the bundle holds."""
    return "\n".join([
        f"# {signature['uri']}: {signature['task']} model exported by ferry", "",
        f"Model `{signature['model']}`, version {signature['version']}, exported by ferry"
        f" {signature['ferry_version']} (bundle format {signature['format']}).",
        *_runtime_note(signature["runtime"]), "", "## Files", "",
        *(f"- `{name}`: {_FILES[name]}" for name in files), "",
        "## Inputs", "", *_inputs(signature), "", "## Outputs", "", *_outputs(signature), "",
        "## Golden cases", "", *_golden(cases), "", "## Running it", "", _RUNNING, "",
        _PYTHON, "",
    ])


_FILES = {
    "model.onnx": "the model in ONNX; run it with ONNX Runtime (any language).",
    "model.pmml": "the original PMML document the model was registered from.",
    "signature.json": "what the model takes and gives: input and output names, dtypes,"
                      " shapes (-1: the batch), feature names, class labels.",
    "golden.json": "golden cases: input tensors and the outputs ONNX Runtime gave for them.",
    "README.md": "this page.",
}


def _runtime_note(runtime: dict[str, Any]) -> list[str]:
    opsets = ", ".join(f"{domain or 'ai.onnx'} {version}"
                       for domain, version in runtime["opset"].items())
    lines = ["", f"Opsets: {opsets}. ferry runs it on ONNX Runtime with graph optimization"
                 f" `{runtime['graph_optimization']}`."]
    if "optimized_for" in runtime:
        lines += ["", f"Note: {runtime['note']}."]
    return lines


def _shape(shape: list[int]) -> str:
    return "[" + ", ".join("batch" if d == -1 else str(d) for d in shape) + "]"


def _inputs(signature: dict[str, Any]) -> list[str]:
    inputs = signature["inputs"]
    lines = [f"- `{i['name']}`: {i['dtype']} {_shape(i['shape'])}" for i in inputs]
    if signature["layout"] == "columns":
        return ["One `[batch, 1]` tensor per column (layout `columns`); strings as string"
                " tensors:", "", *lines]
    names = signature["feature_names"]
    if names is None or len(inputs) != 1:
        return lines
    return [*lines, "", "Its columns, in order: " + ", ".join(f"`{n}`" for n in names) + "."]


def _outputs(signature: dict[str, Any]) -> list[str]:
    lines = [f"- `{o['name']}`: {o['dtype']} {_shape(o['shape'])}"
             + (f" ({o['role']})" if o["role"] else "") for o in signature["outputs"]]
    labels = signature["class_labels"]
    if labels is not None:
        lines += ["", "Class labels, in the order of the probability columns: "
                  + ", ".join(f"`{label}`" for label in labels) + "."]
    return lines


def _golden(cases: list[str]) -> list[str]:
    return [f"golden.json holds {len(cases)} cases ({', '.join(cases)}). A runtime passes when"
            " every output of every case has the same shape and, for floating outputs,"
            " |got - want| <= atol + rtol * |want| with the tolerance golden.json records; other"
            " dtypes must be equal. int64 values are JSON integers: build BigInt64Array"
            " (JavaScript) or long[] (Java) tensors from them."]


_RUNNING = """The ferry repository has a checker for each runtime that runs every golden case:

- Node.js (onnxruntime-node): `node examples/node/check.mjs BUNDLE_DIR`
- the browser (onnxruntime-web): serve `examples/web` and open `index.html?bundle=URL`
- Java (com.microsoft.onnxruntime): see `examples/java/README.md`

In Python, with onnxruntime:"""
