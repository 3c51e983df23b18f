"""Active/standby controllers on one PostgreSQL database: only the holder of an advisory lock serves.

The lock is held by a session of its own (a dedicated connection, not the pool's), so it
is released by the database the moment that session dies: with ``kill -9`` of the active
controller, its TCP connection closes and the standby, which tries again every half second,
takes over. Keepalives on that connection bound the time a silently vanished host keeps
the lock. SQLite has one controller per file: there is no lock to take.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

import anyio

__all__ = ["LOCK_KEY", "leadership"]

# The advisory lock's key: "jmpctl" in ASCII.
LOCK_KEY = 0x6A6D7063746C
RETRY_SECONDS = 0.5


@asynccontextmanager
async def leadership(url: str, on_wait: Callable[[], None]) -> AsyncIterator[None]:
    if not url.startswith("postgresql"):
        yield
        return
    import psycopg
    from sqlalchemy.engine import make_url

    parsed = make_url(url).set(drivername="postgresql")
    dsn = parsed.render_as_string(hide_password=False)
    try:
        connection = await psycopg.AsyncConnection.connect(
            dsn, autocommit=True, keepalives=1, keepalives_idle=2, keepalives_interval=1, keepalives_count=2
        )
    except psycopg.OperationalError as error:
        reason = " ".join(str(error).split())
        raise ConnectionError(f"cannot connect to the database {parsed.render_as_string()}: {reason}") from None
    try:
        told = False
        while True:
            row = await (await connection.execute("SELECT pg_try_advisory_lock(%s)", (LOCK_KEY,))).fetchone()
            if row is not None and row[0]:
                break
            if not told:
                on_wait()
                told = True
            await anyio.sleep(RETRY_SECONDS)
        yield
    finally:
        with anyio.CancelScope(shield=True):
            await connection.close()
