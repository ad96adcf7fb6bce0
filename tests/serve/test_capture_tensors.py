"""The events' tensor lists: looked up by rows or shapes, the same as built from the tensors."""

from __future__ import annotations

import asyncio
import gc
import json
from typing import Any, cast

import numpy as np
import pytest

from ferry.serve import capture_tensors
from ferry.serve.batching import QueuedRequest
from ferry.serve.capture_tensors import TensorLists, VersionTensorLists
from ferry.serve.model import PendingInference, ServedModel
from ferry.signature import Signature, TensorSpec

LABEL = TensorSpec("label", "int64", (-1,))
SCORES = TensorSpec("scores", "float32", (-1, 3))


class Version:
    """What `TensorLists` reads of a served version: its signature and default outputs."""

    def __init__(self, inputs: tuple[TensorSpec, ...]):
        self.default_outputs = [LABEL, SCORES]
        self.signature = Signature(inputs, tuple(self.default_outputs))


def served(*inputs: TensorSpec) -> ServedModel:
    return cast(ServedModel, Version(inputs))


def answered(arrays: dict[str, np.ndarray], outputs: dict[str, np.ndarray],
             wanted: list[TensorSpec], loop: asyncio.AbstractEventLoop) -> PendingInference:
    rows = len(next(iter(arrays.values())))
    future: asyncio.Future[Any] = loop.create_future()
    future.set_result(outputs)
    queued = QueuedRequest(arrays, rows, future, None)
    return PendingInference(cast(ServedModel, None), cast(Any, None), wanted, queued)


def listed(text: str) -> list[tuple[str, str, list[int]]]:
    return [(t["name"], t["datatype"], t["shape"]) for t in json.loads(text)]


@pytest.fixture
def loop() -> Any:
    loop = asyncio.new_event_loop()
    yield loop
    loop.close()


def test_inputs_whose_only_free_size_is_the_rows_are_listed_by_rows(loop: Any) -> None:
    model = served(TensorSpec("x", "float32", (-1, 4)), TensorSpec("k", "string", (-1,)))
    lists = TensorLists(model)
    for rows in (1, 3, 1):
        pending = answered({"x": np.zeros((rows, 4), np.float32),
                            "k": np.array(["a"] * rows, object)},
                           {"label": np.zeros(rows), "scores": np.zeros((rows, 3))},
                           model.default_outputs, loop)
        assert listed(lists.inputs(pending.queued)) == [("x", "FP32", [rows, 4]),
                                                       ("k", "BYTES", [rows])]
        assert listed(lists.outputs(pending)) == [("label", "INT64", [rows]),
                                                  ("scores", "FP32", [rows, 3])]


def test_inputs_with_other_free_sizes_are_listed_by_their_shapes(loop: Any) -> None:
    """A sequence model's width changes from request to request: each list says its own."""
    lists = TensorLists(served(TensorSpec("tokens", "int64", (-1, -1))))
    for width in (5, 9, 5):
        queued = answered({"tokens": np.zeros((2, width), np.int64)}, {}, [], loop).queued
        assert listed(lists.inputs(queued)) == [("tokens", "INT64", [2, width])]


def test_outputs_a_request_asked_for_are_the_only_ones_listed(loop: Any) -> None:
    model = served(TensorSpec("x", "float32", (-1, 4)))
    lists = TensorLists(model)
    outputs = {"label": np.zeros(2), "scores": np.zeros((2, 3))}
    everything = answered({"x": np.zeros((2, 4))}, outputs, model.default_outputs, loop)
    scores_only = answered({"x": np.zeros((2, 4))}, outputs, [SCORES], loop)
    assert [name for name, _, _ in listed(lists.outputs(everything))] == ["label", "scores"]
    assert listed(lists.outputs(scores_only)) == [("scores", "FP32", [2, 3])]
    assert [name for name, _, _ in listed(lists.outputs(everything))] == ["label", "scores"]


def test_a_version_keeps_a_bounded_number_of_lists(loop: Any,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(capture_tensors, "MAX_LISTS", 4)
    lists = TensorLists(served(TensorSpec("tokens", "int64", (-1, -1))))
    for width in range(1, 11):
        queued = answered({"tokens": np.zeros((1, width), np.int64)}, {}, [], loop).queued
        assert listed(lists.inputs(queued)) == [("tokens", "INT64", [1, width])]
    assert len(lists._inputs) == 4


def test_a_versions_lists_go_with_its_served_model() -> None:
    versions = VersionTensorLists()
    model = served(TensorSpec("x", "float32", (-1, 4)))
    first = versions.of(model)
    assert versions.of(model) is first
    del model
    gc.collect()
    assert not versions._lists
