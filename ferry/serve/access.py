"""The server's logs as JSON lines on stderr: one JSON object per line, nothing around it.

Every object starts with `ts`, when it was written: ISO-8601 in UTC with milliseconds and a
`Z` (`2025-05-01T12:00:00.123Z`). The access log (`ferry.access`, one line per request,
whatever the protocol) adds the request's fields (protocol, method, path, model, version,
status, bytes, duration_ms, client); every other record (`configure_logging`) adds `level`,
`logger`, `message`, and `exc` (the traceback) when it has one.

An access line is one `orjson.dumps` on the request path; the date and time up to the second
is formatted once per second. `BufferedStreamHandler` flushes at most every
`FLUSH_INTERVAL_S` (and at close) on streams that buffer.
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


class UtcClock:
    """ISO-8601 UTC timestamps with milliseconds, the part up to the second cached."""

    def __init__(self) -> None:
        self._second = (-1, "")

    def stamp(self, at: float | None = None) -> str:
        """`at` (seconds since the epoch; default now) as `YYYY-MM-DDTHH:MM:SS.mmmZ`."""
        now = time.time() if at is None else at
        second, prefix = self._second
        if int(now) != second:
            second = int(now)
            prefix = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))
            self._second = (second, prefix)
        return f"{prefix}.{min(int((now - second) * 1000), 999):03d}Z"


clock = UtcClock()


def log_request(**fields: Any) -> None:
    """One access line: `ts`, then `fields`."""
    log.info(orjson.dumps({"ts": clock.stamp(), **fields}).decode())


class JsonLineFormatter(logging.Formatter):
    """Any log record as one JSON object on one line (see the module docstring)."""

    def format(self, record: logging.LogRecord) -> str:
        fields = {"ts": clock.stamp(record.created), "level": record.levelname,
                  "logger": record.name, "message": record.getMessage()}
        if record.exc_info:
            fields["exc"] = self.formatException(record.exc_info)
        return orjson.dumps(fields).decode()


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
        handler.setFormatter(logging.Formatter("%(message)s"))  # the message is the JSON
        log.addHandler(handler)
    log.setLevel(logging.INFO if enabled_ else logging.WARNING)


def configure_logging(access_log: bool, stream: TextIO | None = None) -> None:
    """A server process's logging: every record at INFO and above as a JSON line on `stream`
    (stderr), and the access log on or off (`configure`)."""
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(JsonLineFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.INFO)
    configure(access_log, stream)
