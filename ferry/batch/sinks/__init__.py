"""Where a batch writes, chosen from `--output`:

    (none)                                  the embedded warehouse, a table named after the model
    PATH.duckdb#TABLE                       a DuckDB file of the user's
    postgresql+psycopg://host/db#TABLE      a PostgreSQL table
    anything else                           a folder (local or fsspec URL) of Parquet files

A run records its target's `description`, from which `open_sink` opens it again.
"""

from __future__ import annotations

from pathlib import Path

from ferry.batch.sinks.base import Sink
from ferry.batch.sinks.parquet import ParquetSink
from ferry.batch.sinks.postgres import PostgresSink
from ferry.batch.sinks.warehouse import WarehouseSink
from ferry.settings import Settings

WAREHOUSE_FILE = "warehouse.duckdb"
STAGING_FOLDER = "batch/staging"


def open_sink(output: str | None, model: str, home: Path | None = None) -> Sink:
    """The sink `output` names (see the module's docstring)."""
    home = home or Settings.from_env().home
    staging = home / STAGING_FOLDER
    if output is None:
        return WarehouseSink(home / WAREHOUSE_FILE, model, staging)
    if output.startswith(("postgresql:", "postgresql+", "postgres:")):
        return PostgresSink(output, staging)
    path, _, table = output.partition("#")
    if path.endswith(".duckdb"):
        return WarehouseSink(Path(path).expanduser().resolve(), table or model, staging)
    return ParquetSink(output)


__all__ = ["ParquetSink", "PostgresSink", "Sink", "WarehouseSink", "open_sink"]
