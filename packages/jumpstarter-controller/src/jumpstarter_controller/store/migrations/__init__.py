"""Alembic migrations of the controller's schema, run by `Store.open` on every start."""
