"""A payment line caller asks for an agent: queued as a contact, bridged to Ada's phone.

The caller (sipp, RTP from the test) identifies, then presses 0 at the menu.
The flow's ``transfer`` turns the call into a contact carrying what the
line learnt (account, balance, the step); routing offers it to Ada, whose
phone (baresip) answers; the caller's leg is bridged to hers in the same
worker. Ada hangs up; the caller's call ends.
"""

from __future__ import annotations

import asyncio
import datetime
import json
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from assistline.settings import IvrSettings
from assistline.signalling.keys import IVR_CALLS_KEY
from tests.integration.ivr.test_canary_sweep import _until
from tests.integration.ivr.test_payment_line_call import Keypad
from tests.integration.sip.app_server import Server, sip_app
from tests.integration.sip.test_agent_bridge import phone_of_ada
from tests.integration.sip.worker_peers import RtpSink, run_sipp

pytestmark = pytest.mark.slow


@pytest.fixture
async def server(database_url: str) -> AsyncIterator[Server]:
    agents = [("agent-ada", "Ada Agent", "ada")]
    ivr = IvrSettings(tts_words_per_minute=450)
    async with sip_app(database_url, agents, available=["agent-ada"], ivr=ivr) as app:
        await app.db.execute(
            "INSERT INTO account (number, customer_id, name, postal_code, balance_cents,"
            " minimum_due_cents, due_date) VALUES ('123456', 'cust-1', 'Ann', '94105', 4210,"
            " 2500, $1)",
            datetime.date.today() + datetime.timedelta(days=10),
        )
        yield app


async def test_a_caller_who_asks_for_an_agent_reaches_one_with_the_context(
    server: Server, tmp_path: Path
) -> None:
    loop = asyncio.get_running_loop()
    async with phone_of_ada(server, tmp_path / "baresip") as phone:
        transport, sink = await loop.create_datagram_endpoint(RtpSink, local_addr=("127.0.0.1", 0))
        keypad = Keypad(transport, sink)
        port = str(transport.get_extra_info("sockname")[1])
        sipp = asyncio.create_task(
            run_sipp(
                "ivr_caller.xml",
                server.edge_port,
                service="pay",
                keys=[("rtp_sink", port)],
                timeout=120,
            )
        )
        try:
            await keypad.start()
            ivr = server.client.app[IVR_CALLS_KEY]
            await _until(lambda: len(ivr.calls) == 1)
            call = next(iter(ivr.calls.values()))

            def asking(step: str) -> bool:
                return call.engine.step.name == step and call.engine.phase.name == "INPUT"

            for step, keys in (("ask_account", "123456#"), ("ask_zip", "94105"), ("choose", "0")):
                await _until(lambda: asking(step))  # noqa: B023 - awaited at once
                keypad.rfc4733(keys)
            await phone.wait_event("CALL_ESTABLISHED", timeout=30)
            assert not ivr.calls  # the queue has the caller now
            contact = await server.db.fetchrow("SELECT * FROM contact")
            assert contact is not None
            assert (contact["account"], contact["balance_cents"]) == ("123456", 4210)
            assert contact["step"] == "payment line: to_agent"
            fields = json.loads(contact["fields"])
            assert fields["queue"] == "collections" and fields["caller_number"] == "15550100"
            await asyncio.sleep(1.0)
            await phone.command("hangup")
            result = await sipp
            assert (result.successful, result.failed) == (1, 0), result.errors
        finally:
            await keypad.close()
            if not sipp.done():
                sipp.cancel()
