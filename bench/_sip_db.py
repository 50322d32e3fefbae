"""bench/sip.py's reads and writes of the server's database (embedded PostgreSQL).

The agents the load's calls dial, and the receive figures the media workers
reported into ``call_record`` (their ``media_stats`` events).
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import asyncpg

from assistline.queue.agents import AgentDirectory
from assistline.settings import StoreSettings
from assistline.store.database import EMBEDDED_DATABASE, open_store
from assistline.store.embedded import EmbeddedPostgres


async def create_agents(data_dir: Path, count: int, realm: str, password: str) -> None:
    """Agents in the directory before the server starts (the edge loads them at start)."""
    async with open_store(StoreSettings(data_dir=data_dir)) as database:
        directory = AgentDirectory(database.pool, realm)
        for index in range(count):
            await directory.create(f"a{index}", f"Agent {index}", f"agent{index}", password)


async def jitter_buffer_totals(data_dir: Path, since: float) -> tuple[int, int, int]:
    """Frames the jitter buffers lost and discarded, and RTP packets that never came.

    So far, for legs started after ``since`` (epoch s). With
    ``sip.jitter_discard = progressive``, pjmedia's "lost" also counts the
    frames its discard drops to shrink latency after a burst of arrivals
    (jbuf.c: a frame after discarded ones is returned as missing, for
    concealment); "never came" is the RTP sequence gaps, so lost frames
    beyond them are such drops.
    """
    connection = await asyncpg.connect(EmbeddedPostgres(data_dir).dsn(EMBEDDED_DATABASE))
    try:
        row = await connection.fetchrow(
            "SELECT coalesce(sum(jbuf_lost), 0) AS lost,"
            " coalesce(sum(jbuf_discarded), 0) AS discarded,"
            " coalesce(sum(rx_lost), 0) AS never_came"
            " FROM call_record WHERE started_at >= to_timestamp($1)",
            since,
        )
        assert row is not None
        return int(row["lost"]), int(row["discarded"]), int(row["never_came"])
    finally:
        await connection.close()


async def media_quality(data_dir: Path, since: float) -> dict[str, int]:
    """Receive figures the workers reported for legs started after ``since`` (epoch s)."""
    connection = await asyncpg.connect(EmbeddedPostgres(data_dir).dsn(EMBEDDED_DATABASE))
    try:
        # 100 calls hanging up at once keep the core busy for a while (BYEs,
        # call records, recordings merged): their stats come late.
        deadline = time.monotonic() + 30
        ended_at = None
        while True:  # media_stats come with or just after each leg's hangup
            row = await connection.fetchrow(
                "SELECT count(*) AS legs, count(ended_at) AS ended,"
                " count(rx_packets) AS reported,"
                " coalesce(sum(jbuf_lost), 0) AS jbuf_lost,"
                " coalesce(sum(jbuf_discarded), 0) AS jbuf_discarded,"
                " coalesce(sum(rx_lost), 0) AS rx_lost,"
                " coalesce(round(avg(jbuf_delay_max_ms)), 0) AS jbuf_delay_ms_mean,"
                " coalesce(max(jbuf_delay_max_ms), 0) AS jbuf_delay_ms_max"
                " FROM call_record WHERE started_at >= to_timestamp($1)",
                since,
            )
            assert row is not None
            if row["legs"] == row["ended"] == row["reported"] and ended_at is None:
                ended_at = time.monotonic()  # the last stats may still be on their way
            settled = ended_at is not None and time.monotonic() > ended_at + 3
            if settled or time.monotonic() > deadline:
                return {key: int(row[key]) for key in row.keys()}  # noqa: SIM118 - a Record
            await asyncio.sleep(0.5)
    finally:
        await connection.close()
