"""Small chunks found through an index: merging looked at every chunk a model ever stored.

`SqlStore.compact` runs after every append and asks for the chunks below the merge size. The
only index led by the model (and for samples, the version) then time, so the query read every
stored chunk of the model to check its row count: on a busy server, one more per flush, 86,400
a day, and a day's events made each flush several milliseconds slower. These indexes end with
`rows`, so the query reads only the few small chunks.

Revision ID: 0003
Revises: 0002
"""

from __future__ import annotations

from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_monitor_event_chunks_model_rows", "monitor_event_chunks",
                    ["model", "rows"])
    op.create_index("ix_monitor_sample_chunks_version_rows", "monitor_sample_chunks",
                    ["model", "version", "rows"])
