"""Stored predictions: the rows of a model's latest completed batch run, looked up by key.

`ferry batch MODEL --key COLUMN` writes one row per key; `ferry serve` answers
`GET /v2/models/{name}/predictions/{key}` from here, without running the model. For each
(model, selector) asked for, `StoredPredictions` keeps the newest completed run's rows in
memory: a hash index over the key column (a `pandas.Index`: over 1M integer keys it builds
in about 0.1 s and finds one key in about 1 µs, 1,000 keys in about 60 µs; a sorted array
with `searchsorted` took 3 µs and 85 µs) and the output columns as numpy arrays.

    selector   None: the newest completed run of any version
               3: the newest completed run of version 3
               "production": the newest completed run of the version the alias names now

The target is read once per run and closed at once: the default one is a DuckDB file, which
one process at a time may write, and `ferry batch` must be able to publish the next run.
A lookup at most every `refresh_s` starts a check of the registry on a background thread;
a newer run is loaded there while the old index keeps answering, then swapped in with one
assignment. Lookups themselves never wait on the registry or the target, except the first
one of a (model, selector), which waits for its load.
"""

from __future__ import annotations

import logging
import math
import re
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import date, datetime
from types import MappingProxyType
from typing import Any, Literal

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from ferry.batch.outputs import PREDICTION, PROBABILITY_PREFIX, RunStamp
from ferry.batch.sinks import open_sink
from ferry.errors import InvalidInputError, NotFoundError
from ferry.registry import BatchRun, Registry, RunStatus
from ferry.uri import ModelURI, validate_alias, validate_name

REFRESH_S = 2.0
"""How often, at most, a (model, selector) asks the registry whether a newer run completed."""
MAX_KEYS = 1000
"""Keys per lookup: a POST names at most this many."""
MAX_VERSION = 2**31 - 1
PROBE_ONE_BY_ONE = 32
"""Up to this many keys, probing each (about 2 µs) beats one vectorised probe (about 100 µs
with the conversion of the keys to an index)."""
LOADERS = 2
"""Threads that check the registry and load runs (one load holds a run's rows twice, briefly)."""
_INTEGER = re.compile(r"[+-]?[0-9]{1,20}")

Selector = int | str | None
"""Which run: None (the newest of any version), a version number, or an alias."""
KeyKind = Literal["integer", "number", "string"]
log = logging.getLogger("ferry.batch.stored")


@dataclass(frozen=True)
class KeyColumn:
    """The key column's name, and how a key sent by a client becomes one of its values."""

    name: str
    kind: KeyKind

    def convert(self, key: object, field: str) -> Any:
        """`key` as the column holds it; `InvalidInputError` names `field` when it cannot be."""
        value = _CONVERTERS[self.kind](key)
        if value is None:
            raise InvalidInputError(f"{field}: {key!r} is not a valid key: the key column"
                                    f" {self.name!r} holds {_HOLDS[self.kind]}")
        return value


def _as_integer(key: object) -> int | None:
    if isinstance(key, int) and not isinstance(key, bool):
        return key
    return int(key) if isinstance(key, str) and _INTEGER.fullmatch(key) else None


def _as_number(key: object) -> float | None:
    if isinstance(key, bool) or not isinstance(key, int | float | str):
        return None
    try:
        return float(key)
    except (ValueError, OverflowError):
        return None


def _as_string(key: object) -> str | None:
    return key if isinstance(key, str) else None


_CONVERTERS: dict[KeyKind, Callable[[object], Any]] = {
    "integer": _as_integer, "number": _as_number, "string": _as_string}
_HOLDS: dict[KeyKind, str] = {"integer": "integers", "number": "numbers", "string": "text"}


@dataclass(frozen=True)
class StoredAnswer:
    """A lookup's answer: the found keys' rows in request order, the keys not found, and the
    run that made them."""

    stamp: RunStamp
    run: Mapping[str, Any]
    """The model, version, run id and time (ISO 8601) that produced the predictions."""
    predictions: list[dict[str, Any]]
    missing: list[Any]

    def to_dict(self) -> dict[str, Any]:
        return {**self.run, "predictions": self.predictions, "missing": self.missing}


@dataclass(frozen=True)
class RunIndex:
    """One run's rows in memory: the key index and the output columns, row for row."""

    stamp: RunStamp
    key: KeyColumn
    index: pd.Index
    prediction: np.ndarray
    probabilities: tuple[tuple[str, np.ndarray], ...]
    kept: tuple[tuple[str, np.ndarray], ...]
    run: Mapping[str, Any] = field(init=False)
    """The stamp as every answer names it (made once: a lookup takes microseconds)."""

    def __post_init__(self) -> None:
        run = {"model": self.stamp.model, "version": self.stamp.version,
               "run_id": self.stamp.run_id, "scored_at": self.stamp.time.isoformat()}
        object.__setattr__(self, "run", MappingProxyType(run))

    @property
    def rows(self) -> int:
        return len(self.index)

    def lookup(self, keys: Sequence[object], field: str = "keys") -> StoredAnswer:
        """The rows of `keys` (as sent: `"17"` for an integer key is 17); a key that does not
        fit the key column is an `InvalidInputError` naming it as `field[i]`."""
        if len(keys) > MAX_KEYS:
            raise InvalidInputError(f"{field}: {len(keys)} keys, at most {MAX_KEYS} a lookup")
        values = [self.key.convert(key, f"{field}[{i}]") for i, key in enumerate(keys)]
        positions = (np.array([self._row(v) for v in values], dtype=np.int64)
                     if len(values) <= PROBE_ONE_BY_ONE
                     else np.asarray(self.index.get_indexer(pd.Index(values)), dtype=np.int64))
        found = (positions >= 0).tolist()
        missing = [value for value, ok in zip(values, found, strict=True) if not ok]
        present = [value for value, ok in zip(values, found, strict=True) if ok]
        return StoredAnswer(self.stamp, self.run,
                            self._records(present, positions[positions >= 0]), missing)

    def get(self, key: object, field: str = "key") -> StoredAnswer:
        """The row of one key; a key that does not fit is an `InvalidInputError` naming
        `field`. (One key's path, kept short: it runs thousands of times a second.)"""
        value = self.key.convert(key, field)
        row = self._row(value)
        if row < 0:
            return StoredAnswer(self.stamp, self.run, [], [value])
        return StoredAnswer(self.stamp, self.run, [self._record(value, row)], [])

    def _row(self, value: Any) -> int:
        """The value's row, -1 where the run has none."""
        try:
            row = self.index.get_loc(value)
        except (KeyError, TypeError, OverflowError):
            return -1
        return row if isinstance(row, int) else -1  # the keys are unique: always an int

    def _record(self, key: Any, row: int) -> dict[str, Any]:
        """One row as an answer names it (a one-row slice's `tolist()` is plain Python)."""
        end = row + 1
        record: dict[str, Any] = {"key": key, "prediction": self.prediction[row:end].tolist()[0]}
        if self.probabilities:
            record["probabilities"] = {label: values[row:end].tolist()[0]
                                       for label, values in self.probabilities}
        record["kept"] = {name: values[row:end].tolist()[0] for name, values in self.kept}
        return record

    def _records(self, keys: list[Any], rows: np.ndarray) -> list[dict[str, Any]]:
        predictions = self.prediction[rows].tolist()
        probabilities = [(label, values[rows].tolist()) for label, values in self.probabilities]
        kept = [(name, values[rows].tolist()) for name, values in self.kept]
        records = []
        for i, key in enumerate(keys):
            record: dict[str, Any] = {"key": key, "prediction": predictions[i]}
            if probabilities:
                record["probabilities"] = {label: values[i] for label, values in probabilities}
            record["kept"] = {name: values[i] for name, values in kept}
            records.append(record)
        return records


def build_index(run: BatchRun, table: pa.Table) -> RunIndex:
    """`run`'s rows (as its target gave them back) indexed by its key column."""
    key = run.details.get("key")
    if not key:
        raise NotFoundError(f"{run.uri}'s batch run {run.id} was made without --key, so its"
                            " predictions cannot be looked up: run `ferry batch` with --key"
                            " COLUMN")
    if key not in table.column_names:
        raise NotFoundError(f"{run.uri}'s batch run {run.id} has no rows in {run.output} any"
                            " more (a later run of the same input replaced them?)")
    table, index, kind = _indexed(_valid_keys(table, key), key)
    return RunIndex(RunStamp(run.model, run.version, run.id, run.time()), KeyColumn(key, kind),
                    index, _values(table.column(PREDICTION)), _probabilities(table),
                    tuple((name, _values(table.column(name)))
                          for name in run.details.get("keep", []) if name in table.column_names))


def _valid_keys(table: pa.Table, key: str) -> pa.Table:
    """Without the rows whose key is null (no request can name them)."""
    return table.filter(pc.is_valid(table.column(key))) if table.column(key).null_count else table


def _indexed(table: pa.Table, key: str) -> tuple[pa.Table, pd.Index, KeyKind]:
    """The key index, its hash table built here (by `is_unique`) rather than at the first
    lookup; the first row of a repeated key (`ferry batch` refuses them; other writers may
    not)."""
    column = table.column(key)
    kind: KeyKind = ("integer" if pa.types.is_integer(column.type)
                     else "number" if pa.types.is_floating(column.type) else "string")
    if kind == "string" and not _is_text(column.type):
        column = pa.chunked_array([pa.array([_jsonable(v) for v in column.to_pylist()],
                                            pa.string())])
    index = pd.Index(column.to_numpy(zero_copy_only=False))
    if index.is_unique:
        return table, index, kind
    first = ~index.duplicated(keep="first")
    index = index[first]
    assert index.is_unique
    return table.filter(pa.array(first)), index, kind


def _is_text(kind: pa.DataType) -> bool:
    return pa.types.is_string(kind) or pa.types.is_large_string(kind)


def _probabilities(table: pa.Table) -> tuple[tuple[str, np.ndarray], ...]:
    return tuple((name[len(PROBABILITY_PREFIX):], _values(table.column(name)))
                 for name in table.column_names if name.startswith(PROBABILITY_PREFIX))


def _values(column: pa.ChunkedArray) -> np.ndarray:
    """A column as numpy, such that `values[rows].tolist()` is what JSON can carry: numbers
    and text as they are, a fixed-size list (one prediction of several values) as rows, nulls
    as None, anything else (dates, times, decimals) as text."""
    kind = column.type
    if pa.types.is_fixed_size_list(kind) and not column.null_count:
        flat = column.combine_chunks().flatten().to_numpy(zero_copy_only=False)
        return np.asarray(flat).reshape(len(column), kind.list_size)
    plain = (pa.types.is_integer(kind) or pa.types.is_floating(kind)
             or pa.types.is_boolean(kind) or _is_text(kind))
    if plain and not column.null_count:
        return np.asarray(column.to_numpy(zero_copy_only=False))
    return np.fromiter((_jsonable(v) for v in column.to_pylist()), dtype=object,
                       count=len(column))


def _jsonable(value: Any) -> Any:
    if value is None or isinstance(value, bool | int | float | str | list | dict):
        return value
    if isinstance(value, datetime | date):
        return value.isoformat()
    return str(value)


def read_run(run: BatchRun) -> pa.Table:
    """Every row `run` wrote, read from its target (which is closed again at once)."""
    return open_sink(run.output, run.model).read(run.id)


@dataclass(eq=False)
class _Slot:
    """What is held for one (model, selector): the index answering now, when the registry
    was last asked about it, and the check or load under way."""

    model: str
    selector: Selector
    index: RunIndex | None = None
    checked_at: float = -math.inf
    pending: Future[RunIndex] | None = field(default=None, repr=False)


class StoredPredictions:
    """Lookups by key in the latest completed batch runs, cached per (model, selector)."""

    def __init__(self, registry: Registry, refresh_s: float = REFRESH_S,
                 read: Callable[[BatchRun], pa.Table] = read_run,
                 clock: Callable[[], float] = time.monotonic):
        self.registry = registry
        self.refresh_s = refresh_s
        self._read = read
        self._clock = clock
        self._slots: dict[tuple[str, Selector], _Slot] = {}
        self._lock = threading.Lock()
        self._loaders = ThreadPoolExecutor(LOADERS, thread_name_prefix="ferry-stored")

    def lookup(self, model: str, keys: Sequence[object], selector: Selector = None) -> StoredAnswer:
        """The stored predictions of `keys`; waits for the run's rows the first time."""
        return self.index(model, selector).lookup(keys)

    def index(self, model: str, selector: Selector = None) -> RunIndex:
        """The index answering for (model, selector); waits for it the first time."""
        index = self.cached(model, selector)
        return index if index is not None else self.load(model, selector).result()

    def cached(self, model: str, selector: Selector = None) -> RunIndex | None:
        """The index held for (model, selector), or None; never waits. A check for a newer
        run starts in the background when the last one is `refresh_s` old."""
        slot = self._slots.get((model, selector))
        if slot is None or slot.index is None:
            return None
        if slot.pending is None and self._clock() - slot.checked_at >= self.refresh_s:
            with self._lock:
                self._check_later(slot)
        return slot.index

    def load(self, model: str, selector: Selector = None) -> Future[RunIndex]:
        """The index held for (model, selector), or the future of its first load (callers
        asking at once share one). Raises `InvalidInputError` at once for a name or selector
        that cannot be; the future raises `NotFoundError` when there is no completed run with
        a key."""
        _check_selector(model, selector)
        with self._lock:
            slot = self._slots.setdefault((model, selector), _Slot(model, selector))
            if slot.index is not None:
                done: Future[RunIndex] = Future()
                done.set_result(slot.index)
                return done
            return self._check_later(slot)

    def close(self) -> None:
        """Stop the loads not started; the one running finishes on its thread."""
        self._loaders.shutdown(wait=False, cancel_futures=True)

    def _check_later(self, slot: _Slot) -> Future[RunIndex]:
        """(Under the lock.) The check under way for `slot`, or a new one."""
        if slot.pending is None:
            slot.pending = self._loaders.submit(self._check, slot)
        return slot.pending

    def _check(self, slot: _Slot) -> RunIndex:
        """(On a loader thread.) Ask the registry for the newest run; load it if it is new."""
        try:
            run = self._newest(slot.model, slot.selector)
            index = slot.index
            if index is None or index.stamp.run_id != run.id:
                index = self._held(run.id) or self._build(run)
                slot.index = index
            return index
        except Exception as exc:
            return self._failed(slot, exc)
        finally:
            slot.checked_at = self._clock()
            with self._lock:  # after `_check_later` has stored the future (under the lock)
                slot.pending = None

    def _failed(self, slot: _Slot, exc: Exception) -> RunIndex:
        """A failed check: forget the slot when there is nothing (any more) to answer from;
        on a passing failure (the target locked, the registry down) keep the index held."""
        if slot.index is None or isinstance(exc, NotFoundError):
            with self._lock:
                if self._slots.get((slot.model, slot.selector)) is slot:
                    del self._slots[(slot.model, slot.selector)]
            raise exc
        log.warning("stored predictions of %s (%s): the check for a newer run failed, still"
                    " answering from run %s: %s", slot.model, slot.selector,
                    slot.index.stamp.run_id, exc)
        return slot.index

    def _newest(self, model: str, selector: Selector) -> BatchRun:
        version = selector if isinstance(selector, int) or selector is None else (
            self.registry.get(ModelURI(model, alias=selector)).version)
        runs = self.registry.runs(model, version, RunStatus.COMPLETED)
        if not runs:
            which = f"version {version} of {model!r}" if version else repr(model)
            raise NotFoundError(f"{which} has no completed batch run to look predictions up"
                                f" in: run `ferry batch {model} --input ... --key COLUMN`")
        return runs[0]

    def _held(self, run_id: str) -> RunIndex | None:
        """The index of `run_id` if another selector holds it already (one copy per run)."""
        for slot in list(self._slots.values()):
            if slot.index is not None and slot.index.stamp.run_id == run_id:
                return slot.index
        return None

    def _build(self, run: BatchRun) -> RunIndex:
        started = time.perf_counter()
        index = build_index(run, self._read(run))
        log.info("stored predictions of %s: run %s, %d keys, loaded in %.2f s", run.uri,
                 run.id, index.rows, time.perf_counter() - started)
        return index


def _check_selector(model: str, selector: Selector) -> None:
    validate_name(model)
    if isinstance(selector, bool):
        raise InvalidInputError("the version must be a number or an alias, not true/false")
    if isinstance(selector, int) and not 1 <= selector <= MAX_VERSION:
        raise InvalidInputError(f"version {selector}: versions are numbers from 1 to"
                                f" {MAX_VERSION}")
    if isinstance(selector, str):
        validate_alias(selector)


def selector_of(version: str | None, alias: str | None = None) -> Selector:
    """A selector from text (a URL's): `version` a number or an alias, `alias` an alias;
    at most one of the two."""
    if version and alias:
        raise InvalidInputError("give a version or an alias, not both")
    if alias:
        return alias
    if not version:
        return None
    if version.isascii() and version.isdigit():
        if len(version) > len(str(MAX_VERSION)):
            raise InvalidInputError(f"version {version}: versions are numbers from 1 to"
                                    f" {MAX_VERSION}")
        return int(version)
    return version
