"""The dynamic batcher on its own: merging, splitting, bounds, deadlines, instances."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Awaitable
from typing import TypeVar

import numpy as np
import pytest

from ferry.errors import (
    InferenceError,
    InferenceTimeoutError,
    ModelNotReadyError,
    ServerOverloadedError,
)
from ferry.serve.batching import Arrays, BatchSettings, BatchTiming, DynamicBatcher, QueuedRequest

T = TypeVar("T")


class Recorder:
    """A model that doubles its input and records the batch sizes it saw."""

    def __init__(self, delay: float = 0.0):
        self.delay = delay
        self.batches: list[int] = []
        self.threads: set[str] = set()
        self.lock = threading.Lock()
        self.concurrent = 0
        self.max_concurrent = 0

    def __call__(self, arrays: Arrays) -> Arrays:
        with self.lock:
            self.concurrent += 1
            self.max_concurrent = max(self.max_concurrent, self.concurrent)
        self.batches.append(len(arrays["x"]))
        self.threads.add(threading.current_thread().name)
        if self.delay:
            time.sleep(self.delay)
        with self.lock:
            self.concurrent -= 1
        return {"y": arrays["x"] * 2}


def rows(start: int, count: int = 1) -> Arrays:
    return {"x": np.arange(start, start + count, dtype=np.float32).reshape(count, 1)}


async def submit_many(batcher: DynamicBatcher, count: int) -> list[Arrays]:
    return await asyncio.gather(*(batcher.submit(rows(i), 1) for i in range(count)))


def test_concurrent_requests_are_merged_and_split_back() -> None:
    model = Recorder(delay=0.002)
    batcher = DynamicBatcher(model, BatchSettings(max_batch_size=8))

    results = asyncio.run(submit_many(batcher, 20))

    assert [float(r["y"][0, 0]) for r in results] == [2.0 * i for i in range(20)]
    assert max(model.batches) > 1
    assert all(size <= 8 for size in model.batches)
    assert sum(model.batches) == 20


def test_a_lone_request_does_not_wait() -> None:
    model = Recorder()
    batcher = DynamicBatcher(model, BatchSettings(max_queue_delay_s=1.0))

    async def one() -> float:
        started = time.perf_counter()
        await batcher.submit(rows(0), 1)
        return time.perf_counter() - started

    assert asyncio.run(one()) < 0.1
    assert model.batches == [1]


def test_full_queue_refuses_at_once() -> None:
    batcher = DynamicBatcher(Recorder(delay=0.05), BatchSettings(max_batch_size=1,
                                                                 max_queue_size=2))

    async def burst() -> list[object]:
        return await asyncio.gather(*(batcher.submit(rows(i), 1) for i in range(6)),
                                    return_exceptions=True)

    outcomes = asyncio.run(burst())
    refused = [o for o in outcomes if isinstance(o, ServerOverloadedError)]
    assert refused and all(o.retry_after_s > 0 for o in refused)
    assert any(isinstance(o, dict) for o in outcomes)


def test_requests_past_their_deadline_fail_without_running() -> None:
    model = Recorder(delay=0.05)
    batcher = DynamicBatcher(model, BatchSettings(max_batch_size=1))

    async def late() -> list[object]:
        return await asyncio.gather(*(batcher.submit(rows(i), 1, timeout_s=0.01)
                                      for i in range(4)), return_exceptions=True)

    outcomes = asyncio.run(late())
    assert any(isinstance(o, InferenceTimeoutError) for o in outcomes)
    assert sum(model.batches) < 4


def test_queued_requests_time_out_while_every_instance_is_busy() -> None:
    """A hung (or slow) model must not hold the queue past its deadlines: the requests behind
    it get their 504 on time, not when the model call ends."""
    model = Recorder(delay=0.6)
    batcher = DynamicBatcher(model, BatchSettings(max_batch_size=1, instances=2))

    async def run() -> tuple[list[object], float]:
        running = [asyncio.ensure_future(batcher.submit(rows(i), 1)) for i in range(2)]
        await asyncio.sleep(0.05)  # both instances are now in the model
        started = time.perf_counter()
        with pytest.raises(InferenceTimeoutError, match="timed out"):
            await batcher.submit(rows(9), 1, timeout_s=0.1)
        waited = time.perf_counter() - started
        return list(await asyncio.gather(*running)), waited

    answers, waited = asyncio.run(run())
    assert waited < 0.4
    assert len(answers) == 2 and model.batches == [1, 1]


def test_model_error_reaches_every_request_in_the_batch() -> None:
    def broken(_arrays: Arrays) -> Arrays:
        raise RuntimeError("model exploded")

    batcher = DynamicBatcher(broken, BatchSettings())

    async def run() -> list[object]:
        return await asyncio.gather(*(batcher.submit(rows(i), 1) for i in range(3)),
                                    return_exceptions=True)

    outcomes = asyncio.run(run())
    assert all(isinstance(o, RuntimeError) for o in outcomes)


def test_slow_models_run_on_instance_threads_in_parallel() -> None:
    model = Recorder(delay=0.02)
    batcher = DynamicBatcher(model, BatchSettings(max_batch_size=1, instances=2))

    results = asyncio.run(submit_many(batcher, 6))

    assert len(results) == 6
    assert model.max_concurrent == 2
    assert all(name.startswith("ferry-model") for name in model.threads)


@pytest.mark.parametrize("preferred", [(4,), ()])
def test_queue_delay_waits_for_a_preferred_size(preferred: tuple[int, ...]) -> None:
    model = Recorder()
    settings = BatchSettings(max_batch_size=16, max_queue_delay_s=0.05,
                             preferred_batch_sizes=preferred)
    batcher = DynamicBatcher(model, settings)

    async def staggered() -> None:
        first = [asyncio.ensure_future(batcher.submit(rows(i), 1)) for i in range(2)]
        await asyncio.sleep(0.005)
        later = [asyncio.ensure_future(batcher.submit(rows(i), 1)) for i in range(2, 4)]
        await asyncio.gather(*first, *later)

    asyncio.run(staggered())
    assert sum(model.batches) == 4
    assert max(model.batches) >= 3


def within(seconds: float, awaitable: Awaitable[T]) -> Awaitable[T]:
    """Fail the test instead of hanging it when requests are left pending."""
    return asyncio.wait_for(awaitable, seconds)


def scalar_for_batches(arrays: Arrays) -> Arrays:
    """A model that answers a batch of several rows with one value: not splittable."""
    if len(arrays["x"]) > 1:
        return {"y": np.float32(1.0)}  # type: ignore[dict-item]
    return {"y": arrays["x"] * 2}


def test_outputs_that_do_not_split_fail_their_batch_and_the_queue_goes_on() -> None:
    batcher = DynamicBatcher(scalar_for_batches, BatchSettings(max_batch_size=2))

    async def run() -> tuple[list[object], Arrays]:
        outcomes = await within(5, asyncio.gather(
            *(batcher.submit(rows(i), 1) for i in range(4)), return_exceptions=True))
        alone = await within(5, batcher.submit(rows(7), 1))
        await within(5, batcher.close())
        return outcomes, alone

    outcomes, alone = asyncio.run(run())
    assert all(isinstance(o, InferenceError) and "2 rows" in str(o) for o in outcomes), outcomes
    assert float(alone["y"][0, 0]) == 14.0


def test_outputs_with_the_wrong_number_of_rows_fail_instead_of_mixing_answers() -> None:
    batcher = DynamicBatcher(lambda arrays: {"y": arrays["x"][:1]}, BatchSettings())

    async def run() -> list[object]:
        return await within(5, asyncio.gather(*(batcher.submit(rows(i), 1) for i in range(3)),
                                              return_exceptions=True))

    outcomes = asyncio.run(run())
    assert all(isinstance(o, InferenceError) and "3 rows" in str(o) for o in outcomes), outcomes


@pytest.mark.parametrize("instances", [1, 2])
def test_a_failing_observer_costs_no_answer(instances: int) -> None:
    timings: list[BatchTiming] = []

    def observe(timing: BatchTiming) -> None:
        timings.append(timing)
        raise RuntimeError("metrics backend down")

    batcher = DynamicBatcher(Recorder(delay=0.002),
                             BatchSettings(max_batch_size=2, instances=instances), observe)

    async def run() -> list[Arrays]:
        first = await within(5, submit_many(batcher, 5))
        second = await within(5, submit_many(batcher, 5))
        await within(5, batcher.close())
        return first + second

    assert len(asyncio.run(run())) == 10
    assert timings


def test_requests_of_different_trailing_shapes_run_in_separate_batches() -> None:
    model = Recorder(delay=0.002)
    batcher = DynamicBatcher(model, BatchSettings())
    wide = {"x": np.ones((1, 3), dtype=np.float32)}

    async def run() -> list[Arrays]:
        return await within(5, asyncio.gather(
            batcher.submit(rows(1), 1), batcher.submit(wide, 1), batcher.submit(rows(2), 1)))

    narrow_first, wide_answer, narrow_second = asyncio.run(run())
    assert wide_answer["y"].tolist() == [[2.0, 2.0, 2.0]]
    assert float(narrow_first["y"][0, 0]) == 2.0 and float(narrow_second["y"][0, 0]) == 4.0
    assert sorted(model.batches) == [1, 2]


class BrokenOnce(DynamicBatcher):
    """A batcher whose own bookkeeping fails once (a bug outside the model call)."""

    broken = True

    def _take(self) -> list[QueuedRequest]:
        if self.broken:
            self.broken = False
            raise RuntimeError("bookkeeping bug")
        return super()._take()


def test_a_failure_in_the_worker_fails_what_it_held_and_the_worker_goes_on() -> None:
    batcher = BrokenOnce(Recorder(), BatchSettings())

    async def run() -> tuple[list[object], Arrays]:
        outcomes = await within(5, asyncio.gather(
            *(batcher.submit(rows(i), 1) for i in range(3)), return_exceptions=True))
        return outcomes, await within(5, batcher.submit(rows(5), 1))

    outcomes, later = asyncio.run(run())
    assert all(isinstance(o, InferenceError) and "bookkeeping bug" in str(o)
               for o in outcomes), outcomes
    assert float(later["y"][0, 0]) == 10.0


def test_close_is_bounded_and_fails_what_it_could_not_finish() -> None:
    batcher = DynamicBatcher(Recorder(delay=0.5), BatchSettings(max_batch_size=1, instances=2))

    async def run() -> tuple[float, list[object]]:
        futures = [batcher.enqueue(rows(i), 1) for i in range(4)]
        await asyncio.sleep(0.05)  # two batches run on instance threads, two wait
        started = time.perf_counter()
        await within(5, batcher.close(grace_s=0.1))
        closed_in = time.perf_counter() - started
        outcomes = await within(5, asyncio.gather(*futures, return_exceptions=True))
        return closed_in, outcomes

    closed_in, outcomes = asyncio.run(run())
    assert closed_in < 0.4
    assert all(isinstance(o, ModelNotReadyError) for o in outcomes), outcomes


class Burner(Recorder):
    """A model that keeps the processor busy for `busy` seconds per call."""

    def __init__(self, busy: float):
        super().__init__()
        self.busy = busy

    def __call__(self, arrays: Arrays) -> Arrays:
        self.threads.add(threading.current_thread().name)
        started = time.thread_time()
        while time.thread_time() - started < self.busy:
            pass
        return {"y": arrays["x"] * 2}


@pytest.mark.parametrize(("model", "on_threads"), [
    (Recorder(), False),  # quick: on the event loop's thread
    (Recorder(delay=0.002), False),  # waits without computing, as for the GIL: still there
    (Recorder(delay=0.02), True),  # waits long (a remote call): the loop must go on
    (Burner(busy=0.002), True),  # computes long: the loop must go on
])
def test_where_model_calls_run(model: Recorder, on_threads: bool) -> None:
    """Quick calls run on the event loop's thread, slow ones on instance threads. A call
    that gives up the GIL (as ONNX Runtime does) may wait to take it back while another
    thread holds it: that wait is not the model's cost and must not move it off the loop."""
    batcher = DynamicBatcher(model, BatchSettings(max_batch_size=1))

    async def run() -> None:
        for i in range(20):
            await within(5, batcher.submit(rows(i), 1))
        await within(5, batcher.close())

    asyncio.run(run())

    assert any(name.startswith("ferry-model") for name in model.threads) == on_threads
