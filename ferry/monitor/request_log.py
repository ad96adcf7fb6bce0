"""The request log: the newest captured requests of one model, one line each, for looking at
what happened (`ferry log`); `ferry.monitor.traffic` sums the same events up."""

from __future__ import annotations

from contextlib import nullcontext
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from ferry.errors import InvalidInputError
from ferry.monitor.events import Outcome
from ferry.monitor.store import MonitoringStore, open_store
from ferry.monitor.traffic import DEFAULT_SINCE, Span, Target, Window
from ferry.registry import Registry

DEFAULT_LIMIT = 50


@dataclass(frozen=True, slots=True)
class LoggedRequest:
    ts: datetime
    request_id: str
    version: int
    alias: str | None
    protocol: str
    status: str
    latency_ms: float
    batch_size: int
    request_bytes: int
    response_bytes: int

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "ts": self.ts.isoformat()}


def request_log(uri: str, since: Span = DEFAULT_SINCE, status: str | None = None,
                limit: int = DEFAULT_LIMIT, *, store: MonitoringStore | None = None,
                now: datetime | None = None,
                registry: Registry | None = None) -> list[LoggedRequest]:
    """The newest `limit` requests of the model `uri` names within the last `since`, oldest
    first; with `status` (an `Outcome` value: ok, invalid_input, ...), only those."""
    wanted = check_status(status)
    if limit < 1:
        raise InvalidInputError(f"limit must be at least 1, got {limit}")
    window, target = Window.ending(since, now), Target.of(uri, registry)
    with nullcontext(store) if store is not None else open_store() as source:
        events = source.events(target.model, target.version, since=window.start,
                               until=window.end, limit=None if wanted else limit)
    if wanted is not None:
        events = events.filter(pc.equal(events["status"], str(wanted)))
    return logged(events.slice(max(0, events.num_rows - limit)))


def check_status(status: str | None, what: str = "status") -> Outcome | None:
    if status is None:
        return None
    try:
        return Outcome(status)
    except ValueError:
        known = ", ".join(outcome.value for outcome in Outcome)
        raise InvalidInputError(f"{what} {status!r} is not a request outcome; one of {known}"
                                ) from None


def logged(events: pa.Table) -> list[LoggedRequest]:
    """Rows of an `EVENTS_SCHEMA` table as log lines (for a page of rows: objects are slow)."""
    return [LoggedRequest(ts=row["ts"], request_id=row["request_id"], version=row["version"],
                          alias=row["alias"], protocol=row["protocol"], status=row["status"],
                          latency_ms=row["latency_s"] * 1000, batch_size=row["batch_size"],
                          request_bytes=row["request_bytes"],
                          response_bytes=row["response_bytes"])
            for row in events.to_pylist()]
