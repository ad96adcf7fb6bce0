"""ferry's errors as HTTP answers: `{"error": "..."}` with the status that
`ferry.serve.outcomes.classify` gives (the table is there, shared with gRPC)."""

from __future__ import annotations

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response

from ferry.serve.outcomes import classify
from ferry.serve.rest.codec import dumps


def error_response(exc: BaseException) -> Response:
    failure = classify(exc)
    return Response(dumps({"error": failure.message}), failure.status.http,
                    dict(failure.headers), media_type="application/json")


async def handle_error(_request: Request, exc: Exception) -> Response:
    return error_response(exc)


async def handle_http_error(request: Request, exc: Exception) -> Response:
    """Starlette's own refusals (no such path, a method the path does not take) as JSON."""
    assert isinstance(exc, HTTPException)
    reason = {404: f"no route {request.url.path!r}: see /docs for the API",
              405: f"{request.method} is not allowed on {request.url.path!r}"}
    headers = dict(exc.headers or {})
    return Response(dumps({"error": reason.get(exc.status_code, exc.detail)}), exc.status_code,
                    headers, media_type="application/json")
