"""The monitoring tables (SQLAlchemy Core), the same on SQLite and PostgreSQL. Alembic
migrations in `migrations/` create them; their names start with `monitor_` so the store may
share a database with the registry.

    monitor_event_chunks     request events of one model, as Arrow IPC bytes (times in
                             microseconds since the epoch, as in every table here)
    monitor_sample_chunks    sampled rows of one model version, as Arrow IPC bytes
    monitor_sampled_requests each sampled request and its sampled row numbers (JSON):
                             labels are checked against it
    monitor_labels           (model, request_id, row) -> label (JSON), with the request's
                             version and time so that they are read and purged with samples
    monitor_results          the drift job's results
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Column,
    Double,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
)

ROW_ID = BigInteger().with_variant(Integer(), "sqlite")
"""64-bit ids; SQLite only numbers an INTEGER PRIMARY KEY itself (and it is 64-bit)."""

metadata = MetaData()

event_chunks = Table(
    "monitor_event_chunks", metadata,
    Column("id", ROW_ID, primary_key=True, autoincrement=True),
    Column("model", String, nullable=False),
    Column("ts_min_us", BigInteger, nullable=False),
    Column("ts_max_us", BigInteger, nullable=False),
    Column("rows", Integer, nullable=False),
    Column("data", LargeBinary, nullable=False),
    Index("ix_monitor_event_chunks_model_ts", "model", "ts_max_us"),
    Index("ix_monitor_event_chunks_model_rows", "model", "rows"),
)

sample_chunks = Table(
    "monitor_sample_chunks", metadata,
    Column("id", ROW_ID, primary_key=True, autoincrement=True),
    Column("model", String, nullable=False),
    Column("version", Integer, nullable=False),
    Column("ts_min_us", BigInteger, nullable=False),
    Column("ts_max_us", BigInteger, nullable=False),
    Column("rows", Integer, nullable=False),
    Column("data", LargeBinary, nullable=False),
    Index("ix_monitor_sample_chunks_version_ts", "model", "version", "ts_max_us"),
    Index("ix_monitor_sample_chunks_version_rows", "model", "version", "rows"),
)

sampled_requests = Table(
    "monitor_sampled_requests", metadata,
    Column("id", ROW_ID, primary_key=True, autoincrement=True),
    Column("model", String, nullable=False),
    Column("version", Integer, nullable=False),
    Column("request_id", String, nullable=False),
    Column("ts_us", BigInteger, nullable=False),
    Column("rows", Text, nullable=False),
    Index("ix_monitor_sampled_requests_model_request", "model", "request_id"),
    Index("ix_monitor_sampled_requests_ts", "ts_us"),
)

labels = Table(
    "monitor_labels", metadata,
    Column("model", String, primary_key=True),
    Column("request_id", String, primary_key=True),
    Column("row", Integer, primary_key=True),
    Column("version", Integer, nullable=False),
    Column("ts_us", BigInteger, nullable=False),
    Column("label", Text, nullable=False),
    Index("ix_monitor_labels_version_ts", "model", "version", "ts_us"),
)

results = Table(
    "monitor_results", metadata,
    Column("id", ROW_ID, primary_key=True, autoincrement=True),
    Column("ts_us", BigInteger, nullable=False),
    Column("model", String, nullable=False),
    Column("version", Integer, nullable=False),
    Column("window_start_us", BigInteger, nullable=False),
    Column("window_end_us", BigInteger, nullable=False),
    Column("kind", String, nullable=False),
    Column("column", String),
    Column("method", String, nullable=False),
    Column("statistic", Double),
    Column("p_value", Double),
    Column("psi", Double),
    Column("verdict", String, nullable=False),
    Column("rows", BigInteger, nullable=False),
    Column("extra", Text, nullable=False),
    Index("ix_monitor_results_model_ts", "model", "ts_us"),
)
