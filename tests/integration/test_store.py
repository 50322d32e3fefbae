from __future__ import annotations

import os
import signal
from pathlib import Path

import asyncpg
import pytest

from assistline.errors import MigrationError, SchemaTooNewError
from assistline.settings import StoreSettings
from assistline.store import migrations
from assistline.store.database import open_store
from assistline.store.embedded import EmbeddedPostgres
from assistline.store.migrations import Migration


async def test_template_database_is_fully_migrated(database_url: str) -> None:
    connection = await asyncpg.connect(database_url)
    try:
        status = await migrations.status(connection)
        assert status.pending == []
        assert [m.version for m in status.applied] == [m.version for m in migrations.discover()]
        assert await connection.fetchval("SELECT to_regclass('audit_event') IS NOT NULL")
    finally:
        await connection.close()


async def test_migrate_twice_applies_nothing_the_second_time(database_url: str) -> None:
    connection = await asyncpg.connect(database_url)
    try:
        assert await migrations.migrate(connection) == []
    finally:
        await connection.close()


async def test_migrations_apply_in_order_on_an_empty_database(database_url: str) -> None:
    connection = await asyncpg.connect(database_url)
    try:
        # The whole schema, so a new migration's tables need no mention here.
        await connection.execute("DROP SCHEMA public CASCADE; CREATE SCHEMA public")
        applied = await migrations.migrate(connection)
        assert [m.version for m in applied] == [m.version for m in migrations.discover()]
        rows = await connection.fetch("SELECT version, name FROM schema_migration ORDER BY 1")
        assert [(r["version"], r["name"]) for r in rows][:5] == [
            (1, "audit_event"),
            (2, "agent"),
            (3, "call_record"),
            (4, "recording"),
            (5, "call_quality"),
        ]
        assert [r["version"] for r in rows] == [m.version for m in migrations.discover()]
    finally:
        await connection.close()


async def test_a_failing_migration_is_rolled_back_whole(database_url: str) -> None:
    known = [
        *migrations.discover(),
        Migration(99, "broken", "CREATE TABLE half_written (id int); SELECT no_such_function();"),
    ]
    connection = await asyncpg.connect(database_url)
    try:
        with pytest.raises(MigrationError, match="0099_broken failed and was rolled back"):
            await migrations.migrate(connection, known)
        assert await connection.fetchval("SELECT to_regclass('half_written')") is None
        latest = migrations.discover()[-1].version
        assert await connection.fetchval("SELECT max(version) FROM schema_migration") == latest
    finally:
        await connection.close()


async def test_a_database_newer_than_the_code_is_refused(database_url: str) -> None:
    connection = await asyncpg.connect(database_url)
    try:
        await connection.execute(
            "INSERT INTO schema_migration (version, name) VALUES (999, 'from_the_future')"
        )
        with pytest.raises(SchemaTooNewError, match="0999_from_the_future"):
            await migrations.migrate(connection)
    finally:
        await connection.close()
    settings = StoreSettings(database_url=database_url)
    with pytest.raises(SchemaTooNewError):
        async with open_store(settings):
            pass


async def test_open_store_with_a_url_starts_nothing_and_pools(database_url: str) -> None:
    async with open_store(StoreSettings(database_url=database_url)) as database:
        assert await database.ping()
        assert database.dsn == database_url


async def test_unreachable_url_names_the_server_without_its_password() -> None:
    from assistline.errors import StoreError

    settings = StoreSettings(
        database_url="postgresql://app:hunter2@127.0.0.1:1/x", connect_timeout=0.5
    )
    with pytest.raises(StoreError) as raised:
        async with open_store(settings):
            pass
    assert "127.0.0.1:1" in str(raised.value)
    assert "hunter2" not in str(raised.value)


def _row_count(server: EmbeddedPostgres) -> int:
    import asyncio

    async def count() -> int:
        connection = await asyncpg.connect(server.dsn())
        try:
            return int(await connection.fetchval("SELECT count(*) FROM kept"))
        finally:
            await connection.close()

    return asyncio.run(count())


def _create_kept_row(server: EmbeddedPostgres) -> None:
    import asyncio

    async def write() -> None:
        connection = await asyncpg.connect(server.dsn())
        try:
            await connection.execute("CREATE TABLE kept (id int); INSERT INTO kept VALUES (1)")
        finally:
            await connection.close()

    asyncio.run(write())


@pytest.mark.slow
def test_embedded_restart_keeps_data_and_recovers_a_stale_pid_file(tmp_path: Path) -> None:
    server = EmbeddedPostgres(tmp_path)
    server.start_blocking()
    try:
        _create_kept_row(server)
        # A crash: the postmaster dies without cleaning up, leaving postmaster.pid.
        pid = server.pid
        assert pid is not None
        os.kill(pid, signal.SIGKILL)
        assert server._process is not None
        server._process.wait(10)
        assert (server.cluster_dir / "postmaster.pid").exists()
    finally:
        server.stop()
    again = EmbeddedPostgres(tmp_path)
    again.start_blocking()
    try:
        assert _row_count(again) == 1
    finally:
        again.stop()
    assert not (again.cluster_dir / "postmaster.pid").exists()


@pytest.mark.slow
def test_embedded_start_takes_over_a_server_left_running(tmp_path: Path) -> None:
    first = EmbeddedPostgres(tmp_path)
    first.start_blocking()
    _create_kept_row(first)
    orphan, first._process = first._process, None  # forgotten, as by a killed assistline
    assert orphan is not None
    second = EmbeddedPostgres(tmp_path)
    try:
        second.start_blocking()
        assert second.pid != orphan.pid
        # The new start stopped the old server; it exited on its own, cleanly.
        assert orphan.wait(10) == 0
        assert _row_count(second) == 1
    finally:
        second.stop()
        if orphan.poll() is None:
            orphan.kill()
            orphan.wait()
