"""Alembic's entry point, driven only from code: `Store` passes an open connection, already
inside the transaction (and, on PostgreSQL, the advisory lock) the upgrade runs in."""

from alembic import context

context.configure(connection=context.config.attributes["connection"], target_metadata=None)
with context.begin_transaction():
    context.run_migrations()
