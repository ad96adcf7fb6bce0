"""The server's side of the capture: its closed requests as events and sampled rows.

`RecorderCapture` is what the request recorders call when they close a request
(`ferry.serve.recorder.CaptureSink`): it builds the request's event as a tuple and queues it
on `ferry.monitor.capture.queue.Capture`, and offers an answered request's rows to the
capture's sampler. Only a request whose row a slot takes is held, as a `SampledRequest`
(its id, tensors and outputs, not the record), until its second is written. The capture's
thread writes:
- the event: time, request id (the client's, or one made up), model, version and the alias
  asked for, protocol, outcome, latency, queue and compute seconds and rows of its batch,
  request and response bytes, each tensor's name, datatype and shape;
- the columns, named as `ferry.monitor.columns` names them (the reference profile too).
"""

from __future__ import annotations

import functools
import itertools
import operator
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, cast

import numpy as np

from ferry.monitor.capture.queue import Capture
from ferry.monitor.capture.settings import CaptureSettings
from ferry.monitor.columns import input_columns, output_columns
from ferry.monitor.events import output_column
from ferry.monitor.store.records import TENSOR_JSON_CACHE, TensorDescription, tensors_json
from ferry.serve.datatypes import from_signature
from ferry.serve.model import PendingInference, ServedModel
from ferry.serve.recorder import RequestRecord
from ferry.signature import Signature
from ferry.text import is_whole_number

PROTOCOLS = {"http": "rest", "grpc": "grpc"}


def open_capture(settings: CaptureSettings, on_drop: Callable[[str], None]) -> RecorderCapture:
    """The capture into the store `settings` names (the embedded one by default)."""
    from ferry.monitor.store import open_store

    return RecorderCapture(Capture(open_store(settings.store_url), settings, on_drop,
                                   rows_of=SampledRequest.of))


class RecorderCapture:
    """The recorders' capture sink: each closed request's event is built here, on the
    request path, while the request's objects are still in the processor's caches (the
    capture's thread, reading them up to a second later, took about twice as long;
    bench/monitor/RESULTS.md)."""

    def __init__(self, capture: Capture):
        self.capture = capture

    @property
    def store(self) -> Any:
        return self.capture.store

    def offer(self, record: RequestRecord, protocol: str, status: str, ok: bool,
              latency_s: float, response_bytes: int) -> None:
        ended = time.time()
        served, pending = _served(record), record.pending
        timing = None if pending is None else pending.queued.timing
        event = (int(ended * 1_000_000), request_id(record), served.name,
                 served.version.version, alias_of(record.asked_version),
                 PROTOCOLS.get(protocol, protocol), status, None if ok else status, latency_s,
                 *(NO_TIMING if timing is None else
                   (timing.queue_s, timing.compute_s, timing.batch_rows)),
                 record.request_bytes, response_bytes, _inputs_json(pending),
                 _outputs_json(ok, pending))
        if self.capture.offer(event) and ok and pending is not None:
            self.capture.sample((served.name, served.version.version), int(ended),
                                pending.queued.rows, record.request_bytes, record)

    def close(self) -> None:
        self.capture.close()


NO_TIMING = (0.0, 0.0, 0)
"""Queue and compute seconds and batch rows of a request that never reached a batch."""


def _served(record: RequestRecord) -> ServedModel:
    """The record's served model (the recorders capture only requests that have one)."""
    return cast(ServedModel, record.served)


@dataclass(frozen=True, slots=True)
class SampledRequest:
    """An answered request whose rows a slot of the sampler took
    (`ferry.monitor.capture.sampler.RequestRows`): what its sampled rows need, and nothing
    else of the request."""

    id: str
    count: int
    layout: SignatureLayout
    inputs: Mapping[str, np.ndarray]
    outputs: Mapping[str, np.ndarray]

    @classmethod
    def of(cls, record: RequestRecord) -> SampledRequest:
        """An answered record's rows (the recorders sample only those with a served model, a
        queued inference and its outputs)."""
        pending = cast(PendingInference, record.pending)
        return cls(request_id(record), pending.queued.rows,
                   SignatureLayout(_served(record).signature),
                   pending.queued.inputs, pending.queued.future.result())

    def request_id(self) -> str:
        return self.id

    def tensors(self) -> tuple[SignatureLayout, dict[str, np.ndarray]]:
        """Its input tensors by name and its outputs as `output:<name>`."""
        outputs = {output_column(name): values for name, values in self.outputs.items()}
        return self.layout, {**self.inputs, **outputs}


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


_ID_PREFIX = uuid.uuid4().hex[:16] + "-"
"""Made-up request ids are this process's random prefix and a counter: unique without a
call to the kernel's random source per request (`uuid4` costs ~20 µs under a hypervisor);
the counter in decimal, which `str` writes in half the time of a hex format."""
_ids = itertools.count()


def request_id(record: RequestRecord) -> str:
    """The client's request id, or one made up for it (feedback needs an id to join on)."""
    if record.pending is not None and record.pending.request.id:
        return record.pending.request.id
    if not record.request_id:
        record.request_id = _ID_PREFIX + str(next(_ids))
    return record.request_id


def alias_of(asked: str | None) -> str | None:
    return None if asked is None or is_whole_number(asked) else asked


_DESCRIBED = operator.attrgetter("name", "datatype", "shape")


def _inputs_json(pending: PendingInference | None) -> str:
    if pending is None:
        return tensors_json(())
    return tensors_json(tuple(map(_DESCRIBED, pending.request.inputs)))


def _outputs_json(ok: bool, pending: PendingInference | None) -> str:
    """An answered request's outputs (its share of its batch's: the future holds a result,
    as the request succeeded); a failed request has none."""
    if not ok or pending is None:
        return tensors_json(())
    results = pending.queued.future.result()
    return _outputs_described(tuple([(spec.name, spec.dtype, results[spec.name].shape)
                                     for spec in pending.wanted if spec.name in results]))


@functools.lru_cache(maxsize=TENSOR_JSON_CACHE)
def _outputs_described(outputs: TensorDescription) -> str:
    """`tensors_json` of outputs described with signature dtypes (cached, so the datatype
    is looked up once per distinct list, not per request)."""
    return tensors_json(tuple((name, from_signature(dtype), shape)
                              for name, dtype, shape in outputs))
