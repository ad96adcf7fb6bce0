"""Everything a batch run checks before it scores a row: the version, the input's files and
columns, the key and kept columns, and the target. A mistake here is the user's (exit 2)."""

from __future__ import annotations

from dataclasses import dataclass, field

import pyarrow as pa

from ferry.batch.engines import ENGINES
from ferry.batch.engines.base import BATCH_ROWS
from ferry.batch.features import FeatureMap, feature_map
from ferry.batch.kernel import check_runtime
from ferry.batch.outputs import check_passed_through
from ferry.batch.runs import RunSlot
from ferry.batch.sinks import Sink, open_sink
from ferry.batch.sources import Format, Source, open_source
from ferry.errors import InvalidInputError, SampleMismatchError
from ferry.registry import ModelVersion, Registry
from ferry.settings import Settings


@dataclass(frozen=True)
class BatchOptions:
    """What `ferry batch` was asked to do."""

    input: str
    output: str | None = None
    key: str | None = None
    keep: tuple[str, ...] = ()
    engine: str = "local"
    workers: int = 1
    threads: int = 1
    resume: bool = False
    spark_master: str | None = None
    batch_rows: int = BATCH_ROWS
    storage_options: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class BatchPlan:
    options: BatchOptions
    version: ModelVersion
    source: Source
    input_schema: pa.Schema
    features: FeatureMap
    sink: Sink
    slot: RunSlot

    @property
    def text_schema(self) -> pa.Schema | None:
        """The column types every CSV or JSON block is read with (Parquet files carry
        their own)."""
        return None if self.source.format == Format.PARQUET else self.input_schema


def plan_batch(uri: str, options: BatchOptions, registry: Registry) -> BatchPlan:
    """The checked plan; raises `InvalidInputError` (a usage error) for anything wrong."""
    _check_counts(options)
    version = registry.get(uri)
    source = open_source(options.input, options.storage_options)
    schema = source.schema()
    passed = tuple(c for c in (options.key, *options.keep) if c)
    check_passed_through(list(passed))
    check_runtime(version)
    for column in passed:
        if column not in schema.names:
            flag = "--key" if column == options.key else "--keep"
            raise SampleMismatchError(f"{flag} {column}: the input has no such column;"
                                      f" it has {schema.names[:8]}")
    features = feature_map(version.signature, schema, passed)
    sink = open_sink(options.output, version.name, Settings.from_env().home)
    slot = RunSlot(version.name, version.version, source.url, sink.description)
    return BatchPlan(options, version, source, schema, features, sink, slot)


def _check_counts(options: BatchOptions) -> None:
    if options.workers < 1 or options.threads < 1:
        raise InvalidInputError("--workers and --threads must be 1 or more")
    if options.engine not in ENGINES:
        raise InvalidInputError(f"--engine {options.engine}: use one of {', '.join(ENGINES)}")
    if options.batch_rows < 1:
        raise InvalidInputError("--batch-rows must be 1 or more")
