"""The request timeout applied to uploads: a request whose body is not complete within the
server's `request_timeout_s` is answered 408 and its connection closed, so that a slow or
stalled client cannot hold a connection, and an in-flight request, past the timeout.

The inference fast path (`ferry.serve.rest.protocol`) keeps its own timer; `UploadDeadline`
does the same for every request that goes the ASGI way.
"""

from __future__ import annotations

import asyncio

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ferry.errors import RequestTimeoutError

CONNECTION_CLOSE = (b"connection", b"close")


def upload_timeout(timeout_s: float) -> RequestTimeoutError:
    return RequestTimeoutError(
        f"request body not complete within the server's request timeout ({timeout_s:g} s):"
        " send it in one go, or start the server with a longer --timeout-s")


class UploadDeadline:
    """ASGI middleware: `receive` fails with `RequestTimeoutError` (408) when the body is not
    complete `timeout_s` after the request began; the answer then closes the connection."""

    def __init__(self, app: ASGIApp, timeout_s: float):
        self.app = app
        self.timeout_s = timeout_s

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        body = _TimedBody(receive, send, self.timeout_s)
        await self.app(scope, body.receive, body.send)


class _TimedBody:
    """One request's `receive` with a deadline until its body is complete, and its `send`."""

    def __init__(self, receive: Receive, send: Send, timeout_s: float):
        self._receive = receive
        self._send = send
        self.timeout_s = timeout_s
        self.deadline = asyncio.get_running_loop().time() + timeout_s
        self.complete = False
        self.expired = False

    async def receive(self) -> Message:
        if self.complete:
            return await self._receive()
        try:
            async with asyncio.timeout_at(self.deadline):
                message = await self._receive()
        except TimeoutError:
            self.expired = True
            raise upload_timeout(self.timeout_s) from None
        self.complete = message["type"] != "http.request" or not message.get("more_body")
        return message

    async def send(self, message: Message) -> None:
        if self.expired and message["type"] == "http.response.start":
            message = {**message, "headers": [*message.get("headers", ()), CONNECTION_CLOSE]}
        await self._send(message)
