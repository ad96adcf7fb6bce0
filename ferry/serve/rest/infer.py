"""The inference endpoint, `POST /v2/models/{name}[/versions/{version}]/infer`.

It is the one path that runs thousands of times a second, so it skips routing, middleware and
request/response objects. `InferenceCalls` holds what any HTTP front end needs: decode the body,
queue the request on the model's batcher, encode the answer or the error, count and log.
Two front ends use it: `ferry.serve.rest.protocol` answers straight from the HTTP parser's
callbacks (what `ferry serve` runs), and `InferEndpoint` is the same as ASGI middleware in
front of the Starlette routes (pipelined requests, and the app mounted in another server).
"""

from __future__ import annotations

import re
import time
from typing import Any

from starlette.types import ASGIApp, Receive, Scope, Send

from ferry.errors import InvalidInputError, RequestTooLargeError
from ferry.serve import access
from ferry.serve.dataplane import DataPlane
from ferry.serve.metrics import ServerMetrics
from ferry.serve.model import PendingInference
from ferry.serve.rest import codec
from ferry.serve.rest.errors import error_response

INFER_PATH = re.compile(r"/v2/models/([^/]+)(?:/versions/([^/]+))?/infer")
PROTOCOL = "http"
JSON_TYPE = b"application/json"
BINARY_TYPE = b"application/octet-stream"
CLIENT_CLOSED = "499"
"""The status counted for a request whose client closed the connection before the answer."""

Headers = list[tuple[bytes, bytes]]


class InferCall:
    """One inference request on its way through: what the metrics and the log need."""

    __slots__ = ("client", "label", "name", "path", "pending", "started")

    def __init__(self, name: str, version: str | None, path: str, client: str):
        self.name = name
        self.label = version or ""
        self.path = path
        self.client = client
        self.started = time.perf_counter()
        self.pending: PendingInference | None = None


class InferenceCalls:
    """Decode, queue, encode, count and log inference requests, for any HTTP front end."""

    def __init__(self, dataplane: DataPlane, metrics: ServerMetrics, access_log: bool = True):
        self.dataplane = dataplane
        self.metrics = metrics
        self.access_log = access_log
        self.max_request_bytes = dataplane.settings.max_request_bytes
        self._counters: dict[tuple[str, str, str], Any] = {}
        self._durations: dict[tuple[str, str], Any] = {}
        self._inflight = metrics.inflight.labels(PROTOCOL)
        self._request_size = metrics.request_size.labels(PROTOCOL)
        self._response_size = metrics.response_size.labels(PROTOCOL)

    def open(self, name: str, version: str | None, path: str, client: str) -> InferCall:
        """A request has arrived; `answer` or `fail` closes it."""
        self._inflight.inc()
        return InferCall(name, version, path, client)

    def begin(self, call: InferCall, body: bytes, header_length: bytes | None) -> None:
        """Decode the body and queue it on the model's batcher (`call.pending`); raises on
        bad input, an unknown model or a full queue."""
        served = self.dataplane.repository.get(call.name, call.label or None)
        call.label = served.version_label
        self._request_size.observe(len(body))
        length = _header_length(header_length)
        single = served.input_metadata[0] if length == 0 else None
        request = codec.decode_request(body, length, single)
        call.pending = served.begin(request, self.dataplane.settings.request_timeout_s)

    def answer(self, call: InferCall) -> tuple[bytes, Headers]:
        """The response body and headers once `call.pending` is done; raises what failed."""
        assert call.pending is not None
        payload, json_length = codec.encode_response(call.pending.response(),
                                                     call.pending.request)
        self._inflight.dec()
        self._count(call, "200")
        self._duration(call).observe(time.perf_counter() - call.started)
        self._response_size.observe(len(payload))
        self._log(call, 200, len(payload))
        if json_length is None:
            return payload, [(b"content-type", JSON_TYPE)]
        return payload, [(b"content-type", BINARY_TYPE),
                         (b"inference-header-content-length", str(json_length).encode())]

    def fail(self, call: InferCall, exc: BaseException) -> tuple[int, bytes, Headers]:
        """The error answer (status, body, headers) for what `begin` or `answer` raised."""
        self._inflight.dec()
        error = error_response(exc if isinstance(exc, Exception) else RuntimeError(str(exc)))
        headers = [(k, v) for k, v in error.raw_headers if k != b"content-length"]
        self._count(call, str(error.status_code))
        self._log(call, error.status_code, len(error.body))
        return error.status_code, bytes(error.body), headers

    def abandon(self, call: InferCall) -> None:
        """The client went away before its answer: counted and logged as status 499."""
        self._inflight.dec()
        self._count(call, CLIENT_CLOSED)
        self._log(call, int(CLIENT_CLOSED), 0)


    def _log(self, call: InferCall, status: int, size: int) -> None:
        if self.access_log and access.enabled():
            access.log_request(protocol=PROTOCOL, method="POST", path=call.path, status=status,
                               bytes=size,
                               duration_ms=round((time.perf_counter() - call.started) * 1000, 3),
                               client=call.client)

    def _count(self, call: InferCall, status: str) -> None:
        key = (call.name, call.label, status)
        counter = self._counters.get(key)
        if counter is None:
            counter = self._counters[key] = self.metrics.requests.labels(
                call.name, call.label, PROTOCOL, status)
        counter.inc()

    def _duration(self, call: InferCall) -> Any:
        key = (call.name, call.label)
        histogram = self._durations.get(key)
        if histogram is None:
            histogram = self._durations[key] = self.metrics.request_duration.labels(
                call.name, call.label, PROTOCOL)
        return histogram


class InferEndpoint:
    """ASGI middleware answering inference requests itself and passing everything else on."""

    def __init__(self, app: ASGIApp, calls: InferenceCalls):
        self.app = app
        self.calls = calls

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] == "POST":
            match = INFER_PATH.fullmatch(scope["path"])
            if match is not None:
                await self._infer(match.group(1), match.group(2), scope, receive, send)
                return
        await self.app(scope, receive, send)

    async def _infer(self, name: str, version: str | None, scope: Scope, receive: Receive,
                     send: Send) -> None:
        client = scope.get("client") or ("", 0)
        call = self.calls.open(name, version, scope["path"], client[0])
        try:
            headers = _headers(scope)
            body = await read_limited_body(receive, headers, self.calls.max_request_bytes)
            self.calls.begin(call, body, headers.get(b"inference-header-content-length"))
            assert call.pending is not None
            await call.pending.future
            payload, extra = self.calls.answer(call)
            status = 200
        except Exception as exc:
            status, payload, extra = self.calls.fail(call, exc)
        length = (b"content-length", str(len(payload)).encode())
        await send({"type": "http.response.start", "status": status, "headers": [*extra, length]})
        await send({"type": "http.response.body", "body": payload})


def _headers(scope: Scope) -> dict[bytes, bytes]:
    return {key: value for key, value in scope["headers"]
            if key in (b"content-length", b"inference-header-content-length")}


def too_large(limit: int, size: int | None = None) -> RequestTooLargeError:
    """The 413 error for a body past `limit` (of `size` bytes when it was declared)."""
    what = "request body" if size is None else f"request body of {size} bytes"
    return RequestTooLargeError(f"{what} is over the limit of {limit} bytes")


async def read_limited_body(receive: Receive, headers: dict[bytes, bytes], limit: int) -> bytes:
    declared = headers.get(b"content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise too_large(limit, int(declared))
    message = await receive()
    body: bytes = message.get("body", b"")
    if not message.get("more_body", False) and len(body) <= limit:
        return body
    chunks, size = [body], len(body)
    if size > limit:
        raise too_large(limit)
    while message.get("more_body", False):
        message = await receive()
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise too_large(limit)
        chunks.append(chunk)
    return b"".join(chunks)


def _header_length(value: bytes | None) -> int | None:
    if value is None:
        return None
    if not value.isdigit():
        raise InvalidInputError("Inference-Header-Content-Length must be a number, got"
                                f" {value.decode(errors='replace')!r}")
    return int(value)
