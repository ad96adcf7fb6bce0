"""Which captured rows are kept: all of them up to `per_second` per model version per second,
then a reservoir of that size over the rest of the second (Vitter's algorithm R), so a burst
keeps a uniform sample of itself. A second's rows are emitted once it has ended.

The server offers its rows a model call at a time (`Rows`: a batch of requests' merged
inputs and outputs), after the call's outputs went back to its requests. Past the cap the
sampler jumps from one kept row to the next (algorithm L): a call no jump lands on costs a
comparison, and the rows a jump lands on are copied into the second's buffers, one row per
slot, one assignment per tensor. Nothing of the call or its requests is held but their ids,
and the buffers are a few arrays per second, not objects per row. The random numbers are
drawn `UNIFORM_BATCH` at a time, not one call each. (bench/monitor/RESULTS.md: this costs
the server what sampling each request as it closed did, within 1 %; the cost is in the
takes, a few hundred a second, and the write of each second's rows.)"""

from __future__ import annotations

import math
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol, cast

import numpy as np

from ferry.monitor.events import SampledRows

Key = tuple[str, int]
"""(model, version)."""
_NEVER = 2**63
UNIFORM_BATCH = 4096
"""Uniform draws fetched from the generator at once (one call costs about a microsecond)."""
FIRST_BUFFER_ROWS = 8
"""Rows a second's buffers start with; they double as the slots fill, up to the cap."""


class Layout(Protocol):
    """How tensors become columns (hashable: rows whose layouts are equal share buffers)."""

    def __hash__(self) -> int: ...

    def columns(self, tensors: Mapping[str, np.ndarray]) -> Mapping[str, np.ndarray]: ...


class Rows(Protocol):
    """Rows offered together, numbered from 0 (a model call's batch, or given columns)."""

    def tensors(self) -> tuple[Layout, Mapping[str, np.ndarray]]:
        """Its tensors, the row first in each, not copied; and how they become columns."""

    def owners(self, rows: list[int]) -> tuple[list[str], list[int]]:
        """The request id of each of the given rows (ascending), and its number there."""


def _same(rows: Any) -> Rows:
    return cast(Rows, rows)


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
    """Rows already in columns, all of one request (tests, batch jobs)."""

    ended: float
    given_id: str
    given_columns: Mapping[str, np.ndarray]

    @property
    def count(self) -> int:
        return len(next(iter(self.given_columns.values())))

    def tensors(self) -> tuple[Layout, Mapping[str, np.ndarray]]:
        return AsColumns(), {name: np.asarray(values)
                             for name, values in self.given_columns.items()}

    def owners(self, rows: list[int]) -> tuple[list[str], list[int]]:
        return [self.given_id] * len(rows), rows


class Sampler:
    """The reservoirs of the current second of each model version, fed on the event loop's
    thread (`offer`, under a lock that `take` holds only to collect the seconds that ended).

    Rows no slot takes cost a comparison; those a slot takes are copied into the second's
    buffers and held until their second is taken. Once the buffers held reach
    `max_held_bytes`, the rows the slots would take are passed over (not copied), so what
    is held stays under the bound plus one second's buffers."""

    def __init__(self, per_second: int, seed: int | None = None, *,
                 max_held_bytes: int | None = None):
        self.per_second = per_second
        self.max_held_bytes = max_held_bytes
        self.held_bytes = 0
        """Bytes of the buffers of the seconds not yet taken."""
        self._uniforms = _Uniforms(np.random.default_rng(seed))
        self._seconds: dict[Key, _Second] = {}
        self._finished: list[tuple[Key, _Second]] = []
        """Seconds that ended while rows of a later second arrived, not yet taken."""
        self._lock = threading.Lock()

    def add(self, model: str, version: int, rows: GivenRows) -> None:
        self.offer((model, version), int(rows.ended), rows.count, rows)

    def offer(self, key: Key, second: int, count: int, source: Any,
              rows_of: Callable[[Any], Rows] = _same) -> None:
        """`count` rows of the model version `key` answered in `second`: `rows_of(source)`
        is called, and rows copied, only when a slot takes some of them and the buffers held
        are under the byte bound."""
        with self._lock:
            current = self._seconds.get(key)
            if current is None or current.second != second:
                current = self._second(key, second, current)
            start = current.seen
            current.seen = start + count
            if current.seen >= current.next:
                self._take(current, source, rows_of, start)

    def _take(self, second: _Second, source: Any, rows_of: Callable[[Any], Rows],
              start: int) -> None:
        """Copy the rows the slots take among those numbered after `start` into their slots."""
        holdable = self.max_held_bytes is None or self.held_bytes < self.max_held_bytes
        drawn = second.draw(start, holdable)
        if drawn:
            grown = second.put(rows_of(source), drawn)
            self.held_bytes += grown

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

    Rows are numbered from 1 in the order they were offered. The first `capacity` are kept;
    after that, Li's algorithm L draws how many rows to pass over before the next one
    replaces a random slot (the same uniform sample as algorithm R), so rows that no slot
    takes cost a comparison, not a random draw per row. Slot i's row is row i of the
    buffers named by `buffers[i]`, with its request's id and its number there."""

    def __init__(self, second: int, capacity: int, uniforms: _Uniforms):
        self.second = second
        self.capacity = capacity
        self.seen = 0
        self.buffers: list[_Buffers | None] = []
        """Each slot's buffers (None: a slot whose rows could not be copied)."""
        self.request_ids: list[str] = []
        self.row_numbers: list[int] = []
        self.held_bytes = 0
        """Bytes of this second's buffers."""
        self._by_shape: dict[tuple[Any, ...], _Buffers] = {}
        self._filled = 0
        self._uniforms = uniforms
        self._weight = 1.0
        self.next = 1 if capacity else _NEVER
        """The number of the next row a slot takes."""

    def draw(self, start: int, holdable: bool) -> list[tuple[int, int]]:
        """(row, slot) for each row numbered `start + 1` to `seen` that a slot takes, the row
        counted from 0 at `start + 1`, in order (a later row may replace an earlier one).
        When the rows cannot be held, none is taken: they are passed over."""
        drawn: list[tuple[int, int]] = []
        while self.next <= self.seen:
            row = self.next - start - 1
            if self._filled < self.capacity:
                if not holdable:
                    self.next = self.seen + 1
                    break
                drawn.append((row, self._filled))
                self._fill()
            else:
                if holdable:
                    drawn.append((row, int(self._uniforms.next() * self.capacity)))
                self._skip()
        return drawn

    def _fill(self) -> None:
        self._filled += 1
        if self._filled < self.capacity:
            self.next += 1
        else:
            self._skip()

    def _skip(self) -> None:
        """Advance `next` past the rows no slot takes (algorithm L's geometric jump)."""
        self._weight *= math.exp(math.log(1.0 - self._uniforms.next()) / self.capacity)
        jump = math.log(1.0 - self._uniforms.next()) / math.log1p(-self._weight) \
            if self._weight < 1.0 else math.inf
        self.next += int(min(jump, 2.0**62)) + 1

    def put(self, rows: Rows, drawn: list[tuple[int, int]]) -> int:
        """Copy the drawn rows into their slots, in order (a later row drawn for a slot
        replaces an earlier one); the bytes the buffers grew by."""
        layout, tensors = rows.tensors()
        ids, numbers = rows.owners([row for row, _ in drawn])
        buffers = self._buffers(layout, tensors)
        grown = buffers.reserve(max(slot for _, slot in drawn) + 1)
        for index, (row, slot) in enumerate(drawn):
            buffers.put(slot, row, tensors)
            self._place(slot, buffers, ids[index], numbers[index])
        self.held_bytes += grown
        return grown

    def _buffers(self, layout: Layout, tensors: Mapping[str, np.ndarray]) -> _Buffers:
        """The buffers for rows of this layout, tensor names, row shapes and dtypes."""
        key = (layout, *((name, values.shape[1:], values.dtype)
                         for name, values in tensors.items()))
        found = self._by_shape.get(key)
        if found is None:
            found = self._by_shape[key] = _Buffers(layout, tensors, self.capacity)
        return found

    def _place(self, slot: int, buffers: _Buffers, request_id: str, number: int) -> None:
        """Slot `slot`'s row, copied (slots that an earlier copy failed to fill stay empty)."""
        missing = slot + 1 - len(self.buffers)
        if missing > 0:
            self.buffers += [None] * missing
            self.request_ids += [""] * missing
            self.row_numbers += [0] * missing
        self.buffers[slot] = buffers
        self.request_ids[slot] = request_id
        self.row_numbers[slot] = number

    def rows(self, model: str, version: int) -> list[SampledRows]:
        """The kept rows, one block per buffers (one append per second, not per call)."""
        slots: dict[int, list[int]] = {}
        for slot, buffers in enumerate(self.buffers):
            if buffers is not None:
                slots.setdefault(id(buffers), []).append(slot)
        ts = datetime.fromtimestamp(self.second, UTC)
        return [sampled for buffers in self._by_shape.values() if id(buffers) in slots
                if (sampled := self._sampled(ts, model, version, buffers,
                                             slots[id(buffers)])) is not None]

    def _sampled(self, ts: datetime, model: str, version: int, buffers: _Buffers,
                 slots: list[int]) -> SampledRows | None:
        columns = buffers.layout.columns(buffers.rows(slots))
        if not columns:
            return None
        request_ids = [self.request_ids[slot] for slot in slots]
        return SampledRows(ts=ts, request_id=request_ids[0], model=model, version=version,
                           columns=columns, row_requests=request_ids,
                           row_numbers=[self.row_numbers[slot] for slot in slots])


class _Buffers:
    """Copies of kept rows that share a layout, tensor names, row shapes and dtypes: row i
    of each array is slot i's (when the slot is this buffers')."""

    def __init__(self, layout: Layout, tensors: Mapping[str, np.ndarray], capacity: int):
        self.layout = layout
        self.capacity = capacity
        self.size = 0
        self.arrays = {name: np.empty((0, *values.shape[1:]), values.dtype)
                       for name, values in tensors.items()}

    def put(self, slot: int, row: int, tensors: Mapping[str, np.ndarray]) -> None:
        """Copy `row` of `tensors` into `slot`, one plain assignment per tensor (a list index
        costs numpy's fancy indexing: seven times as long)."""
        for name, values in tensors.items():
            self.arrays[name][slot] = values[row]

    def reserve(self, needed: int) -> int:
        """Room for `needed` slots; the bytes the arrays grew by."""
        if needed <= self.size:
            return 0
        size = min(max(needed, 2 * self.size, FIRST_BUFFER_ROWS), self.capacity)
        before = sum(array.nbytes for array in self.arrays.values())
        for name, array in self.arrays.items():
            grown = np.empty((size, *array.shape[1:]), array.dtype)
            grown[:self.size] = array
            self.arrays[name] = grown
        self.size = size
        return sum(array.nbytes for array in self.arrays.values()) - before

    def rows(self, slots: list[int]) -> dict[str, np.ndarray]:
        """The slots' rows (the arrays themselves, trimmed, when the slots are all of them
        in order: the common case)."""
        if slots == list(range(len(slots))):
            return {name: array[:len(slots)] for name, array in self.arrays.items()}
        return {name: array[slots] for name, array in self.arrays.items()}


class _Uniforms:
    """Uniform numbers in [0, 1), drawn from `rng` a batch at a time."""

    def __init__(self, rng: np.random.Generator):
        self._rng = rng
        self._batch: list[float] = []

    def next(self) -> float:
        if not self._batch:
            self._batch = self._rng.random(UNIFORM_BATCH).tolist()
        return self._batch.pop()
