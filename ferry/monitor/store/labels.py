"""Late labels: which requests a label may name, and the rows a store writes for them.

A label is stored when it names a request whose rows the store sampled: that is what it is
joined to. Labels of other requests are skipped and counted (under load the capture samples
a share of the requests, while a client labels all of its own); a call none of whose labels
names a sampled request is refused, naming the ids (a mistyped id, another model's). Requests
known only by their event count as not sampled, because looking them up needs an index on
the events' request ids, and random ids in a B-tree cut the embedded store's event appends
to a third, falling as the table grows (bench/monitor/RESULTS.md). A label takes its
request's version and time, so labels are read, and purged, with the samples of that version
and time; one that names a row of the request that was not sampled is kept but matches
nothing.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from numbers import Integral

from ferry.errors import InvalidInputError
from ferry.monitor.store.base import Attached, Label
from ferry.monitor.store.samples import label_json

SHOWN_UNKNOWN = 10
"""How many unknown request ids an error message names before it counts the rest."""


@dataclass(frozen=True, slots=True)
class KnownRequest:
    """What the store holds of one sampled request."""

    version: int
    ts_us: int
    rows: frozenset[int]
    """The numbers of its rows that were sampled (a reservoir may keep any of them)."""


@dataclass(frozen=True, slots=True)
class LabelRow:
    """One label as stored; `label` is JSON text."""

    model: str
    version: int
    request_id: str
    row: int
    ts_us: int
    label: str


def known_requests(rows: Iterable[tuple[str, int, int, int]]) -> dict[str, KnownRequest]:
    """Sampled rows, as (request_id, version, ts_us, row), gathered by request."""
    numbers: dict[str, set[int]] = defaultdict(set)
    first: dict[str, tuple[int, int]] = {}
    for request_id, version, ts_us, row in rows:
        numbers[request_id].add(row)
        first.setdefault(request_id, (version, ts_us))
    return {request_id: KnownRequest(*first[request_id], frozenset(numbers[request_id]))
            for request_id in first}


def request_ids(labels: Sequence[Label]) -> list[str]:
    """The distinct request ids the labels name, in first-seen order."""
    return list(dict.fromkeys(request_id for request_id, _, _ in labels))


@dataclass(frozen=True, slots=True)
class LabelPlan:
    """What a store writes for one call's labels, and what it tells the caller."""

    rows: list[LabelRow]
    attached: Attached


def label_plan(model: str, labels: Sequence[Label],
               known: Mapping[str, KnownRequest]) -> LabelPlan:
    """What to store of `labels`: those of requests in `known`; the rest are skipped, and
    refused when no label names a known request (`refuse_unknown`)."""
    named = request_ids(labels)
    unknown = [request_id for request_id in named if request_id not in known]
    if len(unknown) == len(named):
        refuse_unknown(model, unknown)
    stored = _label_rows(model, labels, known)
    skipped = sum(request_id not in known for request_id, _, _ in labels)
    return LabelPlan(stored, Attached(len(labels) - skipped, matched(stored, known), skipped,
                                      tuple(unknown[:SHOWN_UNKNOWN])))


def _label_rows(model: str, labels: Sequence[Label],
                known: Mapping[str, KnownRequest]) -> list[LabelRow]:
    """One row per (request_id, row) of a known request, the last label given winning (every
    label's row checked, known or not)."""
    rows: dict[tuple[str, int], LabelRow] = {}
    for request_id, row, label in labels:
        index = _row_index(request_id, row)
        request = known.get(request_id)
        if request is not None:
            rows[request_id, index] = LabelRow(model, request.version, request_id, index,
                                               request.ts_us,
                                               label_json(request_id, index, label))
    return list(rows.values())


def matched(rows: Iterable[LabelRow], known: Mapping[str, KnownRequest]) -> int:
    """How many labels name a sampled row."""
    return sum(row.row in known[row.request_id].rows for row in rows)


def refuse_unknown(model: str, unknown: Iterable[str]) -> None:
    names = list(unknown)
    if not names:
        return
    shown = ", ".join(repr(name) for name in names[:SHOWN_UNKNOWN])
    more = f" and {len(names) - SHOWN_UNKNOWN} more" if len(names) > SHOWN_UNKNOWN else ""
    raise InvalidInputError(f"request_id not among the sampled requests of model {model!r}: "
                            f"{shown}{more}; nothing was recorded", model=model)


MAX_ROW = 2**31 - 1
"""Rows of one request are counted in 32 bits (a request holds far fewer)."""


def _row_index(request_id: str, row: object) -> int:
    if isinstance(row, bool) or not isinstance(row, Integral) or not 0 <= int(row) <= MAX_ROW:
        raise InvalidInputError(f"row of request {request_id!r} must be a row index "
                                f"(an integer from 0 to {MAX_ROW}), got {row!r}")
    return int(row)
