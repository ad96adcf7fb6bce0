"""`ferry.batch`: score a dataset with a registered version into a target, as one run.

    plan (checks, exit 2)  ->  record the run  ->  score the parts not staged yet
        ->  check the keys  ->  publish (visible at once, replacing the slot's older run)
        ->  record it completed

A failure records the run failed and leaves every earlier result as it was; the staged
parts stay for `--resume`.
"""

from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds
import pyarrow.parquet as pq

from ferry.batch.engines import Engine, EngineJob, engine_for
from ferry.batch.kernel import scorer_spec
from ferry.batch.outputs import RunStamp, output_layout
from ferry.batch.plan import BatchOptions, BatchPlan, plan_batch
from ferry.batch.runs import RunLock, actor, new_run, replaced, resumable
from ferry.batch.staging import Staging
from ferry.errors import BatchRunError, FerryError, one_line
from ferry.registry import BatchRun, Registry, RunStatus
from ferry.settings import Settings

REPEATS_SHOWN = 5


class Progress(Protocol):
    def start(self, total_rows: int | None, done_rows: int) -> None: ...
    def advance(self, rows: int) -> None: ...
    def finish(self) -> None: ...


class NoProgress:
    def start(self, total_rows: int | None, done_rows: int) -> None:
        pass

    def advance(self, rows: int) -> None:
        pass

    def finish(self) -> None:
        pass


@dataclass
class Started:
    run: BatchRun
    lock: RunLock
    staging: Staging
    resumed: bool
    clock: float = field(default_factory=time.monotonic)

    def seconds(self) -> float:
        """How long this invocation has worked on the run."""
        return time.monotonic() - self.clock


def batch(uri: str, input: str, output: str | None = None, *, key: str | None = None,
          keep: tuple[str, ...] | list[str] = (), engine: str = "local", workers: int = 1,
          threads: int = 1, resume: bool = False, spark_master: str | None = None,
          registry: Registry | None = None, progress: Progress | None = None) -> BatchRun:
    """Score `input` with the version `uri` names into `output` (by default the embedded
    warehouse, a table named after the model); returns the completed run."""
    options = BatchOptions(input=input, output=output, key=key, keep=tuple(keep),
                           engine=engine, workers=workers, threads=threads, resume=resume,
                           spark_master=spark_master)
    registry = registry or Registry()
    return run_plan(plan_batch(uri, options, registry), registry, progress or NoProgress())


def run_plan(plan: BatchPlan, registry: Registry, progress: Progress) -> BatchRun:
    started = _start(plan, registry)
    try:
        rows = _score(plan, registry, started, progress)
        _check_keys(plan, started.staging)
        plan.sink.publish(started.run.id, started.staging,
                          replaced(registry, plan.slot, started.run.id))
    except BaseException as exc:
        _record_failure(registry, started, exc)
        raise
    finally:
        started.lock.release()
    return registry.finish_run(started.run.id, RunStatus.COMPLETED, rows=rows,
                               duration_s=started.seconds())


def _start(plan: BatchPlan, registry: Registry) -> Started:
    home = Settings.from_env().home
    found = resumable(registry, plan.slot, home) if plan.options.resume else None
    if found is not None:
        run, lock = found
        run.status, run.error = str(RunStatus.RUNNING), None
        run.engine, run.workers = plan.options.engine, plan.options.workers
        run.details = {**run.details, "resumed": int(run.details.get("resumed", 0)) + 1}
    else:
        run = new_run(plan.slot, plan.options.engine, plan.options.workers, actor(),
                      _details(plan))
        lock = RunLock(home, run.id)
        lock.acquire()
    run = registry.add_run(run)
    return Started(run, lock, plan.sink.staging(run.id), found is not None)


def _details(plan: BatchPlan) -> dict[str, object]:
    return {"key": plan.options.key, "keep": list(plan.options.keep),
            "parts": len(plan.source.parts), "format": str(plan.source.format)}


def _score(plan: BatchPlan, registry: Registry, started: Started, progress: Progress) -> int:
    run = started.run
    stamp = RunStamp(run.model, run.version, run.id, run.time())
    layout = output_layout(plan.version.signature, plan.version.task, plan.options.key,
                           plan.options.keep, stamp)
    spec = scorer_spec(registry, plan.version, plan.features, layout, plan.options.threads)
    done = started.staging.done()
    todo = tuple(p for p in plan.source.parts if p.index not in done)
    job = EngineJob(spec, plan.source, started.staging, todo, plan.text_schema,
                    plan.options.workers, plan.options.batch_rows)
    progress.start(plan.source.rows, _staged_rows(started.staging))
    try:
        _engine(plan).score(job, progress.advance)
    finally:
        progress.finish()
    return _staged_rows(started.staging)


def _engine(plan: BatchPlan) -> Engine:
    options = {"master": plan.options.spark_master} if plan.options.engine == "spark" else {}
    return engine_for(plan.options.engine, **options)


def _staged_rows(staging: Staging) -> int:
    fs = staging.filesystem()
    return sum(pq.ParquetFile(fs.open(f, "rb")).metadata.num_rows for f in staging.files())


def _check_keys(plan: BatchPlan, staging: Staging) -> None:
    """Refuse to publish a run whose key repeats (stored predictions are looked up by it)."""
    key = plan.options.key
    files = staging.files()
    if key is None or not files:
        return
    keys = ds.dataset(files, format="parquet", filesystem=staging.filesystem())
    column = keys.to_table(columns=[key]).column(key)
    if _strictly_increasing(column):
        return
    counts = pc.value_counts(column)
    repeated = counts.filter(pc.greater(counts.field("counts"), 1))
    if len(repeated):
        shown = ", ".join(f"{r['values']!r} ({r['counts']} times)"
                          for r in repeated.to_pylist()[:REPEATS_SHOWN])
        staging.remove()
        raise BatchRunError(f"--key {key} repeats in the input: {len(repeated)} keys appear"
                            f" more than once, e.g. {shown}; give a unique key column")


def _strictly_increasing(column: pa.ChunkedArray) -> bool:
    """The common case of integer keys in input order, proven unique in one pass."""
    if not pa.types.is_integer(column.type) or column.null_count:
        return False
    values = column.to_numpy()
    return bool(np.all(values[1:] > values[:-1]))


def _record_failure(registry: Registry, started: Started, exc: BaseException) -> None:
    message = str(exc) if isinstance(exc, FerryError) else f"{type(exc).__name__}: {one_line(exc)}"
    with contextlib.suppress(FerryError):
        registry.finish_run(started.run.id, RunStatus.FAILED, rows=_safe_rows(started.staging),
                            duration_s=started.seconds(), error=message)


def _safe_rows(staging: Staging) -> int:
    try:
        return _staged_rows(staging)
    except (OSError, ValueError):
        return 0

