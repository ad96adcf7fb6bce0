"""What the server's per-request metric updates cost: prometheus-client's own objects against
ferry's tallies (`ferry.serve.tally`), the same seven updates an inference request makes
(in-flight up and down, request and response size, request count, request and queue time).

Usage: taskset -c 0 .venv/bin/python bench/serve/metrics_cost.py [--rounds 5] [--n 200000]
Prints microseconds per request for each, interleaved rounds, and the median ratio.
"""

from __future__ import annotations

import argparse
import statistics
import timeit
from collections.abc import Callable
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from ferry.serve.metrics import LATENCY_BUCKETS, SIZE_BUCKETS
from ferry.serve.tally import CountTally, HistogramTally, LevelTally


def _children() -> tuple[Any, ...]:
    registry = CollectorRegistry()
    sizes = [Histogram(f"size{i}", "s", ["p"], buckets=SIZE_BUCKETS, registry=registry)
             .labels("http") for i in range(2)]
    times = [Histogram(f"time{i}", "t", ["p"], buckets=LATENCY_BUCKETS, registry=registry)
             .labels("http") for i in range(2)]
    count = Counter("requests", "r", ["p"], registry=registry).labels("http")
    level = Gauge("inflight", "i", ["p"], registry=registry).labels("http")
    return level, count, *sizes, *times


def _updates(level: Any, count: Any, request: Any, response: Any,
             duration: Any, queue: Any) -> Callable[[], None]:
    def one_request() -> None:
        level.inc()
        request.observe(300)
        queue.observe(0.002)
        level.dec()
        count.inc()
        response.observe(150)
        duration.observe(0.004)
    return one_request


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--n", type=int, default=200_000)
    args = parser.parse_args()
    level, count, request, response, duration, queue = _children()
    prometheus = _updates(level, count, request, response, duration, queue)
    tallies = _updates(LevelTally(level), CountTally(count), HistogramTally(request),
                       HistogramTally(response), HistogramTally(duration),
                       HistogramTally(queue))
    ratios = []
    for round_ in range(args.rounds):
        timed = {name: timeit.timeit(fn, number=args.n) / args.n * 1e6
                 for name, fn in (("prometheus-client", prometheus), ("tallies", tallies))}
        ratios.append(timed["prometheus-client"] / timed["tallies"])
        print(f"round {round_ + 1}: " + ", ".join(f"{k} {v:.2f} us/request"
                                                   for k, v in timed.items()))
    print(f"median: tallies are {statistics.median(ratios):.1f}x cheaper")


if __name__ == "__main__":
    main()
