"""Alembic environment: runs on the connection the store hands over, with its own version
table so the monitoring tables can share a database with the registry's."""

from __future__ import annotations

from alembic import context

from ferry.monitor.store.schema import metadata

VERSION_TABLE = "monitor_alembic_version"

connection = context.config.attributes["connection"]
context.configure(connection=connection, target_metadata=metadata, version_table=VERSION_TABLE,
                  render_as_batch=connection.dialect.name == "sqlite")
with context.begin_transaction():
    context.run_migrations()
