"""A contact's page calls, is queued, and is bridged to an available agent's phone.

Everything real, on loopback: the control process's aiohttp app in this
process with one media worker and Kamailio, PostgreSQL, baresip as Ada's
phone (a 1100 Hz sine, answering by itself), and an aiortc peer as the
customer's browser (a 1 kHz sine) speaking signalling v1 over ``/ws``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import numpy as np
import pytest

from assistline.queue.agents import AgentState
from assistline.settings import WebRtcSettings
from assistline.signalling.keys import CONTACT_CALLS_KEY
from tests.integration.sip.app_server import Client, Server, ended_contact, sip_app
from tests.integration.sip.test_agent_bridge import AGENT_HZ, assert_tone, phone_of_ada
from tests.integration.webrtc.peers import Browser, dominant_frequency, new_offer

pytestmark = pytest.mark.slow

KEY = "contact-test-backend-key"
#: webrtc.consent_timeout here (the default is 30 s; the issue asks for at most 40).
CONSENT = 8.0
REPO = Path(__file__).resolve().parents[3]
CUSTOMER_HZ = 1000


@pytest.fixture
async def server(database_url: str) -> AsyncIterator[Server]:
    webrtc = WebRtcSettings(ice_host_addresses=("127.0.0.1",), consent_timeout=CONSENT)
    agents = [("agent-ada", "Ada Agent", "ada")]
    async with sip_app(
        database_url,
        agents,
        available=["agent-ada"],
        api_keys=(KEY,),
        record_calls=False,
        webrtc=webrtc,
    ) as app:
        yield app


@pytest.fixture
async def browser() -> AsyncIterator[Browser]:
    peer = Browser(float(CUSTOMER_HZ))
    try:
        yield peer
    finally:
        await peer.close()


async def _join(
    client: Client, media: str = "voice"
) -> tuple[str, aiohttp.ClientWebSocketResponse]:
    response = await client.post(
        "/api/v1/contacts",
        json={"customer_id": "cust-9", "account": "AR-9", "balance_cents": 4200, "media": media},
        headers={"Authorization": f"Bearer {KEY}"},
    )
    assert response.status == 201, await response.text()
    created = await response.json()
    origin = str(client.make_url("/")).rstrip("/")
    socket = await client.ws_connect(
        "/ws",
        params={"contact": created["contact"], "token": created["token"]},
        headers={"Origin": origin},
    )
    hello = await socket.receive_json()
    assert hello["type"] == "hello" and hello["ice_servers"] == []
    return str(created["contact"]), socket


async def _until(
    socket: aiohttp.ClientWebSocketResponse, kind: str, timeout: float = 15.0, **fields: Any
) -> dict[str, Any]:
    """The next message of ``kind`` with ``fields``, skipping others (``timeout`` s at most)."""
    async with asyncio.timeout(timeout):
        while True:
            message: dict[str, Any] = await socket.receive_json()
            if message["type"] == kind and all(message.get(k) == v for k, v in fields.items()):
                return message


async def test_a_contact_is_bridged_to_the_available_agent_and_each_hears_the_other(
    server: Server, browser: Browser, tmp_path: Path
) -> None:
    async with phone_of_ada(server, tmp_path / "baresip") as phone:
        contact, socket = await _join(server.client)
        await socket.send_str(json.dumps({"type": "offer", "sdp": await new_offer(browser)}))
        answer = await _until(socket, "answer")
        await browser.take_answer(answer["sdp"])
        await asyncio.wait_for(browser.connected.wait(), 10)
        assert (await _until(socket, "state", state="ringing"))["agent"] == "Ada Agent"
        await phone.wait_event("CALL_ESTABLISHED")
        await _until(socket, "state", state="connected", agent="Ada Agent")
        await asyncio.sleep(2.0)  # two seconds of both tones
        rate = browser.recorder.frames[-1].sample_rate
        heard = browser.recorder.mono()[-rate:]
        assert abs(dominant_frequency(heard, rate) - AGENT_HZ) <= 0.02 * AGENT_HZ
        agent = await server.db.fetchrow("SELECT state FROM agent WHERE id = 'agent-ada'")
        assert agent is not None and agent["state"] == "busy"
        # A keypad digit on the page reaches the agent's phone (RFC 4733).
        await socket.send_str('{"type": "digit", "digit": "5"}')
        dtmf = await phone.wait_event("CALL_DTMF_START")
        assert dtmf["param"] == "5", dtmf
        # The agent holds the call on the phone, then takes it back: the page is told.
        await phone.command("hold")
        await _until(socket, "state", state="on_hold")
        await phone.command("resume")
        await _until(socket, "state", state="connected", agent="Ada Agent")

        await socket.send_str('{"type": "hangup"}')
        assert (await _until(socket, "state", state="ended"))["reason"] == "hangup"
        await phone.wait_event("CALL_CLOSED")
        await socket.close()
        assert_tone(np.concatenate(phone.dumps("dec")), 8000, CUSTOMER_HZ, "what the agent heard")

    async with asyncio.timeout(5):
        while True:
            row = await server.db.fetchrow(
                "SELECT c.state, c.end_reason, a.state AS agent_state FROM contact c, agent a"
                " WHERE c.id = $1 AND a.id = 'agent-ada'",
                contact,
            )
            assert row is not None
            if row["agent_state"] == "wrap_up":
                break
            await asyncio.sleep(0.1)
    assert (row["state"], row["end_reason"]) == ("ended", "hangup")
    legs = await server.db.fetch("SELECT direction, from_uri, to_uri FROM call_record ORDER BY id")
    assert [(r["direction"], r["from_uri"]) for r in legs][0] == ("inbound", f"webrtc:{contact}")
    assert legs[1]["to_uri"] == f"sip:ada@127.0.0.1:{server.edge_port}"


async def test_with_no_agent_available_the_contact_waits_with_its_position(
    server: Server, browser: Browser
) -> None:
    await server.db.execute("UPDATE agent SET state = 'offline'")
    # The router read the agents at start: tell it too, as the console will.
    app = server.client.app
    assert app is not None
    await app[CONTACT_CALLS_KEY].set_agent_state("agent-ada", AgentState.OFFLINE)
    contact, socket = await _join(server.client)
    await socket.send_str(json.dumps({"type": "offer", "sdp": await new_offer(browser)}))
    await browser.take_answer((await _until(socket, "answer"))["sdp"])
    assert (await _until(socket, "state", state="queued"))["position"] == 1
    # While it waits the customer hears the comfort tone: US ringback, 440 + 480 Hz
    # for its first 2 s.
    await asyncio.sleep(1.0)
    rate = browser.recorder.frames[-1].sample_rate
    heard = browser.recorder.mono()[-rate // 2 :]
    assert np.sqrt(np.mean(heard.astype(np.float64) ** 2)) > 300
    assert min(abs(dominant_frequency(heard, rate) - hz) for hz in (440, 480)) <= 5
    await socket.send_str('{"type": "hangup"}')
    await _until(socket, "state", state="ended")
    await socket.close()


async def test_a_vanished_page_is_torn_down_and_its_agent_leg_hung_up_in_the_consent_timeout(
    server: Server, tmp_path: Path
) -> None:
    async with phone_of_ada(server, tmp_path / "baresip") as phone:
        contact, socket = await _join(server.client)
        # The customer's browser in a process of its own, so it can vanish without a word.
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            *("-m", "tests.integration.webrtc.peers", str(CUSTOMER_HZ)),
            cwd=REPO,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
        )
        assert process.stdin is not None and process.stdout is not None
        try:
            offer = json.loads(await asyncio.wait_for(process.stdout.readline(), 20))["offer"]
            await socket.send_str(json.dumps({"type": "offer", "sdp": offer}))
            answer = (await _until(socket, "answer"))["sdp"]
            process.stdin.write((json.dumps({"answer": answer}) + "\n").encode())
            await process.stdin.drain()
            await _until(socket, "state", state="connected")
            process.send_signal(signal.SIGKILL)
            vanished = time.monotonic()
            await process.wait()
            ended = await _until(socket, "state", state="ended", timeout=CONSENT + 10)
            closing = await socket.receive()  # the server closes the session after "ended"
            assert closing.type == aiohttp.WSMsgType.CLOSE
            await phone.wait_event("CALL_CLOSED", timeout=5)
            elapsed = time.monotonic() - vanished
        finally:
            with contextlib.suppress(ProcessLookupError):
                process.kill()
            await process.wait()
        assert ended["reason"] == "media_failed"
        assert elapsed <= CONSENT + 1.0
    assert await ended_contact(server.db, contact) == "media_failed"


async def test_a_video_contact_given_an_agent_on_a_phone_is_told_and_goes_on_as_voice(
    server: Server, browser: Browser, tmp_path: Path
) -> None:
    async with phone_of_ada(server, tmp_path / "baresip") as phone:
        _, socket = await _join(server.client, media="video")
        await socket.send_str(json.dumps({"type": "offer", "sdp": await new_offer(browser)}))
        await browser.take_answer((await _until(socket, "answer"))["sdp"])
        unavailable = await _until(socket, "video_unavailable")
        assert unavailable["reason"] == "the agent is on a phone: the call goes on as voice"
        await phone.wait_event("CALL_ESTABLISHED")
        await _until(socket, "state", state="connected", agent="Ada Agent")
        await socket.send_str('{"type": "hangup"}')
        await _until(socket, "state", state="ended")
        await phone.wait_event("CALL_CLOSED")
        await socket.close()
