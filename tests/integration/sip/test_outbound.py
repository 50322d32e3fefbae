"""Calls placed to agents: real Kamailio registrar, real media workers, sipp as the phone.

The agent's phone is two sipp processes: one registers at the edge with
the agent's digest credentials and a Contact naming the other, which
answers the call (``edge_worker.xml``: rings, answers, waits for the BYE).
"""

from __future__ import annotations

import pytest

from assistline.queue.agents import AgentDirectory
from assistline.settings import TrunkSettings
from assistline.sip import protocol
from assistline.sip.destinations import DestinationRefusedError
from assistline.store.database import open_store
from tests.integration.sip.test_edge import sipp
from tests.integration.sip.trunk_peers import (
    HOST,
    SipMessage,
    data_directory,
    sip_settings,
    sip_side,
    sipp_server,
)
from tests.integration.sip.worker_peers import SCENARIOS, until

PASSWORD = "agent-phone-pw-1"


def acked(messages: list[SipMessage]) -> bool:
    return any(m.received and m.method == "ACK" for m in messages)


async def test_a_call_to_an_agent_rings_the_phone_registered_at_the_edge(
    database_url: str,
) -> None:
    async with data_directory() as data:
        settings = sip_settings(data, database_url, TrunkSettings())
        async with open_store(settings.store) as database:
            directory = AgentDirectory(database.pool, settings.sip.realm)
            await directory.create("a-1", "Ada", "alice", PASSWORD)
        edge = f"{HOST}:{settings.sip.edge_port}"
        async with (
            sipp_server("edge_worker.xml", extra=("-aa", "-m", "1")) as phone,
            sip_side(settings) as service,
        ):
            register = str(SCENARIOS / "trunk_agent_register.xml")
            signed_in = await sipp(
                edge,
                *("-sf", register, "-s", "alice", "-au", "alice", "-ap", PASSWORD),
                *("-key", "contact_port", str(phone.port)),
            )
            assert signed_in == 0
            outbound = service.outbound

            leg = await outbound.place_call(
                "agent:a-1", caller_id="+12025551000", headers=[("X-Assistline-Contact", "c-7")]
            )
            await phone.wait_for(acked)
            [invite] = phone.requests("INVITE")
            # The edge found the phone's registration and sent the call there.
            assert invite.uri == f"sip:alice@{HOST}:{phone.port}"
            assert invite.header("X-Assistline-Contact") == "c-7"
            from_uri = (invite.header("From") or "").split(";tag=")[0].strip("<>")
            assert from_uri == f"sip:+12025551000@{HOST}"
            assert invite.value("Via").startswith(f"SIP/2.0/UDP {edge};")
            # An agent's call takes no place on the trunk.
            assert outbound.gate.in_progress == 0

            worker = leg.split("-", 1)[0]
            await service.pool.command(worker, lambda request: protocol.Hangup(request, leg))
            await until(lambda: phone.process.returncode is not None, 10)
            assert phone.process.returncode == 0  # rang, answered, hung up: one whole call

            # Without a trunk, numbers are refused; unknown agents are named.
            with pytest.raises(DestinationRefusedError, match="phone numbers need a trunk"):
                await outbound.place_call("+12025550123")
            with pytest.raises(DestinationRefusedError, match="no agent has id 'a-2'"):
                await outbound.place_call("agent:a-2")
