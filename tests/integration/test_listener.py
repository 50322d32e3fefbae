"""The dedicated LISTEN connection: notifications arrive, and a lost connection comes back."""

from __future__ import annotations

import asyncio

import asyncpg

from assistline.store.listener import listening
from assistline.tasks import TaskRegistry


async def test_notifications_arrive_and_a_killed_connection_reconnects_and_catches_up(
    database_url: str,
) -> None:
    got: list[str] = []
    arrived = asyncio.Event()

    def handler(payload: str) -> None:
        got.append(payload)
        arrived.set()

    tasks = TaskRegistry()
    connection = await asyncpg.connect(database_url)
    try:
        async with listening(database_url, {"assistline_test": handler}, tasks) as listener:
            await asyncio.wait_for(listener.connected.wait(), 10)
            assert got == [""]  # on connecting: catch up
            arrived.clear()
            await connection.execute("SELECT pg_notify('assistline_test', 'one')")
            await asyncio.wait_for(arrived.wait(), 5)
            assert got == ["", "one"]
            arrived.clear()
            # The server ends the listener's session: it reconnects and calls the
            # handler once with "" (whatever changed meanwhile is caught up).
            killed = await connection.fetchval(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
                " WHERE query LIKE 'LISTEN%' AND pid <> pg_backend_pid()"
            )
            assert killed == 1
            await asyncio.wait_for(arrived.wait(), 10)
            assert got == ["", "one", ""]
            arrived.clear()
            await asyncio.wait_for(listener.connected.wait(), 10)
            await connection.execute("SELECT pg_notify('assistline_test', 'two')")
            await asyncio.wait_for(arrived.wait(), 5)
            assert got == ["", "one", "", "two"]
    finally:
        await connection.close()
        await tasks.close()
