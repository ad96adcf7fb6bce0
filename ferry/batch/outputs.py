"""What a batch writes per row: the key and kept columns, the prediction, one probability
column per class, and the model, version, run id and time that produced them.

    key | kept... | prediction | proba_<label>... | model | version | run_id | scored_at

The same layout comes out of every engine and lands in every target, so a table mixes runs
and versions and stays readable by run.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import numpy as np
import pyarrow as pa

from ferry.errors import InvalidInputError
from ferry.runtime.predictor import Outputs
from ferry.signature import Role, Signature, Task

PREDICTION = "prediction"
PROBABILITY_PREFIX = "proba_"
STAMP_COLUMNS = ("model", "version", "run_id", "scored_at")
TIME_TYPE = pa.timestamp("us", tz="UTC")


@dataclass(frozen=True)
class RunStamp:
    """Who made a row's prediction: written on every row of a run."""

    model: str
    version: int
    run_id: str
    time: datetime


@dataclass(frozen=True)
class OutputLayout:
    """The output columns of one run, and how to build them from a scored batch."""

    key: str | None
    keep: tuple[str, ...]
    task: Task
    class_labels: tuple[Any, ...] | None
    stamp: RunStamp

    @property
    def passed_through(self) -> list[str]:
        """Input columns copied to the output as they are."""
        return ([self.key] if self.key else []) + list(self.keep)

    def probability_columns(self, width: int) -> list[str]:
        labels = self.class_labels or tuple(range(width))
        return [f"{PROBABILITY_PREFIX}{label}" for label in labels[:width]]

    def build(self, batch: pa.RecordBatch, outputs: Outputs) -> pa.RecordBatch:
        columns: dict[str, pa.Array] = {n: batch.column(n) for n in self.passed_through}
        columns[PREDICTION] = _prediction(self.task, outputs)
        probabilities = outputs.get(Role.PROBABILITIES)
        if probabilities is not None:
            names = self.probability_columns(probabilities.shape[1])
            columns.update({name: pa.array(probabilities[:, i]) for i, name in enumerate(names)})
        columns.update(self._stamp(batch.num_rows))
        return pa.RecordBatch.from_pydict(columns)

    def _stamp(self, rows: int) -> dict[str, pa.Array]:
        return {"model": _repeat(pa.scalar(self.stamp.model), rows),
                "version": _repeat(pa.scalar(self.stamp.version, pa.int32()), rows),
                "run_id": _repeat(pa.scalar(self.stamp.run_id), rows),
                "scored_at": _repeat(pa.scalar(self.stamp.time, TIME_TYPE), rows)}


def output_layout(signature: Signature, task: Task, key: str | None, keep: tuple[str, ...],
                  stamp: RunStamp) -> OutputLayout:
    layout = OutputLayout(key, keep, task, signature.class_labels, stamp)
    check_passed_through(layout.passed_through)
    return layout


def check_passed_through(columns: list[str]) -> None:
    """Refuse kept columns that would hide an output column, or that repeat."""
    reserved = {PREDICTION, *STAMP_COLUMNS}
    clashes = [c for c in columns if c in reserved or c.startswith(PROBABILITY_PREFIX)]
    if clashes:
        raise InvalidInputError(f"--key/--keep {clashes[0]!r} would hide an output column:"
                                f" keep columns other than {sorted(reserved)} and proba_*")
    if len(set(columns)) != len(columns):
        raise InvalidInputError("--keep repeats a column or the --key: name each once")


def _prediction(task: Task, outputs: Outputs) -> pa.Array:
    role = Role.LABEL if task == Task.CLASSIFICATION and Role.LABEL in outputs else Role.VALUE
    values = np.asarray(outputs[role] if role in outputs else next(iter(outputs.values())))
    if values.ndim == 1:
        return pa.array(values.astype(str) if values.dtype == object else values)
    flat = values.reshape(len(values), -1)
    return pa.FixedSizeListArray.from_arrays(pa.array(flat.reshape(-1)), flat.shape[1])


def _repeat(value: pa.Scalar, rows: int) -> pa.Array:
    """`value` on `rows` rows, without building a Python list."""
    return pa.DictionaryArray.from_arrays(pa.array(np.zeros(rows, dtype=np.int32)),
                                          pa.array([value.as_py()], value.type)).dictionary_decode()
