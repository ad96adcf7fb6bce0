"""The shapes in the OpenAPI document (`components/schemas`): the Open Inference Protocol's
bodies as strict as the server that reads them, and Triton's statistics and model
configuration extensions, stored batch predictions, and TensorFlow Serving's REST API."""

from __future__ import annotations

from typing import Any

from ferry.batch.stored import MAX_KEYS
from ferry.monitor.feedback import MAX_LABELS_PER_CALL, MAX_ROW
from ferry.serve.datatypes import DATATYPES

Schema = dict[str, Any]

STRING: Schema = {"type": "string"}
NAME: Schema = {"type": "string", "minLength": 1}
BOOLEAN: Schema = {"type": "boolean"}
INTEGER: Schema = {"type": "integer"}
COUNT: Schema = {"type": "integer", "minimum": 0}
OBJECT: Schema = {"type": "object", "additionalProperties": True}
EMPTY: Schema = {"type": "object", "maxProperties": 0}


def ref(name: str) -> Schema:
    return {"$ref": f"#/components/schemas/{name}"}


def _array(items: Schema, **extra: Any) -> Schema:
    return {"type": "array", "items": items, **extra}


def _object(required: list[str], properties: dict[str, Schema]) -> Schema:
    return {"type": "object", "required": required, "properties": properties}


def _tensor_data() -> Schema:
    """Flat (row-major) or nested values: numbers, booleans (BOOL) or strings (BYTES)."""
    scalar: Schema = {"oneOf": [{"type": "number"}, BOOLEAN, STRING]}
    row = _array(scalar)
    return _array({"oneOf": [scalar, _array({"oneOf": [scalar, row]})]})


def _protocol_schemas() -> dict[str, Schema]:
    """The Open Inference Protocol's bodies."""
    shape = _array(COUNT, description="the size of each dimension")
    return {
        "Error": _object(["error"], {"error": STRING}),
        "Datatype": {"type": "string", "enum": list(DATATYPES)},
        "TensorData": _tensor_data(),
        "TensorMetadata": _object(["name", "datatype", "shape"], {
            "name": STRING, "datatype": ref("Datatype"),
            "shape": _array(INTEGER, description="-1 for a dimension of any size")}),
        "InferInput": _object(["name", "shape", "datatype", "data"], {
            "name": NAME, "shape": shape, "datatype": ref("Datatype"),
            "parameters": OBJECT, "data": ref("TensorData")}),
        "RequestedOutput": _object(["name"], {"name": NAME,
                                              "parameters": ref("OutputParameters")}),
        "OutputParameters": {"type": "object", "properties": {"binary_data": BOOLEAN}},
        "InferRequest": _object(["inputs"], {
            "id": STRING, "parameters": ref("RequestParameters"),
            "inputs": _array(ref("InferInput"), minItems=1),
            "outputs": _array(ref("RequestedOutput"))}),
        "RequestParameters": {"type": "object", "properties": {"binary_data_output": BOOLEAN}},
        "InferOutput": _object(["name", "datatype", "shape"], {
            "name": STRING, "datatype": ref("Datatype"), "shape": shape,
            "parameters": OBJECT, "data": ref("TensorData")}),
        "InferResponse": _object(["model_name", "model_version", "outputs"], {
            "model_name": STRING, "model_version": STRING, "id": STRING, "parameters": OBJECT,
            "outputs": _array(ref("InferOutput"))}),
    }


def _metadata_schemas() -> dict[str, Schema]:
    return {
        "Live": _object(["live"], {"live": BOOLEAN}),
        "Ready": _object(["ready"], {"ready": BOOLEAN}),
        "ModelReady": _object(["name", "ready"], {"name": STRING, "ready": BOOLEAN}),
        "ServerMetadata": _object(["name", "version", "extensions"], {
            "name": STRING, "version": STRING, "extensions": _array(STRING)}),
        "ModelMetadata": _object(["name", "versions", "platform", "inputs", "outputs"], {
            "name": STRING, "versions": _array(STRING), "platform": STRING,
            "inputs": _array(ref("TensorMetadata")),
            "outputs": _array(ref("TensorMetadata"))}),
    }


def _predict_schemas() -> dict[str, Schema]:
    rows = _array({"oneOf": [OBJECT, _array({})]}, minItems=1,
                  description="one object (column: value) or one array of values per row")
    split = _object(["data"], {"columns": _array(STRING), "data": _array(_array({}))})
    return {
        "PredictRequest": {"oneOf": [_object(["instances"], {"instances": rows}),
                                     _object(["dataframe_records"], {"dataframe_records": rows}),
                                     _object(["dataframe_split"], {"dataframe_split": split})]},
        "PredictResponse": _object(["model_name", "model_version", "predictions"], {
            "model_name": STRING, "model_version": STRING, "predictions": _array({}),
            "probabilities": _array(_array({"type": "number"})), "classes": _array({})}),
    }


def _stored_schemas() -> dict[str, Schema]:
    """Stored batch predictions (`ferry.batch.stored`)."""
    key: Schema = {"oneOf": [STRING, {"type": "number"}],
                   "description": "a value of the run's key column"}
    run = {"model": STRING, "version": INTEGER, "run_id": STRING,
           "scored_at": {"type": "string", "format": "date-time"}}
    row = {"key": key, "prediction": {"description": "the label or value predicted"},
           "probabilities": {"type": "object", "additionalProperties": {"type": "number"},
                             "description": "by class label (classifiers)"},
           "kept": {**OBJECT, "description": "the columns kept with --keep"}}
    return {
        "StoredPredictionsRequest": _object(["keys"], {"keys": _array(
            key, minItems=1, maxItems=MAX_KEYS)}),
        "StoredPrediction": _object([*run, "key", "prediction", "kept"], {**run, **row}),
        "StoredRow": _object(["key", "prediction", "kept"], row),
        "StoredPredictions": _object([*run, "predictions", "missing"], {
            **run, "predictions": _array(ref("StoredRow")), "missing": _array(key)}),
    }


def _repository_schemas() -> dict[str, Schema]:
    return {
        "RepositoryIndexRequest": {"type": "object", "properties": {"ready": BOOLEAN}},
        "RepositoryIndex": _array(_object(["name", "state"], {
            "name": STRING, "version": STRING, "state": STRING, "reason": STRING})),
        "RepositoryModelRequest": {"type": "object", "properties": {"parameters": OBJECT}},
    }


def _feedback_schemas() -> dict[str, Schema]:
    """Late labels (`ferry.monitor.feedback`): one row's label, or every row's of a request."""
    label: Schema = {"description": "the true answer: one of the model's classes, or a number"
                                    " for a regressor"}
    row = {"type": "integer", "minimum": 0, "maximum": MAX_ROW}
    return {
        "FeedbackLabel": {**_object(["id", "label"], {"id": NAME, "row": row, "label": label}),
                          "additionalProperties": False},
        "FeedbackRows": {**_object(["id", "labels"], {"id": NAME, "labels": _array(
            label, minItems=1, description="one label per row of the request, from row 0")}),
                         "additionalProperties": False},
        "FeedbackRequest": {"oneOf": [
            {**_object(["labels"], {"labels": _array(
                {"oneOf": [ref("FeedbackLabel"), ref("FeedbackRows")]}, minItems=1,
                maxItems=MAX_LABELS_PER_CALL)}), "additionalProperties": False},
            ref("FeedbackRows")]},
        "FeedbackResponse": _object(["model", "labels", "matched", "skipped", "skipped_ids"], {
            "model": STRING, "labels": {**COUNT, "description": "labels stored"},
            "matched": {**COUNT, "description": "those naming a sampled row"},
            "skipped": {**COUNT, "description": "labels not stored: their requests were not"
                                                " sampled"},
            "skipped_ids": _array(STRING, description="the first of those requests' ids")}),
    }


def _statistics_schemas() -> dict[str, Schema]:
    """Triton's statistics extension."""
    duration = ref("Duration")
    phases = ("success", "fail", "queue", "compute_input", "compute_infer", "compute_output")
    return {
        "Duration": _object(["count", "ns"], {"count": COUNT, "ns": COUNT}),
        "InferenceStatistics": _object(list(phases), {phase: duration for phase in phases}),
        "BatchStatistics": _object(
            ["batch_size", "compute_input", "compute_infer", "compute_output"], {
                "batch_size": COUNT, "compute_input": duration, "compute_infer": duration,
                "compute_output": duration}),
        "ModelStatistics": _object(
            ["name", "version", "last_inference", "inference_count", "execution_count",
             "inference_stats", "batch_stats"], {
                "name": STRING, "version": STRING,
                "last_inference": {**COUNT, "description": "milliseconds since the epoch"},
                "inference_count": COUNT, "execution_count": COUNT,
                "inference_stats": ref("InferenceStatistics"),
                "batch_stats": _array(ref("BatchStatistics"))}),
        "Statistics": _object(["model_stats"], {"model_stats": _array(ref("ModelStatistics"))}),
    }


def _config_schemas() -> dict[str, Schema]:
    """Triton's model configuration extension (its JSON form)."""
    data_type = {"type": "string", "pattern": "^TYPE_[A-Z0-9]+$", "example": "TYPE_FP32"}
    tensor = _object(["name", "data_type", "dims"], {
        "name": STRING, "data_type": data_type,
        "dims": _array(INTEGER, description="without the batch dimension; -1: any size")})
    return {
        "ModelConfigTensor": tensor,
        "ModelConfig": _object(["name", "platform", "max_batch_size", "input", "output"], {
            "name": STRING, "platform": STRING, "backend": STRING, "max_batch_size": COUNT,
            "input": _array(ref("ModelConfigTensor")),
            "output": _array(ref("ModelConfigTensor")),
            "dynamic_batching": OBJECT,
            "instance_group": _array(_object(["count"], {
                "name": STRING, "kind": STRING, "count": COUNT}))}),
    }


def _tensor_info() -> Schema:
    """TensorFlow's `TensorInfo` in protobuf's JSON (int64 sizes as strings)."""
    dim = _object(["size", "name"], {"size": {"type": "string", "pattern": "^-?[0-9]+$"},
                                     "name": STRING})
    return _object(["dtype", "tensor_shape", "name"], {
        "dtype": {"type": "string", "pattern": "^DT_[A-Z0-9]+$", "example": "DT_FLOAT"},
        "tensor_shape": _object(["dim", "unknown_rank"], {"dim": _array(dim),
                                                          "unknown_rank": BOOLEAN}),
        "name": STRING})


def _either(names: tuple[str, str], properties: dict[str, Schema]) -> Schema:
    """An object with exactly one of two properties."""
    return {"type": "object", "properties": properties,
            "oneOf": [{"required": [name]} for name in names]}


def _tfserving_schemas() -> dict[str, Schema]:
    """TensorFlow Serving's REST bodies."""
    status = _object(["error_code", "error_message"], {"error_code": STRING,
                                                       "error_message": STRING})
    by_name = {"type": "object", "additionalProperties": ref("TFTensorInfo")}
    signatures = {"type": "object", "additionalProperties": ref("TFSignatureDef")}
    return {
        "TFModelStatus": _object(["model_version_status"], {"model_version_status": _array(
            _object(["version", "state", "status"], {"version": STRING, "state": STRING,
                                                     "status": status}))}),
        "TFTensorInfo": _tensor_info(),
        "TFSignatureDef": _object(["inputs", "outputs", "method_name"], {
            "inputs": by_name, "outputs": by_name, "method_name": STRING}),
        "TFModelMetadata": _object(["model_spec", "metadata"], {
            "model_spec": _object(["name", "signature_name", "version"], {
                "name": STRING, "signature_name": STRING, "version": STRING}),
            "metadata": _object(["signature_def"], {"signature_def": _object(
                ["signature_def"], {"signature_def": signatures})})}),
        "TFPredictRequest": _either(("instances", "inputs"), {
            "signature_name": {"type": "string", "enum": ["", "serving_default"]},
            "instances": _array({}, minItems=1, description="one value, or one object of"
                                " values by input name, per row"),
            "inputs": {"description": "the one input's tensor, or tensors by input name"}}),
        "TFPredictResponse": _either(("predictions", "outputs"), {
            "predictions": _array({}), "outputs": {}}),
    }


def schemas() -> dict[str, Schema]:
    """Every shape, by name."""
    return {**_protocol_schemas(), **_metadata_schemas(), **_predict_schemas(),
            **_stored_schemas(), **_repository_schemas(), **_feedback_schemas(),
            **_statistics_schemas(), **_config_schemas(), **_tfserving_schemas()}
