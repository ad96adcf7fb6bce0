"""Which captured rows are kept: all of them up to `per_second` per model version per second,
then a reservoir of that size over the rest of the second (Vitter's algorithm R), so a burst
keeps a uniform sample of itself. A second's rows are emitted once it has ended.

The sampler sees every captured request, a run of one second's requests at a time, so what
it does per request is little: past the cap it jumps from one kept row to the next
(algorithm L) through the run's cumulative row counts, and its random numbers are drawn
`UNIFORM_BATCH` at a time, not one call each."""

from __future__ import annotations

import bisect
import itertools
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

import numpy as np

from ferry.monitor.events import SampledRows

Key = tuple[str, int]
"""(model, version)."""
SecondKey = tuple[str, int, int]
"""(model, version, second)."""
UNIFORM_BATCH = 4096
"""Uniform draws fetched from the generator at once (one call costs about a microsecond)."""


class Layout(Protocol):
    """How a request's tensors become columns (hashable: requests whose layouts are equal are
    stacked tensor by tensor first, then flattened once for the whole block)."""

    def __hash__(self) -> int: ...

    def columns(self, tensors: Mapping[str, np.ndarray]) -> Mapping[str, np.ndarray]: ...


class RequestRows(Protocol):
    """The rows of one answered request. The sampler reads `ended` and `count` for every
    request, and calls `tensors()` and `request_id()` only for those it keeps, when their
    second ends."""

    @property
    def ended(self) -> float:
        """Seconds since the epoch when the request was answered."""

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

    def request_id(self) -> str:
        return self.given_id

    def tensors(self) -> tuple[Layout, Mapping[str, np.ndarray]]:
        return AsColumns(), self.given_columns


class Sampler:
    def __init__(self, per_second: int, seed: int | None = None):
        self.per_second = per_second
        self._uniforms = _Uniforms(np.random.default_rng(seed))
        self._seconds: dict[Key, _Second] = {}
        self._finished: list[tuple[Key, _Second]] = []
        """Seconds that ended while rows of a later second arrived, not yet taken."""

    def add(self, model: str, version: int, rows: RequestRows) -> None:
        self.add_run((model, version, int(rows.ended)), [rows], [rows.count])

    def add_runs(self, keys: Sequence[SecondKey], requests: Sequence[RequestRows],
                 counts: Sequence[int]) -> None:
        """Requests in the order they ended, each with its (model, version, second) and row
        count: each run of one key is taken in one step (`add_run`)."""
        start = 0
        for key, run in itertools.groupby(keys):
            stop = start + sum(1 for _ in run)
            self.add_run(key, requests[start:stop], counts[start:stop])
            start = stop

    def add_run(self, key: SecondKey, requests: Sequence[RequestRows],
                counts: Sequence[int]) -> None:
        """Requests of one model version that ended in one second, in order, with their row
        counts (the capture's thread offers a run of requests at a time)."""
        if self.per_second:
            self._second(*key).add_run(requests, counts)

    def _second(self, model: str, version: int, second: int) -> _Second:
        """The reservoir of the model version's second; its previous second is finished."""
        current = self._seconds.get((model, version))
        if current is None or current.second != second:
            if current is not None:
                self._finished.append(((model, version), current))
            current = _Second(second, self.per_second, self._uniforms)
            self._seconds[(model, version)] = current
        return current

    def take(self, now: float, *, final: bool) -> list[SampledRows]:
        """The rows of every second that has ended (all of them when `final`)."""
        done, self._finished = self._finished, []
        for key, second in list(self._seconds.items()):
            if final or second.second < int(now):
                done.append((key, self._seconds.pop(key)))
        return [rows for (model, version), second in done
                for rows in second.rows(model, version)]


class _Second:
    """One model version's kept rows within one second: the reservoir's slots.

    Once the slots are full, Li's algorithm L draws how many rows to pass over before the
    next one replaces a slot (the same uniform sample as algorithm R), so a request that no
    slot takes costs a subtraction, not a random draw per row."""

    def __init__(self, second: int, capacity: int, uniforms: _Uniforms):
        self.second = second
        self.capacity = capacity
        self.seen = 0
        self.kept: list[tuple[RequestRows, int]] = []
        self._uniforms = uniforms
        self._weight = 1.0
        self._next = 0
        """The number (counted from 1) of the next row to take once the slots are full."""

    def add_run(self, requests: Sequence[RequestRows], counts: Sequence[int]) -> None:
        """Requests of this second in order: each taken whole until the slots are full, then
        only the rows the jumps land on are looked for (by bisection over the run's
        cumulative row counts), so a request no slot takes costs an addition."""
        first = 0
        while first < len(requests) and len(self.kept) < self.capacity:
            self._fill(requests[first], counts[first])
            first += 1
        if first < len(requests):
            ends = list(itertools.accumulate(counts[first:], initial=self.seen))
            """ends[i]: the rows seen before the run's request i; ends[-1]: after the run."""
            self.seen = ends[-1]
            rest = requests[first:]

            def locate(number: int) -> tuple[RequestRows, int]:
                index = bisect.bisect_left(ends, number) - 1
                return rest[index], number - ends[index] - 1

            self._replace(locate)

    def _fill(self, rows: RequestRows, count: int) -> None:
        start = self.seen
        self.seen += count
        filled = min(count, self.capacity - len(self.kept))
        self.kept += [(rows, row) for row in range(filled)]
        if filled > 0 and len(self.kept) == self.capacity:
            self._next = start + filled
            self._skip()
            self._replace(lambda number: (rows, number - start - 1))

    def _replace(self, locate: Callable[[int], tuple[RequestRows, int]]) -> None:
        """Put every row the jumps land on, up to the rows seen, into a random slot."""
        while self._next <= self.seen:
            slot = int(self._uniforms.next() * self.capacity)
            self.kept[slot] = locate(self._next)
            self._skip()

    def _skip(self) -> None:
        """Advance `_next` past the rows no slot takes (algorithm L's geometric jump)."""
        self._weight *= math.exp(math.log(1.0 - self._uniforms.next()) / self.capacity)
        jump = math.log(1.0 - self._uniforms.next()) / math.log1p(-self._weight) \
            if self._weight < 1.0 else math.inf
        self._next += int(min(jump, 2.0**62)) + 1

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
