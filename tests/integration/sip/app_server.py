"""The control process under test with its SIP side: the real app, Kamailio, one media worker.

Shared by the tests that call agents' phones (``test_agent_bridge.py``,
``test_contact_call.py``, the browser tests in ``tests/e2e``): the aiohttp app
runs in the test's process on free loopback ports, with the test's
PostgreSQL database and a short data directory (Unix socket paths under it
must stay short).
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import shutil
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from assistline.queue.agents import AgentDirectory, AgentState
from assistline.settings import (
    HttpSettings,
    IvrSettings,
    Settings,
    SipSettings,
    StoreSettings,
    WebRtcSettings,
)
from assistline.signalling.app import create_app
from tests.integration.sip.worker_peers import consecutive_free_ports, short_dir

Client = TestClient[web.Request, web.Application]
#: The agents' phones' password in these tests.
PASSWORD = "agent-phone-pass-7"
#: The API key of the business backend when a test gives none.
API_KEY = "test-backend-key-4711"


@dataclass
class Server:
    """The control process under test, its database and its SIP edge."""

    client: Client
    db: asyncpg.Pool
    edge_port: int
    data_dir: Path
    http_port: int = 0
    api_key: str = API_KEY

    @property
    def auth(self) -> dict[str, str]:
        """The headers the business backend sends with ``/api/v1`` requests."""
        return {"Authorization": f"Bearer {self.api_key}"}

    @property
    def url(self) -> str:
        """Where a browser reaches the app."""
        return f"http://127.0.0.1:{self.http_port}"

    async def get(self, path: str) -> tuple[int, Any]:
        response = await self.client.get(path, headers=self.auth)
        return response.status, await response.json()

    async def post(self, path: str) -> tuple[int, Any]:
        response = await self.client.post(path, headers=self.auth)
        return response.status, await response.json()

    async def calls(self) -> list[dict[str, Any]]:
        status, body = await self.get("/api/v1/calls")
        assert status == 200
        calls: list[dict[str, Any]] = body["calls"]
        return calls

    async def calls_once_ended(self) -> list[dict[str, Any]]:
        """The calls listed once none is left, or after 10 s.

        A phone sees its BYE before the control process hears of both legs'
        ends (a recorded leg's end follows its merged recording).
        """
        deadline = asyncio.get_running_loop().time() + 10
        while True:
            calls = await self.calls()
            if not calls or asyncio.get_running_loop().time() > deadline:
                return calls
            await asyncio.sleep(0.05)

    async def finished_recording(self, recording_id: str) -> dict[str, Any]:
        """The recording's metadata once its row is completed."""
        async with asyncio.timeout(10):
            while True:
                status, body = await self.get(f"/api/v1/recordings/{recording_id}")
                assert status == 200, body
                if body["status"] != "recording":
                    return dict(body)
                await asyncio.sleep(0.1)

    async def wait_registered(self, username: str) -> None:
        """Wait until Kamailio's location table has a contact for ``username``."""
        ctl = self.data_dir / "sip" / "edge" / "run" / "ctl.sock"
        async with asyncio.timeout(10):
            while True:
                process = await asyncio.create_subprocess_exec(
                    "/usr/sbin/kamcmd",
                    *("-s", f"unix:{ctl}", "ul.lookup", "location", username),
                    stdout=asyncio.subprocess.PIPE,
                    stderr=asyncio.subprocess.STDOUT,
                )
                output, _ = await process.communicate()
                if process.returncode == 0 and b"Contact" in output:
                    return
                await asyncio.sleep(0.1)

    async def call_records(self, count: int) -> list[asyncpg.Record]:
        """``count`` call records, once all of them have ended."""
        async with asyncio.timeout(10):
            while True:
                rows = await self.db.fetch("SELECT * FROM call_record ORDER BY id")
                if len(rows) >= count and all(r["ended_at"] for r in rows):
                    return list(rows)
                await asyncio.sleep(0.1)


@contextlib.asynccontextmanager
async def sip_app(
    database_url: str,
    agents: Sequence[tuple[str, str, str]],
    *,
    available: Sequence[str] = (),
    api_keys: tuple[str, ...] = (),
    record_calls: bool = True,
    webrtc: WebRtcSettings | None = None,
    ivr: IvrSettings | None = None,
) -> AsyncIterator[Server]:
    """The app with SIP on; ``agents`` (id, name, SIP username) exist, ``available`` are so."""
    db = await asyncpg.create_pool(database_url, min_size=1, max_size=2)
    data_dir = short_dir()
    try:
        directory = AgentDirectory(db, SipSettings().realm)
        for agent_id, name, username in agents:
            await directory.create(agent_id, name, username, PASSWORD)
        for agent_id in available:
            await directory.set_state(agent_id, AgentState.AVAILABLE)
        first = consecutive_free_ports(3)
        http_port = first + 2
        rtp = random.randrange(20000, 29000, 200)
        settings = Settings(
            http=HttpSettings(host="127.0.0.1", port=http_port, api_keys=api_keys or (API_KEY,)),
            store=StoreSettings(database_url=database_url, data_dir=data_dir),
            sip=SipSettings(
                edge_host="127.0.0.1",
                edge_port=first,
                worker_base_port=first + 1,
                workers=1,
                max_workers=1,
                rtp_port_min=rtp,
                rtp_port_max=rtp + 199,
                record_calls=record_calls,
            ),
            webrtc=webrtc or WebRtcSettings(),
            ivr=ivr or IvrSettings(),
        )
        test_server = TestServer(create_app(settings), host="127.0.0.1", port=http_port)
        async with TestClient(test_server) as client:
            yield Server(client, db, first, data_dir, http_port, (api_keys or (API_KEY,))[0])
    finally:
        await db.close()
        shutil.rmtree(data_dir, ignore_errors=True)


async def ended_contact(db: asyncpg.Pool | asyncpg.Connection, contact_id: str) -> str:
    """The contact's end reason, once its session has written it (5 s at most)."""
    async with asyncio.timeout(5):  # the session writes it as its socket closes
        while True:
            row = await db.fetchrow(
                "SELECT state, end_reason FROM contact WHERE id = $1", contact_id
            )
            assert row is not None
            if row["state"] == "ended":
                return str(row["end_reason"])
            await asyncio.sleep(0.1)
