"""The statistics extension: per model version counts and times, shaped as Triton reports them.

    success / fail          requests answered / failed, and their time from arrival to answer
    queue                   each request's wait for its batch
    compute_input           merging the batch's inputs (per request)
    compute_infer           the model call (per request)
    compute_output          splitting the outputs back (per request)
    inference_count         rows inferred;  execution_count: model calls (batches)
    batch_stats             per batch size (up to the model's max_batch_size): the three computes

Every figure is recorded on the event loop's thread (the batcher's observer and the request
recorder run there), so plain integers need no lock. The keys are the server's own: a batch
larger than `max_batch_size` (one big request) counts in the totals but gets no row of its own,
so no client can grow the table.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from ferry.serve.batching import BatchTiming

NS = 1_000_000_000


@dataclass(slots=True)
class Duration:
    """A count of events and their total time in nanoseconds."""

    count: int = 0
    ns: int = 0

    def add(self, seconds: float, times: int = 1) -> None:
        self.count += times
        self.ns += int(seconds * NS) * times


@dataclass(slots=True)
class BatchStatistics:
    batch_size: int
    compute_input: Duration = field(default_factory=Duration)
    compute_infer: Duration = field(default_factory=Duration)
    compute_output: Duration = field(default_factory=Duration)


@dataclass(slots=True)
class ModelStatistics:
    """One served version's statistics since it was loaded."""

    name: str
    version: str
    max_batch_size: int
    success: Duration = field(default_factory=Duration)
    fail: Duration = field(default_factory=Duration)
    queue: Duration = field(default_factory=Duration)
    compute_input: Duration = field(default_factory=Duration)
    compute_infer: Duration = field(default_factory=Duration)
    compute_output: Duration = field(default_factory=Duration)
    inference_count: int = 0
    execution_count: int = 0
    last_inference_ms: int = 0
    batches: dict[int, BatchStatistics] = field(default_factory=dict)

    def record_batch(self, timing: BatchTiming) -> None:
        """The batcher's observer: one model call and the requests it answered."""
        requests = len(timing.waits_s)
        self.execution_count += 1
        self.inference_count += timing.rows
        self.last_inference_ms = int(time.time() * 1000)
        for wait in timing.waits_s:
            self.queue.add(wait)
        self.compute_input.add(timing.input_s, requests)
        self.compute_infer.add(timing.infer_s, requests)
        self.compute_output.add(timing.output_s, requests)
        self._record_batch_size(timing)

    def _record_batch_size(self, timing: BatchTiming) -> None:
        if timing.rows > self.max_batch_size:
            return
        stats = self.batches.get(timing.rows)
        if stats is None:
            stats = self.batches[timing.rows] = BatchStatistics(timing.rows)
        stats.compute_input.add(timing.input_s)
        stats.compute_infer.add(timing.infer_s)
        stats.compute_output.add(timing.output_s)

    def record_request(self, succeeded: bool, seconds: float) -> None:
        """The request recorder: one request answered (or failed) after `seconds`."""
        (self.success if succeeded else self.fail).add(seconds)


def statistics_document(stats: ModelStatistics) -> dict[str, Any]:
    """One version's statistics as Triton's JSON (`GET /v2/models/{name}/stats`)."""
    return {
        "name": stats.name, "version": stats.version,
        "last_inference": stats.last_inference_ms,
        "inference_count": stats.inference_count, "execution_count": stats.execution_count,
        "inference_stats": {
            "success": _duration(stats.success), "fail": _duration(stats.fail),
            "queue": _duration(stats.queue), "compute_input": _duration(stats.compute_input),
            "compute_infer": _duration(stats.compute_infer),
            "compute_output": _duration(stats.compute_output),
            "cache_hit": _duration(Duration()), "cache_miss": _duration(Duration())},
        "batch_stats": [
            {"batch_size": size, "compute_input": _duration(batch.compute_input),
             "compute_infer": _duration(batch.compute_infer),
             "compute_output": _duration(batch.compute_output)}
            for size, batch in sorted(stats.batches.items())],
    }


def _duration(duration: Duration) -> dict[str, int]:
    return {"count": duration.count, "ns": duration.ns}
