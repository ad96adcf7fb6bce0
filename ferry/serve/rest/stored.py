"""Stored predictions over HTTP: what the latest completed batch run predicted for a key,
looked up rather than computed (`ferry.batch.stored`).

    GET  /v2/models/{name}[/versions/{version}]/predictions/{key}     one key
    POST /v2/models/{name}[/versions/{version}]/predictions           {"keys": [...]}

Without `/versions/{version}`, `?version=N` or `?alias=NAME` picks the run of a version; with
neither, the newest completed run of any version answers. Every answer names the model,
version, run and time that produced it. The first lookup of a (model, version) waits while
the run's rows load on a thread; after that a lookup is an in-memory hash probe, answered on
the event loop. A GET whose run is held is answered by the HTTP protocol itself
(`ferry.serve.rest.protocol`, with `held_answer`), without an ASGI task: the routes here
answer the rest (the first lookup, POSTs, pipelined requests, the app in another server).
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any
from urllib.parse import parse_qsl

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from ferry.batch.stored import MAX_KEYS, RunIndex, Selector, selector_of
from ferry.errors import InvalidInputError, NotFoundError
from ferry.serve.dataplane import DataPlane
from ferry.serve.outcomes import classify
from ferry.serve.rest import codec
from ferry.serve.rest.infer import read_limited_body

JSON = "application/json"


async def stored_prediction(request: Request) -> Response:
    """`GET .../predictions/{key}`: one key's stored prediction, 404 when the run has none."""
    return _json(key_answer(await _index(request), request.path_params["key"]))


def key_answer(index: RunIndex, key: str) -> dict[str, Any]:
    """The answer to a GET: the run, then the key's row; `NotFoundError` without one."""
    answer = index.get(key)
    if answer.missing:
        raise NotFoundError(f"no stored prediction for key {key!r}: {index.stamp.model} version"
                            f" {index.stamp.version}'s batch run {index.stamp.run_id} has no"
                            f" row with {index.key.name} = {answer.missing[0]!r}")
    return {**answer.run, **answer.predictions[0]}


def held_answer(plane: DataPlane, name: str, version: str | None, query: bytes,
                key: str) -> tuple[int, bytes] | None:
    """The answer to a GET as the HTTP protocol's fast path writes it (status, JSON body),
    when the run is held; None when it is not (the ASGI route loads it, and checks names)."""
    try:
        selector = selector_from(version, _query(query))
        index = plane.stored().cached(name, selector)
        if index is None:
            return None
        return 200, codec.dumps(key_answer(index, key))
    except Exception as exc:
        failure = classify(exc)
        return failure.status.http, codec.dumps({"error": failure.message})


async def stored_predictions(request: Request) -> Response:
    """`POST .../predictions` with `{"keys": [...]}`: the rows found, in request order, and
    the keys that were not."""
    keys = _keys(codec.loads(await _body(request)))
    index = await _index(request)
    return _json(index.lookup(keys).to_dict())


def stored_routes() -> list[Route]:
    """The routes, each with and without `/versions/{version}` after the model name."""
    routes = []
    for base in ("/v2/models/{name}", "/v2/models/{name}/versions/{version}"):
        routes += [Route(f"{base}/predictions/{{key:path}}", stored_prediction, methods=["GET"]),
                   Route(f"{base}/predictions", stored_predictions, methods=["POST"])]
    return routes


async def _index(request: Request) -> RunIndex:
    """The index answering for the request's model and version: held already, or loaded
    (on a loader thread) the first time."""
    stored = _plane(request).stored()
    name = request.path_params["name"]
    selector = selector_from(request.path_params.get("version"), request.query_params)
    index = stored.cached(name, selector)
    return index if index is not None else await asyncio.wrap_future(stored.load(name, selector))


def _query(query: bytes) -> dict[str, str]:
    return dict(parse_qsl(query.decode("latin-1"), keep_blank_values=True)) if query else {}


def selector_from(path_version: str | None, query: Mapping[str, str]) -> Selector:
    """`/versions/{version}` (a number or an alias), or `?version=N`, or `?alias=NAME`."""
    version, alias = query.get("version"), query.get("alias")
    if path_version is not None:
        if version is not None or alias is not None:
            raise InvalidInputError("the path names the version already: drop ?version= and"
                                    " ?alias=")
        return selector_of(path_version)
    if version is not None and not (version.isascii() and version.isdigit()):
        raise InvalidInputError(f"?version={version!r}: give a version number (an alias goes"
                                " in ?alias=)")
    if alias is not None and not alias:
        raise InvalidInputError("?alias= is empty: name an alias, e.g. ?alias=production")
    return selector_of(version, alias)


def _keys(document: Any) -> list[Any]:
    keys = document.get("keys") if isinstance(document, dict) else None
    if not isinstance(keys, list) or not keys:
        raise InvalidInputError('the body must be a JSON object with a non-empty list of keys:'
                                ' {"keys": [17, 42]}')
    if len(keys) > MAX_KEYS:
        raise InvalidInputError(f"'keys' holds {len(keys)} keys: at most {MAX_KEYS} a request")
    return keys


def _plane(request: Request) -> DataPlane:
    plane: DataPlane = request.app.state.dataplane
    return plane


async def _body(request: Request) -> bytes:
    """The body, refused with 413 as soon as it passes the server's limit."""
    return await read_limited_body(request.receive, dict(request.scope["headers"]),
                                   _plane(request).settings.max_request_bytes)


def _json(document: Any) -> Response:
    return Response(codec.dumps(document), 200, media_type=JSON)
