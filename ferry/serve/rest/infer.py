"""The inference endpoint as a bare ASGI app, in front of the Starlette routes.

`POST /v2/models/{name}[/versions/{version}]/infer` is the one path that runs thousands of
times a second, so it skips routing, middleware and request/response objects: match the path,
read the body, decode, submit to the model's batcher, send the answer. Every other path goes
on to the Starlette app. Errors become `{"error": ...}` through the same mapping.
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
from ferry.serve.rest import codec
from ferry.serve.rest.errors import error_response

INFER_PATH = re.compile(r"/v2/models/([^/]+)(?:/versions/([^/]+))?/infer")
PROTOCOL = "http"
_JSON_HEADERS = [(b"content-type", b"application/json")]
_BINARY_TYPE = (b"content-type", b"application/octet-stream")


class InferEndpoint:
    """ASGI middleware answering inference requests itself and passing everything else on."""

    def __init__(self, app: ASGIApp, dataplane: DataPlane, metrics: ServerMetrics,
                 access_log: bool = True):
        self.app = app
        self.access_log = access_log
        self.dataplane = dataplane
        self.metrics = metrics
        self._counters: dict[tuple[str, str, str], Any] = {}
        self._durations: dict[tuple[str, str], Any] = {}
        self._inflight = metrics.inflight.labels(PROTOCOL)
        self._request_size = metrics.request_size.labels(PROTOCOL)
        self._response_size = metrics.response_size.labels(PROTOCOL)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] == "POST":
            match = INFER_PATH.fullmatch(scope["path"])
            if match is not None:
                await self._infer(match.group(1), match.group(2), scope, receive, send)
                return
        await self.app(scope, receive, send)

    async def _infer(self, name: str, version: str | None, scope: Scope, receive: Receive,
                     send: Send) -> None:
        started = time.perf_counter()
        label = version or ""
        self._inflight.inc()
        try:
            served = self.dataplane.repository.get(name, version)
            label = served.version_label
            headers = _headers(scope)
            limit = self.dataplane.settings.max_request_bytes
            body = await read_limited_body(receive, headers, limit)
            self._request_size.observe(len(body))
            header_length = _header_length(headers)
            single = served.metadata(()).inputs[0] if header_length == 0 else None
            request = codec.decode_request(body, header_length, single)
            response = await served.infer(request, self.dataplane.settings.request_timeout_s)
            payload, json_length = codec.encode_response(response, request)
        except Exception as exc:
            error = error_response(exc)
            self._count(name, label, str(error.status_code))
            await error(scope, receive, send)
            self._log(scope, error.status_code, len(error.body), started)
            return
        finally:
            self._inflight.dec()
        await _send(send, payload, json_length)
        self._count(name, label, "200")
        self._duration(name, label).observe(time.perf_counter() - started)
        self._response_size.observe(len(payload))
        self._log(scope, 200, len(payload), started)

    def _log(self, scope: Scope, status: int, size: int, started: float) -> None:
        if self.access_log and access.enabled():
            client = scope.get("client") or ("", 0)
            access.log_request(protocol=PROTOCOL, method="POST", path=scope["path"],
                               status=status, bytes=size,
                               duration_ms=round((time.perf_counter() - started) * 1000, 3),
                               client=client[0])

    def _count(self, name: str, version: str, status: str) -> None:
        key = (name, version, status)
        counter = self._counters.get(key)
        if counter is None:
            counter = self._counters[key] = self.metrics.requests.labels(
                name, version, PROTOCOL, status)
        counter.inc()

    def _duration(self, name: str, version: str) -> Any:
        key = (name, version)
        histogram = self._durations.get(key)
        if histogram is None:
            histogram = self._durations[key] = self.metrics.request_duration.labels(
                name, version, PROTOCOL)
        return histogram


def _headers(scope: Scope) -> dict[bytes, bytes]:
    return {key: value for key, value in scope["headers"]
            if key in (b"content-length", b"inference-header-content-length")}


async def read_limited_body(receive: Receive, headers: dict[bytes, bytes], limit: int) -> bytes:
    declared = headers.get(b"content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise RequestTooLargeError(f"request body of {int(declared)} bytes is over the limit"
                                   f" of {limit} bytes")
    message = await receive()
    body: bytes = message.get("body", b"")
    if not message.get("more_body", False) and len(body) <= limit:
        return body
    chunks, size = [body], len(body)
    if size > limit:
        raise RequestTooLargeError(f"request body is over the limit of {limit} bytes")
    while message.get("more_body", False):
        message = await receive()
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise RequestTooLargeError(f"request body is over the limit of {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


def _header_length(headers: dict[bytes, bytes]) -> int | None:
    value = headers.get(b"inference-header-content-length")
    if value is None:
        return None
    if not value.isdigit():
        raise InvalidInputError("Inference-Header-Content-Length must be a number, got"
                                f" {value.decode(errors='replace')!r}")
    return int(value)


async def _send(send: Send, payload: bytes, json_length: int | None) -> None:
    length = (b"content-length", str(len(payload)).encode())
    if json_length is None:
        headers = [*_JSON_HEADERS, length]
    else:
        headers = [_BINARY_TYPE, length,
                   (b"inference-header-content-length", str(json_length).encode())]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": payload})
