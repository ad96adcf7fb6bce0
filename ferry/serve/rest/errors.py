"""ferry's errors as HTTP answers: `{"error": "..."}` with the status that
`ferry.serve.outcomes.classify` gives (the table is there, shared with gRPC)."""

from __future__ import annotations

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
