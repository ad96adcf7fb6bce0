"""One structured (JSON) access-log line per HTTP request (see `ferry.serve.access`)."""

from __future__ import annotations

import time
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ferry.serve import access


class AccessLog:
    """ASGI middleware: method, path, status, bytes out and duration of every request."""

    def __init__(self, app: ASGIApp):
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not access.enabled():
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        state: dict[str, Any] = {"status": 500, "bytes": 0}

        async def record(message: Message) -> None:
            if message["type"] == "http.response.start":
                state["status"] = message["status"]
            elif message["type"] == "http.response.body":
                state["bytes"] += len(message.get("body", b""))
            await send(message)

        try:
            await self.app(scope, receive, record)
        finally:
            client = scope.get("client") or ("", 0)
            access.log_request(
                protocol="http", method=scope["method"], path=scope["path"],
                status=state["status"], bytes=state["bytes"],
                duration_ms=round((time.perf_counter() - started) * 1000, 3), client=client[0])
