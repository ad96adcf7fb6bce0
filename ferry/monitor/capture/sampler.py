"""Which captured rows are kept: all of them up to `per_second` per model version per second,
then a reservoir of that size over the rest of the second (Vitter's algorithm R), so a burst
keeps a uniform sample of itself. A second's rows are emitted once it has ended."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Protocol

import numpy as np

from ferry.monitor.events import SampledRows

Key = tuple[str, int]
"""(model, version)."""


class RequestRows(Protocol):
    """The rows of one answered request. The sampler reads `ended` and `count` for every
    request, and calls `columns()` and `request_id()` only for those it keeps, when their
    second ends: building columns is most of a capture's cost."""

    @property
    def ended(self) -> float:
        """Seconds since the epoch when the request was answered."""

    @property
    def count(self) -> int: ...

    def request_id(self) -> str: ...

    def columns(self) -> Mapping[str, np.ndarray]: ...


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

    def columns(self) -> Mapping[str, np.ndarray]:
        return self.given_columns


class Sampler:
    def __init__(self, per_second: int, seed: int | None = None):
        self.per_second = per_second
        self._rng = np.random.default_rng(seed)
        self._seconds: dict[Key, _Second] = {}
        self._finished: list[tuple[Key, _Second]] = []
        """Seconds that ended while rows of a later second arrived, not yet taken."""

    def add(self, model: str, version: int, rows: RequestRows) -> None:
        if rows.count == 0 or self.per_second == 0:
            return
        second = int(rows.ended)
        current = self._seconds.get((model, version))
        if current is None or current.second != second:
            if current is not None:
                self._finished.append(((model, version), current))
            current = self._seconds[(model, version)] = _Second(second, self.per_second)
        current.add(rows, self._rng)

    def take(self, now: float, *, final: bool) -> list[SampledRows]:
        """The rows of every second that has ended (all of them when `final`)."""
        done, self._finished = self._finished, []
        for key, second in list(self._seconds.items()):
            if final or second.second < int(now):
                done.append((key, self._seconds.pop(key)))
        return [rows for (model, version), second in done
                for rows in second.rows(model, version)]


class _Second:
    """One model version's kept rows within one second: the reservoir's slots."""

    def __init__(self, second: int, capacity: int):
        self.second = second
        self.capacity = capacity
        self.seen = 0
        self.kept: list[tuple[RequestRows, int]] = []

    def add(self, rows: RequestRows, rng: np.random.Generator) -> None:
        for row in range(rows.count):
            self.seen += 1
            if len(self.kept) < self.capacity:
                self.kept.append((rows, row))
                continue
            slot = int(rng.integers(self.seen))
            if slot < self.capacity:
                self.kept[slot] = (rows, row)

    def rows(self, model: str, version: int) -> list[SampledRows]:
        """The kept rows as one block per set of columns (columns built only now, for the
        kept requests): one store append per second, not one per request."""
        by_request: dict[int, tuple[RequestRows, list[int]]] = {}
        for rows, row in self.kept:
            by_request.setdefault(id(rows), (rows, []))[1].append(row)
        blocks: dict[tuple[str, ...], _Block] = {}
        for rows, index in by_request.values():
            columns = rows.columns()
            if columns:
                blocks.setdefault(tuple(columns), _Block()).add(rows, sorted(index), columns)
        ts = datetime.fromtimestamp(self.second, UTC)
        return [block.sampled(ts, model, version) for block in blocks.values()]


class _Block:
    """Kept rows of several requests that share their columns."""

    def __init__(self) -> None:
        self.parts: dict[str, list[np.ndarray]] = {}
        self.requests: list[str] = []
        self.numbers: list[int] = []

    def add(self, rows: RequestRows, index: list[int],
            columns: Mapping[str, np.ndarray]) -> None:
        every = len(index) == rows.count
        for name, values in columns.items():
            self.parts.setdefault(name, []).append(values if every else values[index])
        self.requests += [rows.request_id()] * len(index)
        self.numbers += index

    def sampled(self, ts: datetime, model: str, version: int) -> SampledRows:
        return SampledRows(ts=ts, request_id=self.requests[0], model=model, version=version,
                           columns={name: np.concatenate(parts)
                                    for name, parts in self.parts.items()},
                           row_requests=self.requests, row_numbers=self.numbers)
