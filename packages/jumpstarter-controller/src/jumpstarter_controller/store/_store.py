"""`Store`: the async SQLAlchemy engine, migrations on open, load and write-through of changes."""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from sqlalchemy import Connection, delete, event, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

from jumpstarter_controller.model import Client, Condition, Exporter, Lease, Model
from jumpstarter_controller.scheduler import Changes
from jumpstarter_controller.store import schema

MIGRATIONS = Path(__file__).with_name("migrations")


@dataclass
class Rows:
    """One transaction's worth of rows (`Store.rows`), ready to write."""

    deleted_clients: list[tuple[str, str]] = field(default_factory=list)
    deleted_exporters: list[tuple[str, str]] = field(default_factory=list)
    clients: list[dict[str, Any]] = field(default_factory=list)
    exporters: list[dict[str, Any]] = field(default_factory=list)
    leases: list[dict[str, Any]] = field(default_factory=list)
    events: list[dict[str, Any]] = field(default_factory=list)


def database_url(given: str | None, default_path: Path) -> str:
    """The SQLAlchemy URL for `--database` (a postgresql:// or sqlite:// URL), or the state dir's SQLite file."""
    if not given:
        return f"sqlite+aiosqlite:///{default_path}"
    try:
        url = make_url(given)
    except Exception:
        raise ValueError(
            f"--database {given!r} is not a database URL: give postgresql://USER@HOST/DB or sqlite:///PATH"
        ) from None
    if url.drivername in ("postgresql", "postgres", "postgresql+psycopg"):
        return url.set(drivername="postgresql+psycopg").render_as_string(hide_password=False)
    if url.drivername in ("sqlite", "sqlite+aiosqlite"):
        return url.set(drivername="sqlite+aiosqlite").render_as_string(hide_password=False)
    raise ValueError(f"--database: {url.drivername} is not supported: give postgresql://... or sqlite:///PATH")


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA busy_timeout=5000")
    cursor.close()


def _migrate(connection: Connection) -> None:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["connection"] = connection
    command.upgrade(config, "head")


class Store:
    """The database of one controller. All methods run on the event loop (the drivers are async)."""

    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine
        self._insert = sqlite.insert if engine.dialect.name == "sqlite" else postgresql.insert
        self._upserts: dict[str, Any] = {}

    @classmethod
    async def open(cls, url: str) -> Store:
        """Connect and bring the schema up to date (Alembic migrations)."""
        engine = create_async_engine(url, pool_pre_ping=engine_is_postgres(url))
        if engine.dialect.name == "sqlite":
            event.listen(engine.sync_engine, "connect", _sqlite_pragmas)
        store = cls(engine)
        async with engine.begin() as connection:
            await connection.run_sync(_migrate)
        return store

    async def close(self) -> None:
        await self.engine.dispose()

    async def load(self) -> Model:
        model = Model()
        async with self.engine.connect() as connection:
            for row in (await connection.execute(select(schema.clients))).mappings():
                client = Client(**dict(row))
                model.clients[client.key] = client
            for row in (await connection.execute(select(schema.exporters))).mappings():
                exporter = Exporter(**dict(row))
                model.exporters[exporter.key] = exporter
            for row in (await connection.execute(select(schema.leases))).mappings():
                data = dict(row)
                data["conditions"] = [Condition.from_dict(c) for c in data["conditions"]]
                lease = Lease(**data)
                model.leases[lease.key] = lease
                model.next_seq = max(model.next_seq, lease.seq + 1)
        return model

    async def write(self, model: Model, changes: Changes) -> None:
        """Write every record `changes` touched, and its events, in one transaction."""
        await self.write_rows(self.rows(model, changes))

    def rows(self, model: Model, changes: Changes) -> Rows:
        """What `changes` touched, as rows: taken at once (no await), so later changes of the model stay out."""
        now = time.time()
        exporters = []
        for exporter in changes.exporters.values():
            if exporter.key in model.exporters:
                row = asdict(exporter)
                del row["streams"], row["done_with_lease"]
                exporters.append(row)
        leases = []
        for lease in changes.leases.values():
            row = asdict(lease)
            del row["held_until"]
            row["conditions"] = [c.as_dict() for c in lease.conditions]
            leases.append(row)
        return Rows(
            deleted_clients=sorted(changes.deleted_clients),
            deleted_exporters=sorted(changes.deleted_exporters),
            clients=[asdict(model.clients[key]) for key in changes.clients if key in model.clients],
            exporters=exporters,
            leases=leases,
            events=[{"at": now, **asdict(event)} for event in changes.events],
        )

    async def write_rows(self, rows: Rows) -> None:
        """Write `rows` in one transaction: deletions first, then one statement per table for all its rows."""
        async with self.engine.begin() as connection:
            for key in rows.deleted_clients:
                await self._delete(connection, schema.clients, key)
            for key in rows.deleted_exporters:
                await self._delete(connection, schema.exporters, key)
            await self._upsert(connection, schema.clients, rows.clients)
            await self._upsert(connection, schema.exporters, rows.exporters)
            await self._upsert(connection, schema.leases, rows.leases)
            if rows.events:
                await connection.execute(schema.events.insert(), rows.events)

    async def _upsert(self, connection: AsyncConnection, table: Any, rows: list[dict[str, Any]]) -> None:
        """Insert or update `rows` in one statement executed for all of them (executemany)."""
        if not rows:
            return
        statement = self._upserts.get(table.name)
        if statement is None:  # built once per table: building it (its `excluded` columns) costs more than a row
            keys = [column.name for column in table.primary_key.columns]
            insert = self._insert(table)
            statement = self._upserts[table.name] = insert.on_conflict_do_update(
                index_elements=keys,
                set_={c.name: insert.excluded[c.name] for c in table.columns if c.name not in keys},
            )
        await connection.execute(statement, rows)

    async def _delete(self, connection: AsyncConnection, table: Any, key: tuple[str, str]) -> None:
        await connection.execute(delete(table).where(table.c.namespace == key[0], table.c.name == key[1]))

    async def events(self, limit: int = 1000) -> list[dict[str, Any]]:
        """The last `limit` events, oldest first."""
        async with self.engine.connect() as connection:
            query = select(schema.events).order_by(schema.events.c.id.desc()).limit(limit)
            rows = [dict(row) for row in (await connection.execute(query)).mappings()]
        return rows[::-1]


def engine_is_postgres(url: str) -> bool:
    return url.startswith("postgresql")
