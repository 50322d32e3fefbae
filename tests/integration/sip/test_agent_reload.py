"""An agent added while the server runs can sign in at once: no restart of the SIP edge.

``assistline agent add`` writes the agent table from another process; the
table's trigger notifies ``assistline_agents``, the server's listener hears
it and reloads Kamailio's credentials table. Here the test adds Cy through
its own connection, as the CLI would, and Cy's phone (baresip) registers.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from assistline.queue.agents import AgentDirectory
from assistline.settings import SipSettings
from tests.integration.sip.app_server import PASSWORD, Server, sip_app
from tests.integration.sip.baresip_agent import Baresip

pytestmark = pytest.mark.slow


@pytest.fixture
async def server(database_url: str) -> AsyncIterator[Server]:
    async with sip_app(database_url, [("agent-ada", "Ada Agent", "ada")]) as app:
        yield app


async def test_an_agent_added_while_the_server_runs_registers_without_a_restart(
    server: Server, tmp_path: Path
) -> None:
    await AgentDirectory(server.db, SipSettings().realm).create("agent-cy", "Cy", "cy", PASSWORD)
    phone = Baresip(tmp_path / "cy", "cy", PASSWORD, server.edge_port, 1000)
    try:
        await phone.start()
        await server.wait_registered("cy")
    finally:
        await phone.stop()
