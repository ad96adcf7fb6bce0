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
from collections.abc import Iterable

from starlette.types import ASGIApp, Receive, Scope, Send

from ferry.errors import InvalidInputError, RequestTooLargeError
from ferry.serve.dataplane import DataPlane
from ferry.serve.metrics import ServerMetrics
from ferry.serve.model import PendingInference
from ferry.serve.outcomes import classify
from ferry.serve.recorder import RequestRecord, RequestRecorder
from ferry.serve.rest import codec
from ferry.serve.rest.compression import compress, decompress, response_encoding

INFER_PATH = re.compile(r"/v2/models/([^/]+)(?:/versions/([^/]+))?/infer")
PROTOCOL = "http"
JSON_TYPE = b"application/json"
BINARY_TYPE = b"application/octet-stream"
HEADER_LENGTH = b"inference-header-content-length"
CONTENT_ENCODING = b"content-encoding"
ACCEPT_ENCODING = b"accept-encoding"
CONTENT_LENGTH = b"content-length"
INFER_HEADERS = frozenset((HEADER_LENGTH, CONTENT_ENCODING, ACCEPT_ENCODING, CONTENT_LENGTH))
"""The request headers the inference endpoint reads (lower case)."""

Headers = list[tuple[bytes, bytes]]
_MAX_LENGTH_DIGITS = 19
"""A byte count never needs more digits; more would only make `int()` slow."""


class InferCall:
    """One inference request on its way through: its model, headers and record."""

    __slots__ = ("headers", "name", "pending", "record", "version")

    def __init__(self, name: str, version: str | None, headers: dict[bytes, bytes],
                 record: RequestRecord):
        self.name = name
        self.version = version
        self.headers = headers
        self.record = record
        self.pending: PendingInference | None = None


class InferenceCalls:
    """Decode, queue and encode inference requests for any HTTP front end; the data plane
    answers them and the request recorder counts and logs them."""

    def __init__(self, dataplane: DataPlane, metrics: ServerMetrics, access_log: bool = True):
        self.dataplane = dataplane
        self.recorder = RequestRecorder(metrics, PROTOCOL, access_log, dataplane.capture)
        self.max_request_bytes = dataplane.settings.max_request_bytes

    def open(self, name: str, version: str | None, path: str, client: str,
             headers: dict[bytes, bytes]) -> InferCall:
        """A request has arrived (`headers`: those of `INFER_HEADERS` it has); `answer`,
        `fail` or `abandon` closes it."""
        record = self.recorder.open("POST", path, client)
        record.model = name
        return InferCall(name, version, headers, record)

    def begin(self, call: InferCall, body: bytes) -> None:
        """Decode the body and queue it on the model's batcher (`call.pending`); raises on
        bad input, an unknown model or a full queue."""
        served = self.dataplane.served(call.name, call.version)
        self.recorder.resolved(call.record, served, len(body))
        body = decompress(body, call.headers.get(CONTENT_ENCODING), self.max_request_bytes)
        length = _header_length(call.headers.get(HEADER_LENGTH))
        single = served.input_metadata[0] if length == 0 else None
        request = codec.decode_request(body, length, single)
        call.record.request_id = request.id or ""  # kept if the model refuses the request
        call.pending = self.dataplane.begin_infer(served, request)
        self.recorder.queued(call.record, call.pending, call.version)

    def answer(self, call: InferCall) -> tuple[bytes, Headers]:
        """The response body and headers once `call.pending` is done; raises what failed."""
        assert call.pending is not None
        payload, json_length = codec.encode_response(call.pending.response(),
                                                     call.pending.request)
        payload, encoding = compress(payload,
                                     response_encoding(call.headers.get(ACCEPT_ENCODING)))
        self.recorder.succeeded(call.record, len(payload))
        headers = [(b"content-type", JSON_TYPE if json_length is None else BINARY_TYPE)]
        if json_length is not None:
            headers.append((HEADER_LENGTH, str(json_length).encode()))
        if encoding is not None:
            headers.append((CONTENT_ENCODING, encoding.encode()))
        return payload, headers

    def fail(self, call: InferCall, exc: BaseException) -> tuple[int, bytes, Headers]:
        """The error answer (status, body, headers) for what `begin` or `answer` raised."""
        failure = classify(exc)
        body = codec.dumps({"error": failure.message})
        self.recorder.failed(call.record, failure, len(body))
        headers = [(b"content-type", JSON_TYPE),
                   *[(k.encode(), v.encode()) for k, v in failure.headers]]
        return failure.status.http, body, headers

    def abandon(self, call: InferCall) -> None:
        """The client went away before its answer: counted and logged as status 499."""
        self.recorder.abandoned(call.record)


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
        headers = infer_headers(scope["headers"])
        call = self.calls.open(name, version, scope["path"], client[0], headers)
        try:
            body = await read_limited_body(receive, headers, self.calls.max_request_bytes)
            self.calls.begin(call, body)
            assert call.pending is not None
            await call.pending.future
            payload, extra = self.calls.answer(call)
            status = 200
        except Exception as exc:
            status, payload, extra = self.calls.fail(call, exc)
        length = (CONTENT_LENGTH, str(len(payload)).encode())
        await send({"type": "http.response.start", "status": status, "headers": [*extra, length]})
        await send({"type": "http.response.body", "body": payload})


def infer_headers(headers: Iterable[tuple[bytes, bytes]]) -> dict[bytes, bytes]:
    """The headers the inference endpoint reads, by name (uvicorn and ASGI give names in
    lower case)."""
    return {key: value for key, value in headers if key in INFER_HEADERS}


def too_large(limit: int, size: int | None = None) -> RequestTooLargeError:
    """The 413 error for a body past `limit` (of `size` bytes when it was declared)."""
    what = "request body" if size is None else f"request body of {size} bytes"
    return RequestTooLargeError(f"{what} is over the limit of {limit} bytes")


async def read_limited_body(receive: Receive, headers: dict[bytes, bytes], limit: int) -> bytes:
    declared = headers.get(CONTENT_LENGTH)
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
    if not value.isdigit() or len(value) > _MAX_LENGTH_DIGITS:
        shown = value[:_MAX_LENGTH_DIGITS + 1].decode(errors="replace")
        raise InvalidInputError("Inference-Header-Content-Length must be a number of bytes,"
                                f" got {shown!r}")
    return int(value)
