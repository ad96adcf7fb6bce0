"""The first registry schema: models, versions, aliases, events.

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

TIMESTAMP = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "models",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("name", sa.String(128), nullable=False, unique=True),
        sa.Column("description", sa.Text, nullable=True),
        sa.Column("tags", sa.JSON, nullable=True),
        sa.Column("next_version", sa.Integer, nullable=False),
        sa.Column("created_at", TIMESTAMP, nullable=False),
        sa.Column("created_by", sa.String(128), nullable=True),
    )
    op.create_table(
        "versions",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("model_id", sa.Integer, sa.ForeignKey("models.id"), nullable=False, index=True),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("description", sa.Text, nullable=True),
        sa.Column("framework", sa.String(32), nullable=False),
        sa.Column("framework_version", sa.String(64), nullable=True),
        sa.Column("task", sa.String(32), nullable=False),
        sa.Column("runtime", sa.String(32), nullable=False),
        sa.Column("runtime_settings", sa.JSON, nullable=True),
        sa.Column("original_sha256", sa.String(64), nullable=False),
        sa.Column("original_format", sa.String(64), nullable=False),
        sa.Column("onnx_sha256", sa.String(64), nullable=True),
        sa.Column("sample_sha256", sa.String(64), nullable=True),
        sa.Column("signature", sa.JSON, nullable=False),
        sa.Column("metrics", sa.JSON, nullable=True),
        sa.Column("params", sa.JSON, nullable=True),
        sa.Column("tags", sa.JSON, nullable=True),
        sa.Column("lineage", sa.JSON, nullable=True),
        sa.Column("parent_version", sa.Integer, nullable=True),
        sa.Column("conversion_check", sa.JSON, nullable=True),
        sa.Column("forced", sa.Boolean, nullable=False),
        sa.Column("created_at", TIMESTAMP, nullable=False),
        sa.Column("created_by", sa.String(128), nullable=True),
        sa.UniqueConstraint("model_id", "version", name="uq_versions_model_version"),
    )
    op.create_table(
        "aliases",
        sa.Column("model_id", sa.Integer, sa.ForeignKey("models.id"), primary_key=True),
        sa.Column("alias", sa.String(128), primary_key=True),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("updated_at", TIMESTAMP, nullable=False),
        sa.Column("updated_by", sa.String(128), nullable=True),
    )
    op.create_table(
        "events",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("model", sa.String(128), nullable=False, index=True),
        sa.Column("event", sa.String(32), nullable=False),
        sa.Column("version", sa.Integer, nullable=True),
        sa.Column("alias", sa.String(128), nullable=True),
        sa.Column("from_version", sa.Integer, nullable=True),
        sa.Column("to_version", sa.Integer, nullable=True),
        sa.Column("actor", sa.String(128), nullable=True),
        sa.Column("at", TIMESTAMP, nullable=False),
        sa.Column("details", sa.JSON, nullable=True),
    )


def downgrade() -> None:
    for table in ("events", "aliases", "versions", "models"):
        op.drop_table(table)
