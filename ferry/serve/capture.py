"""The server's side of the capture: its request records as `Captured` items.

`RecorderCapture` is what the request recorders call when they close a request
(`ferry.serve.recorder.CaptureSink`): it keeps references only (the record, with the queued
inference's tensors and outputs) and hands them to `ferry.monitor.capture.queue.Capture`,
whose thread builds the events (`ClosedRequest.event_row`: one tuple per request, then one
Arrow array per column, a few microseconds a request) and the sampled columns later:
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
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from ferry.monitor.capture.queue import Capture
from ferry.monitor.capture.sampler import RequestRows
from ferry.monitor.capture.settings import CaptureSettings
from ferry.monitor.columns import input_columns, output_columns
from ferry.monitor.events import output_column
from ferry.monitor.store.records import TENSOR_JSON_CACHE, TensorDescription, tensors_json
from ferry.serve.datatypes import from_signature
from ferry.serve.recorder import RequestRecord
from ferry.signature import Signature

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

    def event_row(self) -> tuple[Any, ...]:
        """The request's event in `STORED_EVENTS_SCHEMA` order (time in microseconds,
        tensor lists as JSON)."""
        record, served = self.record, self.record.served
        queue_s, compute_s, batch_rows = _timing(record)
        return (int(self.ended * 1_000_000), request_id(record),
                served.name if served is not None else record.model,
                served.version.version if served is not None else 0,
                alias_of(record.asked_version), PROTOCOLS.get(self.protocol, self.protocol),
                self.status, None if self.ok else self.status, self.latency_s, queue_s,
                compute_s, batch_rows, record.request_bytes, self.response_bytes,
                _inputs_json(record), _outputs_json(self))

    def rows(self) -> tuple[str, int, RequestRows] | None:
        """(model, version, itself) when it reached a model's queue; whether it has outputs
        is asked only if the sampler keeps it (`tensors`)."""
        served = self.record.served
        if served is None or self.record.pending is None:
            return None
        return served.name, served.version.version, self

    @property
    def count(self) -> int:
        pending = self.record.pending
        return 0 if pending is None else pending.queued.rows

    def request_id(self) -> str:
        return request_id(self.record)

    def tensors(self) -> tuple[SignatureLayout, dict[str, np.ndarray]] | None:
        """Its input tensors by name and its outputs as `output:<name>`."""
        record = self.record
        results = _results(record)
        if results is None or record.served is None or record.pending is None:
            return None
        outputs = {output_column(name): values for name, values in results.items()}
        return SignatureLayout(record.served.signature), \
            {**record.pending.queued.inputs, **outputs}


class SignatureLayout:
    """Tensors to columns by a version's signature (`ferry.monitor.columns`). Equal when the
    signature is the same object: every request of one served version shares it."""

    __slots__ = ("signature",)

    def __init__(self, signature: Signature):
        self.signature = signature

    def __hash__(self) -> int:
        return id(self.signature)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, SignatureLayout) and other.signature is self.signature

    def columns(self, tensors: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        names = {spec.name for spec in self.signature.inputs}
        outputs = {spec.name: tensors[output_column(spec.name)]
                   for spec in self.signature.outputs if output_column(spec.name) in tensors}
        return {**input_columns(self.signature, {name: values for name, values in tensors.items()
                                                 if name in names}),
                **output_columns(self.signature, outputs)}


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


def _inputs_json(record: RequestRecord) -> str:
    if record.pending is None:
        return tensors_json(())
    return tensors_json(tuple([(tensor.name, tensor.datatype, tensor.shape)
                               for tensor in record.pending.request.inputs]))


def _outputs_json(closed: ClosedRequest) -> str:
    results = _results(closed.record) if closed.ok else None
    if results is None or closed.record.pending is None:
        return tensors_json(())
    return _outputs_described(tuple([(spec.name, spec.dtype, results[spec.name].shape)
                                     for spec in closed.record.pending.wanted
                                     if spec.name in results]))


@functools.lru_cache(maxsize=TENSOR_JSON_CACHE)
def _outputs_described(outputs: TensorDescription) -> str:
    """`tensors_json` of outputs described with signature dtypes (cached, so the datatype
    is looked up once per distinct list, not per request)."""
    return tensors_json(tuple((name, from_signature(dtype), shape)
                              for name, dtype, shape in outputs))


def _results(record: RequestRecord) -> dict[str, np.ndarray] | None:
    """The outputs of the request's batch share, when it has them."""
    future = record.pending.future if record.pending is not None else None
    if future is None or not future.done() or future.cancelled() \
            or future.exception() is not None:
        return None
    return future.result()
