"""The server's side of the capture: its closed requests as events and sampled rows.

`RecorderCapture` is what the request recorders call when they close a request
(`ferry.serve.recorder.CaptureSink`): it builds the request's event as a tuple and queues it
on `ferry.monitor.capture.queue.Capture`. Each served model version's batcher offers the
capture's sampler the rows of every model call it answered (`batch_sampler`, `AnsweredCall`):
the rows a slot takes are copied out with their requests' ids, so no request is held. The
capture's thread writes:
- the event: time, request id (the client's, or one made up), model, version and the alias
  asked for, protocol, outcome, latency, queue and compute seconds and rows of its batch,
  request and response bytes, each tensor's name, datatype and shape;
- the columns, named as `ferry.monitor.columns` names them (the reference profile too).
"""

from __future__ import annotations

import itertools
import time
import uuid
from collections.abc import Callable, Mapping
from typing import Any, cast

import numpy as np

from ferry.monitor.capture.queue import Capture
from ferry.monitor.capture.settings import CaptureSettings
from ferry.monitor.columns import input_columns, output_columns
from ferry.monitor.events import output_column
from ferry.serve.batching import BatchSampler, ModelCall, QueuedRequest
from ferry.serve.capture_tensors import NO_TENSORS, VersionTensorLists
from ferry.serve.model import ServedModel
from ferry.serve.recorder import RequestRecord
from ferry.signature import Signature
from ferry.text import is_whole_number

PROTOCOLS = {"http": "rest", "grpc": "grpc"}


def open_capture(settings: CaptureSettings, on_drop: Callable[[str], None]) -> RecorderCapture:
    """The capture into the store `settings` names (the embedded one by default)."""
    from ferry.monitor.store import open_store

    return RecorderCapture(Capture(open_store(settings.store_url), settings, on_drop))


class RecorderCapture:
    """The recorders' capture sink: each closed request's event is built here, on the
    request path, while the request's objects are still in the processor's caches (the
    capture's thread, reading them up to a second later, took about twice as long;
    bench/monitor/RESULTS.md)."""

    def __init__(self, capture: Capture):
        self.capture = capture
        self._tensor_lists = VersionTensorLists()

    @property
    def store(self) -> Any:
        return self.capture.store

    def offer(self, record: RequestRecord, protocol: str, status: str, ok: bool,
              latency_s: float, response_bytes: int) -> None:
        ended = time.time()
        served, pending = _served(record), record.pending
        if pending is None:
            timing, inputs, outputs = None, NO_TENSORS, NO_TENSORS
        else:
            lists = self._tensor_lists.of(served)
            timing, inputs = pending.queued.timing, lists.inputs(pending.queued)
            outputs = lists.outputs(pending) if ok else NO_TENSORS
        event = (int(ended * 1_000_000), request_id(record), served.name,
                 served.version.version, alias_of(record.asked_version),
                 PROTOCOLS.get(protocol, protocol), status, None if ok else status, latency_s,
                 *(NO_TIMING if timing is None else
                   (timing.queue_s, timing.compute_s, timing.batch_rows)),
                 record.request_bytes, response_bytes, inputs, outputs)
        self.capture.offer(event)

    def batch_sampler(self, name: str, version: int, signature: Signature) -> BatchSampler | None:
        """What a model version's batcher calls with each model call it answered: the call's
        rows offered to the sampler (None when no rows are sampled). A call that carried a
        request the server does not record (`/predict`) is passed over: its rows would name
        a request no event has."""
        if not self.capture.settings.sample_rows_per_s:
            return None
        key, capture = (name, version), self.capture
        layout = SignatureLayout(signature)

        def rows_of(call: ModelCall) -> AnsweredCall:
            return AnsweredCall(layout, call)

        def sample(call: ModelCall) -> None:
            if all(queued.request_id is not None for queued in call.requests):
                capture.sample(key, int(time.time()), call.rows, call, rows_of)

        return sample

    def close(self) -> None:
        self.capture.close()


NO_TIMING = (0.0, 0.0, 0)
"""Queue and compute seconds and batch rows of a request that never reached a batch."""


def _served(record: RequestRecord) -> ServedModel:
    """The record's served model (the recorders capture only requests that have one)."""
    return cast(ServedModel, record.served)


class AnsweredCall:
    """A model call's answered rows as the sampler takes them
    (`ferry.monitor.capture.sampler.Rows`): the merged inputs and the outputs, row for row,
    each row's request found by the requests' row counts."""

    __slots__ = ("call", "count", "layout")

    def __init__(self, layout: SignatureLayout, call: ModelCall):
        self.layout = layout
        self.call = call
        self.count = call.rows

    def tensors(self) -> tuple[SignatureLayout, dict[str, np.ndarray]]:
        """Its inputs, and its outputs as `output:<name>`, that have a row each (a lone
        request's model may answer with a scalar, which has none to sample)."""
        count, named = self.count, self.layout.output_names
        tensors = {name: values for name, values in self.call.inputs.items()
                   if values.ndim and len(values) == count}
        for name, values in cast(Mapping[str, np.ndarray], self.call.outputs).items():
            if values.ndim and len(values) == count:
                tensors[named.get(name) or output_column(name)] = values
        return self.layout, tensors

    def owners(self, rows: list[int]) -> tuple[list[str], list[int]]:
        requests, numbers = _owners(self.call.requests, rows)
        return [queued_id(queued) for queued in requests], numbers


def _owners(requests: list[QueuedRequest],
            rows: list[int]) -> tuple[list[QueuedRequest], list[int]]:
    """The request each of the call's `rows` (ascending) belongs to, and its number there."""
    owners: list[QueuedRequest] = []
    numbers: list[int] = []
    found = iter(requests)
    queued, first = next(found), 0
    for row in rows:
        while row >= first + queued.rows:
            first += queued.rows
            queued = next(found)
        owners.append(queued)
        numbers.append(row - first)
    return owners, numbers


class SignatureLayout:
    """Tensors to columns by a version's signature (`ferry.monitor.columns`). Equal when the
    signature is the same object: every request of one served version shares it."""

    __slots__ = ("output_names", "signature")

    def __init__(self, signature: Signature):
        self.signature = signature
        self.output_names = {spec.name: output_column(spec.name) for spec in signature.outputs}
        """Each output's column name (`output:<name>`), made once."""

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


_ID_PREFIX = uuid.uuid4().hex[:16] + "-"
"""Made-up request ids are this process's random prefix and a counter: unique without a
call to the kernel's random source per request (`uuid4` costs ~20 µs under a hypervisor);
the counter in decimal, which `str` writes in half the time of a hex format."""
_ids = itertools.count()


def request_id(record: RequestRecord) -> str:
    """The client's request id, or one made up for it (feedback needs an id to join on): the
    same one its sampled rows got, if any."""
    if record.pending is not None:
        return queued_id(record.pending.queued)
    if not record.request_id:
        record.request_id = _made_up_id()
    return record.request_id


def queued_id(queued: QueuedRequest) -> str:
    """A queued request's id (`request_id`)."""
    if not queued.request_id:
        queued.request_id = _made_up_id()
    return queued.request_id


def _made_up_id() -> str:
    return _ID_PREFIX + str(next(_ids))


def alias_of(asked: str | None) -> str | None:
    return None if asked is None or is_whole_number(asked) else asked
