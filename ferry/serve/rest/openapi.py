"""The OpenAPI document behind `/docs` (Swagger UI) and `/openapi.json`."""

from __future__ import annotations

from typing import Any

from ferry import __version__

_TENSOR = {"type": "object", "required": ["name", "shape", "datatype"], "properties": {
    "name": {"type": "string"}, "shape": {"type": "array", "items": {"type": "integer"}},
    "datatype": {"type": "string", "example": "FP32"}, "parameters": {"type": "object"},
    "data": {"type": "array", "items": {}}}}
_INFER_REQUEST = {"type": "object", "required": ["inputs"], "properties": {
    "id": {"type": "string"}, "parameters": {"type": "object"},
    "inputs": {"type": "array", "items": _TENSOR},
    "outputs": {"type": "array", "items": {"type": "object", "properties": {
        "name": {"type": "string"}, "parameters": {"type": "object"}}}}}}
_PREDICT_REQUEST = {"type": "object", "properties": {
    "instances": {"type": "array", "items": {"type": "object"}},
    "dataframe_split": {"type": "object", "properties": {
        "columns": {"type": "array", "items": {"type": "string"}},
        "data": {"type": "array", "items": {"type": "array", "items": {}}}}}}}
_ERROR = {"description": "error", "content": {"application/json": {"schema": {
    "type": "object", "properties": {"error": {"type": "string"}}}}}}


def _operation(summary: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
    operation: dict[str, Any] = {"summary": summary, "responses": {
        "200": {"description": "OK"}, "400": _ERROR, "404": _ERROR, "503": _ERROR}}
    if body is not None:
        operation["requestBody"] = {"content": {"application/json": {"schema": body}}}
    return operation


def openapi_document() -> dict[str, Any]:
    model = "/v2/models/{name}"
    versioned = "/v2/models/{name}/versions/{version}"
    paths: dict[str, Any] = {
        "/v2/health/live": {"get": _operation("Server live")},
        "/v2/health/ready": {"get": _operation("Server ready")},
        "/v2": {"get": _operation("Server metadata")},
        "/v2/repository/index": {"post": _operation("Models and their state")},
        "/v2/repository/models/{name}/load": {"post": _operation("Load or reload a model")},
        "/v2/repository/models/{name}/unload": {"post": _operation("Unload a model")},
        "/metrics": {"get": _operation("Prometheus metrics")},
    }
    for base in (model, versioned):
        paths[base] = {"get": _operation("Model metadata")}
        paths[f"{base}/ready"] = {"get": _operation("Model ready")}
        paths[f"{base}/infer"] = {"post": _operation("Inference (Open Inference Protocol)",
                                                     _INFER_REQUEST)}
        paths[f"{base}/predict"] = {"post": _operation("Predict on rows (records)",
                                                       _PREDICT_REQUEST)}
    return {"openapi": "3.0.3", "info": {"title": "ferry", "version": __version__},
            "paths": paths}


DOCS_HTML = """<!doctype html>
<html><head><title>ferry API</title>
<link rel="stylesheet" href="https://cdn.jsdelivr.net/npm/swagger-ui-dist@5/swagger-ui.css">
</head><body><div id="swagger-ui"></div>
<script src="https://cdn.jsdelivr.net/npm/swagger-ui-dist@5/swagger-ui-bundle.js"></script>
<script>SwaggerUIBundle({url: "/openapi.json", dom_id: "#swagger-ui"});</script>
</body></html>"""
