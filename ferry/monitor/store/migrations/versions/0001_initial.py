"""The first monitoring schema: events, sample chunks, sampled requests, labels, results.

Revision ID: 0001
Revises:
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

ROW_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def _id() -> sa.Column[int]:
    return sa.Column("id", ROW_ID, primary_key=True, autoincrement=True)


def upgrade() -> None:
    op.create_table(
        "monitor_events", _id(),
        sa.Column("ts_us", sa.BigInteger, nullable=False),
        sa.Column("request_id", sa.String, nullable=False),
        sa.Column("model", sa.String, nullable=False),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("alias", sa.String),
        sa.Column("protocol", sa.String, nullable=False),
        sa.Column("status", sa.String, nullable=False),
        sa.Column("error_type", sa.String),
        sa.Column("latency_s", sa.Double, nullable=False),
        sa.Column("queue_s", sa.Double, nullable=False),
        sa.Column("compute_s", sa.Double, nullable=False),
        sa.Column("batch_size", sa.Integer, nullable=False),
        sa.Column("request_bytes", sa.BigInteger, nullable=False),
        sa.Column("response_bytes", sa.BigInteger, nullable=False),
        sa.Column("inputs", sa.Text, nullable=False),
        sa.Column("outputs", sa.Text, nullable=False),
    )
    op.create_index("ix_monitor_events_model_ts", "monitor_events", ["model", "ts_us"])
    op.create_table(
        "monitor_sample_chunks", _id(),
        sa.Column("model", sa.String, nullable=False),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("ts_min_us", sa.BigInteger, nullable=False),
        sa.Column("ts_max_us", sa.BigInteger, nullable=False),
        sa.Column("rows", sa.Integer, nullable=False),
        sa.Column("data", sa.LargeBinary, nullable=False),
    )
    op.create_index("ix_monitor_sample_chunks_version_ts", "monitor_sample_chunks",
                    ["model", "version", "ts_max_us"])
    op.create_table(
        "monitor_sampled_requests", _id(),
        sa.Column("model", sa.String, nullable=False),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("request_id", sa.String, nullable=False),
        sa.Column("ts_us", sa.BigInteger, nullable=False),
        sa.Column("rows", sa.Text, nullable=False),
    )
    op.create_index("ix_monitor_sampled_requests_model_request", "monitor_sampled_requests",
                    ["model", "request_id"])
    op.create_index("ix_monitor_sampled_requests_ts", "monitor_sampled_requests", ["ts_us"])
    op.create_table(
        "monitor_labels",
        sa.Column("model", sa.String, primary_key=True),
        sa.Column("request_id", sa.String, primary_key=True),
        sa.Column("row", sa.Integer, primary_key=True),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("ts_us", sa.BigInteger, nullable=False),
        sa.Column("label", sa.Text, nullable=False),
    )
    op.create_index("ix_monitor_labels_version_ts", "monitor_labels",
                    ["model", "version", "ts_us"])
    op.create_table(
        "monitor_results", _id(),
        sa.Column("ts_us", sa.BigInteger, nullable=False),
        sa.Column("model", sa.String, nullable=False),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("window_start_us", sa.BigInteger, nullable=False),
        sa.Column("window_end_us", sa.BigInteger, nullable=False),
        sa.Column("kind", sa.String, nullable=False),
        sa.Column("column", sa.String),
        sa.Column("method", sa.String, nullable=False),
        sa.Column("statistic", sa.Double),
        sa.Column("p_value", sa.Double),
        sa.Column("psi", sa.Double),
        sa.Column("verdict", sa.String, nullable=False),
        sa.Column("rows", sa.BigInteger, nullable=False),
        sa.Column("extra", sa.Text, nullable=False),
    )
    op.create_index("ix_monitor_results_model_ts", "monitor_results", ["model", "ts_us"])


def downgrade() -> None:
    for table in ("monitor_results", "monitor_labels", "monitor_sampled_requests",
                  "monitor_sample_chunks", "monitor_events"):
        op.drop_table(table)
