"""The one error classifier of the server: what an exception means for the client, on any
transport.

    Outcome            ferry error                               HTTP   gRPC
    invalid_input      InvalidInputError                         400    INVALID_ARGUMENT
    too_large          RequestTooLargeError                      413    RESOURCE_EXHAUSTED
    request_timeout    RequestTimeoutError (a slow upload)       408    DEADLINE_EXCEEDED
    unauthorized       UnauthorizedError                         401    UNAUTHENTICATED
    not_found          NotFoundError                             404    NOT_FOUND
    not_ready          ModelNotReadyError                        503    UNAVAILABLE
    overloaded         ServerOverloadedError (+ Retry-After)     503    UNAVAILABLE
    timeout            InferenceTimeoutError (waited in queue)   504    DEADLINE_EXCEEDED
    client_closed      the client left before its answer         499    CANCELLED
    internal           InferenceError, anything else (logged)    500    INTERNAL

The REST and gRPC adapters call `classify` and write what it gives; neither keeps a table.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from ferry.errors import (
    FerryError,
    InferenceTimeoutError,
    InvalidInputError,
    ModelNotReadyError,
    NotFoundError,
    RequestTimeoutError,
    RequestTooLargeError,
    ServerOverloadedError,
    UnauthorizedError,
)
from ferry.monitor.events import Outcome

log = logging.getLogger("ferry.serve")
INTERNAL_MESSAGE = "internal server error"


@dataclass(frozen=True, slots=True)
class Status:
    """An outcome as each transport says it."""

    http: int
    grpc: str
    """A `grpc.StatusCode` name (the core knows no gRPC)."""


STATUS: dict[Outcome, Status] = {
    Outcome.OK: Status(200, "OK"),
    Outcome.INVALID_INPUT: Status(400, "INVALID_ARGUMENT"),
    Outcome.TOO_LARGE: Status(413, "RESOURCE_EXHAUSTED"),
    Outcome.REQUEST_TIMEOUT: Status(408, "DEADLINE_EXCEEDED"),
    Outcome.UNAUTHORIZED: Status(401, "UNAUTHENTICATED"),
    Outcome.NOT_FOUND: Status(404, "NOT_FOUND"),
    Outcome.NOT_READY: Status(503, "UNAVAILABLE"),
    Outcome.OVERLOADED: Status(503, "UNAVAILABLE"),
    Outcome.TIMEOUT: Status(504, "DEADLINE_EXCEEDED"),
    Outcome.CLIENT_CLOSED: Status(499, "CANCELLED"),
    Outcome.INTERNAL: Status(500, "INTERNAL"),
}

# Most specific first: RequestTooLargeError is an InvalidInputError.
_OUTCOMES: tuple[tuple[type[BaseException], Outcome], ...] = (
    (RequestTooLargeError, Outcome.TOO_LARGE),
    (RequestTimeoutError, Outcome.REQUEST_TIMEOUT),
    (InvalidInputError, Outcome.INVALID_INPUT),
    (UnauthorizedError, Outcome.UNAUTHORIZED),
    (NotFoundError, Outcome.NOT_FOUND),
    (ModelNotReadyError, Outcome.NOT_READY),
    (ServerOverloadedError, Outcome.OVERLOADED),
    (InferenceTimeoutError, Outcome.TIMEOUT),
)


@dataclass(frozen=True, slots=True)
class Failure:
    """What to answer for an exception: its outcome, statuses, message and extra headers."""

    outcome: Outcome
    message: str
    headers: tuple[tuple[str, str], ...] = ()

    @property
    def status(self) -> Status:
        return STATUS[self.outcome]


def outcome_of(exc: BaseException) -> Outcome:
    for kind, outcome in _OUTCOMES:
        if isinstance(exc, kind):
            return outcome
    return Outcome.INTERNAL


def classify(exc: BaseException) -> Failure:
    """The answer for `exc`; failures inside the server are logged (once, here) and their
    details kept from the client."""
    outcome = outcome_of(exc)
    if outcome == Outcome.INTERNAL:
        log.error("request failed: %s", exc, exc_info=not isinstance(exc, FerryError))
    message = str(exc) if isinstance(exc, FerryError) else INTERNAL_MESSAGE
    return Failure(outcome, message, _headers(exc))


def _headers(exc: BaseException) -> tuple[tuple[str, str], ...]:
    if isinstance(exc, ServerOverloadedError):
        return (("retry-after", str(max(1, round(exc.retry_after_s)))),)
    if isinstance(exc, UnauthorizedError):
        return (("www-authenticate", "Bearer"),)
    return ()
