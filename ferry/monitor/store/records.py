"""Events and results as the stores keep them: flat rows of plain values, and back.

Every backend, the in-memory one included, writes these rows and builds its answers from
them, so what one store gives back the others give back too. Times are whole microseconds
since the Unix epoch (UTC): exact, ordered, and one integer type in SQLite, PostgreSQL and a
column store alike. Tensor lists and a result's `extra` are JSON text.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import pyarrow as pa
import pyarrow.json as pa_json

from ferry.errors import InvalidInputError
from ferry.monitor.events import InferenceEvent, MonitorResult, TensorInfo

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
MICROSECOND = timedelta(microseconds=1)
TIMESTAMP = pa.timestamp("us", tz="UTC")
TENSOR = pa.struct([("name", pa.string()), ("datatype", pa.string()),
                    ("shape", pa.list_(pa.int64()))])

EVENTS_SCHEMA = pa.schema([
    ("ts", TIMESTAMP), ("request_id", pa.string()), ("model", pa.string()),
    ("version", pa.int64()), ("alias", pa.string()), ("protocol", pa.string()),
    ("status", pa.string()), ("error_type", pa.string()), ("latency_s", pa.float64()),
    ("queue_s", pa.float64()), ("compute_s", pa.float64()), ("batch_size", pa.int64()),
    ("request_bytes", pa.int64()), ("response_bytes", pa.int64()),
    ("inputs", pa.list_(TENSOR)), ("outputs", pa.list_(TENSOR)),
])
"""What `MonitoringStore.events` answers, one row per request."""
RESULT_COLUMNS = ("ts_us", "model", "version", "window_start_us", "window_end_us", "kind",
                  "column", "method", "statistic", "p_value", "psi", "verdict", "rows", "extra")
_DURATIONS = ("latency_s", "queue_s", "compute_s")
TENSOR_JSON_CACHE = 4096
"""Distinct tensor lists whose JSON is kept (a few per served model version)."""

EventRow = tuple[Any, ...]


def to_micros(moment: datetime, field: str) -> int:
    """`moment` as microseconds since the epoch; a naive datetime is refused, not guessed."""
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise InvalidInputError(f"{field} must be a timezone-aware datetime, got {moment}")
    return (moment - EPOCH) // MICROSECOND


def from_micros(micros: int) -> datetime:
    return EPOCH + micros * MICROSECOND


def optional_micros(moment: datetime | None, field: str) -> int | None:
    return None if moment is None else to_micros(moment, field)


def check_limit(limit: int | None) -> int | None:
    if limit is not None and limit < 0:
        raise InvalidInputError(f"limit must be >= 0, got {limit}")
    return limit


def event_row(event: InferenceEvent) -> EventRow:
    """`event` as one row of values in `EVENTS_SCHEMA` order, `ts` as microseconds and the
    tensor lists as JSON."""
    for field in _DURATIONS:
        if not math.isfinite(getattr(event, field)):
            raise InvalidInputError(f"event {field} must be a finite number of seconds")
    return (to_micros(event.ts, "event ts"), event.request_id, event.model, event.version,
            event.alias, event.protocol, event.status, event.error_type, event.latency_s,
            event.queue_s, event.compute_s, event.batch_size, event.request_bytes,
            event.response_bytes, tensors_json(_described(event.inputs)),
            tensors_json(_described(event.outputs)))


def event_rows(events: Sequence[InferenceEvent]) -> list[EventRow]:
    return [event_row(event) for event in events]


def tensor_column(texts: pa.Array) -> pa.Array:
    """Stored JSON tensor lists as Arrow. A model's requests repeat a few lists, so only the
    distinct texts are parsed, by Arrow's JSON reader (seven times faster than building
    nested arrays from Python objects)."""
    encoded = texts.dictionary_encode()
    lines = "\n".join(f'{{"tensors":{text}}}' for text in encoded.dictionary.to_pylist())
    options = pa_json.ParseOptions(explicit_schema=pa.schema([("tensors", pa.list_(TENSOR))]))
    parsed = pa_json.read_json(pa.BufferReader(lines.encode()), parse_options=options)
    return parsed["tensors"].combine_chunks().take(encoded.indices)


def events_from_table(table: pa.Table) -> list[InferenceEvent]:
    """An events table's rows as `InferenceEvent`s (for a few rows: objects are slow)."""
    return [_event(row) for row in table.to_pylist()]


def _event(row: dict[str, Any]) -> InferenceEvent:
    row["inputs"] = _tensor_infos(row["inputs"])
    row["outputs"] = _tensor_infos(row["outputs"])
    return InferenceEvent(**row)


TensorDescription = tuple[tuple[str, str, tuple[int, ...]], ...]
"""(name, datatype, shape) of each tensor of a request."""


@functools.lru_cache(maxsize=TENSOR_JSON_CACHE)
def tensors_json(tensors: TensorDescription) -> str:
    """The stored JSON of a request's tensor list. Cached: a model's requests mostly repeat
    the same few lists."""
    return orjson.dumps([{"name": name, "datatype": datatype, "shape": list(shape)}
                         for name, datatype, shape in tensors]).decode()


def _described(tensors: Sequence[TensorInfo]) -> TensorDescription:
    return tuple((tensor.name, tensor.datatype, tuple(tensor.shape)) for tensor in tensors)


def _tensor_infos(tensors: Sequence[Mapping[str, Any]]) -> tuple[TensorInfo, ...]:
    return tuple(TensorInfo(tensor["name"], tensor["datatype"], tuple(tensor["shape"]))
                 for tensor in tensors)


def result_row(result: MonitorResult) -> dict[str, Any]:
    """The stored row of `result`; a NaN p-value or PSI is stored as unknown (None), the way
    SQL keeps it."""
    return {
        "ts_us": to_micros(result.ts, "result ts"), "model": result.model,
        "version": result.version,
        "window_start_us": to_micros(result.window_start, "result window_start"),
        "window_end_us": to_micros(result.window_end, "result window_end"),
        "kind": result.kind, "column": result.column, "method": result.method,
        "statistic": _finite_or_none(result.statistic), "p_value": _finite_or_none(result.p_value),
        "psi": _finite_or_none(result.psi), "verdict": result.verdict, "rows": result.rows,
        "extra": _extra_json(result.extra),
    }


def result_from_row(row: Mapping[str, Any]) -> MonitorResult:
    statistic = row["statistic"]
    return MonitorResult(
        ts=from_micros(row["ts_us"]), model=row["model"], version=row["version"],
        window_start=from_micros(row["window_start_us"]),
        window_end=from_micros(row["window_end_us"]), kind=row["kind"], column=row["column"],
        method=row["method"], statistic=math.nan if statistic is None else statistic,
        p_value=row["p_value"], psi=row["psi"], verdict=row["verdict"], rows=row["rows"],
        extra=orjson.loads(row["extra"]),
    )


def _finite_or_none(value: float | None) -> float | None:
    """SQLite stores NaN as NULL: every store does the same, so they all answer alike."""
    return None if value is None or math.isnan(value) else float(value)


def _extra_json(extra: Mapping[str, Any]) -> str:
    try:
        return orjson.dumps(extra, option=orjson.OPT_SERIALIZE_NUMPY).decode()
    except TypeError as exc:
        raise InvalidInputError(f"result extra must be JSON-compatible: {exc}") from exc
