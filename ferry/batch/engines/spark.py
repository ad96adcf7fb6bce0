"""The Spark engine: Spark reads the input, `mapInArrow` scores it, Spark writes the parts.

The scorer spec (the model's bytes included) is broadcast once; each Python worker builds
its scorer on first use and keeps it for the job's later tasks (`spark.python.worker.reuse`
is on by default). Spark reads what its Hadoop connectors reach (local files here, `s3a://`
or `abfss://` on a cluster) and writes into the run's staging, so on a cluster the target
must be a shared folder. A Spark job is all or nothing: `--resume` reruns it whole.

    --engine spark                 local[WORKERS] on this machine (or the active session)
    --spark-master spark://h:7077  a cluster
"""

from __future__ import annotations

import threading
import warnings
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from ferry.batch.engines.base import EngineJob, RowsScored
from ferry.batch.kernel import Scorer, ScorerSpec
from ferry.batch.sources import Format
from ferry.batch.staging import Staging

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

SPARK_FOLDER = "_spark"
PROGRESS_POLL_S = 0.5
_scorers: dict[str, Scorer] = {}
"""Scorers built in this Python worker, by run id."""


class SparkEngine:
    name = "spark"

    def __init__(self, master: str | None = None):
        self.master = master

    def score(self, job: EngineJob, on_rows: RowsScored) -> None:
        job.staging.clear()
        if not job.todo:
            return
        session = self._session(job.workers)
        session.conf.set("spark.sql.execution.arrow.maxRecordsPerBatch", str(job.batch_rows))
        session.conf.set("spark.sql.parquet.outputTimestampType", "TIMESTAMP_MICROS")
        scored_rows = session.sparkContext.accumulator(0)
        scored = _scored_frame(session, job, scored_rows)
        with _reporting(scored_rows, on_rows):
            scored.write.mode("overwrite").parquet(_uri(job.staging, SPARK_FOLDER))
        _adopt_parts(job.staging)

    def _session(self, workers: int) -> SparkSession:
        from ferry.sparksession import local_session

        if self.master is None:
            from pyspark.sql import SparkSession

            active = SparkSession.getActiveSession()
            if active is not None:
                return active
        return local_session(self.master or f"local[{workers}]", app="ferry-batch")


def _scored_frame(session: SparkSession, job: EngineJob, counter: Any) -> DataFrame:
    from pyspark.sql.pandas.types import from_arrow_schema

    schema = _output_schema(job)
    spec = session.sparkContext.broadcast(job.spec)
    frame = _read(session, job).select(*job.columns)
    with warnings.catch_warnings():
        # mapInArrow works on Arrow batches, not pandas: pyspark's pandas 3 warning is moot.
        warnings.filterwarnings("ignore", "PySpark does not yet fully support pandas",
                                FutureWarning)
        return frame.mapInArrow(_score_partition(spec, schema, counter),
                                from_arrow_schema(schema, prefer_timestamp_ntz=False))


def _output_schema(job: EngineJob) -> pa.Schema:
    """The output's columns, from scoring the first row here on the driver."""
    part = job.source.parts[0]
    first = next(job.source.read(part, job.columns, 1, job.input_schema))
    return job.spec.build().score(first).schema


def _read(session: SparkSession, job: EngineJob) -> DataFrame:
    from pyspark.sql.pandas.types import from_arrow_schema

    paths = sorted({_path_uri(job.source.protocol, part.path) for part in job.source.parts})
    reader = session.read
    if job.source.format == Format.PARQUET:
        return reader.parquet(*paths)
    schema = from_arrow_schema(job.input_schema, prefer_timestamp_ntz=False)
    if job.source.format == Format.CSV:
        return reader.csv(paths, header=True, schema=schema)
    return reader.json(paths, schema=schema)


def _score_partition(spec: Any, schema: pa.Schema, counter: Any
                     ) -> Callable[[Iterator[pa.RecordBatch]], Iterator[pa.RecordBatch]]:
    def score(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        scorer = _scorer(spec.value)
        for batch in batches:
            if batch.num_rows:
                counter.add(batch.num_rows)
                yield scorer.score(batch).cast(schema)
    return score


def _scorer(spec: ScorerSpec) -> Scorer:
    """This worker's scorer for the run, built on its first task."""
    key = spec.layout.stamp.run_id
    if key not in _scorers:
        _scorers[key] = spec.build()
    return _scorers[key]


class _reporting:
    """Report the accumulator's growth to `on_rows` while a Spark job runs."""

    def __init__(self, counter: Any, on_rows: RowsScored):
        self.counter, self.on_rows = counter, on_rows
        self.reported = 0
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._poll, daemon=True)

    def __enter__(self) -> None:
        self.thread.start()

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.thread.join()
        self._report()

    def _poll(self) -> None:
        while not self.stop.wait(PROGRESS_POLL_S):
            self._report()

    def _report(self) -> None:
        value = int(self.counter.value)
        if value > self.reported:
            self.on_rows(value - self.reported)
            self.reported = value


def _adopt_parts(staging: Staging) -> None:
    """Spark's output files become the run's staged parts, in Spark's order."""
    fs = staging.filesystem()
    folder = f"{staging.path}/{SPARK_FOLDER}"
    files = sorted(p for p in fs.find(folder) if p.endswith(".parquet"))
    for index, path in enumerate(files):
        fs.mv(path, staging.part_path(index))
    fs.rm(folder, recursive=True)


def _uri(staging: Staging, name: str) -> str:
    return _path_uri(staging.protocol, f"{staging.path}/{name}")


def _path_uri(protocol: str, path: str) -> str:
    if protocol in ("file", "local"):
        return f"file://{path}"
    scheme = "s3a" if protocol in ("s3", "s3a") else protocol
    return f"{scheme}://{path}"
