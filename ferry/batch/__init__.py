"""Batch scoring: a registered version over a large dataset, into a warehouse table.

    import ferry
    run = ferry.batch("churn@production", "s3://lake/customers/", key="customer_id")

    sources   Parquet, CSV and JSON-lines files, folders, globs and fsspec URLs, streamed
    features, outputs, kernel   columns to tensors, scored batches to output rows
    staging   a run's finished parts, where readers do not look
    sinks/    the embedded DuckDB warehouse, a Parquet folder, a PostgreSQL table
    engines/  local (worker processes) and spark (mapInArrow)
    plan, runner, runs   the checks before scoring; one run start to end; the run records
    stored    the latest completed run's predictions, looked up by key (`ferry serve`)

The package is callable (`ferry.batch(uri, input, ...)` is `ferry.batch.runner.batch`) and
light to import: the scoring modules load when a run starts.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ferry.lazy import callable_package, lazy_names

if TYPE_CHECKING:
    from ferry.batch.plan import BatchOptions
    from ferry.batch.runner import Progress, batch
    from ferry.registry import BatchRun, RunStatus

_HOMES = {"batch": "ferry.batch.runner", "Progress": "ferry.batch.runner",
          "BatchOptions": "ferry.batch.plan", "BatchRun": "ferry.registry",
          "RunStatus": "ferry.registry"}

__getattr__ = lazy_names(__name__, _HOMES)

callable_package(__name__, "ferry.batch.runner:batch")
__all__ = ["BatchOptions", "BatchRun", "Progress", "RunStatus", "batch"]
