"""The tensor lists of a served version's events, as the JSON the store keeps, looked up by
what makes one request's differ from another's rather than rebuilt from its tensors.

A version's requests send the same inputs with the datatypes its signature names (anything
else is refused), so an input list differs only by the arrays' shapes, and when each input's
only free size is the batch's (a tabular model's `[-1, 4]`), only by the request's rows. An
answered request's outputs differ only by their shapes, as long as it wanted them all. Those
keys are in objects the request path has just used, where rebuilding the list touched each
of the request's tensors (bench/monitor/RESULTS.md, "The event's tensor lists"). Inputs are
listed in the signature's order. Each version keeps at most `MAX_LISTS` lists of each kind;
past that, lists are built per request.
"""

from __future__ import annotations

import operator
import weakref
from collections.abc import Hashable
from typing import Any

from ferry.monitor.store.records import TensorDescription, tensors_json
from ferry.serve.batching import QueuedRequest
from ferry.serve.datatypes import from_signature
from ferry.serve.model import PendingInference, ServedModel
from ferry.signature import DYNAMIC, TensorSpec

MAX_LISTS = 256
"""Distinct input (and output) lists kept per served version."""
NO_TENSORS = tensors_json(())
_SHAPE = operator.attrgetter("shape")


class TensorLists:
    """One served version's tensor lists as JSON, each built once per distinct key."""

    def __init__(self, served: ServedModel):
        inputs = served.signature.inputs
        self._input_types = [(spec.name, from_signature(spec.dtype)) for spec in inputs]
        self._input_sizes = [spec.shape[1:] for spec in inputs]
        self._by_rows = all(_only_rows_free(spec) for spec in inputs)
        self._all_outputs = served.default_outputs
        self._inputs: dict[Hashable, str] = {}
        self._outputs: dict[Hashable, str] = {}

    def inputs(self, queued: QueuedRequest) -> str:
        """The JSON of a queued request's inputs (name, datatype, shape each)."""
        if self._by_rows:
            rows = queued.rows
            return self._inputs.get(rows) or _kept(self._inputs, rows, self._rows_inputs(rows))
        shapes = tuple(map(_SHAPE, queued.inputs.values()))
        return self._inputs.get(shapes) or _kept(self._inputs, shapes, self._inputs_of(shapes))

    def outputs(self, pending: PendingInference) -> str:
        """The JSON of an answered request's outputs (its share of its batch's: the future
        holds a result, as the request succeeded)."""
        results = pending.queued.future.result()
        if pending.wanted is not self._all_outputs:
            return _outputs_json(pending.wanted, results)
        key = (*results, *map(_SHAPE, results.values()))
        return self._outputs.get(key) or _kept(self._outputs, key,
                                               _outputs_json(self._all_outputs, results))

    def _rows_inputs(self, rows: int) -> str:
        return tensors_json(tuple((name, datatype, (rows, *sizes)) for (name, datatype), sizes
                                  in zip(self._input_types, self._input_sizes, strict=True)))

    def _inputs_of(self, shapes: tuple[tuple[int, ...], ...]) -> str:
        return tensors_json(tuple((name, datatype, shape) for (name, datatype), shape
                                  in zip(self._input_types, shapes, strict=True)))


def _kept(lists: dict[Hashable, str], key: Hashable, built: str) -> str:
    """`built`, kept under `key` while there is room."""
    if len(lists) < MAX_LISTS:
        lists[key] = built
    return built


def _only_rows_free(spec: TensorSpec) -> bool:
    """Whether an input's only size left free is its first, the rows'."""
    return bool(spec.shape) and spec.shape[0] == DYNAMIC and DYNAMIC not in spec.shape[1:]


def _outputs_json(wanted: list[TensorSpec], results: dict[str, Any]) -> str:
    described: TensorDescription = tuple(
        (spec.name, from_signature(spec.dtype), tuple(results[spec.name].shape))
        for spec in wanted if spec.name in results)
    return tensors_json(described)


class VersionTensorLists:
    """Each served version's `TensorLists`, found by the served model itself; a version's
    lists go when its served model does (a reload serves a new one)."""

    def __init__(self) -> None:
        self._lists: dict[int, tuple[weakref.ref[ServedModel], TensorLists]] = {}

    def of(self, served: ServedModel) -> TensorLists:
        found = self._lists.get(id(served))
        if found is not None and found[0]() is served:
            return found[1]
        return self._added(served)

    def _added(self, served: ServedModel) -> TensorLists:
        key = id(served)
        lists = TensorLists(served)
        self._lists[key] = (weakref.ref(served, lambda _: self._lists.pop(key, None)), lists)
        return lists
