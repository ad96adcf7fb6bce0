"""Register the benchmark's reference model in a ferry registry, so ferry serves the very ONNX
file that every peer serves.

Usage: FERRY_HOME=ROOT/ferry-home python bench/serve/register_ferry.py ROOT/models

Registers MODELS/tabular_gb.onnx (an onnx.ModelProto) as "tabular_gb" with X_test.npy as the
sample, checks that its served input is named "input" (what bench/serve/v2load.py sends, see
--input-name) and prints the version's signature.

Known issue, worked around here: ferry.register runs onnx.checker.check_model(full_check=True)
and strict shape inference, and the skl2onnx file (ai.onnx.ml TreeEnsembleClassifier, whose
second output gets no inferred type, followed by an Identity) fails it with
"[TypeInferenceError] Input 0 expected to have type but instead is null", although ONNX Runtime
and every peer load it. When the plain file is refused, the intermediate tensors that inference
leaves untyped are annotated (graph.value_info) with the type of the graph output they feed,
which changes no node or weight, and the registration is retried.
"""

import json
import sys
from pathlib import Path

import numpy as np
import onnx
from onnx import helper

import ferry
from ferry.errors import InvalidInputError

NAME = "tabular_gb"
INPUT = "input"


def main() -> None:
    models = Path(sys.argv[1] if len(sys.argv) > 1 else "models")
    proto = onnx.load(str(models / f"{NAME}.onnx"))
    onnx_inputs = [i.name for i in proto.graph.input]
    X = np.load(models / "X_test.npy").astype(np.float32)
    tags = {"purpose": "serving benchmark"}
    try:
        version = ferry.register(proto, NAME, sample=X, tags=tags)
    except InvalidInputError as exc:
        print(f"ferry refused the plain file: {exc}")
        added = annotate_identity_inputs(proto)
        print(f"retrying with value_info for {added} (no node or weight changed)")
        tags["value_info_added"] = ",".join(added)
        version = ferry.register(proto, NAME, sample=X, tags=tags)
    signature = version.signature
    text = json.dumps(signature.to_dict() if hasattr(signature, "to_dict") else str(signature),
                      default=str)
    print(f"registered {version.uri}: onnx inputs {onnx_inputs}; check passed="
          f"{(version.conversion_check or {}).get('passed')}")
    print(f"signature: {text[:600]}")
    if INPUT not in text:
        sys.exit(f"the registered model's inputs do not include {INPUT!r}: the load generator "
                 f"sends {INPUT!r}; pass --input-name in peers.json load_args")


def annotate_identity_inputs(proto: onnx.ModelProto) -> list[str]:
    """Give each untyped input of an Identity node that feeds a graph output that output's type."""
    outputs = {o.name: o for o in proto.graph.output}
    typed = {v.name for v in proto.graph.value_info} | {i.name for i in proto.graph.input}
    added = []
    for node in proto.graph.node:
        if node.op_type == "Identity" and node.output[0] in outputs and node.input[0] not in typed:
            out = outputs[node.output[0]].type.tensor_type
            dims = [d.dim_value if d.HasField("dim_value") else None for d in out.shape.dim]
            proto.graph.value_info.append(
                helper.make_tensor_value_info(node.input[0], out.elem_type, dims))
            added.append(node.input[0])
    return added


if __name__ == "__main__":
    main()
