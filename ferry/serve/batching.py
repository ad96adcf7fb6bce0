"""Dynamic batching: requests from many clients merged into one model call and split back.

The batcher never waits when it has a single request and nothing else in flight, so latency
at low load is the model's own; under load, requests that arrive while a batch runs are taken
together by the next call (up to `max_batch_size` rows). With `max_queue_delay_s` > 0 it also
waits up to that long for a batch to reach the next preferred size when others are queued.
The queue is bounded: past `max_queue_size` requests, `submit` refuses at once with
`ServerOverloadedError` instead of letting memory and latency grow.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import numpy as np

from ferry.errors import InferenceTimeoutError, ServerOverloadedError

Arrays = dict[str, np.ndarray]
RunBatch = Callable[[Arrays], Arrays]

DEFAULT_MAX_BATCH_SIZE = 64
DEFAULT_MAX_QUEUE_DELAY_S = 0.0
"""No added wait by default: batches form from requests that arrive during a model call."""
DEFAULT_MAX_QUEUE_SIZE = 1024
DEFAULT_RETRY_AFTER_S = 1.0
DEFAULT_INSTANCES = 1
INLINE_COMPUTE_LIMIT_S = 0.0005
"""Model calls that take less than this (on average) run on the event loop itself: a thread
hop would cost more than the call. Slower calls run on the model's instance threads, so the
loop keeps reading requests (and refusing them when the queue is full) meanwhile."""
_EWMA_WEIGHT = 0.2


@dataclass(frozen=True)
class BatchSettings:
    max_batch_size: int = DEFAULT_MAX_BATCH_SIZE
    max_queue_delay_s: float = DEFAULT_MAX_QUEUE_DELAY_S
    preferred_batch_sizes: tuple[int, ...] = ()
    max_queue_size: int = DEFAULT_MAX_QUEUE_SIZE
    instances: int = DEFAULT_INSTANCES
    """Model calls that may run at once, each on a thread of its own."""


@dataclass
class _Pending:
    inputs: Arrays
    rows: int
    future: asyncio.Future[Arrays]
    deadline: float | None
    enqueued: float = field(default_factory=time.perf_counter)


BatchObserver = Callable[[int, float, float], None]
"""Called with (rows in the batch, seconds its oldest request waited, seconds of compute)."""


class DynamicBatcher:
    """Merges concurrent `submit` calls for one model into batched `run` calls."""

    def __init__(self, run: RunBatch, settings: BatchSettings,
                 observe: BatchObserver | None = None):
        self.run = run
        self.settings = settings
        self.observe = observe
        self._queue: deque[_Pending] = deque()
        self._wakeup: asyncio.Event | None = None
        self._worker: asyncio.Task[None] | None = None
        self._compute_s = 0.0
        self._executor: ThreadPoolExecutor | None = None
        self._slots: asyncio.Semaphore | None = None
        self._running: set[asyncio.Task[None]] = set()

    @property
    def queued(self) -> int:
        return len(self._queue)

    async def submit(self, inputs: Arrays, rows: int, timeout_s: float | None = None) -> Arrays:
        return await self.enqueue(inputs, rows, timeout_s)

    def enqueue(self, inputs: Arrays, rows: int,
                timeout_s: float | None = None) -> asyncio.Future[Arrays]:
        """Queue the request and return the future of its outputs (cancel it to drop the
        request). Must be called on the event loop's thread."""
        if len(self._queue) >= self.settings.max_queue_size:
            raise ServerOverloadedError(
                f"queue full ({self.settings.max_queue_size} requests waiting): retry later",
                retry_after_s=DEFAULT_RETRY_AFTER_S)
        loop = asyncio.get_running_loop()
        deadline = None if timeout_s is None else time.perf_counter() + timeout_s
        pending = _Pending(inputs, rows, loop.create_future(), deadline)
        self._queue.append(pending)
        self._ensure_worker()
        assert self._wakeup is not None
        self._wakeup.set()
        return pending.future

    def _ensure_worker(self) -> None:
        if self._worker is None or self._worker.done():
            self._wakeup = asyncio.Event()
            self._worker = asyncio.get_running_loop().create_task(self._work())

    async def close(self) -> None:
        """Finish what is queued and running, then stop the worker."""
        while self._queue or self._running:
            await asyncio.sleep(0.001)
        if self._worker is not None:
            self._worker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._worker
        if self._executor is not None:
            self._executor.shutdown(wait=False)

    async def _work(self) -> None:
        assert self._wakeup is not None
        while True:
            await self._wakeup.wait()
            self._wakeup.clear()
            while self._queue:
                if self.settings.max_queue_delay_s > 0 and len(self._queue) > 1:
                    await self._wait_for_preferred()
                if self._inline():
                    self._deliver(*self._compute(self._take()))
                    await asyncio.sleep(0)  # let requests that arrived meanwhile queue up
                else:
                    await self._start_threaded()

    def _inline(self) -> bool:
        return self.settings.instances == 1 and self._compute_s < INLINE_COMPUTE_LIMIT_S

    async def _start_threaded(self) -> None:
        """Run the next batch on an instance thread once one is free."""
        if self._slots is None or self._executor is None:
            self._slots = asyncio.Semaphore(self.settings.instances)
            self._executor = ThreadPoolExecutor(self.settings.instances,
                                                thread_name_prefix="ferry-model")
        await self._slots.acquire()
        if not self._queue:
            self._slots.release()
            return
        batch = self._take()
        task = asyncio.get_running_loop().create_task(self._threaded(batch))
        self._running.add(task)
        task.add_done_callback(self._running.discard)

    async def _threaded(self, batch: list[_Pending]) -> None:
        assert self._slots is not None
        try:
            loop = asyncio.get_running_loop()
            self._deliver(*await loop.run_in_executor(self._executor, self._compute, batch))
        finally:
            self._slots.release()
            if self._queue and self._wakeup is not None:
                self._wakeup.set()

    async def _wait_for_preferred(self) -> None:
        target = self._next_preferred(self._queued_rows())
        waited_until = self._queue[0].enqueued + self.settings.max_queue_delay_s
        while self._queued_rows() < target and time.perf_counter() < waited_until:
            await asyncio.sleep(min(0.0005, max(0.0, waited_until - time.perf_counter())))

    def _next_preferred(self, rows: int) -> int:
        bigger = [p for p in self.settings.preferred_batch_sizes if p > rows]
        return min(bigger) if bigger else self.settings.max_batch_size

    def _queued_rows(self) -> int:
        return sum(p.rows for p in self._queue)

    def _take(self) -> list[_Pending]:
        """The next batch, oldest first; requests past their deadline fail here instead."""
        now = time.perf_counter()
        batch: list[_Pending] = []
        rows = 0
        while self._queue and (not batch
                               or rows + self._queue[0].rows <= self.settings.max_batch_size):
            item = self._queue.popleft()
            if not _expired(item, now):
                batch.append(item)
                rows += item.rows
        return batch

    def _compute(self, batch: list[_Pending]) -> tuple[list[_Pending], Arrays | Exception]:
        """One model call for the batch's live requests (on any thread: no future is touched
        here except to fail those past their deadline, and `_deliver` sets the rest)."""
        now = time.perf_counter()
        live = [p for p in batch if not p.future.done()]
        if not live:
            return live, {}
        try:
            outputs: Arrays | Exception = self.run(_concatenate([p.inputs for p in live]))
        except Exception as exc:
            outputs = exc
        elapsed = time.perf_counter() - now
        self._compute_s += _EWMA_WEIGHT * (elapsed - self._compute_s)
        if self.observe is not None:
            self.observe(sum(p.rows for p in live), now - live[0].enqueued, elapsed)
        return live, outputs

    def _deliver(self, live: list[_Pending], outputs: Arrays | Exception) -> None:
        if isinstance(outputs, Exception):
            for pending in live:
                if not pending.future.done():
                    pending.future.set_exception(outputs)
            return
        _split(live, outputs)


def _expired(pending: _Pending, now: float) -> bool:
    if pending.future.done():
        return True
    if pending.deadline is not None and now > pending.deadline:
        pending.future.set_exception(InferenceTimeoutError(
            f"request timed out after waiting {now - pending.enqueued:.3f} s in the queue"))
        return True
    return False


def _concatenate(requests: list[Arrays]) -> Arrays:
    if len(requests) == 1:
        return requests[0]
    return {name: np.concatenate([r[name] for r in requests]) for name in requests[0]}


def _split(batch: list[_Pending], outputs: Arrays) -> None:
    start = 0
    for pending in batch:
        end = start + pending.rows
        if not pending.future.done():  # a client that went away leaves a cancelled future
            pending.future.set_result(outputs if len(batch) == 1 else
                                      {name: value[start:end] for name, value in outputs.items()})
        start = end
