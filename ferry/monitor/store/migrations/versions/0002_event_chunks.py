"""Request events as Arrow chunks: `monitor_event_chunks` replaces one row per event.

A row per event cost the capture's writer about 10 µs of the server's CPU per request; one
chunk per flush costs about 1 µs (bench/monitor/RESULTS.md). Events already stored move into
chunks, a model and `CHUNK_ROWS` events at a time, oldest first, in this transaction.

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from ferry.monitor.store.chunks import CHUNK_ROWS, to_ipc, ts_span
from ferry.monitor.store.event_chunks import from_columns

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

ROW_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
OLD_COLUMNS = ("ts_us", "request_id", "model", "version", "alias", "protocol", "status",
               "error_type", "latency_s", "queue_s", "compute_s", "batch_size", "request_bytes",
               "response_bytes", "inputs", "outputs")


def upgrade() -> None:
    chunks = op.create_table(
        "monitor_event_chunks",
        sa.Column("id", ROW_ID, primary_key=True, autoincrement=True),
        sa.Column("model", sa.String, nullable=False),
        sa.Column("ts_min_us", sa.BigInteger, nullable=False),
        sa.Column("ts_max_us", sa.BigInteger, nullable=False),
        sa.Column("rows", sa.Integer, nullable=False),
        sa.Column("data", sa.LargeBinary, nullable=False),
    )
    op.create_index("ix_monitor_event_chunks_model_ts", "monitor_event_chunks",
                    ["model", "ts_max_us"])
    _move_events(op.get_bind(), chunks)
    op.drop_index("ix_monitor_events_model_ts", table_name="monitor_events")
    op.drop_table("monitor_events")


def _move_events(connection: sa.Connection, chunks: sa.Table) -> None:
    columns = ", ".join(OLD_COLUMNS)
    result = connection.exec_driver_sql(
        f"SELECT {columns} FROM monitor_events ORDER BY model, ts_us, id")
    while rows := result.fetchmany(CHUNK_ROWS):
        for model in sorted({row[2] for row in rows}):
            part = from_columns(list(zip(*(row for row in rows if row[2] == model),
                                         strict=True)))
            first, last = ts_span(part)
            connection.execute(chunks.insert(), [{
                "model": model, "ts_min_us": first, "ts_max_us": last, "rows": part.num_rows,
                "data": to_ipc(part)}])


def downgrade() -> None:
    raise NotImplementedError("events stored as chunks are not turned back into rows")
