"""Late labels: which requests a label may name, and the rows a store writes for them.

A label may name a request whose rows the store sampled: that is what it is joined to, and
what tells a mistyped id, or another model's, from a real one. Requests known only by their
event are refused too, because looking them up needs an index on the events' request ids,
and random ids in a B-tree cut the embedded store's event appends from about 80,000 to about
20,000 a second (bench/monitor/RESULTS.md). A label takes its request's version and time, so
labels are read, and purged, with the samples of that version and time; one that names a
row past those sampled is kept but matches nothing.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from numbers import Integral

from ferry.errors import InvalidInputError
from ferry.monitor.store.base import Label
from ferry.monitor.store.samples import label_json

SHOWN_UNKNOWN = 10
"""How many unknown request ids an error message names before it counts the rest."""


@dataclass(frozen=True, slots=True)
class KnownRequest:
    """What the store holds of one sampled request."""

    version: int
    ts_us: int
    sampled_rows: int


@dataclass(frozen=True, slots=True)
class LabelRow:
    """One label as stored; `label` is JSON text."""

    model: str
    version: int
    request_id: str
    row: int
    ts_us: int
    label: str


def request_ids(labels: Sequence[Label]) -> list[str]:
    """The distinct request ids the labels name, in first-seen order."""
    return list(dict.fromkeys(request_id for request_id, _, _ in labels))


def label_rows(model: str, labels: Sequence[Label],
               known: Mapping[str, KnownRequest]) -> list[LabelRow]:
    """The rows to store, one per (request_id, row), the last label given winning; refuses
    the whole batch when it names a request the store does not know."""
    refuse_unknown(model, (request_id for request_id in request_ids(labels)
                           if request_id not in known))
    rows: dict[tuple[str, int], LabelRow] = {}
    for request_id, row, label in labels:
        request = known[request_id]
        index = _row_index(request_id, row)
        rows[request_id, index] = LabelRow(model, request.version, request_id, index,
                                           request.ts_us, label_json(request_id, index, label))
    return list(rows.values())


def matched(rows: Iterable[LabelRow], known: Mapping[str, KnownRequest]) -> int:
    """How many labels name a sampled row."""
    return sum(row.row < known[row.request_id].sampled_rows for row in rows)


def refuse_unknown(model: str, unknown: Iterable[str]) -> None:
    names = list(unknown)
    if not names:
        return
    shown = ", ".join(repr(name) for name in names[:SHOWN_UNKNOWN])
    more = f" and {len(names) - SHOWN_UNKNOWN} more" if len(names) > SHOWN_UNKNOWN else ""
    raise InvalidInputError(f"request_id not among the sampled requests of model {model!r}: "
                            f"{shown}{more}; nothing was recorded", model=model)


def _row_index(request_id: str, row: object) -> int:
    if isinstance(row, bool) or not isinstance(row, Integral) or int(row) < 0:
        raise InvalidInputError(f"row of request {request_id!r} must be a row index "
                                f"(an integer >= 0), got {row!r}")
    return int(row)
