"""Integration fixtures: a real PostgreSQL (the embedded one) and a database per test.

One cluster serves the whole session; a template database is migrated once,
and each test gets its own database cloned from it (``CREATE DATABASE …
TEMPLATE``), so tests start from the real schema and never see each other.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import asyncpg
import pytest

from assistline.settings import HttpSettings, Settings, SipSettings, StoreSettings
from assistline.store import migrations
from assistline.store.embedded import EmbeddedPostgres

TEMPLATE = "assistline_template"


async def _build_template(server: EmbeddedPostgres) -> None:
    admin = await asyncpg.connect(server.dsn())
    try:
        await admin.execute(f'DROP DATABASE IF EXISTS "{TEMPLATE}"')
        await admin.execute(f'CREATE DATABASE "{TEMPLATE}"')
    finally:
        await admin.close()
    connection = await asyncpg.connect(server.dsn(TEMPLATE))
    try:
        await migrations.migrate(connection)
    finally:
        await connection.close()


@pytest.fixture(scope="session")
def pg_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedPostgres]:
    """The session's PostgreSQL cluster, with a migrated template database."""
    server = EmbeddedPostgres(tmp_path_factory.mktemp("pg"), fsync=False)
    server.start_blocking()
    try:
        asyncio.run(_build_template(server))
        yield server
    finally:
        server.stop()


@pytest.fixture
async def database_url(pg_server: EmbeddedPostgres) -> AsyncIterator[str]:
    """A fresh database of this test's own, cloned from the migrated template."""
    name = f"test_{uuid.uuid4().hex[:16]}"
    admin = await asyncpg.connect(pg_server.dsn())
    try:
        await admin.execute(f'CREATE DATABASE "{name}" TEMPLATE "{TEMPLATE}"')
        yield pg_server.dsn(name)
        await admin.execute(f'DROP DATABASE "{name}" WITH (FORCE)')
    finally:
        await admin.close()


@pytest.fixture
def settings(database_url: str, tmp_path: Path) -> Settings:
    """Settings for an in-process HTTP server on a free port and this test's database.

    The SIP side stays off: its tests start it with free ports of their own.
    """
    return Settings(
        http=HttpSettings(port=0),
        store=StoreSettings(database_url=database_url, data_dir=tmp_path / "data"),
        sip=SipSettings(enabled=False),
    )
