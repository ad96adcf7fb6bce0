"""A SavedModel signature to ONNX, through tf2onnx.

tf2onnx's public Python entry points do not cover a SavedModel with lookup tables
(`from_function` and `from_graph_def` drop table initialisers); its command line
(`python -m tf2onnx.convert --saved-model`) does, by calling `tf_loader.from_saved_model` and
then `convert._convert_common` with the tables it returns, which is what this module does.

Opset 17: tf2onnx 1.17 converts at opsets 13 to 18 (21 fails), and 17 is what the other
converters target. `large_model=True` (external weights) fails under numpy 2 and is not used.
tf2onnx names the batch axis `unk__N`; it becomes `batch`. Ops tf2onnx cannot map stay in the
graph under their TensorFlow name, where ONNX Runtime would refuse them at load: they are
named in the refusal instead.
"""

from __future__ import annotations

from pathlib import Path

import onnx

from ferry.convert.tensorflow.runtime import quiet_logs, tensorflow
from ferry.errors import UnsupportedModelError, one_line

TARGET_OPSET = 17
BATCH = "batch"
SERVE_TAG = "serve"


def saved_model_to_onnx(directory: Path, signature: str) -> onnx.ModelProto:
    """The ONNX form of `signature` in the SavedModel at `directory`."""
    tensorflow()
    from tf2onnx import convert, tf_loader

    try:
        with quiet_logs():
            graph_def, inputs, outputs, tables, renames = tf_loader.from_saved_model(
                str(directory), None, None, SERVE_TAG, [signature], None, False,
                return_initialized_tables=True, return_tensors_to_rename=True)
            model, _ = convert._convert_common(
                graph_def, name=signature, opset=TARGET_OPSET, input_names=inputs,
                output_names=outputs, tensors_to_rename=renames, initialized_tables=tables)
    except Exception as exc:
        raise UnsupportedModelError(f"tf2onnx cannot convert the model: {one_line(exc)};"
                                    " register it with force=True to serve it with TensorFlow"
                                    ) from exc
    _refuse_unknown_ops(model)
    _name_batch_axes(model)
    return model


def _refuse_unknown_ops(model: onnx.ModelProto) -> None:
    unknown = sorted({node.op_type for node in model.graph.node
                      if not _is_known(node.op_type, node.domain)})
    if unknown:
        raise UnsupportedModelError(
            f"tf2onnx has no ONNX form for the TensorFlow ops {', '.join(unknown)}; register"
            " the model with force=True to serve it with TensorFlow (runtime native)")


def _is_known(op_type: str, domain: str) -> bool:
    return onnx.defs.has(op_type, domain) or domain not in ("", "ai.onnx")


def _name_batch_axes(model: onnx.ModelProto) -> None:
    """The first axis of inputs and outputs, left as tf2onnx's `unk__N`, is the batch."""
    for value in [*model.graph.input, *model.graph.output]:
        dims = value.type.tensor_type.shape.dim
        if dims and not dims[0].HasField("dim_value"):
            dims[0].dim_param = BATCH
