"""Golden cases: input tensors from the reference sample, and the outputs ONNX Runtime gives.

From the version's reference sample, mapped to tensors as ferry maps rows (`to_feeds`), and
keeping only rows whose numbers are all finite (the format has no NaN):
- `sample-rows`: the first 20 rows as one batch (fewer for large tensors, such as images);
- `row-N`: the first three rows alone (N: the row's place in the sample);
- `edge-min`, `edge-max`, `edge-zeros`: one row of every column's minimum, maximum or zero
  (a string column takes the first category seen); not for inputs of rank above 2.
Expected outputs are every graph output, from ONNX Runtime on the CPU with default options.
A case whose outputs are not all finite is left out.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import onnxruntime as ort

from ferry.data import AnySample
from ferry.errors import SampleMismatchError, UnsupportedModelError
from ferry.export.document import BUNDLE_FORMAT, tensor_document
from ferry.runtime.feeds import Feeds, to_feeds
from ferry.signature import Signature

TOLERANCE = {"rtol": 1e-4, "atol": 1e-5}
"""What a consumer allows on floating outputs: |got - want| <= atol + rtol * |want|."""
SAMPLE_ROWS = 20
SINGLE_ROWS = 3
MAX_CASE_VALUES = 200_000
"""Input values one batch case may hold (fewer rows than SAMPLE_ROWS for large tensors)."""
EDGES = ("min", "max", "zeros")


@dataclass(frozen=True)
class Case:
    """One golden case: the input tensors by name, and every graph output by name."""

    name: str
    inputs: Feeds
    outputs: dict[str, np.ndarray]

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name,
                "inputs": {k: tensor_document(v) for k, v in self.inputs.items()},
                "outputs": {k: tensor_document(v) for k, v in self.outputs.items()}}


def golden_cases(model_bytes: bytes, signature: Signature, sample: AnySample) -> list[Case]:
    """The golden cases of a model from its reference sample."""
    session = ort.InferenceSession(model_bytes, providers=["CPUExecutionProvider"])
    cases = [Case(name, inputs, run(session, inputs))
             for name, inputs in case_inputs(to_feeds(signature, sample)).items()]
    return [case for case in cases if _finite(case.outputs.values())]


def golden_document(cases: list[Case]) -> bytes:
    """golden.json, one case per line."""
    import json

    head = json.dumps({"format": BUNDLE_FORMAT, "tolerance": TOLERANCE})[:-1]
    lines = ",\n".join(json.dumps(case.to_dict(), allow_nan=False) for case in cases)
    return f'{head}, "cases": [\n{lines}\n]}}\n'.encode()


def case_inputs(feeds: Feeds) -> dict[str, Feeds]:
    """The inputs of every case, by case name."""
    rows = np.flatnonzero(finite_rows(feeds))
    if not len(rows):
        raise SampleMismatchError("the reference sample has no row whose numbers are all"
                                  " finite: the golden cases need one")
    cases = {"sample-rows": take(feeds, rows[:_batch_rows(feeds)])}
    cases |= {f"row-{row}": take(feeds, np.array([row])) for row in rows[:SINGLE_ROWS]}
    return cases | edge_cases(take(feeds, rows))


def finite_rows(feeds: Feeds) -> np.ndarray:
    """Which rows (along every input's first axis) hold only finite numbers."""
    count = len(next(iter(feeds.values())))
    finite = np.ones(count, dtype=bool)
    for array in feeds.values():
        if array.dtype.kind in "fc" and count:
            finite &= np.isfinite(array.reshape(count, -1)).all(axis=1)
    return finite


def take(feeds: Feeds, rows: np.ndarray) -> Feeds:
    return {name: np.ascontiguousarray(array[rows]) for name, array in feeds.items()}


def _batch_rows(feeds: Feeds) -> int:
    per_row = sum(int(np.prod(array.shape[1:])) for array in feeds.values())
    return max(1, min(SAMPLE_ROWS, MAX_CASE_VALUES // max(per_row, 1)))


def edge_cases(feeds: Feeds) -> dict[str, Feeds]:
    """One row of each column's minimum, maximum and zero; none for inputs of rank > 2."""
    if any(array.ndim > 2 for array in feeds.values()):
        return {}
    return {f"edge-{kind}": {name: edge_row(array, kind) for name, array in feeds.items()}
            for kind in EDGES}


def edge_row(array: np.ndarray, kind: str) -> np.ndarray:
    """One row of `array`'s columns at their `kind` (min, max, zeros); strings take the
    first value seen."""
    if array.dtype.kind in "OUS":
        return array[:1].copy()
    if kind == "zeros":
        return np.zeros_like(array[:1])
    reduce = np.min if kind == "min" else np.max
    return np.ascontiguousarray(reduce(array, axis=0, keepdims=True))


def run(session: ort.InferenceSession, feeds: Feeds) -> dict[str, np.ndarray]:
    """Every output of the graph, by name."""
    names = [output.name for output in session.get_outputs()]
    values = session.run(names, feeds)
    for name, value in zip(names, values, strict=True):
        if not isinstance(value, np.ndarray):
            raise UnsupportedModelError(f"output {name!r} is a {type(value).__name__}, not a"
                                        " tensor: the bundle holds tensors only")
    return dict(zip(names, values, strict=True))


def _finite(arrays: Any) -> bool:
    return all(np.isfinite(a).all() for a in arrays if a.dtype.kind in "fc")
