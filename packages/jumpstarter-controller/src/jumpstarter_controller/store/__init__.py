"""The controller's database: one schema on SQLite (default) or PostgreSQL, migrated on start.

`Store` loads the whole state into a `Model` when the controller starts and writes each
`Changes` (the changes of many calls, batched by the controller) in one transaction;
`Store.events` reads the append-only audit trail.
"""

from jumpstarter_controller.store._store import Rows, Store, database_url

__all__ = ["Rows", "Store", "database_url"]
