"""The Open Inference Protocol over HTTP, plus `/predict` for people, stored batch predictions
by key (`ferry.serve.rest.stored`), `/metrics` and `/docs` (the inference endpoint itself is
`ferry.serve.rest.infer`, in front of these routes).

Handlers only translate: read the body, decode, call the data plane, encode. Errors are
mapped to HTTP in `ferry.serve.rest.errors`.
"""

from __future__ import annotations

from typing import Any

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route
from starlette.types import ASGIApp

from ferry.errors import FerryError, InvalidInputError
from ferry.serve.dataplane import DataPlane
from ferry.serve.metrics import CONTENT_TYPE, ServerMetrics
from ferry.serve.rest import codec
from ferry.serve.rest.access_log import AccessLog
from ferry.serve.rest.docs import docs_routes
from ferry.serve.rest.errors import handle_error, handle_http_error
from ferry.serve.rest.infer import InferenceCalls, InferEndpoint, read_limited_body
from ferry.serve.rest.openapi import openapi_document
from ferry.serve.rest.predict import decode_rows, encode_predictions
from ferry.serve.rest.stored import stored_routes
from ferry.serve.rest.tfserving import tfserving_routes
from ferry.serve.statistics import statistics_document
from ferry.serve.types import TensorMetadata

JSON = "application/json"


def _json(document: Any, status: int = 200) -> Response:
    return Response(codec.dumps(document), status, media_type=JSON)


def _plane(request: Request) -> DataPlane:
    plane: DataPlane = request.app.state.dataplane
    return plane


def _version(request: Request) -> str | None:
    version: str | None = request.path_params.get("version")
    return version


async def read_body(request: Request) -> bytes:
    """The body, refused with 413 as soon as it passes the server's limit."""
    return await read_limited_body(request.receive, dict(request.scope["headers"]),
                                   _plane(request).settings.max_request_bytes)


async def live(request: Request) -> Response:
    return _json({"live": _plane(request).live()})


async def ready(request: Request) -> Response:
    is_ready = _plane(request).server_ready()
    return _json({"ready": is_ready}, 200 if is_ready else 503)


async def server_metadata(request: Request) -> Response:
    meta = _plane(request).server_metadata()
    return _json({"name": meta.name, "version": meta.version,
                  "extensions": list(meta.extensions)})


async def model_ready(request: Request) -> Response:
    name = request.path_params["name"]
    _plane(request).model_ready(name, _version(request))
    return _json({"name": name, "ready": True})


async def model_metadata(request: Request) -> Response:
    meta = _plane(request).model_metadata(request.path_params["name"], _version(request))
    return _json({
        "name": meta.name, "versions": list(meta.versions), "platform": meta.platform,
        "inputs": [_tensor(t) for t in meta.inputs], "outputs": [_tensor(t) for t in meta.outputs],
    })


def _tensor(tensor: TensorMetadata) -> dict[str, Any]:
    return {"name": tensor.name, "datatype": tensor.datatype, "shape": list(tensor.shape)}


async def model_config(request: Request) -> Response:
    config = _plane(request).model_config(request.path_params["name"], _version(request))
    return _json(config.as_dict())


async def model_statistics(request: Request) -> Response:
    stats = _plane(request).statistics(request.path_params.get("name", ""), _version(request))
    return _json({"model_stats": [statistics_document(s) for s in stats]})


async def predict(request: Request) -> Response:
    plane = _plane(request)
    served = plane.served(request.path_params["name"], _version(request))
    frame = decode_rows(codec.loads(await read_body(request)))
    return _json(encode_predictions(served, await plane.predict(served, frame)))


async def repository_index(request: Request) -> Response:
    body = _object_body(await read_body(request), "the repository index body")
    only_ready = body.get("ready", False)
    if not isinstance(only_ready, bool):
        raise InvalidInputError("'ready' must be true or false")
    rows = [row for row in _plane(request).repository_index()
            if not only_ready or row.state == "READY"]
    return _json([{"name": r.name, "version": r.version, "state": r.state, "reason": r.reason}
                  for r in rows])


def _object_body(body: bytes, what: str) -> dict[str, Any]:
    """A JSON object body; an empty body is an empty object."""
    document = codec.loads(body) if body.strip() else {}
    if not isinstance(document, dict):
        raise InvalidInputError(f"{what} must be a JSON object")
    return document


def _token(request: Request) -> str | None:
    header = request.headers.get("authorization", "")
    return header[7:].strip() if header.lower().startswith("bearer ") else None


async def repository_load(request: Request) -> Response:
    body = _object_body(await read_body(request), "the load body")
    parameters = body.get("parameters", {})
    if not isinstance(parameters, dict):
        raise InvalidInputError("'parameters' must be an object, e.g. {\"config\": \"...\"}")
    await _plane(request).load(request.path_params["name"], _token(request), parameters)
    return _json({})


async def repository_unload(request: Request) -> Response:
    _object_body(await read_body(request), "the unload body")
    await _plane(request).unload(request.path_params["name"], _token(request))
    return _json({})


async def feedback(request: Request) -> Response:
    document = codec.loads(await read_body(request))
    result = await _plane(request).feedback(request.path_params["name"], _version(request),
                                            document, _token(request))
    return _json(result.to_dict())


async def metrics_endpoint(request: Request) -> Response:
    metrics: ServerMetrics = request.app.state.metrics
    return Response(metrics.exposition(), media_type=CONTENT_TYPE)


async def openapi(_request: Request) -> Response:
    return _json(openapi_document())


def _both(path: str, endpoint: Any, methods: list[str]) -> list[Route]:
    """A route with and without `/versions/{version}` after the model name."""
    versioned = path.replace("{name}", "{name}/versions/{version}")
    return [Route(path, endpoint, methods=methods), Route(versioned, endpoint, methods=methods)]


def _dashboard(dataplane: DataPlane, metrics: ServerMetrics) -> list[BaseRoute]:
    """The dashboard at `/` (`ferry.ui`), reading the served registry and this server's
    numbers."""
    from ferry.ui.app import ui_routes
    from ferry.ui.context import UIContext

    settings = dataplane.settings
    return ui_routes(UIContext(dataplane.repository.registry, settings.admin_token,
                               metrics.exposition, settings.capture.store_url))


def create_app(dataplane: DataPlane, metrics: ServerMetrics,
               access_log: bool = True) -> InferEndpoint:
    """The REST API: the inference endpoint in front (it logs its own access lines),
    Starlette routes for the rest."""
    routes = [
        Route("/v2/health/live", live, methods=["GET"]),
        Route("/v2/health/ready", ready, methods=["GET"]),
        Route("/v2", server_metadata, methods=["GET"]),
        Route("/v2/models/stats", model_statistics, methods=["GET"]),
        *_both("/v2/models/{name}", model_metadata, ["GET"]),
        *_both("/v2/models/{name}/ready", model_ready, ["GET"]),
        *_both("/v2/models/{name}/predict", predict, ["POST"]),
        *_both("/v2/models/{name}/config", model_config, ["GET"]),
        *_both("/v2/models/{name}/stats", model_statistics, ["GET"]),
        *_both("/v2/models/{name}/feedback", feedback, ["POST"]),
        *stored_routes(),
        Route("/v2/repository/index", repository_index, methods=["POST"]),
        Route("/v2/repository/models/{name}/load", repository_load, methods=["POST"]),
        Route("/v2/repository/models/{name}/unload", repository_unload, methods=["POST"]),
        *tfserving_routes(dataplane, metrics),
        Route("/metrics", metrics_endpoint, methods=["GET"]),
        Route("/openapi.json", openapi, methods=["GET"]),
        *docs_routes(),
        *_dashboard(dataplane, metrics),
    ]
    app = Starlette(routes=routes, exception_handlers={FerryError: handle_error,
                                                       HTTPException: handle_http_error,
                                                       Exception: handle_error})
    app.state.dataplane = dataplane
    app.state.metrics = metrics
    routes_app: ASGIApp = AccessLog(app) if access_log else app
    return InferEndpoint(routes_app, InferenceCalls(dataplane, metrics, access_log))
