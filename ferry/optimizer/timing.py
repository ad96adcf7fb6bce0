"""Timing that can be trusted on a noisy machine.

Every candidate and the baseline (the original framework's own predict) are timed in the same
run, interleaved: each repeat is cut into slices, and each slice times every entry in turn
(A B C … A B C …), so that a burst of load from another process hits all of them alike.
A slice times calls one at a time with `perf_counter` and keeps their median. An entry's figure
is the median over its slices, with the p90 of its single calls; its speed-up is the median of
the per-slice ratios baseline / entry (paired in time). Repeats go on, up to a limit, while
the slice medians of any entry spread by more than `max_spread`. Inputs cycle over several
different arrays, the same for every entry. Warm-up calls come first and are not counted.
"""

from __future__ import annotations

import os
import statistics
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

DEFAULT_REPEATS = 3
DEFAULT_MAX_REPEATS = 6
DEFAULT_SLICES = 5
DEFAULT_MIN_SLICE_S = 0.05
DEFAULT_MIN_CALLS = 3
DEFAULT_WARMUP_S = 0.2
DEFAULT_WARMUP_CALLS = 3
DEFAULT_MAX_SPREAD = 0.3

Call = Callable[[int], object]
"""One timed call; its argument picks which of the prepared inputs to use."""


@dataclass(frozen=True)
class TimingSettings:
    repeats: int = DEFAULT_REPEATS
    max_repeats: int = DEFAULT_MAX_REPEATS
    slices: int = DEFAULT_SLICES
    min_slice_s: float = DEFAULT_MIN_SLICE_S
    min_calls: int = DEFAULT_MIN_CALLS
    warmup_s: float = DEFAULT_WARMUP_S
    warmup_calls: int = DEFAULT_WARMUP_CALLS
    max_spread: float = DEFAULT_MAX_SPREAD


@dataclass
class Timing:
    """One entry's figures at one batch size, in seconds per call."""

    median_s: float
    p90_s: float
    spread: float
    """(max - min) / median of the per-repeat medians."""
    speedup: float | None
    """Paired: median over slices of baseline / this entry (None for the baseline)."""
    calls: int

    def to_dict(self) -> dict[str, float | int | None]:
        return {"median_s": self.median_s, "p90_s": self.p90_s, "spread": self.spread,
                "speedup": self.speedup, "calls": self.calls}


@dataclass
class _Samples:
    slice_medians: list[float] = field(default_factory=list)
    calls: list[float] = field(default_factory=list)
    repeat_medians: list[float] = field(default_factory=list)


def time_interleaved(calls: dict[str, Call], baseline: str | None,
                     settings: TimingSettings | None = None,
                     on_slice: Callable[[], None] | None = None) -> dict[str, Timing]:
    """Time every entry of `calls`; speed-ups are against the entry named `baseline`."""
    settings = settings or TimingSettings()
    for call in calls.values():
        _warm_up(call, settings)
    samples = {name: _Samples() for name in calls}
    repeats = 0
    while repeats < settings.repeats or (repeats < settings.max_repeats
                                         and _too_spread(samples, settings)):
        for _ in range(settings.slices):
            for name, call in calls.items():
                samples[name].slice_medians.append(_slice(call, samples[name], settings))
            if on_slice is not None:
                on_slice()
        for s in samples.values():
            s.repeat_medians.append(statistics.median(s.slice_medians[-settings.slices:]))
        repeats += 1
    return {name: _timing(samples[name], samples.get(baseline) if baseline else None)
            for name in calls}


def _warm_up(call: Call, settings: TimingSettings) -> None:
    started, done = time.perf_counter(), 0
    while done < settings.warmup_calls or time.perf_counter() - started < settings.warmup_s:
        call(done)
        done += 1
        if done >= 10 * settings.warmup_calls and time.perf_counter() - started > 0.01:
            break


def _slice(call: Call, samples: _Samples, settings: TimingSettings) -> float:
    durations: list[float] = []
    started = time.perf_counter()
    while len(durations) < settings.min_calls or time.perf_counter() - started < \
            settings.min_slice_s:
        before = time.perf_counter()
        call(len(samples.calls) + len(durations))
        durations.append(time.perf_counter() - before)
    samples.calls.extend(durations)
    return statistics.median(durations)


def _too_spread(samples: dict[str, _Samples], settings: TimingSettings) -> bool:
    return any(_spread(s.repeat_medians) > settings.max_spread for s in samples.values())


def _spread(values: list[float]) -> float:
    if len(values) < 2:
        return 0.0
    middle = statistics.median(values)
    return (max(values) - min(values)) / middle if middle > 0 else 0.0


def _timing(samples: _Samples, baseline: _Samples | None) -> Timing:
    ordered = sorted(samples.calls)
    p90 = ordered[min(len(ordered) - 1, int(0.9 * len(ordered)))]
    speedup = None
    if baseline is not None and baseline is not samples:
        ratios = [b / c for b, c in zip(baseline.slice_medians, samples.slice_medians,
                                         strict=False) if c > 0]
        speedup = statistics.median(ratios) if ratios else None
    return Timing(median_s=statistics.median(samples.slice_medians), p90_s=p90,
                  spread=_spread(samples.repeat_medians), speedup=speedup,
                  calls=len(samples.calls))


@contextmanager
def pinned(cores: int) -> Iterator[list[int]]:
    """Run the block on `cores` CPUs of this process's current set (restored after)."""
    if not hasattr(os, "sched_getaffinity"):
        yield []
        return
    allowed = sorted(os.sched_getaffinity(0))
    chosen = allowed[-cores:] if cores < len(allowed) else allowed
    os.sched_setaffinity(0, chosen)
    try:
        yield chosen
    finally:
        os.sched_setaffinity(0, allowed)
