"""What one load step measured, and which step is best under a latency target.

Latency percentiles use the nearest-rank method on the requests that completed successfully in
the measured window; throughput counts those requests over the window's length.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

PERCENTILES = ("p50", "p90", "p95", "p99")


@dataclass
class StepSamples:
    """Raw observations of one step, filled in while it runs."""

    latencies: list[float] = field(default_factory=list)
    errors: Counter[str] = field(default_factory=Counter)
    sent: int = 0
    dropped: int = 0
    late: int = 0
    max_lag: float = 0.0
    server_cpu_s: float | None = None
    client_cpu_s: float | None = None


@dataclass
class StepResult:
    """The summary of one step: a concurrency level (closed loop) or a request rate (open)."""

    mode: str
    level: float
    duration_s: float
    rows_per_request: int
    requests: int
    req_s: float
    rows_s: float
    p50_ms: float | None
    p90_ms: float | None
    p99_ms: float | None
    max_ms: float | None
    mean_ms: float | None
    error_count: int
    errors: dict[str, int]
    sent: int | None = None
    dropped: int | None = None
    late: int | None = None
    max_send_lag_ms: float | None = None
    server_cpu_us_per_req: float | None = None
    server_cpu_util: float | None = None
    client_cpu_us_per_req: float | None = None
    met_target: bool | None = None
    error_samples: list[str] = field(default_factory=list)
    p95_ms: float | None = None

    @property
    def label(self) -> str:
        return f"c={int(self.level)}" if self.mode == "concurrency" else f"{self.level:g}/s"

    def latency_ms(self, percentile: str) -> float | None:
        value: float | None = getattr(self, f"{percentile}_ms")
        return value

    def to_dict(self) -> dict[str, Any]:
        return {"label": self.label, **asdict(self)}


def nearest_rank(ordered: Sequence[float], percent: float) -> float:
    """The nearest-rank percentile of an ascending sequence (not empty)."""
    rank = max(1, math.ceil(percent / 100 * len(ordered)))
    return ordered[min(rank, len(ordered)) - 1]


def summarize(mode: str, level: float, duration_s: float, rows_per_request: int,
              samples: StepSamples, error_samples: Sequence[str] = ()) -> StepResult:
    ordered = sorted(samples.latencies)
    count = len(ordered)

    def ms(percent: float) -> float | None:
        return nearest_rank(ordered, percent) * 1e3 if count else None

    open_loop = mode == "rate"
    return StepResult(
        mode=mode, level=level, duration_s=duration_s, rows_per_request=rows_per_request,
        requests=count, req_s=count / duration_s, rows_s=count * rows_per_request / duration_s,
        p50_ms=ms(50), p90_ms=ms(90), p95_ms=ms(95), p99_ms=ms(99), max_ms=ms(100),
        mean_ms=sum(ordered) / count * 1e3 if count else None,
        error_count=sum(samples.errors.values()), errors=dict(sorted(samples.errors.items())),
        sent=samples.sent if open_loop else None,
        dropped=samples.dropped if open_loop else None,
        late=samples.late if open_loop else None,
        max_send_lag_ms=samples.max_lag * 1e3 if open_loop else None,
        server_cpu_us_per_req=(samples.server_cpu_s / count * 1e6
                               if samples.server_cpu_s is not None and count else None),
        server_cpu_util=(samples.server_cpu_s / duration_s
                         if samples.server_cpu_s is not None else None),
        client_cpu_us_per_req=(samples.client_cpu_s / count * 1e6
                               if samples.client_cpu_s is not None and count else None),
        error_samples=list(error_samples))


def mark_targets(results: Sequence[StepResult], target_ms: float, percentile: str) -> None:
    """Set `met_target` on each step: latency within target, no errors and nothing dropped."""
    for result in results:
        latency = result.latency_ms(percentile)
        result.met_target = (latency is not None and latency <= target_ms
                             and result.error_count == 0 and not result.dropped)


def best_step(results: Sequence[StepResult]) -> StepResult | None:
    """The step with the highest throughput among those that met the target."""
    met = [r for r in results if r.met_target]
    return max(met, key=lambda r: r.req_s) if met else None
