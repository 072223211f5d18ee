"""Alembic environment: migrations run on the connection the server hands over."""

from __future__ import annotations

from alembic import context

from fleet_server.db import Base  # the package: every table module registers on Base.metadata

connection = context.config.attributes["connection"]
context.configure(connection=connection, target_metadata=Base.metadata, render_as_batch=True)
with context.begin_transaction():
    context.run_migrations()
