"""Prometheus metrics, in base units (seconds, bytes), on a registry of the server's own.

    ferry_inference_requests_total{model,version,protocol,status}
    ferry_request_duration_seconds{model,version,protocol}   request in to response out
    ferry_queue_duration_seconds{model,version}              waiting for a batch slot
    ferry_compute_duration_seconds{model,version}            one batched model call
    ferry_stage_duration_seconds{model,version,stage}        a version with Python steps:
                                                             preprocess, compute, postprocess
    ferry_batch_size{model,version}                          rows per model call
    ferry_inflight_requests{protocol}
    ferry_request_size_bytes{protocol}, ferry_response_size_bytes{protocol}
    ferry_drift_score{model,version,feature,method}  a column's drift statistic  } set by the
    ferry_drift_detected{model,version}              1 when the dataset drifts    } drift
    ferry_model_age_seconds{model,version}           since registration           } schedule

The request path updates them through tallies (`ferry.serve.tally`): plain counts that
`flush()` adds to these metrics, every `FLUSH_INTERVAL_S` and before each exposition.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any, TypeVar

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from prometheus_client.multiprocess import MultiProcessCollector

from ferry.serve.batching import BatchObserver, BatchTiming
from ferry.serve.tally import CountTally, HistogramTally, LevelTally, Tally

LATENCY_BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1,
                   0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024)
SIZE_BUCKETS = (64, 256, 1024, 4096, 16384, 65536, 262144, 1048576, 4194304, 16777216,
                67108864)

CONTENT_TYPE = CONTENT_TYPE_LATEST
T = TypeVar("T", CountTally, LevelTally, HistogramTally)
MULTIPROCESS_DIR_ENV = "PROMETHEUS_MULTIPROC_DIR"
"""Set (before prometheus_client is imported) in the worker processes of `ferry serve
--workers N`: each records into files there and `/metrics` sums every worker's."""


STAGES = ("preprocess", "compute", "postprocess")
"""The stages of a version with steps (`ferry.steps.chain`): the only `stage` labels."""

class ServerMetrics:
    """All of the server's metrics; one instance per server process."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.requests = Counter("ferry_inference_requests", "Inference requests answered.",
                                ["model", "version", "protocol", "status"], registry=r)
        self.request_duration = Histogram(
            "ferry_request_duration_seconds", "Time from request in to response out.",
            ["model", "version", "protocol"], buckets=LATENCY_BUCKETS, registry=r)
        self.queue_duration = Histogram(
            "ferry_queue_duration_seconds", "Time a request waited for its batch.",
            ["model", "version"], buckets=LATENCY_BUCKETS, registry=r)
        self.compute_duration = Histogram(
            "ferry_compute_duration_seconds", "Time of one batched model call.",
            ["model", "version"], buckets=LATENCY_BUCKETS, registry=r)
        self.stage_duration = Histogram(
            "ferry_stage_duration_seconds", "Time of one stage of a batched call of a version"
            " with Python steps: preprocess, compute (the model), postprocess.",
            ["model", "version", "stage"], buckets=LATENCY_BUCKETS, registry=r)
        self.batch_size = Histogram("ferry_batch_size", "Rows per model call.",
                                    ["model", "version"], buckets=BATCH_BUCKETS, registry=r)
        self.inflight = Gauge("ferry_inflight_requests", "Requests being answered.",
                              ["protocol"], registry=r, multiprocess_mode="livesum")
        self.request_size = Histogram("ferry_request_size_bytes", "Request body sizes.",
                                      ["protocol"], buckets=SIZE_BUCKETS, registry=r)
        self.response_size = Histogram("ferry_response_size_bytes", "Response body sizes.",
                                       ["protocol"], buckets=SIZE_BUCKETS, registry=r)
        self.capture_dropped = Counter(
            "ferry_capture_dropped", "Captured requests dropped, by reason: the capture queue"
            " was full (`queue_full`) or the monitoring store failed (`store_failed`).",
            ["reason"], registry=r)
        self.drift_score = Gauge(
            "ferry_drift_score", "The drift test's statistic for one column of the last"
            " window the server judged (NaN: too few rows).",
            ["model", "version", "feature", "method"], registry=r, multiprocess_mode="mostrecent")
        self.drift_detected = Gauge(
            "ferry_drift_detected", "1 when the last window judged drifts as a whole, else 0.",
            ["model", "version"], registry=r, multiprocess_mode="mostrecent")
        self.model_age = Gauge(
            "ferry_model_age_seconds", "Time since the served version was registered.",
            ["model", "version"], registry=r, multiprocess_mode="mostrecent")
        self._tallies: dict[tuple[str, tuple[str, ...]], Tally] = {}

    def count(self, counter: Counter, *labels: str) -> CountTally:
        return self._tally(CountTally, counter, labels)

    def level(self, gauge: Gauge, *labels: str) -> LevelTally:
        return self._tally(LevelTally, gauge, labels)

    def histogram(self, histogram: Histogram, *labels: str) -> HistogramTally:
        return self._tally(HistogramTally, histogram, labels)

    def _tally(self, kind: type[T], metric: Any, labels: tuple[str, ...]) -> T:
        key = (metric._name, labels)
        tally = self._tallies.get(key)
        if tally is None:
            tally = self._tallies[key] = kind(metric.labels(*labels))
        assert isinstance(tally, kind)
        return tally

    def flush(self) -> None:
        """Add what the tallies hold to the metrics (on the event loop's thread)."""
        for tally in list(self._tallies.values()):
            tally.flush()

    def batch_observer(self, model: str, version: str) -> BatchObserver:
        queue = self.histogram(self.queue_duration, model, version)
        compute = self.histogram(self.compute_duration, model, version)
        size = self.histogram(self.batch_size, model, version)

        def observe(timing: BatchTiming) -> None:
            size.observe(timing.rows)
            for wait in timing.waits_s:
                queue.observe(wait)
            compute.observe(timing.input_s + timing.infer_s)

        return observe

    def stage_observer(self, model: str, version: str) -> Callable[[str, float], None]:
        """Records a stage's seconds; called from the model call's worker thread, so it goes
        to the histogram directly (prometheus_client locks) rather than through a tally."""
        children = {stage: self.stage_duration.labels(model, version, stage)
                    for stage in STAGES}

        def observe(stage: str, seconds: float) -> None:
            children[stage].observe(seconds)

        return observe

    def exposition(self) -> bytes:
        """The metrics in Prometheus' text format: this process's, or with several workers
        (`MULTIPROCESS_DIR_ENV` set) the sum over every live worker."""
        self.flush()
        directory = os.environ.get(MULTIPROCESS_DIR_ENV)
        if not directory:
            return bytes(generate_latest(self.registry))
        workers = CollectorRegistry()
        MultiProcessCollector(workers, path=directory)
        return bytes(generate_latest(workers))
