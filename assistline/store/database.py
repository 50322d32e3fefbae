"""The database handle and its lifecycle: embedded or external, migrated, pooled.

:func:`open_store` is the one way the server reaches PostgreSQL: it starts
the embedded server when no URL is configured, creates the ``assistline``
database on it, applies migrations and opens a connection pool; leaving the
context closes the pool and stops the embedded server.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator

import asyncpg

from assistline.errors import StoreError
from assistline.settings import StoreSettings, mask_secret
from assistline.store import migrations
from assistline.store.embedded import EmbeddedPostgres
from assistline.store.queries import QUERIES

logger = logging.getLogger(__name__)
EMBEDDED_DATABASE = "assistline"


class Database:
    """A pool of connections to the system of record."""

    def __init__(self, pool: asyncpg.Pool, dsn: str) -> None:
        self.pool = pool
        self.dsn = dsn

    async def ping(self, timeout: float = 2.0) -> bool:
        """Whether a query round-trips within ``timeout`` seconds."""
        try:
            async with asyncio.timeout(timeout):
                async with self.pool.acquire() as connection:
                    await connection.fetchval(QUERIES["ping"])
        except (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError):
            return False
        return True


async def connect(dsn: str, timeout: float) -> asyncpg.Connection:
    """One connection, retried while the server is still coming up."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            return await asyncpg.connect(dsn, timeout=max(1.0, deadline - time.monotonic()))
        except (OSError, asyncpg.CannotConnectNowError, TimeoutError) as error:
            if time.monotonic() >= deadline:
                raise StoreError(
                    f"could not reach the database at {mask_secret(dsn)}: {error}"
                ) from None
            await asyncio.sleep(0.2)
        except asyncpg.PostgresError as error:
            raise StoreError(f"the database at {mask_secret(dsn)} refused us: {error}") from None


async def ensure_database(admin_dsn: str, name: str, timeout: float = 10.0) -> None:
    """Create database ``name`` through ``admin_dsn`` unless it exists."""
    connection = await connect(admin_dsn, timeout)
    try:
        if not await connection.fetchval(QUERIES["database_exists"], name):
            logger.info("creating database %s", name)
            await connection.execute(f'CREATE DATABASE "{name}"')
    finally:
        await connection.close()


@contextlib.asynccontextmanager
async def embedded_server(settings: StoreSettings) -> AsyncIterator[EmbeddedPostgres]:
    """Run the embedded PostgreSQL for the duration of the context."""
    server = EmbeddedPostgres(settings.data_dir)
    await asyncio.to_thread(server.prepare)
    # Launched from the event loop's thread: the parent-death signal follows
    # the thread that forked, and this one lives as long as the server should.
    server.launch()
    try:
        deadline = time.monotonic() + settings.connect_timeout + 20.0
        while not server.poll_ready():
            if time.monotonic() > deadline:
                raise StoreError(f"the embedded PostgreSQL did not start: {server.log_tail()}")
            await asyncio.sleep(0.05)
        logger.info("embedded PostgreSQL ready in %s (pid %s)", server.cluster_dir, server.pid)
        yield server
    finally:
        await asyncio.to_thread(server.stop)


async def keep_session(connection: asyncpg.Connection) -> None:
    """Return a connection to the pool without asyncpg's reset query.

    asyncpg sends ``pg_advisory_unlock_all(); CLOSE ALL; UNLISTEN *; RESET
    ALL`` at every release: one more round trip, measured at 6–7 % of the
    control process at 40 call setups/s. Pooled sessions here keep no state
    to reset: settings are ``SET LOCAL``, advisory locks are transaction
    locks, LISTEN has a connection of its own (store/listener.py) and no
    cursor outlives its transaction. asyncpg still rolls back a transaction
    left open before this runs.
    """


@contextlib.asynccontextmanager
async def database_dsn(settings: StoreSettings) -> AsyncIterator[str]:
    """Yield the URL of the configured database, starting the embedded one if needed."""
    if settings.database_url:
        yield settings.database_url
        return
    async with embedded_server(settings) as server:
        await ensure_database(server.dsn(), EMBEDDED_DATABASE, settings.connect_timeout)
        yield server.dsn(EMBEDDED_DATABASE)


@contextlib.asynccontextmanager
async def open_store(settings: StoreSettings) -> AsyncIterator[Database]:
    """Reach (or start) PostgreSQL, apply migrations, and yield a pooled handle."""
    async with database_dsn(settings) as dsn:
        connection = await connect(dsn, settings.connect_timeout)
        try:
            await migrations.migrate(connection)
        finally:
            await connection.close()
        pool = await asyncpg.create_pool(
            dsn,
            min_size=settings.pool_min_size,
            max_size=settings.pool_max_size,
            reset=keep_session,
        )
        try:
            yield Database(pool, dsn)
        finally:
            await pool.close()
