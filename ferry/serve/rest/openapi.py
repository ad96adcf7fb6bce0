"""The OpenAPI document behind `/docs` (Swagger UI) and `/openapi.json`.

It says what the server accepts and answers, status by status, so that a fuzzer can hold the
server to it (`tests/serve/test_openapi.py` runs schemathesis against the live server). The
bodies' shapes are in `ferry.serve.rest.openapi_schemas`; `_paths` lists every route of
`ferry.serve.rest.app`.
"""

from __future__ import annotations

from typing import Any

from ferry import __version__
from ferry.serve.rest.openapi_schemas import COUNT, EMPTY, NAME, STRING, Schema, ref, schemas

JSON = "application/json"
BINARY = "application/octet-stream"

_ERRORS: dict[str, tuple[str, str]] = {
    "400": ("BadRequest", "the request does not fit the model or the protocol; the message"
                          " names the field and says how to fix it"),
    "401": ("Unauthorized", "the repository and feedback endpoints need `Authorization: Bearer"
                            " TOKEN` with the server's admin token"),
    "404": ("NotFound", "no model, version or alias of that name is served"),
    "413": ("TooLarge", "the body is over the server's request size limit"),
    "500": ("ModelFailed", "the model raised while predicting"),
    "503": ("Unavailable", "the model is unloaded or its queue is full (see Retry-After)"),
    "504": ("TimedOut", "no answer within the server's request timeout"),
}
_ERROR_HEADERS: dict[str, dict[str, Any]] = {
    "401": {"WWW-Authenticate": {"schema": STRING}},
    "503": {"Retry-After": {"schema": COUNT, "description": "seconds to wait (queue full)"}},
}


def _responses() -> dict[str, Any]:
    responses = {}
    for code, (name, description) in _ERRORS.items():
        response: dict[str, Any] = {"description": description,
                                    "content": {JSON: {"schema": ref("Error")}}}
        if code in _ERROR_HEADERS:
            response["headers"] = _ERROR_HEADERS[code]
        responses[name] = response
    return responses


def _parameters() -> dict[str, Any]:
    return {
        "ModelName": {"name": "name", "in": "path", "required": True, "schema": NAME,
                      "description": "the model's name"},
        "ModelVersion": {"name": "version", "in": "path", "required": True, "schema": NAME,
                         "description": "a version number or an alias (production, ...)"},
        "TFVersion": {"name": "version", "in": "path", "required": True,
                      "schema": {"type": "string", "pattern": "^[0-9]{1,19}$"},
                      "description": "a version number (TensorFlow Serving's int64)"},
        "TFLabel": {"name": "label", "in": "path", "required": True, "schema": NAME,
                    "description": "a version label: one of the model's aliases"},
        "StoredKey": {"name": "key", "in": "path", "required": True, "schema": NAME,
                      "description": "a value of the batch run's key column (--key)"},
        "StoredVersion": {"name": "version", "in": "query", "schema": {
            "type": "string", "pattern": "^[0-9]{1,10}$"},
            "description": "the newest completed run of this version number"},
        "StoredAlias": {"name": "alias", "in": "query", "schema": NAME,
                        "description": "the newest completed run of the version this alias"
                                       " names (production, ...)"},
        "HeaderLength": {"name": "Inference-Header-Content-Length", "in": "header",
                         "schema": COUNT, "description": "binary tensor extension: the length"
                                                         " of the JSON header before the tensors"},
    }


def _ok(description: str, schema: Schema | None = None, media: str = JSON) -> dict[str, Any]:
    response: dict[str, Any] = {"description": description}
    if schema is not None:
        response["content"] = {media: {"schema": schema}}
    return response


def _body(schema: Schema, required: bool = True) -> dict[str, Any]:
    return {"required": required, "content": {JSON: {"schema": schema}}}


def _operation(operation_id: str, summary: str, ok: dict[str, Any], errors: str = "",
               body: dict[str, Any] | None = None) -> dict[str, Any]:
    """An operation answering `ok` (200) or one of the `errors` (space-separated codes)."""
    responses = {"200": ok}
    for code in errors.split():
        responses[code] = {"$ref": f"#/components/responses/{_ERRORS[code][0]}"}
    operation: dict[str, Any] = {"operationId": operation_id, "summary": summary,
                                 "responses": responses}
    if body is not None:
        operation["requestBody"] = body
    return operation


def _infer(operation_id: str) -> dict[str, Any]:
    """Inference, in JSON or with Triton's binary tensor extension."""
    binary = {"type": "string", "format": "binary", "description": "a JSON header of"
              " Inference-Header-Content-Length bytes, then the tensors' raw bytes"}
    ok = _ok("the outputs", ref("InferResponse"))
    ok["content"][BINARY] = {"schema": binary}
    operation = _operation(operation_id, "Inference (Open Inference Protocol)", ok,
                           "400 404 413 500 503 504")
    operation["parameters"] = [{"$ref": "#/components/parameters/HeaderLength"}]
    operation["requestBody"] = {"required": True, "content": {
        JSON: {"schema": ref("InferRequest")}, BINARY: {"schema": binary}}}
    return operation


def _feedback(operation_id: str) -> dict[str, Any]:
    """Late labels for captured requests; it changes state, so it takes the admin token."""
    operation = _operation(operation_id, "Attach true labels to captured requests",
                           _ok("the labels stored", ref("FeedbackResponse")),
                           "400 401 404 413 503", _body(ref("FeedbackRequest")))
    operation["security"] = [{"adminToken": []}]
    return operation


def _model_paths(base: str, suffix: str, names: list[str], errors: str) -> dict[str, Any]:
    """The per-model routes under `base`, whose path parameters are `names` (operation ids
    end with `suffix`)."""
    paths: dict[str, dict[str, Any]] = {
        base: {"get": _operation(f"modelMetadata{suffix}", "Model metadata",
                                 _ok("the model's tensors", ref("ModelMetadata")), errors)},
        f"{base}/ready": {"get": _operation(f"modelReady{suffix}", "Model ready",
                                            _ok("ready", ref("ModelReady")), errors)},
        f"{base}/infer": {"post": _infer(f"modelInfer{suffix}")},
        f"{base}/predict": {"post": _operation(
            f"modelPredict{suffix}", "Predict on rows (records or dataframe_split)",
            _ok("predictions", ref("PredictResponse")), "400 404 413 500 503 504",
            _body(ref("PredictRequest")))},
        f"{base}/stats": {"get": _operation(f"modelStatistics{suffix}", "Model statistics",
                                            _ok("statistics", ref("Statistics")), errors)},
        f"{base}/config": {"get": _operation(f"modelConfig{suffix}", "Model configuration",
                                             _ok("configuration", ref("ModelConfig")), errors)},
        f"{base}/feedback": {"post": _feedback(f"modelFeedback{suffix}")},
    }
    for item in paths.values():
        item["parameters"] = [{"$ref": f"#/components/parameters/{name}"} for name in names]
    return paths


def _stored_paths(base: str, suffix: str, names: list[str]) -> dict[str, Any]:
    """Stored batch predictions by key (`ferry.serve.rest.stored`); without a version in the
    path, `?version=` or `?alias=` picks the run."""
    one = _operation(f"storedPrediction{suffix}", "One key's stored batch prediction",
                     _ok("the prediction and the run that made it", ref("StoredPrediction")),
                     "400 404")
    many = _operation(f"storedPredictions{suffix}", "Stored batch predictions of several keys",
                      _ok("the keys found, in request order, and those missing",
                          ref("StoredPredictions")), "400 404 413",
                      _body(ref("StoredPredictionsRequest")))
    if "ModelVersion" not in names:
        for operation in (one, many):
            operation["parameters"] = [{"$ref": "#/components/parameters/StoredVersion"},
                                       {"$ref": "#/components/parameters/StoredAlias"}]
    parameters = [{"$ref": f"#/components/parameters/{name}"} for name in names]
    return {f"{base}/predictions/{{key}}": {
                "parameters": [*parameters, {"$ref": "#/components/parameters/StoredKey"}],
                "get": one},
            f"{base}/predictions": {"parameters": parameters, "post": many}}


def _repository_paths() -> dict[str, Any]:
    model_body = _body(ref("RepositoryModelRequest"), required=False)
    paths: dict[str, dict[str, Any]] = {
        "/v2/repository/index": {"post": _operation(
            "repositoryIndex", "Models and their state", _ok("the index", ref("RepositoryIndex")),
            "400 413", _body(ref("RepositoryIndexRequest"), required=False))},
        "/v2/repository/models/{name}/load": {"post": _operation(
            "repositoryLoad", "Load or reload a model", _ok("loaded", EMPTY), "400 401 404 413 503",
            model_body)},
        "/v2/repository/models/{name}/unload": {"post": _operation(
            "repositoryUnload", "Unload a model", _ok("unloaded", EMPTY), "400 401 404 413",
            model_body)},
    }
    for path in ("/v2/repository/models/{name}/load", "/v2/repository/models/{name}/unload"):
        paths[path]["parameters"] = [{"$ref": "#/components/parameters/ModelName"}]
        paths[path]["post"]["security"] = [{"adminToken": []}]
    return paths


def _tfserving_paths() -> dict[str, Any]:
    """TensorFlow Serving's REST API (`ferry.serve.rest.tfserving`): each route without a
    version, with a version number and with a label."""
    paths: dict[str, dict[str, Any]] = {}
    for suffix, base, names in (
            ("", "/v1/models/{name}", ["ModelName"]),
            ("Version", "/v1/models/{name}/versions/{version}", ["ModelName", "TFVersion"]),
            ("Label", "/v1/models/{name}/labels/{label}", ["ModelName", "TFLabel"])):
        parameters = [{"$ref": f"#/components/parameters/{name}"} for name in names]
        paths[base] = {"parameters": parameters, "get": _operation(
            f"tfModelStatus{suffix}", "Model version status (TensorFlow Serving)",
            _ok("the versions and their state", ref("TFModelStatus")), "400 404 503")}
        paths[f"{base}/metadata"] = {"parameters": parameters, "get": _operation(
            f"tfModelMetadata{suffix}", "Model metadata (TensorFlow Serving)",
            _ok("the signature", ref("TFModelMetadata")), "400 404 503")}
        paths[f"{base}:predict"] = {"parameters": parameters, "post": _operation(
            f"tfPredict{suffix}", "Predict on rows or columns (TensorFlow Serving)",
            _ok("predictions (rows) or outputs (columns)", ref("TFPredictResponse")),
            "400 404 413 500 503 504", _body(ref("TFPredictRequest")))}
    return paths


def _server_paths() -> dict[str, Any]:
    ready = _ok("ready", ref("Ready"))
    operation = _operation("serverReady", "Server ready", ready)
    operation["responses"]["503"] = {**ready, "description": "not ready yet (still loading)"}
    return {
        "/v2/health/live": {"get": _operation("serverLive", "Server live",
                                              _ok("live", ref("Live")))},
        "/v2/health/ready": {"get": operation},
        "/v2": {"get": _operation("serverMetadata", "Server metadata",
                                  _ok("name, version, extensions", ref("ServerMetadata")))},
        "/v2/models/stats": {"get": _operation("allModelStatistics", "Every model's statistics",
                                               _ok("statistics", ref("Statistics")))},
        "/metrics": {"get": _operation("metrics", "Prometheus metrics",
                                       _ok("the exposition", STRING, "text/plain"))},
        "/openapi.json": {"get": _operation("openapi", "This document",
                                            _ok("OpenAPI 3.0", {"type": "object"}))},
        "/docs": {"get": _operation("docs", "Swagger UI for this document",
                                    _ok("the page", STRING, "text/html"))},
    }


def _tagged(tag: str, paths: dict[str, Any]) -> dict[str, Any]:
    """`paths` with every operation under `tag` (Swagger UI groups by tag)."""
    for item in paths.values():
        for key, operation in item.items():
            if key != "parameters":
                operation["tags"] = [tag]
    return paths


def _paths() -> dict[str, Any]:
    model, versioned = "/v2/models/{name}", "/v2/models/{name}/versions/{version}"
    return {**_tagged("server", _server_paths()),
            **_tagged("models", _model_paths(model, "", ["ModelName"], "404 503")),
            **_tagged("model versions", _model_paths(
                versioned, "Version", ["ModelName", "ModelVersion"], "400 404 503")),
            **_tagged("stored predictions", {
                **_stored_paths(model, "", ["ModelName"]),
                **_stored_paths(versioned, "Version", ["ModelName", "ModelVersion"])}),
            **_tagged("repository", _repository_paths()),
            **_tagged("tensorflow serving", _tfserving_paths())}


def openapi_document() -> dict[str, Any]:
    """The document served at `/openapi.json`."""
    return {
        "openapi": "3.0.3",
        "info": {"title": "ferry", "version": __version__,
                 "description": "The Open Inference Protocol (KServe V2 / Triton) with Triton's"
                                " binary tensor, model repository, statistics and model"
                                " configuration extensions, plus /predict for rows, stored"
                                " batch predictions by key (/predictions) and TensorFlow"
                                " Serving's REST API (/v1/models)."},
        "paths": _paths(),
        "components": {"schemas": schemas(), "responses": _responses(),
                       "parameters": _parameters(),
                       "securitySchemes": {"adminToken": {"type": "http", "scheme": "bearer"}}},
    }
