"""Tallies add up to what prometheus-client itself would have recorded."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from ferry.serve.tally import CountTally, HistogramTally, LevelTally

BOUNDS = (0.001, 0.01, 0.1, 1.0)
VALUES = (0.0, 0.001, 0.0010001, 0.05, 0.1, 0.5, 1.0, 3.0, 250.0, 0.002, 0.002)


def _samples(registry: CollectorRegistry, name: str) -> dict[tuple[str, str], float]:
    return {(s.name, s.labels.get("le", "")): s.value
            for metric in registry.collect() if metric.name == name
            for s in metric.samples if not s.name.endswith("_created")}


def test_a_histogram_tally_flushes_the_same_buckets_and_sum() -> None:
    direct, tallied = CollectorRegistry(), CollectorRegistry()
    expected = Histogram("latency", "x", ["model"], buckets=BOUNDS, registry=direct)
    target = Histogram("latency", "x", ["model"], buckets=BOUNDS, registry=tallied)
    tally = HistogramTally(target.labels("m"))
    for value in VALUES:
        expected.labels("m").observe(value)
        tally.observe(value)
    tally.flush()
    tally.flush()  # nothing left: a second flush adds nothing
    assert _samples(tallied, "latency") == _samples(direct, "latency")


def test_count_and_level_tallies() -> None:
    registry = CollectorRegistry()
    counter = CountTally(Counter("requests", "x", registry=registry))
    level = LevelTally(Gauge("inflight", "x", registry=registry))
    for _ in range(5):
        counter.inc()
        level.inc()
    level.dec()
    assert registry.get_sample_value("requests_total") == 0
    counter.flush()
    level.flush()
    counter.flush()
    assert registry.get_sample_value("requests_total") == 5
    assert registry.get_sample_value("inflight") == 4
