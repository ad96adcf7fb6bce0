"""Late labels (feedback): the true answers to requests the server captured, checked against
the model version before the store attaches them to the sampled rows.

Three doors lead here, and all of them check labels the same way (`LabelRule`):
- `POST /v2/models/{name}/feedback` with `{"labels": [{"id": "req-1", "row": 0,
  "label": 2}, ...]}` (row defaults to 0); `{"id": "req-1", "labels": [2, 0, 1]}` gives
  every row of one request, as an item of that list or as the whole body
  (`labels_from_document`);
- `ferry feedback URI labels.csv`, a CSV with columns id, row, label (`labels_from_csv`);
- `ferry.feedback(uri, labels)` from Python (`feedback`).

A label must be comparable with the model's prediction, or live performance would count it as
a silent error: one of `signature.class_labels` for a classifier (the same kind too: `"1"` is
not class `1`), a finite number for a regressor; one bad label refuses the whole call. The
store attaches the labels of the requests it sampled for the model and skips, counting and
naming them, those of other requests; a call none of whose requests was sampled is refused.
"""

from __future__ import annotations

import csv
import math
import os
from collections.abc import Iterable, Mapping, Sequence
from contextlib import nullcontext
from dataclasses import asdict, dataclass
from numbers import Integral, Real
from pathlib import Path
from typing import Any

from ferry.errors import InvalidInputError, one_line
from ferry.monitor.store import Attached, Label, MonitoringStore, open_store
from ferry.registry import ModelVersion, Registry
from ferry.signature import Task
from ferry.text import is_whole_number

MAX_LABELS_PER_CALL = 10_000
"""Labels one feedback request may carry: a bound the body's byte limit alone does not give
(the compact form packs a label into two bytes)."""
MAX_ROW = 2**31 - 1
"""The largest row index a label may name: far past any batch, and an integer every store's
column holds."""
ITEM_FIELDS = frozenset({"id", "row", "label", "labels"})
CSV_COLUMNS = ("id", "row", "label")
SHOWN_CLASSES = 20
"""Class labels an error message lists before it counts the rest."""

LabelsInput = Mapping[str, Any] | Sequence[Any] | str | os.PathLike[str]
"""What `feedback` takes: a `{"labels": [...]}` document, a list of its items or of
(request_id, row, label) tuples, or the path of a CSV file."""


@dataclass(frozen=True, slots=True)
class FeedbackResult:
    """What one call attached."""

    model: str
    labels: int
    """Labels stored (a later label for the same row replaces the earlier)."""
    matched: int
    """Those that name a sampled row (a row past those sampled is kept but joins nothing)."""
    skipped: int = 0
    """Labels not stored: their requests were not sampled (`Attached.skipped`)."""
    skipped_ids: tuple[str, ...] = ()
    """The first of those requests' ids."""

    @classmethod
    def of(cls, model: str, attached: Attached) -> FeedbackResult:
        return cls(model, attached.labels, attached.matched, attached.skipped,
                   attached.skipped_ids)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True, slots=True)
class LabelRule:
    """Which labels a model version can be scored against."""

    task: Task
    classes: tuple[Any, ...] | None

    @classmethod
    def for_version(cls, version: ModelVersion) -> LabelRule:
        return cls(version.task, version.signature.class_labels)

    def check(self, request_id: str, row: int, value: Any) -> Any:
        """`value` as it is stored; refused when it cannot be compared with a prediction."""
        where = f"the label of request {request_id!r} row {row}"
        if value is None:
            raise InvalidInputError(f"{where} is missing (null)")
        if self.task == Task.REGRESSION:
            return _number(where, value)
        if self.task == Task.CLASSIFICATION:
            return self._class(where, value)
        return value

    def parse(self, request_id: str, row: int, text: str) -> Any:
        """A label read as text (CSV) converted to what `check` expects."""
        value: Any = text
        if self.task == Task.REGRESSION:
            value = _float_or_text(text)
        elif self.task == Task.CLASSIFICATION and self.classes is not None:
            value = {str(label): label for label in self.classes}.get(text, text)
        return self.check(request_id, row, value)

    def _class(self, where: str, value: Any) -> Any:
        if self.classes is None:
            if isinstance(value, str) or _is_integer(value):
                return value
            raise InvalidInputError(f"{where} must be a class (a string or an integer), got "
                                    f"{value!r}")
        for label in self.classes:
            if _same_kind(label, value) and label == value:
                return label
        raise InvalidInputError(f"{where} must be one of the model's classes "
                                f"{_shown(self.classes)}, got {value!r}")


def _number(where: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, Real) or not math.isfinite(value):
        raise InvalidInputError(f"{where} must be a finite number (the model is a regressor), "
                                f"got {value!r}")
    return float(value)


def _float_or_text(text: str) -> float | str:
    """The number `text` spells, else the text itself (which `check` then refuses)."""
    try:
        return float(text)
    except ValueError:
        return text


def _is_integer(value: Any) -> bool:
    return isinstance(value, Integral) and not isinstance(value, bool)


def _same_kind(label: Any, value: Any) -> bool:
    """Whether a given label and a class label are the same kind of value, so that `True`
    is not class `1` and `"1"` not class `1`; a whole float (`1.0` from JSON) counts as an
    integer."""
    if isinstance(label, str) or isinstance(value, str):
        return isinstance(label, str) and isinstance(value, str)
    if isinstance(label, bool) or isinstance(value, bool):
        return isinstance(label, bool) and isinstance(value, bool)
    return isinstance(value, Real)


def _shown(classes: tuple[Any, ...]) -> str:
    shown = ", ".join(repr(label) for label in classes[:SHOWN_CLASSES])
    more = f", ... ({len(classes)} in all)" if len(classes) > SHOWN_CLASSES else ""
    return f"[{shown}{more}]"


def labels_from_document(document: Any, limit: int | None = MAX_LABELS_PER_CALL) -> list[Label]:
    """The labels of a feedback body: `{"labels": [item, ...]}`, each item `{"id", "row"
    (default 0), "label"}` or `{"id", "labels": [one per row]}`, or one such compact item
    alone; at most `limit` in all."""
    if isinstance(document, Mapping) and set(document) == {"id", "labels"}:
        document = {"labels": [document]}
    if not isinstance(document, Mapping) or set(document) != {"labels"}:
        raise InvalidInputError('the feedback body must be an object {"labels": [...]}, e.g. '
                                '{"labels": [{"id": "req-1", "row": 0, "label": 1}]}, or '
                                '{"id": "req-1", "labels": [1, 0]} for every row of a request')
    items = document["labels"]
    if not isinstance(items, list) or not items:
        raise InvalidInputError("labels must be a non-empty list of {id, row, label} objects")
    labels: list[Label] = []
    for index, item in enumerate(items):
        labels.extend(_item_labels(index, item))
        _check_count(len(labels), limit)
    return labels


def _check_count(count: int, limit: int | None) -> None:
    if limit is not None and count > limit:
        raise InvalidInputError(f"labels: more than {limit} in one call; send them in several")


def _item_labels(index: int, item: Any) -> list[Label]:
    where = f"labels[{index}]"
    if not isinstance(item, Mapping):
        raise InvalidInputError(f"{where} must be an object with id, row and label")
    unknown = sorted(set(item) - ITEM_FIELDS)
    if unknown:
        raise InvalidInputError(f"{where} has unknown fields {unknown}: use id, row and label"
                                " (or id and labels, one per row)")
    request_id = _request_id(where, item.get("id"))
    if "labels" in item:
        return _compact(where, request_id, item)
    if "label" not in item:
        raise InvalidInputError(f"{where}.label is missing (or give labels, one per row)")
    return [(request_id, _row(f"{where}.row", item.get("row", 0)), item["label"])]


def _compact(where: str, request_id: str, item: Mapping[str, Any]) -> list[Label]:
    values = item["labels"]
    if "label" in item or "row" in item:
        raise InvalidInputError(f"{where}: give either label (and row) or labels, not both")
    if not isinstance(values, list) or not values:
        raise InvalidInputError(f"{where}.labels must be a non-empty list, one label per row")
    return [(request_id, row, value) for row, value in enumerate(values)]


def _request_id(where: str, value: Any) -> str:
    if not isinstance(value, str) or not value:
        raise InvalidInputError(f"{where}.id must be the request id (a non-empty string), "
                                f"got {value!r}")
    return value


def _row(where: str, value: Any) -> int:
    if not _is_integer(value) or not 0 <= value <= MAX_ROW:
        raise InvalidInputError(f"{where} must be a row index (an integer from 0 to {MAX_ROW}),"
                                f" got {value!r}")
    return int(value)


def labels_from_csv(path: str | os.PathLike[str]) -> list[tuple[str, int, str]]:
    """(request_id, row, label as text) from a CSV with a header naming id, label and
    optionally row (default 0)."""
    file = Path(path)
    if not file.is_file():
        raise InvalidInputError(f"no such labels file: {file}")
    try:
        with file.open(newline="", encoding="utf-8") as handle:
            reader = csv.DictReader(handle)
            _check_header(file, reader.fieldnames)
            labels = [_csv_label(file, reader.line_num, line) for line in reader]
    except (UnicodeDecodeError, csv.Error) as exc:
        raise InvalidInputError(f"{file} is not a UTF-8 CSV file: {one_line(exc)}") from exc
    if not labels:
        raise InvalidInputError(f"{file} has no labels (only a header)")
    return labels


def _check_header(file: Path, header: Sequence[str] | None) -> None:
    missing = [name for name in ("id", "label") if name not in (header or ())]
    if missing:
        raise InvalidInputError(f"{file} must have a header with columns "
                                f"{', '.join(CSV_COLUMNS)}; missing {', '.join(missing)}")


def _csv_label(file: Path, line: int, fields: Mapping[str, str | None]) -> tuple[str, int, str]:
    where = f"{file} line {line}"
    request_id, label, row = fields.get("id"), fields.get("label"), fields.get("row") or "0"
    if not request_id or label is None or label == "":
        raise InvalidInputError(f"{where}: id and label must both be given")
    if not is_whole_number(row.strip()):
        raise InvalidInputError(f"{where}: row must be a row index (0, 1, ...), got {row!r}")
    return request_id, _row(f"{where}: row", int(row)), label


def checked_labels(version: ModelVersion, labels: Iterable[Label]) -> list[Label]:
    """Each label as `LabelRule.check` makes it, in order; the first bad one is refused."""
    rule = LabelRule.for_version(version)
    return [(request_id, row, rule.check(request_id, row, value))
            for request_id, row, value in labels]


def attach(store: MonitoringStore, version: ModelVersion,
           labels: Sequence[Label]) -> FeedbackResult:
    """Check `labels` against `version` and attach those of sampled requests
    (`MonitoringStore.attach_labels`); a bad label refuses them all."""
    checked = checked_labels(version, labels)
    return FeedbackResult.of(version.name, store.attach_labels(version.name, checked))


def feedback(uri_or_name: str, labels: LabelsInput, *, store: MonitoringStore | None = None,
             registry: Registry | None = None) -> FeedbackResult:
    """Attach true labels to captured requests of the model `uri_or_name` names (whose
    version checks the labels; each label joins its own request's version).

    labels: a `{"labels": [...]}` document as the server's feedback endpoint takes it, a list
        of its items or of (request_id, row, label) tuples, or a CSV file's path (columns id,
        row, label).
    store: default `open_store()`, the store the server's capture writes by default.
    """
    version = (registry or Registry()).get(uri_or_name)
    given = _labels(version, labels)
    with nullcontext(store) if store is not None else open_store() as target:
        return attach(target, version, given)


def _labels(version: ModelVersion, labels: LabelsInput) -> list[Label]:
    if isinstance(labels, str | os.PathLike):
        rule = LabelRule.for_version(version)
        return [(request_id, row, rule.parse(request_id, row, text))
                for request_id, row, text in labels_from_csv(labels)]
    if isinstance(labels, Mapping):
        return labels_from_document(labels, limit=None)
    return labels_from_document({"labels": [_as_item(item) for item in labels]}, limit=None)


def _as_item(item: Any) -> Any:
    """A (request_id, row, label) tuple as the document's object; anything else as given."""
    if isinstance(item, tuple) and len(item) == len(CSV_COLUMNS):
        return dict(zip(CSV_COLUMNS, item, strict=True))
    return item
