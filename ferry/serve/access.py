"""The access log: one JSON line per request, whatever the protocol, on `ferry.access`.

Writing a line must not cost the request path a system call: `BufferedStreamHandler` keeps
lines in the stream's buffer and flushes at most every `FLUSH_INTERVAL_S` (and at close).
"""

from __future__ import annotations

import logging
import sys
import time
from typing import Any, TextIO

import orjson

FLUSH_INTERVAL_S = 0.5
log = logging.getLogger("ferry.access")


def enabled() -> bool:
    return log.isEnabledFor(logging.INFO)


def log_request(**fields: Any) -> None:
    log.info(orjson.dumps(fields).decode())


class BufferedStreamHandler(logging.StreamHandler):  # type: ignore[type-arg,unused-ignore]
    """A stream handler that flushes on a timer instead of after every line."""

    def __init__(self, stream: TextIO | None = None):
        super().__init__(stream or sys.stderr)
        self._flushed = time.monotonic()

    def flush(self) -> None:
        now = time.monotonic()
        if now - self._flushed >= FLUSH_INTERVAL_S:
            self._flushed = now
            super().flush()

    def close(self) -> None:
        super().flush()
        super().close()


def configure(enabled_: bool, stream: TextIO | None = None) -> None:
    """Send access lines to `stream` (stderr) through a buffered handler, or turn them off."""
    log.propagate = False
    log.handlers.clear()
    if enabled_:
        handler = BufferedStreamHandler(stream)
        handler.setFormatter(logging.Formatter("%(asctime)s %(name)s %(message)s"))
        log.addHandler(handler)
    log.setLevel(logging.INFO if enabled_ else logging.WARNING)
