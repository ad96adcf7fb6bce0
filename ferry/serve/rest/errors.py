"""ferry's errors as HTTP answers: `{"error": "..."}` with the status that fits.

400 bad input, 401 missing token, 404 unknown model/version/alias, 413 too large,
503 not ready or overloaded (with Retry-After), 504 timed out, 500 a failure inside a model.
"""

from __future__ import annotations

import logging

from starlette.requests import Request
from starlette.responses import Response

from ferry.errors import (
    FerryError,
    InferenceTimeoutError,
    InvalidInputError,
    ModelNotReadyError,
    NotFoundError,
    RequestTooLargeError,
    ServerOverloadedError,
    UnauthorizedError,
)
from ferry.serve.rest.codec import dumps

log = logging.getLogger("ferry.serve")

_STATUS: tuple[tuple[type[FerryError], int], ...] = (
    (RequestTooLargeError, 413),
    (InvalidInputError, 400),
    (NotFoundError, 404),
    (UnauthorizedError, 401),
    (ModelNotReadyError, 503),
    (ServerOverloadedError, 503),
    (InferenceTimeoutError, 504),
)


def status_of(exc: Exception) -> int:
    for kind, status in _STATUS:
        if isinstance(exc, kind):
            return status
    return 500


def error_response(exc: Exception) -> Response:
    status = status_of(exc)
    headers = {}
    if isinstance(exc, ServerOverloadedError):
        headers["Retry-After"] = str(max(1, round(exc.retry_after_s)))
    if isinstance(exc, UnauthorizedError):
        headers["WWW-Authenticate"] = "Bearer"
    message = str(exc) if isinstance(exc, FerryError) else "internal server error"
    if status == 500:
        log.error("request failed: %s", exc, exc_info=not isinstance(exc, FerryError))
    return Response(dumps({"error": message}), status, headers,
                    media_type="application/json")


async def handle_error(_request: Request, exc: Exception) -> Response:
    return error_response(exc)
