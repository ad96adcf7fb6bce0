"""What the capture records and how it writes (no imports beyond ferry.errors: the CLI reads
the defaults for its help text)."""

from __future__ import annotations

import math
from dataclasses import dataclass

from ferry.errors import InvalidInputError

DEFAULT_QUEUE_SIZE = 10_000
DEFAULT_MAX_QUEUED_BYTES = 64 * 1024 * 1024
DEFAULT_FLUSH_INTERVAL_S = 1.0
DEFAULT_FLUSH_EVENTS = 5000
"""Events that wake the writer before its interval: half the queue, so a busy server
flushes about once a second (each flush has a fixed cost: a transaction, chunk merges)."""
DEFAULT_ROWS_PER_S = 100
"""Sampled rows kept per model version per second before reservoir sampling: 60,000 rows in
a ten-minute drift window, and what the capture holds and writes stays a small share of a
busy server's requests (bench/monitor/RESULTS.md, capture cost)."""


@dataclass(frozen=True)
class CaptureSettings:
    enabled: bool = True
    queue_size: int = DEFAULT_QUEUE_SIZE
    """Requests waiting to be written; more are dropped and counted."""
    max_queued_bytes: int = DEFAULT_MAX_QUEUED_BYTES
    """Bytes of sampled rows the sampler may hold until their second is written: once its
    buffers reach it, no more rows are sampled until seconds are written (a buffer's last
    doubling may pass it)."""
    flush_interval_s: float = DEFAULT_FLUSH_INTERVAL_S
    flush_events: int = DEFAULT_FLUSH_EVENTS
    sample_rows_per_s: int = DEFAULT_ROWS_PER_S
    """Rows kept per model version per second before reservoir sampling; 0 keeps none."""
    store_url: str | None = None
    """None: `FERRY_MONITORING_URL`, else the embedded store under `FERRY_HOME`."""

    def __post_init__(self) -> None:
        _at_least("queue_size", self.queue_size, 1)
        _at_least("max_queued_bytes", self.max_queued_bytes, 0)
        _at_least("flush_events", self.flush_events, 1)
        _at_least("sample_rows_per_s", self.sample_rows_per_s, 0)
        if not (self.flush_interval_s > 0 and math.isfinite(self.flush_interval_s)):
            raise InvalidInputError("capture flush_interval_s must be a positive number of"
                                    f" seconds, got {self.flush_interval_s}")


def _at_least(name: str, value: int, minimum: int) -> None:
    if value < minimum:
        raise InvalidInputError(f"capture {name} must be at least {minimum}, got {value}")
