"""The request recorder and the error classifier that REST and gRPC share."""

from __future__ import annotations

import pytest

from ferry.errors import (
    AliasNotFoundError,
    InferenceError,
    InferenceTimeoutError,
    InvalidInputError,
    ModelNotReadyError,
    RequestTooLargeError,
    ServerOverloadedError,
    UnauthorizedError,
)
from ferry.serve.metrics import ServerMetrics
from ferry.serve.outcomes import INTERNAL_MESSAGE, Outcome, classify
from ferry.serve.recorder import RequestRecorder


def _value(metrics: ServerMetrics, name: str, **labels: str) -> float | None:
    metrics.flush()
    return metrics.registry.get_sample_value(name, labels)


@pytest.mark.parametrize("error, outcome, http, grpc", [
    (RequestTooLargeError("big"), Outcome.TOO_LARGE, 413, "RESOURCE_EXHAUSTED"),
    (InvalidInputError("bad"), Outcome.INVALID_INPUT, 400, "INVALID_ARGUMENT"),
    (AliasNotFoundError("no alias"), Outcome.NOT_FOUND, 404, "NOT_FOUND"),
    (UnauthorizedError("token"), Outcome.UNAUTHORIZED, 401, "UNAUTHENTICATED"),
    (ModelNotReadyError("later"), Outcome.NOT_READY, 503, "UNAVAILABLE"),
    (ServerOverloadedError("full", retry_after_s=2.4), Outcome.OVERLOADED, 503, "UNAVAILABLE"),
    (InferenceTimeoutError("slow"), Outcome.TIMEOUT, 504, "DEADLINE_EXCEEDED"),
    (InferenceError("model broke"), Outcome.INTERNAL, 500, "INTERNAL"),
    (KeyError("secret detail"), Outcome.INTERNAL, 500, "INTERNAL"),
])
def test_one_classifier_gives_both_statuses(error: Exception, outcome: Outcome, http: int,
                                             grpc: str) -> None:
    failure = classify(error)
    assert (failure.outcome, failure.status.http, failure.status.grpc) == (outcome, http, grpc)


def test_the_classifier_keeps_internal_details_from_clients() -> None:
    assert classify(KeyError("secret detail")).message == INTERNAL_MESSAGE
    assert classify(ServerOverloadedError("full", retry_after_s=2.4)).headers == (
        ("retry-after", "2"),)
    assert classify(UnauthorizedError("token")).headers == (("www-authenticate", "Bearer"),)


def test_a_request_closed_twice_is_counted_once() -> None:
    metrics = ServerMetrics()
    recorder = RequestRecorder(metrics, "http", access_log=False)
    record = recorder.open("POST", "/v2/models/x/infer", "127.0.0.1")
    assert _value(metrics, "ferry_inflight_requests", protocol="http") == 1
    recorder.failed(record, classify(InvalidInputError("bad")))
    recorder.abandoned(record)
    recorder.succeeded(record, 10)
    assert _value(metrics, "ferry_inflight_requests", protocol="http") == 0
    assert _value(metrics, "ferry_inference_requests_total", model="", version="",
                  protocol="http", status="400") == 1
    assert _value(metrics, "ferry_inference_requests_total", model="", version="",
                  protocol="http", status="499") is None


def test_grpc_requests_are_counted_by_grpc_status_name() -> None:
    metrics = ServerMetrics()
    recorder = RequestRecorder(metrics, "grpc", access_log=False)
    recorder.abandoned(recorder.open("ModelInfer", "", "ipv4:127.0.0.1:1"))
    assert _value(metrics, "ferry_inference_requests_total", model="", version="",
                  protocol="grpc", status="CANCELLED") == 1
