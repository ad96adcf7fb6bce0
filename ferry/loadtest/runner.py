"""Runs the load: a concurrency sweep (closed loop) or fixed request rates (open loop).

Closed loop: each of N workers sends a request, waits for the answer and sends the next.
Open loop: requests start on a fixed schedule (one every 1/rate seconds) whatever the server
does; a send that finds `max_inflight` requests already outstanding is dropped, and one that
starts more than `LATE_AFTER_S` after its slot (the client fell behind) is counted late.

Every step lasts warm-up + duration seconds (warm-up requests are not counted) plus at most
`grace_s` to collect the last answers; steps that would run past the plan's time limit are
skipped. Only requests that complete inside the measured window count (closed loop); in open
loop every request scheduled in the window counts, and one still unanswered after the grace
period is an "unfinished" error.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any

from ferry.loadtest.procstat import tree_cpu_seconds
from ferry.loadtest.results import StepResult, StepSamples, summarize
from ferry.loadtest.transports import CONNECTION, Session, Transport

LATE_AFTER_S = 0.002
"""An open-loop send this far behind its slot is late (event-loop timers tick in 1 ms)."""
CONNECT_BACKOFF_S = 0.05
UNFINISHED = "unfinished"
clock = time.perf_counter


@dataclass(frozen=True)
class LoadPlan:
    """What to run: the mode, its levels and the time bounds."""

    mode: str  # "concurrency" or "rate"
    levels: tuple[float, ...]
    warmup_s: float
    duration_s: float
    rows_per_request: int
    pool_size: int
    time_limit_s: float = 600.0
    max_inflight: int = 256
    grace_s: float = 2.0
    server_pid: int | None = None
    client_cpu: bool = True

    @property
    def step_s(self) -> float:
        return self.warmup_s + self.duration_s + self.grace_s


@dataclass
class RunOutcome:
    """The steps that ran, and the levels skipped to stay within the time limit."""

    results: list[StepResult] = field(default_factory=list)
    skipped: list[float] = field(default_factory=list)


def new_event_loop() -> asyncio.AbstractEventLoop:
    """uvloop when installed (cheaper per request), else asyncio's default loop."""
    try:
        import uvloop
    except ImportError:
        return asyncio.new_event_loop()
    return uvloop.new_event_loop()


def run_plan(make_transport: Callable[[], Transport], plan: LoadPlan,
             on_step: Callable[[StepResult], None] | None = None) -> RunOutcome:
    """Run every step of `plan` against a transport made (and started) in a fresh event loop."""
    with asyncio.Runner(loop_factory=new_event_loop) as runner:
        return runner.run(_run(make_transport, plan, on_step))


async def _run(make_transport: Callable[[], Transport], plan: LoadPlan,
               on_step: Callable[[StepResult], None] | None) -> RunOutcome:
    outcome = RunOutcome()
    deadline = clock() + plan.time_limit_s
    transport = make_transport()
    await transport.start()
    try:
        for level in plan.levels:
            if clock() + plan.step_s > deadline:
                outcome.skipped.append(level)
                continue
            transport.error_samples.clear()
            samples = StepSamples()
            if plan.mode == "rate":
                await _open_step(transport, plan, level, samples)
            else:
                await _closed_step(transport, plan, int(level), samples)
            result = summarize(plan.mode, level, plan.duration_s, plan.rows_per_request,
                               samples, transport.error_samples)
            outcome.results.append(result)
            if on_step is not None:
                on_step(result)
    finally:
        await transport.close()
    return outcome


async def _sample_cpu(plan: LoadPlan, start: float, end: float, samples: StepSamples) -> None:
    """Server (process tree) and client CPU seconds spent between `start` and `end`."""
    if plan.server_pid is None and not plan.client_cpu:
        return
    await asyncio.sleep(max(0.0, start - clock()))
    server0 = tree_cpu_seconds(plan.server_pid) if plan.server_pid is not None else 0.0
    client0 = time.process_time()
    await asyncio.sleep(max(0.0, end - clock()))
    if plan.server_pid is not None:
        samples.server_cpu_s = tree_cpu_seconds(plan.server_pid) - server0
    if plan.client_cpu:
        samples.client_cpu_s = time.process_time() - client0


async def _closed_step(transport: Transport, plan: LoadPlan, concurrency: int,
                       samples: StepSamples) -> None:
    pool = plan.pool_size
    latencies, errors = samples.latencies, samples.errors
    measure_at = clock() + plan.warmup_s
    end = measure_at + plan.duration_s

    async def worker(index: int) -> None:
        session = transport.session()
        try:
            while (started := clock()) < end:
                error = await session.send(index % pool)
                done = clock()
                index += concurrency
                if started >= measure_at and done <= end:
                    if error is None:
                        latencies.append(done - started)
                    else:
                        errors[error] += 1
                if error == CONNECTION:
                    await asyncio.sleep(CONNECT_BACKOFF_S)
        finally:
            session.close()

    tasks = [_spawn(worker(w)) for w in range(concurrency)]
    tasks.append(_spawn(_sample_cpu(plan, measure_at, end, samples)))
    await _collect(tasks, end + plan.grace_s)


async def _open_step(transport: Transport, plan: LoadPlan, rate: float,
                     samples: StepSamples) -> None:
    pool, interval = plan.pool_size, 1.0 / rate
    latencies, errors = samples.latencies, samples.errors
    idle: list[Session] = []
    opened: list[Session] = []
    inflight: set[asyncio.Task[None]] = set()
    start = clock()
    measure_at = start + plan.warmup_s
    end = measure_at + plan.duration_s

    async def one(session: Session, index: int, measured: bool) -> None:
        try:
            started = clock()
            error = await session.send(index % pool)
            done = clock()
        except asyncio.CancelledError:
            if measured:
                errors[UNFINISHED] += 1
            raise
        idle.append(session)
        if measured:
            if error is None:
                latencies.append(done - started)
            else:
                errors[error] += 1

    cpu = _spawn(_sample_cpu(plan, measure_at, end, samples))
    slot = 0
    while (due := start + slot * interval) < end:
        slot += 1
        now = clock()
        if due > now:
            await asyncio.sleep(due - now)
            now = clock()
        measured = due >= measure_at
        if idle:
            session = idle.pop()
        elif len(opened) < plan.max_inflight:
            session = transport.session()
            opened.append(session)
        else:
            samples.dropped += measured
            continue
        if measured:
            lag = now - due
            samples.sent += 1
            samples.late += lag > LATE_AFTER_S
            samples.max_lag = max(samples.max_lag, lag)
        task = _spawn(one(session, slot - 1, measured))
        inflight.add(task)
        task.add_done_callback(inflight.discard)
    try:
        await _collect([*inflight, cpu], max(clock(), end) + plan.grace_s)
    finally:
        for session in opened:
            session.close()


def _spawn(coroutine: Coroutine[Any, Any, None]) -> asyncio.Task[None]:
    return asyncio.get_running_loop().create_task(coroutine)


async def _collect(tasks: list[asyncio.Task[None]], deadline: float) -> None:
    """Wait for `tasks` until `deadline`, cancel what is left, re-raise unexpected errors."""
    if not tasks:
        return
    _, pending = await asyncio.wait(tasks, timeout=max(0.0, deadline - clock()))
    for task in pending:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    for task in tasks:
        error = None if task.cancelled() else task.exception()
        if error is not None:
            raise error
