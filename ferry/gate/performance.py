"""Latency, throughput and cost of two versions, timed the way they will be served.

Two measurements, each made so that whatever else the machine does falls on both versions
alike (on a shared machine, load from elsewhere moves latencies by tens of percent from one
second to the next, far more than the gate's 10 %):
- in this process: one hold-out row per call through each version's predictor, the two
  versions taking turns call by call, as a Python caller of `ferry.load` would call them;
  the process's CPU time per call gives the cost;
- through the server: both versions served here over HTTP and driven at the same time by
  `ferry bench`'s closed loop (`ferry.loadtest`), a few connections each, twice, each version
  starting first once.

Percentiles of each version's calls or requests are compared (p95 within 1.10x and p99 within
1.20x of the baseline, throughput at least 0.9x, cost per 1,000 predictions within 1.10x: the
defaults of registry-monitoring.md section 4.5). In process, where every call is kept, the
ratio gets a paired bootstrap interval and fails only when all of it is past the limit: a
p99 rests on a handful of calls, and an equal model must not fail on them. Through the
server, where only each run's percentiles are known, a check fails only when both runs (each
version starting first once) say so.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from ferry.gate.checks import Check, Kind, Verdict

DEFAULT_PRICE_PER_CORE_HOUR = 0.05
"""US dollars per core-hour (a general-purpose cloud core, on demand, 2026); set your own."""


@dataclass(frozen=True)
class TimingSettings:
    """How long to time each version, and what the gate allows."""

    calls: int = 200
    rounds: int = 5
    """In process: `calls * rounds` calls of each version; through the server,
    `server_seconds * rounds` seconds of load (after a short warm-up)."""
    server: bool = True
    """Also time both versions through the HTTP server."""
    concurrency: int = 2
    """Connections per version through the server."""
    server_seconds: float = 0.6
    price_per_core_hour: float = DEFAULT_PRICE_PER_CORE_HOUR
    max_p95_ratio: float = 1.10
    max_p99_ratio: float = 1.20
    min_throughput_ratio: float = 0.90
    max_cost_ratio: float = 1.10


@dataclass(frozen=True)
class Timing:
    """One version's figures."""

    p50_ms: float
    p95_ms: float
    p99_ms: float
    per_s: float
    """Requests (server) or calls (in process) per second."""
    cpu_s: float | None = None
    """CPU seconds per prediction (in process): the median call's. The process's CPU clock
    also counts whatever other threads run during a call, so a mean would charge their
    bursts to whichever version was being called."""
    rounds: list[dict[str, float]] = field(default_factory=list)
    seconds: np.ndarray | None = None
    """Each call's latency (in process), in call order: the i-th call of each version ran
    back to back, so the two are paired for the bootstrap."""
    cpu: np.ndarray | None = None


Predict = Callable[[pd.DataFrame], Any]


def in_process_timings(candidate: Predict, baseline: Predict, rows: pd.DataFrame,
                       settings: TimingSettings) -> tuple[Timing, Timing]:
    """Both predictors called on one row at a time, taking turns (who goes first alternates)."""
    singles = [rows.iloc[[i]] for i in range(min(len(rows), 64))]
    predictors = (candidate, baseline)
    for predict in predictors:  # lazy initialisation and caches first
        predict(singles[0])
    calls = settings.calls * settings.rounds
    seconds, cpu = np.empty((2, calls)), np.empty((2, calls))
    for i in range(calls):
        for which in ((0, 1) if i % 2 == 0 else (1, 0)):
            seconds[which, i], cpu[which, i] = _one_call(predictors[which],
                                                         singles[i % len(singles)])
    return _timing(seconds[0], cpu[0]), _timing(seconds[1], cpu[1])


def _one_call(predict: Predict, row: pd.DataFrame) -> tuple[float, float]:
    cpu, started = time.process_time(), time.perf_counter()
    predict(row)
    return time.perf_counter() - started, time.process_time() - cpu


def _timing(seconds: np.ndarray, cpu: np.ndarray) -> Timing:
    p50, p95, p99 = (float(v) for v in np.percentile(seconds, [50, 95, 99]) * 1e3)
    figures = {"p50_ms": p50, "p95_ms": p95, "p99_ms": p99,
               "per_s": float(len(seconds) / seconds.sum()), "cpu_s": float(np.median(cpu))}
    return Timing(p50_ms=p50, p95_ms=p95, p99_ms=p99, per_s=figures["per_s"],
                  cpu_s=figures["cpu_s"], rounds=[figures], seconds=seconds, cpu=cpu)


def server_timings(registry: Any, candidate_uri: str, baseline_uri: str, rows: pd.DataFrame,
                   settings: TimingSettings) -> tuple[Timing, Timing]:
    """Both versions served over HTTP here, driven by closed loops running side by side, each
    request one of the first hold-out rows."""
    from ferry.serve.server import serve_in_thread

    running = serve_in_thread([candidate_uri, baseline_uri], grpc_port=None, registry=registry)
    try:
        runs = [_runner(running.http_url, registry.get(uri), rows, settings)
                for uri in (candidate_uri, baseline_uri)]
        first = _side_by_side(runs)
        second = _side_by_side(runs[::-1])[::-1]
    finally:
        running.stop()
    return _served_timing(first[0], second[0]), _served_timing(first[1], second[1])


def _side_by_side(runs: list[Callable[[], dict[str, float]]]) -> list[dict[str, float]]:
    """Run each load in a thread of its own, all at once; their figures in order."""
    figures: list[dict[str, float]] = [{} for _ in runs]
    failures: list[BaseException] = []

    def work(index: int) -> None:
        try:
            figures[index] = runs[index]()
        except BaseException as exc:  # re-raised below, on the caller's thread
            failures.append(exc)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(len(runs))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if failures:
        raise failures[0]
    return figures


def _served_timing(*halves: dict[str, float]) -> Timing:
    """The mean of two halves: the load that starts first was measured 5-9 % slower at p95
    here, so each version goes first once."""
    def mean(key: str) -> float:
        return sum(half[key] for half in halves) / len(halves)

    return Timing(p50_ms=mean("p50_ms"), p95_ms=mean("p95_ms"), p99_ms=mean("p99_ms"),
                  per_s=mean("per_s"), rounds=list(halves))


def _runner(url: str, version: Any, rows: pd.DataFrame,
            settings: TimingSettings) -> Callable[[], dict[str, float]]:
    """A function running one closed-loop step against `version` and returning its figures."""
    from ferry.loadtest import LoadPlan, Target, discover, run_plan, transport_factory
    from ferry.runtime.feeds import to_feeds

    target = Target("http", url, version.name, str(version.version), False)
    info = discover(target)
    feeds = [to_feeds(version.signature, rows.iloc[[i]]) for i in range(min(len(rows), 64))]
    batches = [[row[spec.name] for spec in info.inputs] for row in feeds]
    plan = LoadPlan(mode="concurrency", levels=(float(settings.concurrency),), warmup_s=0.3,
                    duration_s=settings.server_seconds * settings.rounds / 2,
                    rows_per_request=1,
                    pool_size=len(batches), grace_s=2.0, client_cpu=False)
    transports = transport_factory(target, info.inputs, batches, 10.0)

    def run() -> dict[str, float]:
        step = run_plan(transports, plan).results[0]
        if step.error_count or not step.requests:
            raise RuntimeError(f"timing {version.uri} through the server failed: {step.errors}")
        return {"p50_ms": step.p50_ms or 0.0, "p95_ms": step.p95_ms or 0.0,
                "p99_ms": step.p99_ms or 0.0, "per_s": step.req_s}

    return run


RESAMPLES = 400
CONFIDENCE = 0.95


def latency_checks(candidate: Timing, baseline: Timing, settings: TimingSettings,
                   where: str) -> list[Check]:
    """p95, p99 and throughput of the candidate against the baseline (`where`: "in_process"
    or "server"). With per-call samples, a check fails only when the whole confidence
    interval of the ratio is past the limit, so tail noise does not fail an equal model."""
    detail = {"candidate": candidate.rounds, "baseline": baseline.rounds}

    def spread(key: str, statistic: Statistic, inverse: bool = False) -> tuple[float, float] | None:
        pair = (baseline, candidate) if inverse else (candidate, baseline)
        found = _interval(pair[0].seconds, pair[1].seconds, statistic)
        return found if found is not None else _between_rounds(candidate, baseline, key)

    return [
        _ratio_check(f"latency.{where}.p95_ms", Kind.LATENCY, (candidate.p95_ms,
                     baseline.p95_ms), settings.max_p95_ratio, detail,
                     spread("p95_ms", _quantile(95))),
        _ratio_check(f"latency.{where}.p99_ms", Kind.LATENCY, (candidate.p99_ms,
                     baseline.p99_ms), settings.max_p99_ratio, detail,
                     spread("p99_ms", _quantile(99))),
        _floor_check(f"throughput.{where}.per_s", (candidate.per_s, baseline.per_s),
                     settings.min_throughput_ratio, detail, spread("per_s", _mean, True)),
    ]


def _between_rounds(candidate: Timing, baseline: Timing,
                    key: str) -> tuple[float, float] | None:
    """The lowest and highest ratio over rounds measured side by side (the server's two
    halves): a version is judged slower only when every round says so."""
    ratios = [c[key] / b[key] for c, b in zip(candidate.rounds, baseline.rounds, strict=True)
              if b.get(key)]
    return (min(ratios), max(ratios)) if len(ratios) > 1 else None


Statistic = Callable[[np.ndarray], np.ndarray]


def _quantile(percent: float) -> Statistic:
    return lambda resampled: np.percentile(resampled, percent, axis=1)


def _mean(resampled: np.ndarray) -> np.ndarray:
    return np.asarray(resampled.mean(axis=1))


def _interval(numerator: np.ndarray | None, denominator: np.ndarray | None,
              statistic: Statistic, seed: int = 0) -> tuple[float, float] | None:
    """A paired bootstrap interval of statistic(numerator) / statistic(denominator); None
    without samples (the server's figures)."""
    if numerator is None or denominator is None or not len(numerator):
        return None
    rows = np.random.default_rng(seed).integers(0, len(numerator), (RESAMPLES, len(numerator)))
    ratios = statistic(numerator[rows]) / statistic(denominator[rows])
    tail = (1 - CONFIDENCE) / 2 * 100
    low, high = np.percentile(ratios, [tail, 100 - tail])
    return float(low), float(high)


def cost_checks(candidate: Timing, baseline: Timing, settings: TimingSettings,
                training: tuple[dict[str, Any], dict[str, Any]]) -> list[Check]:
    """Serving cost per 1,000 predictions from measured CPU time, gated; training cost and
    time as recorded at registration, reported."""
    price = settings.price_per_core_hour
    checks = [_ratio_check("cost.serving_per_1000", Kind.COST,
                           (_per_thousand(candidate.cpu_s, price),
                            _per_thousand(baseline.cpu_s, price)), settings.max_cost_ratio,
                           {"price_per_core_hour": price, "unit": "USD",
                            "cpu_s_per_prediction": [candidate.cpu_s, baseline.cpu_s]},
                           _interval(candidate.cpu, baseline.cpu, _quantile(50)))]
    for key in ("training_seconds", "training_cost"):
        values = [_number(recorded.get(key)) for recorded in training]
        if any(value is not None for value in values):
            checks.append(Check(f"cost.{key}", Kind.COST, values[0], values[1],
                                "as recorded at registration (reported)", Verdict.REPORTED))
    return checks


def _per_thousand(cpu_s: float | None, price: float) -> float | None:
    return None if cpu_s is None else cpu_s * 1000 / 3600 * price


def _number(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) else None


def _ratio_check(name: str, kind: Kind, values: tuple[float | None, float | None],
                 limit: float, detail: dict[str, Any],
                 interval: tuple[float, float] | None) -> Check:
    """Lower is better: the candidate may be at most `limit` times the baseline; with an
    interval, it fails only when the interval's low end is past the limit."""
    ratio = _ratio(*values)
    worst = interval[0] if interval is not None else ratio
    verdict = Verdict.REPORTED if worst is None else \
        Verdict.PASSED if worst <= limit else Verdict.FAILED
    return Check(name, kind, values[0], values[1], f"candidate <= {limit:g} x baseline",
                 verdict, {**detail, "ratio": ratio,
                  "ratio_ci": None if interval is None else list(interval)})


def _floor_check(name: str, values: tuple[float, float], limit: float,
                 detail: dict[str, Any], interval: tuple[float, float] | None) -> Check:
    """Higher is better: the candidate must reach `limit` times the baseline; with an
    interval, it fails only when the interval's high end is below the limit."""
    ratio = _ratio(*values)
    best = interval[1] if interval is not None else ratio
    verdict = Verdict.REPORTED if best is None else \
        Verdict.PASSED if best >= limit else Verdict.FAILED
    return Check(name, Kind.THROUGHPUT, values[0], values[1],
                 f"candidate >= {limit:g} x baseline", verdict,
                 {**detail, "ratio": ratio,
                  "ratio_ci": None if interval is None else list(interval)})


def _ratio(candidate: float | None, baseline: float | None) -> float | None:
    if candidate is None or baseline is None or baseline <= 0:
        return None
    return candidate / baseline
