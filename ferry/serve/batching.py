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
import logging
import time
from collections import deque
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from typing import TypeVar

import numpy as np

from ferry.errors import (
    FerryError,
    InferenceError,
    InferenceTimeoutError,
    ModelNotReadyError,
    ServerOverloadedError,
)
from ferry.serve import validation
from ferry.serve.defaults import (
    DEFAULT_INSTANCES,
    DEFAULT_MAX_BATCH_SIZE,
    DEFAULT_MAX_QUEUE_DELAY_S,
    DEFAULT_MAX_QUEUE_SIZE,
)

Arrays = dict[str, np.ndarray]
Observed = TypeVar("Observed")
RunBatch = Callable[[Arrays], Arrays]

DEFAULT_RETRY_AFTER_S = 1.0
INLINE_COMPUTE_LIMIT_S = 0.0005
"""Model calls that take less than this CPU time of the calling thread (on average) run on
the event loop itself: a thread hop would cost more than the call. Slower calls run on the
model's instance threads, so the loop keeps reading requests (and refusing them when the
queue is full) meanwhile."""
INLINE_WALL_LIMIT_S = 0.005
"""...and less than this wall-clock time: a call that waits without computing (a sleep, a
remote service, a GPU) for longer goes to the threads too."""
DEFAULT_CLOSE_GRACE_S = 30.0
"""How long `close()` waits for queued and running requests before failing them (503)."""
_CLOSE_POLL_S = 0.002
DEADLINE_SWEEP_S = 0.02
"""While every instance is busy, how often queued requests are checked against their
deadlines (otherwise they are checked when a batch is taken)."""
_EWMA_WEIGHT = 0.2
log = logging.getLogger("ferry.serve")


@dataclass(frozen=True)
class BatchSettings:
    max_batch_size: int = DEFAULT_MAX_BATCH_SIZE
    max_queue_delay_s: float = DEFAULT_MAX_QUEUE_DELAY_S
    preferred_batch_sizes: tuple[int, ...] = ()
    max_queue_size: int = DEFAULT_MAX_QUEUE_SIZE
    instances: int = DEFAULT_INSTANCES
    """Model calls that may run at once, each on a thread of its own."""

    def __post_init__(self) -> None:
        validation.at_least("max_batch_size", self.max_batch_size, 1, "rows per model call")
        validation.at_least("max_queue_size", self.max_queue_size, 1,
                            "requests queued per model")
        validation.at_least("instances", self.instances, 1, "model calls at once")
        validation.not_negative("max_queue_delay_s", self.max_queue_delay_s,
                                "seconds to wait for a fuller batch")
        validation.within("preferred_batch_sizes", self.preferred_batch_sizes, 1,
                          self.max_batch_size, "batch sizes worth waiting for, up to"
                          " max_batch_size")


@dataclass(frozen=True, slots=True)
class RequestTiming:
    """What the batch that carried one request took: the request's wait in the queue, the
    model call's seconds, and the rows of that call."""

    queue_s: float
    compute_s: float
    batch_rows: int


@dataclass(slots=True)
class QueuedRequest:
    """One request on the batcher: its inputs, its outputs' future and, once its batch has
    run, that batch's timing."""

    inputs: Arrays
    rows: int
    future: asyncio.Future[Arrays]
    deadline: float | None
    enqueued: float = field(default_factory=time.perf_counter)
    timing: RequestTiming | None = None
    request_id: str | None = None
    """The client's request id; when it gave none, one the capture makes up ("": not yet).
    None: a request the server does not record (`/predict`), whose rows are not sampled."""


@dataclass(slots=True)
class CallCost:
    """What the model calls take on average: wall-clock time, and CPU time of the thread that
    makes them. The CPU time decides where calls run: ONNX Runtime gives up the GIL while it
    computes and waits to take it back while another thread (the capture's writer) holds it;
    counted as the call's time, that wait sent fast models to the threads, where it costs
    as much plus the hop (bench/monitor/RESULTS.md)."""

    wall_s: float = 0.0
    cpu_s: float = 0.0

    def add(self, wall_s: float, cpu_s: float) -> None:
        self.wall_s += _EWMA_WEIGHT * (wall_s - self.wall_s)
        self.cpu_s += _EWMA_WEIGHT * (cpu_s - self.cpu_s)

    def fits_the_loop(self) -> bool:
        return self.cpu_s < INLINE_COMPUTE_LIMIT_S and self.wall_s < INLINE_WALL_LIMIT_S


@dataclass(frozen=True, slots=True)
class BatchTiming:
    """What one model call took: its rows, each request's wait in the queue, and the seconds
    spent merging inputs, in the model, and splitting outputs back to the requests."""

    rows: int
    waits_s: tuple[float, ...]
    input_s: float
    infer_s: float
    output_s: float


BatchObserver = Callable[[BatchTiming], None]
"""Called on the event loop's thread once per model call, after its requests are answered."""


@dataclass(slots=True)
class ModelCall:
    """One model call: its live requests, their merged inputs, the outputs (or the error the
    call raised) and its timing (None when no request was left to run)."""

    requests: list[QueuedRequest]
    inputs: Arrays
    outputs: Arrays | Exception
    timing: BatchTiming | None

    @property
    def rows(self) -> int:
        return 0 if self.timing is None else self.timing.rows


BatchSampler = Callable[[ModelCall], None]
"""Called on the event loop's thread with each model call whose outputs went back to its
requests (the capture's sampler: it copies the rows it keeps, so nothing of the call is held)."""


class DynamicBatcher:
    """Merges concurrent `submit` calls for one model into batched `run` calls."""

    def __init__(self, run: RunBatch, settings: BatchSettings,
                 observe: BatchObserver | None = None, sample: BatchSampler | None = None):
        self.run = run
        self.settings = settings
        self.observe = observe
        self.sample = sample
        self._queue: deque[QueuedRequest] = deque()
        self._wakeup: asyncio.Event | None = None
        self._worker: asyncio.Task[None] | None = None
        self._cost = CallCost()
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
        return self.enqueue_request(inputs, rows, timeout_s).future

    def enqueue_request(self, inputs: Arrays, rows: int, timeout_s: float | None = None,
                        request_id: str | None = None) -> QueuedRequest:
        """`enqueue`, returning the queued request (its future and, later, its timing)."""
        if len(self._queue) >= self.settings.max_queue_size:
            raise ServerOverloadedError(
                f"queue full ({self.settings.max_queue_size} requests waiting): retry later",
                retry_after_s=DEFAULT_RETRY_AFTER_S)
        loop = self._ensure_worker()
        deadline = None if timeout_s is None else time.perf_counter() + timeout_s
        pending = QueuedRequest(inputs, rows, loop.create_future(), deadline,
                                request_id=request_id)
        self._queue.append(pending)
        assert self._wakeup is not None
        self._wakeup.set()
        return pending

    def _ensure_worker(self) -> asyncio.AbstractEventLoop:
        """The worker's event loop, the running one (the worker starts on the first request,
        and again if it stopped; `asyncio.get_running_loop` costs more than a request's
        other batcher work, so it is not asked each time)."""
        if self._worker is None or self._worker.done():
            self._wakeup = asyncio.Event()
            self._worker = asyncio.get_running_loop().create_task(self._work())
        return self._worker.get_loop()

    async def close(self, grace_s: float = DEFAULT_CLOSE_GRACE_S) -> None:
        """Finish what is queued and running, for up to `grace_s` seconds; then fail what is
        left (503: retry) and stop the worker."""
        deadline = time.perf_counter() + grace_s
        while (self._queue or self._running) and time.perf_counter() < deadline:
            await asyncio.sleep(_CLOSE_POLL_S)
        self._fail_queued(_unloaded())
        running = list(self._running)
        for task in running:
            task.cancel()  # fails its batch; the model call itself runs on to its end
        await asyncio.gather(*running, return_exceptions=True)
        if self._worker is not None:
            self._worker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._worker
        if self._executor is not None:
            self._executor.shutdown(wait=False)
            self._executor, self._slots = None, None

    async def _work(self) -> None:
        assert self._wakeup is not None
        while True:
            await self._wakeup.wait()
            self._wakeup.clear()
            while self._queue:
                try:
                    await self._next_batch()
                except Exception as exc:  # a bug outside the model call: no request may hang
                    log.exception("the batcher failed; failing the requests it held")
                    self._fail_queued(_batch_error(exc))

    async def _next_batch(self) -> None:
        if self.settings.max_queue_delay_s > 0 and len(self._queue) > 1:
            await self._wait_for_preferred()
        if not self._inline():
            await self._start_threaded()
            return
        batch = self._take()
        try:
            self._deliver(self._compute(batch))
        except Exception as exc:
            log.exception("the batcher failed; failing the batch it held")
            _fail(batch, _batch_error(exc))
        await asyncio.sleep(0)  # let requests that arrived meanwhile queue up

    def _fail_queued(self, error: Exception) -> None:
        _fail(self._queue, error)
        self._queue.clear()

    def _inline(self) -> bool:
        return self.settings.instances == 1 and self._cost.fits_the_loop()

    async def _start_threaded(self) -> None:
        """Run the next batch on an instance thread once one is free."""
        if self._slots is None or self._executor is None:
            self._slots = asyncio.Semaphore(self.settings.instances)
            self._executor = ThreadPoolExecutor(self.settings.instances,
                                                thread_name_prefix="ferry-model")
        await self._acquire_slot(self._slots)
        if not self._queue:
            self._slots.release()
            return
        batch = self._take()
        task = asyncio.get_running_loop().create_task(self._threaded(batch))
        self._running.add(task)
        task.add_done_callback(self._running.discard)

    async def _acquire_slot(self, slots: asyncio.Semaphore) -> None:
        """A free instance; while every one is busy, queued requests whose deadline passes
        fail on time instead of when a model call ends."""
        if not slots.locked():
            await slots.acquire()
            return
        sweeper = asyncio.get_running_loop().create_task(self._sweep_deadlines())
        try:
            await slots.acquire()
        finally:
            sweeper.cancel()

    async def _sweep_deadlines(self) -> None:
        while True:
            await asyncio.sleep(DEADLINE_SWEEP_S)
            self._expire_queued()

    def _expire_queued(self) -> None:
        now = time.perf_counter()
        live = [pending for pending in self._queue if not _expired(pending, now)]
        self._queue.clear()
        self._queue.extend(live)

    async def _threaded(self, batch: list[QueuedRequest]) -> None:
        slots = self._slots
        assert slots is not None
        try:
            loop = asyncio.get_running_loop()
            self._deliver(await loop.run_in_executor(self._executor, self._compute, batch))
        except asyncio.CancelledError:  # `close()` gave up waiting for this batch
            _fail(batch, _unloaded())
            raise
        except Exception as exc:
            log.exception("the batcher failed; failing the batch it held")
            _fail(batch, _batch_error(exc))
        finally:
            slots.release()
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

    def _take(self) -> list[QueuedRequest]:
        """The next batch, oldest first, of requests whose inputs stack with the first one's
        (the others keep their place for a later batch); those past their deadline fail."""
        now = time.perf_counter()
        batch: list[QueuedRequest] = []
        unfit: list[QueuedRequest] = []
        rows = 0
        while self._queue and (not batch
                               or rows + self._queue[0].rows <= self.settings.max_batch_size):
            item = self._queue.popleft()
            if _expired(item, now):
                continue
            if batch and not _stackable(batch[0].inputs, item.inputs):
                unfit.append(item)
                continue
            batch.append(item)
            rows += item.rows
        self._queue.extendleft(reversed(unfit))
        return batch

    def _compute(self, batch: list[QueuedRequest]) -> ModelCall:
        """One model call for the batch's live requests (on any thread: no future is touched
        here except to fail those past their deadline, and `_deliver` sets the rest)."""
        now, cpu = time.perf_counter(), time.thread_time()
        live = [p for p in batch if not p.future.done()]
        if not live:
            return ModelCall(live, {}, {}, None)
        merged: Arrays = {}
        try:
            merged = _concatenate([p.inputs for p in live])
            merged_at = time.perf_counter()
            outputs: Arrays | Exception = self.run(merged)
        except Exception as exc:
            merged_at, outputs = now, exc
        elapsed = time.perf_counter() - now
        self._cost.add(elapsed, time.thread_time() - cpu)
        timing = BatchTiming(sum(p.rows for p in live), tuple(now - p.enqueued for p in live),
                             merged_at - now, elapsed - (merged_at - now), 0.0)
        return ModelCall(live, merged, outputs, timing)

    def _deliver(self, call: ModelCall) -> None:
        started, live, timing = time.perf_counter(), call.requests, call.timing
        if timing is not None:
            _stamp(live, timing)
        answered = _answer(live, call.outputs)
        if self.observe is not None and timing is not None:
            _after_answers(self.observe, replace(timing, output_s=time.perf_counter() - started))
        if answered and self.sample is not None:
            _after_answers(self.sample, call)


def _after_answers(hook: Callable[[Observed], None], observed: Observed) -> None:
    """Call a batch's observer or sampler: the requests are answered, so one that fails
    costs only its own figures or samples."""
    try:
        hook(observed)
    except Exception:
        log.exception("the batch's %s failed", getattr(hook, "__qualname__", "observer"))


def _stamp(live: list[QueuedRequest], timing: BatchTiming) -> None:
    """Each request's share of the batch's timing (read by the capture of requests)."""
    compute_s = timing.input_s + timing.infer_s
    for pending, wait_s in zip(live, timing.waits_s, strict=True):
        pending.timing = RequestTiming(wait_s, compute_s, timing.rows)


def _answer(live: list[QueuedRequest], outputs: Arrays | Exception) -> bool:
    """Give the requests their share of the outputs, or the error; whether they got outputs."""
    if isinstance(outputs, Exception):
        _fail(live, outputs)
        return False
    try:
        _split(live, outputs)
    except Exception as exc:  # outputs that do not split back into the requests
        _fail(live, _batch_error(exc))
        return False
    return bool(live)


def _expired(pending: QueuedRequest, now: float) -> bool:
    if pending.future.done():
        return True
    if pending.deadline is not None and now > pending.deadline:
        pending.future.set_exception(InferenceTimeoutError(
            f"request timed out after waiting {now - pending.enqueued:.3f} s in the queue"))
        return True
    return False


def _fail(requests: Iterable[QueuedRequest], error: BaseException) -> None:
    for pending in requests:
        if not pending.future.done():
            pending.future.set_exception(error)


def _unloaded() -> ModelNotReadyError:
    return ModelNotReadyError("the model was unloaded (or the server stopped) before this"
                              " request was answered: retry it")


def _batch_error(exc: Exception) -> FerryError:
    if isinstance(exc, FerryError):
        return exc
    return InferenceError(f"batching failed: {type(exc).__name__}: {exc}")


def _stackable(first: Arrays, other: Arrays) -> bool:
    """Whether `other`'s inputs concatenate with `first`'s along the batch axis."""
    if len(other) != len(first):
        return False
    for name, array in first.items():
        given = other.get(name)
        if (given is None or given.shape[1:] != array.shape[1:]
                or (given.dtype is not array.dtype and given.dtype != array.dtype)):
            return False
    return True


def _concatenate(requests: list[Arrays]) -> Arrays:
    if len(requests) == 1:
        return requests[0]
    return {name: np.concatenate([r[name] for r in requests]) for name in requests[0]}


def _split(batch: list[QueuedRequest], outputs: Arrays) -> None:
    if len(batch) > 1:
        _check_rows(outputs, sum(p.rows for p in batch))
    start = 0
    for pending in batch:
        end = start + pending.rows
        if not pending.future.done():  # a client that went away leaves a cancelled future
            pending.future.set_result(outputs if len(batch) == 1 else
                                      {name: value[start:end] for name, value in outputs.items()})
        start = end


def _check_rows(outputs: Arrays, rows: int) -> None:
    for name, value in outputs.items():
        if np.ndim(value) == 0 or len(value) != rows:
            raise InferenceError(
                f"the model answered a batch of {rows} rows with output {name!r} of shape"
                f" {list(np.shape(value))}: a batched model must return one row per input row")
