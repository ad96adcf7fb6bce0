"""The server's side of the capture: its request records as `Captured` items.

`RecorderCapture` is what the request recorders call when they close a request
(`ferry.serve.recorder.CaptureSink`): it keeps references only (the record, with the queued
inference's tensors and outputs) and hands them to `ferry.monitor.capture.queue.Capture`,
whose thread builds the event and the sampled columns later:
- the event: time, request id (the client's, or one made up), model, version and the alias
  asked for, protocol, outcome, latency, queue and compute seconds and rows of its batch,
  request and response bytes, each tensor's name, datatype and shape;
- the columns, named as `ferry.monitor.columns` names them (the reference profile too).
"""

from __future__ import annotations

import functools
import itertools
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import numpy as np

from ferry.monitor.capture.queue import Capture
from ferry.monitor.capture.sampler import RequestRows
from ferry.monitor.capture.settings import CaptureSettings
from ferry.monitor.columns import input_columns, output_columns
from ferry.monitor.events import InferenceEvent, TensorInfo
from ferry.serve.datatypes import from_signature
from ferry.serve.recorder import RequestRecord

PROTOCOLS = {"http": "rest", "grpc": "grpc"}


def open_capture(settings: CaptureSettings, on_drop: Callable[[str], None]) -> RecorderCapture:
    """The capture into the store `settings` names (the embedded one by default)."""
    from ferry.monitor.store import open_store

    return RecorderCapture(Capture(open_store(settings.store_url), settings, on_drop))


class RecorderCapture:
    """The recorders' capture sink."""

    def __init__(self, capture: Capture):
        self.capture = capture

    @property
    def store(self) -> Any:
        return self.capture.store

    def offer(self, record: RequestRecord, protocol: str, status: str, ok: bool,
              latency_s: float, response_bytes: int) -> None:
        payload = record.request_bytes if ok and self.capture.room_for_payload(
            record.request_bytes) else 0
        self.capture.offer(ClosedRequest(record, protocol, status, ok, latency_s,
                                         response_bytes, time.time(), payload))

    def close(self) -> None:
        self.capture.close()


@dataclass(slots=True)
class ClosedRequest:
    """A request as its recorder closed it (made on the request path: not frozen, whose
    `__init__` sets each field through `object.__setattr__`, three times slower)."""

    record: RequestRecord
    protocol: str
    status: str
    ok: bool
    latency_s: float
    response_bytes: int
    ended: float
    payload_bytes: int

    def event(self) -> InferenceEvent:
        record, timing = self.record, _timing(self.record)
        served = record.served
        return InferenceEvent(
            ts=datetime.fromtimestamp(self.ended, UTC), request_id=request_id(record),
            model=served.name if served is not None else record.model,
            version=served.version.version if served is not None else 0,
            alias=alias_of(record.asked_version),
            protocol=PROTOCOLS.get(self.protocol, self.protocol), status=self.status,
            error_type=None if self.ok else self.status, latency_s=self.latency_s,
            queue_s=timing[0], compute_s=timing[1], batch_size=timing[2],
            request_bytes=record.request_bytes, response_bytes=self.response_bytes,
            inputs=_input_infos(record), outputs=_output_infos(self))

    def rows(self) -> tuple[str, int, RequestRows] | None:
        served, pending = self.record.served, self.record.pending
        if served is None or pending is None or _results(self.record) is None:
            return None
        return served.name, served.version.version, self

    @property
    def count(self) -> int:
        pending = self.record.pending
        return 0 if pending is None else pending.queued.rows

    def request_id(self) -> str:
        return request_id(self.record)

    def columns(self) -> dict[str, np.ndarray]:
        return sampled_columns(self.record)


def _timing(record: RequestRecord) -> tuple[float, float, int]:
    """Queue seconds, compute seconds and rows of the batch that carried the request."""
    timing = record.pending.queued.timing if record.pending is not None else None
    return (0.0, 0.0, 0) if timing is None else (timing.queue_s, timing.compute_s,
                                                  timing.batch_rows)


_ID_PREFIX = uuid.uuid4().hex[:16]
"""Made-up request ids are this process's random prefix and a counter: unique without a
call to the kernel's random source per request (`uuid4` costs ~20 µs under a hypervisor)."""
_ids = itertools.count()


def request_id(record: RequestRecord) -> str:
    """The client's request id, or one made up for it (feedback needs an id to join on)."""
    if record.pending is not None and record.pending.request.id:
        return record.pending.request.id
    if not record.request_id:
        record.request_id = f"{_ID_PREFIX}-{next(_ids):x}"
    return record.request_id


def alias_of(asked: str | None) -> str | None:
    return None if asked is None or asked.isdigit() else asked


def _input_infos(record: RequestRecord) -> tuple[TensorInfo, ...]:
    if record.pending is None:
        return ()
    return tuple(_info(i.name, i.datatype, tuple(i.shape))
                 for i in record.pending.request.inputs)


def _output_infos(closed: ClosedRequest) -> tuple[TensorInfo, ...]:
    results = _results(closed.record) if closed.ok else None
    if results is None or closed.record.pending is None:
        return ()
    return tuple(_info(spec.name, from_signature(spec.dtype), results[spec.name].shape)
                 for spec in closed.record.pending.wanted if spec.name in results)


@functools.lru_cache(maxsize=4096)
def _info(name: str, datatype: str, shape: tuple[int, ...]) -> TensorInfo:
    """One object per distinct tensor description: a model's requests repeat a few."""
    return TensorInfo(name, datatype, shape)


def _results(record: RequestRecord) -> dict[str, np.ndarray] | None:
    """The outputs of the request's batch share, when it has them."""
    future = record.pending.future if record.pending is not None else None
    if future is None or not future.done() or future.cancelled() \
            or future.exception() is not None:
        return None
    return future.result()


def sampled_columns(record: RequestRecord) -> dict[str, np.ndarray]:
    """The request's rows as columns (`ferry.monitor.columns`: inputs by feature, outputs as
    `output:<name>`)."""
    results = _results(record)
    if results is None or record.served is None or record.pending is None:
        return {}
    signature = record.served.version.signature
    return {**input_columns(signature, record.pending.queued.inputs),
            **output_columns(signature, results)}
