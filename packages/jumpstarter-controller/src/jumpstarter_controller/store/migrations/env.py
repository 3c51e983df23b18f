"""Alembic's environment: migrations run on the connection `Store` hands over (never from a URL here)."""

from __future__ import annotations

from alembic import context

from jumpstarter_controller.store.schema import metadata


def run() -> None:
    connection = context.config.attributes["connection"]
    context.configure(connection=connection, target_metadata=metadata, render_as_batch=True)
    with context.begin_transaction():
        context.run_migrations()


# Alembic runs this file with its context set up; imported otherwise (a test importing every
# module of the package), it does nothing.
if hasattr(context, "config"):
    run()
