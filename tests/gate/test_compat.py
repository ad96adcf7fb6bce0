"""Signature compatibility: what the baseline's clients send must still be accepted, and what
they read still given; versions of different tasks are not compared at all."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest

from ferry.errors import InvalidInputError
from ferry.gate.checks import Check, Kind, Verdict
from ferry.gate.compat import require_same_task, signature_checks
from ferry.signature import Layout, Role, Signature, Task, TensorSpec

OUTPUTS = (TensorSpec("label", "int64", (-1,), Role.LABEL),
           TensorSpec("probabilities", "float32", (-1, 2), Role.PROBABILITIES))
COLUMNS = Signature(inputs=(TensorSpec("age", "float64", (-1, 1)),
                            TensorSpec("plan", "string", (-1, 1)),
                            TensorSpec("visits", "int32", (-1, 1))),
                    outputs=OUTPUTS, layout=Layout.COLUMNS, class_labels=(0, 1))
TENSOR = Signature(inputs=(TensorSpec("X", "float32", (-1, 3)),), outputs=OUTPUTS,
                   feature_names=("a", "b", "c"), class_labels=(0, 1))


def verdicts(checks: list[Check]) -> dict[str, Verdict]:
    return {check.name: check.verdict for check in checks}


def with_input(signature: Signature, position: int, **changes: Any) -> Signature:
    inputs = list(signature.inputs)
    inputs[position] = replace(inputs[position], **changes)
    return replace(signature, inputs=tuple(inputs))


@pytest.mark.parametrize("signature", [COLUMNS, TENSOR], ids=["columns", "tensor"])
def test_the_same_signature_is_compatible(signature: Signature) -> None:
    checks = signature_checks(signature, signature)
    assert all(c.verdict is Verdict.PASSED for c in checks)
    assert {c.kind for c in checks} == {Kind.SIGNATURE}


def test_a_removed_input_fails() -> None:
    fewer = replace(COLUMNS, inputs=COLUMNS.inputs[:2])
    check = next(c for c in signature_checks(fewer, COLUMNS) if c.name == "signature.inputs")
    assert check.verdict is Verdict.FAILED
    assert check.detail == {"removed": ["visits"], "added": []}


def test_an_added_input_fails_too() -> None:
    more = replace(COLUMNS, inputs=(*COLUMNS.inputs, TensorSpec("city", "string", (-1, 1))))
    check = next(c for c in signature_checks(more, COLUMNS) if c.name == "signature.inputs")
    assert check.failed and check.detail["added"] == ["city"]


@pytest.mark.parametrize(("old", "new", "narrowed"), [
    ("float64", "float32", True), ("int64", "int32", True), ("float32", "int64", True),
    ("string", "float32", True), ("float32", "string", True),
    ("int32", "int64", False), ("float32", "float64", False), ("int32", "float64", False),
    ("uint8", "int16", False), ("bool", "int8", False),
])
def test_a_narrowed_dtype_fails_and_a_widened_one_passes(old: str, new: str,
                                                         narrowed: bool) -> None:
    baseline = with_input(COLUMNS, 0, dtype=old)
    candidate = with_input(COLUMNS, 0, dtype=new)
    check = next(c for c in signature_checks(candidate, baseline) if c.name == "signature.dtypes")
    assert check.failed is narrowed
    changes = check.detail["narrowed" if narrowed else "widened"]
    assert changes == {"age": f"{old} -> {new}"}


@pytest.mark.parametrize(("old", "new", "fits"), [
    ((-1, 3), (-1, 3), True), ((-1, 3), (-1, -1), True), ((8, 3), (-1, 3), True),
    ((-1, 3), (-1, 4), False), ((-1, 3), (1, 3), False), ((-1, 3), (-1, 3, 1), False),
])
def test_shapes_must_accept_what_the_baseline_accepted(old: tuple[int, ...],
                                                       new: tuple[int, ...], fits: bool) -> None:
    checks = signature_checks(with_input(TENSOR, 0, shape=new), with_input(TENSOR, 0, shape=old))
    assert verdicts(checks)["signature.shapes"] is (Verdict.PASSED if fits else Verdict.FAILED)


def test_reordered_features_of_one_tensor_fail() -> None:
    swapped = replace(TENSOR, feature_names=("b", "a", "c"))
    check = next(c for c in signature_checks(swapped, TENSOR)
                 if c.name == "signature.feature_names")
    assert check.failed and check.detail["changed"] == ["a", "b"]


def test_a_lost_output_fails_and_changed_classes_are_reported() -> None:
    labels_only = replace(TENSOR, outputs=OUTPUTS[:1], class_labels=(0, 1, 2))
    result = verdicts(signature_checks(labels_only, TENSOR))
    assert result["signature.outputs"] is Verdict.FAILED
    assert result["signature.class_labels"] is Verdict.REPORTED
    assert signature_checks(labels_only, TENSOR)[-1].detail["added"] == ["2"]


def test_versions_of_different_tasks_are_not_compared() -> None:
    require_same_task(Task.REGRESSION, Task.REGRESSION)
    with pytest.raises(InvalidInputError) as raised:
        require_same_task(Task.CLASSIFICATION, Task.REGRESSION)
    message = str(raised.value)
    assert "classification" in message and "regression" in message and "\n" not in message
