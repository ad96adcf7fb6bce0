"""The engine interface: score every part of a job that is not staged yet.

An engine gets an `EngineJob` (the scorer spec, the source, the staging folder, the parts
still to do) and reports rows as they are scored; it stages each finished part through
`Staging.write`, so a run killed on the way keeps every part it finished. Engines register
in `ferry.batch.engines`; each runs the shared checks in `tests/batch/engine_checks.py`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Protocol

import pyarrow as pa

from ferry.batch.kernel import Scorer, ScorerSpec
from ferry.batch.sources import Part, Source
from ferry.batch.staging import Staging

BATCH_ROWS = 65_536
"""Rows per record batch handed to the runtime."""
RowsScored = Callable[[int], None]


@dataclass(frozen=True)
class EngineJob:
    spec: ScorerSpec
    source: Source
    staging: Staging
    todo: tuple[Part, ...]
    input_schema: pa.Schema | None = None
    """The columns' types, fixed from the first file (CSV and JSON infer them per block)."""
    workers: int = 1
    batch_rows: int = BATCH_ROWS

    @property
    def columns(self) -> list[str]:
        """The input columns the scorer reads."""
        wanted = [*self.spec.layout.passed_through, *self.spec.features.columns]
        return list(dict.fromkeys(wanted))


class Engine(Protocol):
    name: str

    def score(self, job: EngineJob, on_rows: RowsScored) -> None:
        """Score and stage every part in `job.todo`; raise on the first failure."""


def score_part(scorer: Scorer, job: EngineJob, part: Part, on_rows: RowsScored) -> int:
    """Read, score and stage one part; returns its rows."""
    batches = job.source.read(part, job.columns, job.batch_rows, job.input_schema)

    def scored() -> Iterator[pa.RecordBatch]:
        for batch in scorer.score_batches(batches):
            on_rows(batch.num_rows)
            yield batch
    return job.staging.write(part.index, scored())
