"""One structured (JSON) access-log line per HTTP request, on the `ferry.access` logger."""

from __future__ import annotations

import json
import logging
import time
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

log = logging.getLogger("ferry.access")


class AccessLog:
    """ASGI middleware: method, path, status, bytes out and duration of every request."""

    def __init__(self, app: ASGIApp):
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not log.isEnabledFor(logging.INFO):
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
            log.info(json.dumps({
                "method": scope["method"], "path": scope["path"], "status": state["status"],
                "bytes": state["bytes"], "duration_ms": round(
                    (time.perf_counter() - started) * 1000, 3), "client": client[0]}))
