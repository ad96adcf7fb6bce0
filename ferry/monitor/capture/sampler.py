"""Which captured rows are kept: all of them up to `per_second` per model version per second,
then a reservoir of that size over the rest of the second (Vitter's algorithm R), so a burst
keeps a uniform sample of itself. A second's rows are emitted once it has ended.

The sampler meets every answered request on the request path, so what it does for one is
little: past the cap it jumps from one kept row to the next (algorithm L), a request no jump
lands on costs a comparison and is let go at once, and the random numbers are drawn
`UNIFORM_BATCH` at a time, not one call each. Only the requests a slot takes are held until
their second is written (bench/monitor/RESULTS.md: holding every request for the writer
thread to sample cost the server more than the sampling itself)."""

from __future__ import annotations

import math
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

import numpy as np

from ferry.monitor.events import SampledRows

Key = tuple[str, int]
"""(model, version)."""
_NEVER = 2**63
UNIFORM_BATCH = 4096
"""Uniform draws fetched from the generator at once (one call costs about a microsecond)."""


class Layout(Protocol):
    """How a request's tensors become columns (hashable: requests whose layouts are equal are
    stacked tensor by tensor first, then flattened once for the whole block)."""

    def __hash__(self) -> int: ...

    def columns(self, tensors: Mapping[str, np.ndarray]) -> Mapping[str, np.ndarray]: ...


class RequestRows(Protocol):
    """The rows of one answered request that a slot took: the sampler reads `count` and calls
    `tensors()` and `request_id()` when its second ends."""

    @property
    def count(self) -> int: ...

    def request_id(self) -> str: ...

    def tensors(self) -> tuple[Layout, Mapping[str, np.ndarray]] | None:
        """Its tensors by name, the row first in each, and how they become columns; None
        when it has none to give (it failed)."""


class AsColumns:
    """The layout of tensors that are columns already."""

    def __hash__(self) -> int:
        return 0

    def __eq__(self, other: object) -> bool:
        return isinstance(other, AsColumns)

    def columns(self, tensors: Mapping[str, np.ndarray]) -> Mapping[str, np.ndarray]:
        return tensors


@dataclass(frozen=True, slots=True)
class GivenRows:
    """Rows already in columns (tests, batch jobs)."""

    ended: float
    given_id: str
    given_columns: Mapping[str, np.ndarray]

    @property
    def count(self) -> int:
        return len(next(iter(self.given_columns.values())))

    @property
    def request_bytes(self) -> int:
        return sum(np.asarray(values).nbytes for values in self.given_columns.values())

    def request_id(self) -> str:
        return self.given_id

    def tensors(self) -> tuple[Layout, Mapping[str, np.ndarray]]:
        return AsColumns(), self.given_columns


def _same(request: Any) -> RequestRows:
    return request


class Sampler:
    """The reservoirs of the current second of each model version, fed on the request path
    (`offer`, under a lock that `take` holds only to collect the seconds that ended).

    A request no slot takes costs a comparison and is not referenced afterwards; one that a
    slot takes is turned into its rows by `rows_of` (once) and held until its second is
    taken, while the request bytes held stay under `max_held_bytes` (past it, the rows the
    slots would take are passed over)."""

    def __init__(self, per_second: int, seed: int | None = None, *,
                 rows_of: Callable[[Any], RequestRows] | None = None,
                 max_held_bytes: int | None = None):
        self.per_second = per_second
        self.rows_of = rows_of or _same
        self.max_held_bytes = max_held_bytes
        self.held_bytes = 0
        """Request bytes of the requests the slots of seconds not yet taken hold."""
        self._uniforms = _Uniforms(np.random.default_rng(seed))
        self._seconds: dict[Key, _Second] = {}
        self._finished: list[tuple[Key, _Second]] = []
        """Seconds that ended while rows of a later second arrived, not yet taken."""
        self._lock = threading.Lock()

    def add(self, model: str, version: int, rows: GivenRows) -> None:
        self.offer((model, version), int(rows.ended), rows.count, rows.request_bytes, rows)

    def offer(self, key: Key, second: int, count: int, size: int, request: Any) -> None:
        """A request of `count` rows and `size` bytes of the model version `key` that ended
        in `second`: `rows_of(request)` is called only when a slot takes one of its rows and
        its bytes fit the bound."""
        with self._lock:
            current = self._seconds.get(key)
            if current is None or current.second != second:
                current = self._second(key, second, current)
            start = current.seen
            current.seen = start + count
            if current.seen >= current.next:
                current.take(self._held(request, size, current), start)

    def _held(self, request: Any, size: int, second: _Second) -> RequestRows | None:
        """The request's rows, counted as held until `second` is taken; None (and not built)
        when its `size` would pass the byte bound."""
        if self.max_held_bytes is not None and self.held_bytes + size > self.max_held_bytes:
            return None
        self.held_bytes += size
        second.held_bytes += size
        return self.rows_of(request)

    def _second(self, key: Key, second: int, previous: _Second | None) -> _Second:
        """The reservoir of the model version's `second`; its `previous` one is finished."""
        if previous is not None:
            self._finished.append((key, previous))
        current = _Second(second, self.per_second, self._uniforms)
        self._seconds[key] = current
        return current

    def take(self, now: float, *, final: bool) -> list[SampledRows]:
        """The rows of every second that has ended (all of them when `final`)."""
        with self._lock:
            done, self._finished = self._finished, []
            for key, second in list(self._seconds.items()):
                if final or second.second < int(now):
                    done.append((key, self._seconds.pop(key)))
            self.held_bytes -= sum(second.held_bytes for _, second in done)
        return [rows for (model, version), second in done
                for rows in second.rows(model, version)]


class _Second:
    """One model version's kept rows within one second: the reservoir's slots.

    Rows are numbered from 1 in the order their requests ended. The first `capacity` are
    kept; after that, Li's algorithm L draws how many rows to pass over before the next one
    replaces a random slot (the same uniform sample as algorithm R), so a request that no
    slot takes costs a comparison, not a random draw per row."""

    def __init__(self, second: int, capacity: int, uniforms: _Uniforms):
        self.second = second
        self.capacity = capacity
        self.seen = 0
        self.kept: list[tuple[RequestRows, int]] = []
        self.held_bytes = 0
        """Request bytes of the requests a slot took (replaced or not)."""
        self._uniforms = uniforms
        self._weight = 1.0
        self.next = 1 if capacity else _NEVER
        """The number of the next row a slot takes."""

    def take(self, rows: RequestRows | None, start: int) -> None:
        """The rows the slots take among those numbered `start + 1` to `seen`, which are
        `rows`' (None: pass over them)."""
        while self.next <= self.seen:
            number = self.next
            if len(self.kept) < self.capacity:
                self._fill(rows, number - start - 1)
            else:
                if rows is not None:
                    self.kept[int(self._uniforms.next() * self.capacity)] = \
                        (rows, number - start - 1)
                self._skip()

    def _fill(self, rows: RequestRows | None, row: int) -> None:
        if rows is None:
            self.next = self.seen + 1
            return
        self.kept.append((rows, row))
        if len(self.kept) < self.capacity:
            self.next += 1
        else:
            self._skip()

    def _skip(self) -> None:
        """Advance `next` past the rows no slot takes (algorithm L's geometric jump)."""
        self._weight *= math.exp(math.log(1.0 - self._uniforms.next()) / self.capacity)
        jump = math.log(1.0 - self._uniforms.next()) / math.log1p(-self._weight) \
            if self._weight < 1.0 else math.inf
        self.next += int(min(jump, 2.0**62)) + 1

    def rows(self, model: str, version: int) -> list[SampledRows]:
        """The kept rows as one block per layout and set of tensors (tensors stacked only now,
        for the kept requests): one store append per second, not one per request."""
        by_request: dict[int, tuple[RequestRows, list[int]]] = {}
        for rows, row in self.kept:
            by_request.setdefault(id(rows), (rows, []))[1].append(row)
        blocks: dict[tuple[Any, ...], _Block] = {}
        for rows, index in by_request.values():
            found = rows.tensors()
            if found is not None and found[1]:
                layout, tensors = found
                block = blocks.setdefault(_block_key(layout, tensors), _Block(layout))
                block.add(rows, sorted(index), tensors)
        ts = datetime.fromtimestamp(self.second, UTC)
        return [sampled for block in blocks.values()
                if (sampled := block.sampled(ts, model, version)) is not None]


def _block_key(layout: Layout, tensors: Mapping[str, np.ndarray]) -> tuple[Any, ...]:
    """Requests stack into one block when their layouts, tensor names and shapes past the
    row axis agree."""
    return layout, *((name, np.shape(values)[1:]) for name, values in tensors.items())


class _Uniforms:
    """Uniform numbers in [0, 1), drawn from `rng` a batch at a time."""

    def __init__(self, rng: np.random.Generator):
        self._rng = rng
        self._batch: list[float] = []

    def next(self) -> float:
        if not self._batch:
            self._batch = self._rng.random(UNIFORM_BATCH).tolist()
        return self._batch.pop()


class _Block:
    """Kept rows of several requests that share a layout and tensor names."""

    def __init__(self, layout: Layout) -> None:
        self.layout = layout
        self.parts: dict[str, list[np.ndarray]] = {}
        self.requests: list[str] = []
        self.numbers: list[int] = []

    def add(self, rows: RequestRows, index: list[int],
            tensors: Mapping[str, np.ndarray]) -> None:
        every = len(index) == rows.count
        for name, values in tensors.items():
            self.parts.setdefault(name, []).append(values if every else values[index])
        self.requests += [rows.request_id()] * len(index)
        self.numbers += index

    def sampled(self, ts: datetime, model: str, version: int) -> SampledRows | None:
        stacked = {name: parts[0] if len(parts) == 1 else np.concatenate(parts)
                   for name, parts in self.parts.items()}
        columns = self.layout.columns(stacked)
        if not columns:
            return None
        return SampledRows(ts=ts, request_id=self.requests[0], model=model, version=version,
                           columns=columns, row_requests=self.requests,
                           row_numbers=self.numbers)
