"""HTTP/1.1 for `ferry serve`: uvicorn's httptools protocol, with inference answered from the
parser's callbacks.

uvicorn runs every request as an ASGI task: a scope, receive and send awaitables, header
checks, and the status line and the body written in two packets. For the inference path that
is most of the server's time per request. Here an inference request is decoded when its body
is complete, queued on the batcher, and answered by a callback on the batch's future, in one
write, with no task of its own. A stored-prediction GET (`/v2/models/{name}/predictions/
{key}`) whose batch run is held in memory is answered the same way, as soon as its headers
are in. Every other request, and a request pipelined behind one not yet answered, goes the
ASGI way to the same app (whose `InferEndpoint` and routes answer the same).
"""

from __future__ import annotations

import asyncio
import re
import time
from typing import Any
from urllib.parse import unquote

import httptools
from uvicorn.protocols.http.httptools_impl import STATUS_LINE, HttpToolsProtocol

from ferry.serve import access
from ferry.serve.rest.infer import (
    CONTENT_LENGTH,
    INFER_PATH,
    JSON_TYPE,
    Headers,
    InferCall,
    InferenceCalls,
    infer_headers,
    too_large,
)
from ferry.serve.rest.stored import held_answer
from ferry.serve.rest.upload import upload_timeout

_CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"
_FAST_PATH = re.compile(INFER_PATH.pattern.encode())
"""The inference path on the raw (still percent-encoded) bytes; one with a `%` goes the ASGI
way, which decodes it."""
_LOOKUP_PATH = re.compile(rb"/v2/models/([^/%]+)(?:/versions/([^/%]+))?/predictions/(.+)")
"""A stored-prediction GET; the key may be percent-encoded, the name and version may not."""
_JSON_HEADERS = [(b"content-type", JSON_TYPE)]


class _NoEvent:
    """uvicorn sets the cycle's event when the connection goes; a callback needs none."""

    def set(self) -> None:
        pass


_NO_EVENT = _NoEvent()


class InferExchange:
    """One inference request read by the protocol (it stands in for uvicorn's cycle)."""

    __slots__ = (
        "body",
        "call",
        "disconnected",
        "keep_alive",
        "message_event",
        "over_limit",
        "reading",
        "response_complete",
        "size",
        "timer",
    )

    def __init__(self, call: InferCall, keep_alive: bool):
        self.call = call
        self.body: list[bytes] = []
        self.size = 0
        self.over_limit = False
        self.keep_alive = keep_alive
        self.response_complete = False
        self.disconnected = False
        self.message_event = _NO_EVENT
        self.reading = True
        """Until the body is complete."""
        self.timer: asyncio.TimerHandle | None = None
        """The request timeout for the body, armed when it does not come with the headers."""


class LookupExchange:
    """A stored-prediction GET answered at once (it stands in for uvicorn's cycle)."""

    __slots__ = ("disconnected", "keep_alive", "message_event", "response_complete")

    def __init__(self, keep_alive: bool):
        self.keep_alive = keep_alive
        self.response_complete = False
        self.disconnected = False
        self.message_event = _NO_EVENT


class InferHttpProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with the inference fast path; see the module docstring.
    `protocol_class(calls, upload_timeout_s)` binds it to a server's `InferenceCalls`."""

    calls: InferenceCalls
    _idle_since: float | None = None
    """When the last response went out (loop time); None while a request is coming in."""
    upload_timeout_s: float
    """A body not complete this long after its headers is answered 408 (and the connection
    closed)."""

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        exchange = self.cycle
        if isinstance(exchange, InferExchange) and exchange.reading and exchange.timer is None:
            exchange.timer = self.loop.call_later(self.upload_timeout_s, self._upload_expired,
                                                  exchange)

    def _upload_expired(self, exchange: InferExchange) -> None:
        exchange.timer = None
        if exchange.reading and not exchange.response_complete:
            exchange.keep_alive = False  # what is left of the body must not parse as a request
            self._fail(exchange, upload_timeout(self.upload_timeout_s))

    def on_message_begin(self) -> None:
        """What uvicorn's does, but the ASGI scope waits until a request needs it
        (`_asgi_way`): an inference request never does."""
        self.url = b""
        self.expect_100_continue = False
        self.headers = []

    def _asgi_way(self) -> None:
        """Hand the request to uvicorn's ASGI cycle, with the scope it would have built."""
        url, headers, expect = self.url, self.headers, self.expect_100_continue
        super().on_message_begin()  # the scope, holding a new `self.headers`
        self.url, self.expect_100_continue = url, expect
        self.headers.extend(headers)
        super().on_headers_complete()

    def on_headers_complete(self) -> None:
        method = self.parser.get_method()
        if method == b"POST" and self._idle():
            path = _path(self.url)
            match = _FAST_PATH.fullmatch(path)
            if match is not None and b"%" not in path:
                self._begin_exchange(match.group(1).decode(),
                                     _optional(match.group(2)), path.decode())
                return
        elif method == b"GET" and self._idle() and self._lookup():
            return
        self._asgi_way()

    def _lookup(self) -> bool:
        """Answer a stored-prediction GET now, if the run is held; False: go the ASGI way."""
        url = httptools.parse_url(self.url)
        target = _lookup_target(url.path)
        if target is None:
            return False
        started = time.perf_counter()
        name, version, key = target
        answer = held_answer(self.calls.dataplane, name, version, url.query or b"", key)
        if answer is None:
            return False
        exchange = LookupExchange(self.parser.get_http_version() == "1.1"
                                  and self.parser.should_keep_alive())
        self.cycle = exchange  # type: ignore[assignment]
        self._write(exchange, answer[0], answer[1], _JSON_HEADERS)
        if self.calls.recorder.access_log and access.enabled():
            access.log_request(protocol="http", method="GET", path=unquote(url.path.decode()),
                               status=answer[0], bytes=len(answer[1]),
                               duration_ms=round((time.perf_counter() - started) * 1000, 3),
                               client=self.client[0] if self.client else "")
        return True

    def _idle(self) -> bool:
        return (not self.pipeline and self.limit_concurrency is None
                and (self.cycle is None or self.cycle.response_complete)
                and not self.parser.should_upgrade())

    def _begin_exchange(self, name: str, version: str | None, path: str) -> None:
        client = self.client[0] if self.client else ""
        headers = infer_headers(self.headers)
        declared = headers.get(CONTENT_LENGTH)
        keep_alive = (self.parser.get_http_version() == "1.1"
                      and self.parser.should_keep_alive())
        exchange = InferExchange(self.calls.open(name, version, path, client, headers),
                                 keep_alive)
        self.cycle = exchange  # type: ignore[assignment]
        limit = self.calls.max_request_bytes
        if declared is not None and declared.isdigit() and int(declared) > limit:
            exchange.over_limit = True
            if self.expect_100_continue:  # refuse before the client sends the body
                exchange.keep_alive = False
                self._fail(exchange, too_large(limit, int(declared)))
        elif self.expect_100_continue:
            self.transport.write(_CONTINUE)

    def on_body(self, body: bytes) -> None:
        exchange = self.cycle
        if not isinstance(exchange, InferExchange):
            super().on_body(body)
            return
        if exchange.response_complete or exchange.over_limit:
            return
        exchange.size += len(body)
        if exchange.size > self.calls.max_request_bytes:
            exchange.over_limit = True
            exchange.body.clear()
            return
        exchange.body.append(body)

    def on_message_complete(self) -> None:
        exchange = self.cycle
        if not isinstance(exchange, InferExchange):
            super().on_message_complete()
            return
        _stop_reading(exchange)
        if exchange.response_complete:
            return
        if exchange.over_limit:
            self._fail(exchange, too_large(self.calls.max_request_bytes))
            return
        body = exchange.body[0] if len(exchange.body) == 1 else b"".join(exchange.body)
        exchange.body = []
        try:
            self.calls.begin(exchange.call, body)
        except Exception as exc:
            self._fail(exchange, exc)
            return
        assert exchange.call.pending is not None
        exchange.call.pending.future.add_done_callback(
            lambda _future: self._answer(exchange))

    def _answer(self, exchange: InferExchange) -> None:
        if exchange.disconnected:
            self.calls.abandon(exchange.call)
            exchange.response_complete = True
            return
        try:
            payload, headers = self.calls.answer(exchange.call)
        except BaseException as exc:  # the batch's error, or a cancelled future
            self._fail(exchange, exc)
            return
        self._write(exchange, 200, payload, headers)

    def _fail(self, exchange: InferExchange, exc: BaseException) -> None:
        status, payload, headers = self.calls.fail(exchange.call, exc)
        self._write(exchange, status, payload, headers)

    def _write(self, exchange: InferExchange | LookupExchange, status: int, payload: bytes,
               headers: Headers) -> None:
        """Status line, headers and body in one write; then what uvicorn does after a
        response (keep-alive timer, the next pipelined request, or closing)."""
        if exchange.response_complete:
            return
        exchange.response_complete = True
        if exchange.disconnected:
            return
        content = [STATUS_LINE[status]]
        for key, value in [*self.server_state.default_headers, *headers]:
            content += [key, b": ", value, b"\r\n"]
        content += [b"content-length: ", str(len(payload)).encode(), b"\r\n"]
        if not exchange.keep_alive:
            content.append(b"connection: close\r\n")
        content += [b"\r\n", payload]
        self.transport.write(b"".join(content))
        if not exchange.keep_alive:
            self.transport.close()
        self.on_response_complete()

    def on_response_complete(self) -> None:
        """uvicorn's, with one keep-alive timer per connection instead of one armed at every
        response and cancelled at the next request: the timer, when it fires, closes the
        connection only if it has been idle for the whole keep-alive time."""
        if self.pipeline:
            super().on_response_complete()
            return
        self.server_state.total_requests += 1
        if self.transport.is_closing():
            return
        self.flow.resume_reading()
        self._idle_since = self.loop.time()
        if self.timeout_keep_alive_task is None:
            self.timeout_keep_alive_task = self.loop.call_later(self.timeout_keep_alive,
                                                                self._keep_alive_expired)

    def _unset_keepalive_if_required(self) -> None:
        """Data came in: the connection is busy (uvicorn cancels the timer here)."""
        self._idle_since = None

    def _keep_alive_expired(self) -> None:
        self.timeout_keep_alive_task = None
        if self._idle_since is None:
            return  # busy: the next response arms the timer again
        left = self._idle_since + self.timeout_keep_alive - self.loop.time()
        if left > 0:
            self.timeout_keep_alive_task = self.loop.call_later(left, self._keep_alive_expired)
        else:
            self.timeout_keep_alive_handler()

    def connection_lost(self, exc: Exception | None) -> None:
        exchange = self.cycle
        if isinstance(exchange, InferExchange) and not exchange.response_complete:
            pending = exchange.call.pending
            if pending is not None:
                pending.future.cancel()  # the batcher skips a request nobody waits for
            elif exchange.reading:  # the client left during its upload
                exchange.response_complete = True
                self.calls.abandon(exchange.call)
        if isinstance(exchange, InferExchange):
            _stop_reading(exchange)
        super().connection_lost(exc)
        if self.timeout_keep_alive_task is not None:
            self.timeout_keep_alive_task.cancel()
            self.timeout_keep_alive_task = None


def _stop_reading(exchange: InferExchange) -> None:
    exchange.reading = False
    if exchange.timer is not None:
        exchange.timer.cancel()
        exchange.timer = None


def _lookup_target(path: bytes) -> tuple[str, str | None, str] | None:
    """The model, version and (decoded) key of a stored-prediction path, or None."""
    match = _LOOKUP_PATH.fullmatch(path)
    if match is None or not path.isascii():
        return None
    version = match.group(2)
    return (match.group(1).decode(), None if version is None else version.decode(),
            unquote(match.group(3).decode()))


def _path(url: bytes) -> bytes:
    """The path of a request target (an origin-form target without a query is one)."""
    if url.startswith(b"/") and b"?" not in url and b"#" not in url:
        return url
    return httptools.parse_url(url).path


def _optional(value: bytes | None) -> str | None:
    return None if value is None else value.decode()


def protocol_class(calls: InferenceCalls, upload_timeout_s: float) -> type[Any]:
    """An `InferHttpProtocol` bound to one server's inference calls, for `uvicorn.Config`."""
    return type("FerryHttpProtocol", (InferHttpProtocol,),
                {"calls": calls, "upload_timeout_s": upload_timeout_s})
