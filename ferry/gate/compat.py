"""Can the candidate take the baseline's place without its clients noticing?

Clients were written against the baseline's signature, so the candidate must accept what
they send and answer what they read:

    signature.inputs         the same input names: none removed, none added (a client of
                             the baseline sends no value for a new input)
    signature.dtypes         each input's type the same or wider (numpy's safe casts:
                             int32 -> int64 and float32 -> float64 widen, float64 -> float32
                             and float -> int narrow; text only to text)
    signature.shapes         each input's shape as permissive: same rank, and every fixed
                             dimension of the candidate equal to the baseline's (a dynamic
                             one, -1, accepts anything; a fixed one where the baseline's was
                             dynamic does not)
    signature.feature_names  (one tensor of features) the same columns in the same order
    signature.outputs        every output role of the baseline (label, probabilities,
                             value) still given
    signature.class_labels   reported: the classes, and which came or went
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ferry.errors import InvalidInputError
from ferry.gate.checks import Check, Kind, Verdict
from ferry.signature import DYNAMIC, Layout, Signature, Task, TensorSpec


def require_same_task(candidate_task: Task, baseline_task: Task) -> None:
    """Refuse to compare a classifier with a regressor: no metric means the same to both."""
    if candidate_task != baseline_task:
        raise InvalidInputError(f"the candidate is a {candidate_task} model but the baseline "
                                f"a {baseline_task} model: compare versions of one task")


def signature_checks(candidate: Signature, baseline: Signature) -> list[Check]:
    """The candidate's signature against the baseline's, one check per aspect."""
    checks = [_inputs(candidate, baseline), _dtypes(candidate, baseline),
              _shapes(candidate, baseline), _outputs(candidate, baseline)]
    if candidate.layout == baseline.layout == Layout.TENSOR and candidate.feature_names \
            and baseline.feature_names:
        checks.insert(3, _feature_names(candidate.feature_names, baseline.feature_names))
    if candidate.class_labels is not None and baseline.class_labels is not None:
        checks.append(_class_labels(candidate.class_labels, baseline.class_labels))
    return checks


def _check(name: str, condition: str, problems: dict[str, Any],
           detail: dict[str, Any] | None = None) -> Check:
    """FAILED when any of `problems` is non-empty, PASSED otherwise."""
    verdict = Verdict.FAILED if any(problems.values()) else Verdict.PASSED
    return Check(f"signature.{name}", Kind.SIGNATURE, None, None, condition, verdict,
                 problems | (detail or {}))


def _common(candidate: Signature, baseline: Signature) -> list[tuple[TensorSpec, TensorSpec]]:
    """(candidate's, baseline's) spec of each input both have, in the baseline's order."""
    mine = {spec.name: spec for spec in candidate.inputs}
    return [(mine[spec.name], spec) for spec in baseline.inputs if spec.name in mine]


def _inputs(candidate: Signature, baseline: Signature) -> Check:
    have = [spec.name for spec in candidate.inputs]
    had = [spec.name for spec in baseline.inputs]
    return _check("inputs", "the same inputs as the baseline: none removed, none added",
                  {"removed": [n for n in had if n not in have],
                   "added": [n for n in have if n not in had]})


def _dtypes(candidate: Signature, baseline: Signature) -> Check:
    narrowed: dict[str, str] = {}
    widened: dict[str, str] = {}
    for new, old in _common(candidate, baseline):
        if new.dtype != old.dtype:
            change = f"{old.dtype} -> {new.dtype}"
            (widened if _widens(old.dtype, new.dtype) else narrowed)[new.name] = change
    return _check("dtypes", "no input's type narrowed (the baseline's values cast safely)",
                  {"narrowed": narrowed}, {"widened": widened})


def _widens(old: str, new: str) -> bool:
    """Whether every value of `old` fits `new` (numpy's safe casting; text only to text)."""
    if "string" in (old, new):
        return old == new
    try:
        return bool(np.can_cast(np.dtype(old), np.dtype(new), casting="safe"))
    except TypeError:
        return False


def _shapes(candidate: Signature, baseline: Signature) -> Check:
    incompatible = {new.name: f"{list(old.shape)} -> {list(new.shape)}"
                    for new, old in _common(candidate, baseline)
                    if not _accepts(new.shape, old.shape)}
    return _check("shapes", "each input accepts every shape the baseline's did",
                  {"incompatible": incompatible})


def _accepts(new: tuple[int, ...], old: tuple[int, ...]) -> bool:
    return len(new) == len(old) and all(n in (DYNAMIC, o) for n, o in zip(new, old, strict=True))


def _feature_names(new: tuple[str, ...], old: tuple[str, ...]) -> Check:
    moved = [name for position, name in enumerate(old)
             if position >= len(new) or new[position] != name]
    return _check("feature_names", "the same feature columns in the same order",
                  {"changed": moved}, {"candidate": list(new), "baseline": list(old)})


def _outputs(candidate: Signature, baseline: Signature) -> Check:
    roles = {str(spec.role) for spec in candidate.outputs if spec.role is not None}
    lost = [str(spec.role) for spec in baseline.outputs
            if spec.role is not None and str(spec.role) not in roles]
    return _check("outputs", "every output the baseline gave (label, probabilities, value)",
                  {"removed": lost})


def _class_labels(new: tuple[Any, ...], old: tuple[Any, ...]) -> Check:
    same = [str(label) for label in new] == [str(label) for label in old]
    detail = {"candidate": _plain(new), "baseline": _plain(old),
              "added": [str(x) for x in new if str(x) not in map(str, old)],
              "removed": [str(x) for x in old if str(x) not in map(str, new)]}
    return Check("signature.class_labels", Kind.SIGNATURE, None, None,
                 "the same classes in the same order (reported)",
                 Verdict.PASSED if same else Verdict.REPORTED, detail)


def _plain(labels: tuple[Any, ...]) -> list[Any]:
    return [label.item() if isinstance(label, np.generic) else label for label in labels]
