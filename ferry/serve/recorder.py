"""The one request recorder of the server: metrics, statistics and the access log of every
inference request, whatever its transport.

An adapter opens a `RequestRecord` when a request arrives, names the served model once the
data plane has resolved it, and closes the record exactly once (`succeeded`, `failed` or
`abandoned`; a second close is ignored, so the in-flight gauge cannot go below zero).
Metric labels come from the server, never from the client: a request for a
model that is not served is counted under `model=""`, whatever name it asked for.
"""

from __future__ import annotations

import time
from typing import Protocol

from ferry.serve import access
from ferry.serve.metrics import ServerMetrics
from ferry.serve.model import PendingInference, ServedModel
from ferry.serve.outcomes import STATUS, Failure, Outcome


class RequestRecord:
    """One request on its way through the server."""

    __slots__ = ("asked_version", "client", "closed", "method", "model", "path", "pending",
                 "request_bytes", "request_id", "served", "started")

    def __init__(self, method: str, path: str, client: str):
        self.method = method
        self.path = path
        self.client = client
        self.started = time.perf_counter()
        self.served: ServedModel | None = None
        self.closed = False
        self.model = ""
        """The model the client asked for, for the access log only."""
        self.request_bytes = 0
        self.pending: PendingInference | None = None
        """The queued inference (its tensors, outputs and batch timing), for the capture."""
        self.asked_version: str | None = None
        """The version or alias the client asked for (None: the default)."""
        self.request_id = ""

    def elapsed_s(self) -> float:
        return time.perf_counter() - self.started


class CaptureSink(Protocol):
    """Where closed requests go to be recorded (`ferry.serve.capture.Capture`)."""

    def offer(self, record: RequestRecord, protocol: str, status: str, ok: bool,
              latency_s: float, response_bytes: int) -> None: ...


class RequestRecorder:
    """Counts, times and logs the inference requests of one transport (`http` or `grpc`)."""

    def __init__(self, metrics: ServerMetrics, protocol: str, access_log: bool = True,
                 capture: CaptureSink | None = None):
        self.metrics = metrics
        self.capture = capture
        self.protocol = protocol
        self.access_log = access_log
        self._statuses = {outcome: str(status.http) if protocol == "http" else status.grpc
                          for outcome, status in STATUS.items()}
        """Each outcome's `status` label for this transport."""
        self._inflight = metrics.level(metrics.inflight, protocol)
        self._request_size = metrics.histogram(metrics.request_size, protocol)
        self._response_size = metrics.histogram(metrics.response_size, protocol)

    def open(self, method: str, path: str, client: str) -> RequestRecord:
        self._inflight.inc()
        return RequestRecord(method, path, client)

    def resolved(self, record: RequestRecord, served: ServedModel, request_bytes: int) -> None:
        """The data plane found the served model for the request."""
        record.served = served
        record.request_bytes = request_bytes
        self._request_size.observe(request_bytes)

    def queued(self, record: RequestRecord, pending: PendingInference,
               asked_version: str | None) -> None:
        """The data plane queued the request on the model's batcher."""
        record.pending = pending
        record.asked_version = asked_version

    def succeeded(self, record: RequestRecord, response_bytes: int) -> None:
        elapsed = self._close(record, Outcome.OK, response_bytes)
        if elapsed is not None:
            self._response_size.observe(response_bytes)
            self.metrics.histogram(self.metrics.request_duration, *self._labels(record),
                                   self.protocol).observe(elapsed)

    def failed(self, record: RequestRecord, failure: Failure, response_bytes: int = 0) -> None:
        self._close(record, failure.outcome, response_bytes)

    def abandoned(self, record: RequestRecord) -> None:
        """The client went away before its answer."""
        self._close(record, Outcome.CLIENT_CLOSED, 0)

    def _close(self, record: RequestRecord, outcome: Outcome,
               response_bytes: int) -> float | None:
        """Count the request once, however many ways its end is reported: its time, or None
        when it was counted already."""
        if record.closed:
            return None
        record.closed = True
        elapsed = record.elapsed_s()
        self._inflight.dec()
        status = self._statuses[outcome]
        self.metrics.count(self.metrics.requests, *self._labels(record), self.protocol,
                           status).inc()
        if record.served is not None:
            record.served.statistics.record_request(outcome == Outcome.OK, elapsed)
        if self.access_log and access.enabled():
            self._log(record, status, response_bytes, elapsed)
        if self.capture is not None and record.served is not None:
            self.capture.offer(record, self.protocol, str(outcome), outcome == Outcome.OK,
                               elapsed, response_bytes)
        return elapsed

    def _labels(self, record: RequestRecord) -> tuple[str, str]:
        served = record.served
        return ("", "") if served is None else (served.name, served.version_label)

    def _log(self, record: RequestRecord, status: str, size: int, elapsed: float) -> None:
        model, version = self._labels(record)
        access.log_request(protocol=self.protocol, method=record.method, path=record.path,
                           model=model or record.model, version=version,
                           status=int(status) if self.protocol == "http" else status,
                           bytes=size, duration_ms=round(elapsed * 1000, 3),
                           client=record.client)
