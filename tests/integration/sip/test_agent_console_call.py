"""The agent console follows a real contact call: availability, the offer's screen pop, states.

The same real parts as ``test_contact_call`` (one media worker, Kamailio,
baresip as Ada's phone answering by itself, an aiortc peer as the
customer's browser); Ada also has the console open, so the offer, the
call's states and Ada's state reach it from ``ContactCalls`` itself, and
chat goes between the page and the console while they are connected.
"""

from __future__ import annotations

import asyncio
import json
import logging
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from assistline.signalling.agent_auth import set_console_password
from tests.integration.sip.test_agent_bridge import Server, phone_of_ada
from tests.integration.sip.test_contact_call import _join, _until, browser, server
from tests.integration.webrtc.peers import Browser, new_offer

pytestmark = pytest.mark.slow
__all__ = ["browser", "server"]  # fixtures used here

CONSOLE_PASSWORD = "console-secret-1234"


async def _console(server: Server) -> tuple[aiohttp.ClientWebSocketResponse, dict[str, Any]]:
    await set_console_password(server.db, "agent-ada", CONSOLE_PASSWORD)
    client = server.client
    response = await client.post(
        "/api/v1/agent/session", json={"agent_id": "agent-ada", "password": CONSOLE_PASSWORD}
    )
    assert response.status == 201, await response.text()
    origin = str(client.make_url("/")).rstrip("/")
    socket = await client.ws_connect("/ws/agent", headers={"Origin": origin})
    hello: dict[str, Any] = await socket.receive_json(timeout=5)
    return socket, hello


async def _state(socket: aiohttp.ClientWebSocketResponse, state: str) -> None:
    await socket.send_json({"type": "set_state", "state": state})
    assert await socket.receive_json(timeout=5) == {"type": "state", "state": state}


async def test_the_console_sets_availability_and_sees_the_offer_and_the_call(
    server: Server, browser: Browser, tmp_path: Path
) -> None:
    console, hello = await _console(server)
    assert hello["calls"] is True and hello["state"] == "available"
    # Availability goes through routing: offline here, no contact is offered.
    await _state(console, "offline")
    assert await server.db.fetchval("SELECT state FROM agent WHERE id = 'agent-ada'") == "offline"
    async with phone_of_ada(server, tmp_path / "baresip") as phone:
        contact, page = await _join(server.client)
        await page.send_str(json.dumps({"type": "offer", "sdp": await new_offer(browser)}))
        await browser.take_answer((await _until(page, "answer"))["sdp"])
        await asyncio.wait_for(browser.connected.wait(), 10)
        assert (await _until(page, "state", state="queued"))["position"] == 1
        # Available: routing offers Ada the contact at once (the reply says busy already).
        await console.send_json({"type": "set_state", "state": "available"})

        offer = await _until(console, "offer")
        assert offer == {
            "type": "offer",
            "contact": contact,
            "customer_id": "cust-9",
            "account": "AR-9",
            "balance_cents": 4200,
            "currency": "USD",
            "step": None,
            "fields": {},
            "media": "voice",
            "context_trail": [],
        }
        await _until(console, "call", contact=contact, state="ringing")
        await phone.wait_event("CALL_ESTABLISHED")
        await _until(console, "call", contact=contact, state="connected")
        await _until(page, "state", state="connected")
        # A console reloaded mid-call is told the call it is on, after hello.
        reloaded, _ = await _console(server)
        assert await reloaded.receive_json(timeout=5) == offer
        assert await reloaded.receive_json(timeout=5) == {
            "type": "call",
            "contact": contact,
            "state": "connected",
        }
        await reloaded.close()
        await console.send_json({"type": "ping"})
        await _until(console, "state", state="busy")
        await console.send_json({"type": "set_state", "state": "available"})
        refused = await _until(console, "error")
        assert refused["code"] == "not_now"

        await page.send_str('{"type": "hangup"}')
        await _until(console, "call", contact=contact, state="ended")
        await _until(console, "state", state="wrap_up")
        await phone.wait_event("CALL_CLOSED")
        await page.close()
    await console.close()


CANARY = "4111 1111 1111 1111"  # Luhn-valid: a card number as a customer might type it
MASKED = "[card …1111]"


async def test_chat_goes_both_ways_while_connected_with_card_numbers_masked(
    server: Server, browser: Browser, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    console, _ = await _console(server)
    async with phone_of_ada(server, tmp_path / "baresip", answermode="manual") as phone:
        contact, page = await _join(server.client)
        # Before an agent is connected, chat is not open.
        await page.send_str(json.dumps({"type": "chat", "text": "anyone there?"}))
        refused = await _until(page, "error")
        assert refused == {
            "type": "error",
            "code": "not_now",
            "message": "chat opens when an agent is connected",
        }
        await console.send_json({"type": "chat", "contact": contact, "text": "Hello?"})
        assert await _until(console, "error") == {
            "type": "error",
            "code": "not_now",
            "message": "chat opens when you are connected to the customer",
        }
        await page.send_str(json.dumps({"type": "offer", "sdp": await new_offer(browser)}))
        await browser.take_answer((await _until(page, "answer"))["sdp"])
        await _until(console, "offer")
        await phone.wait_event("CALL_INCOMING")  # ringing: chat is not open yet
        await page.send_str(json.dumps({"type": "chat", "text": "still ringing?"}))
        assert (await _until(page, "error"))["code"] == "not_now"
        await phone.command("accept")
        await phone.wait_event("CALL_ESTABLISHED")
        await _until(console, "call", contact=contact, state="connected")
        await _until(page, "state", state="connected")

        # Page → console, echoed to the page; the card number is masked on both.
        await page.send_str(json.dumps({"type": "chat", "text": f"my card is {CANARY} <b>ok"}))
        line = f"my card is {MASKED} <b>ok"
        echo = await _until(page, "chat")
        assert echo == {"type": "chat", "text": line, "from": "customer"}
        heard = await _until(console, "chat")
        assert heard == {"type": "chat", "contact": contact, "text": line, "from": "customer"}

        # Console → page, echoed to the console; masked too (no dashes or spaces here).
        said = f"Thanks, please do not type {CANARY.replace(' ', '-')} here"
        await console.send_json({"type": "chat", "contact": contact, "text": said})
        line = f"Thanks, please do not type {MASKED} here"
        assert await _until(page, "chat") == {"type": "chat", "text": line, "from": "agent"}
        echoed = await _until(console, "chat")
        assert echoed == {"type": "chat", "contact": contact, "text": line, "from": "agent"}

        # A line for another contact, or out of bounds, is refused; the session goes on.
        other = "00000000-0000-4000-8000-000000000000"
        await console.send_json({"type": "chat", "contact": other, "text": "Hi"})
        assert (await _until(console, "error"))["code"] == "not_now"
        await console.send_json({"type": "chat", "contact": contact, "text": "x" * 2001})
        assert await _until(console, "error") == {
            "type": "error",
            "code": "bad_value",
            "message": "chat.text must be 1..2000 characters",
        }
        await console.send_json({"type": "chat", "contact": contact, "text": "é" * 2000})
        long_line = await _until(console, "chat")  # 4,000 bytes of UTF-8: one frame still
        assert (long_line["text"], long_line["from"]) == ("é" * 2000, "agent")
        assert (await _until(page, "chat"))["text"] == "é" * 2000

        await page.send_str('{"type": "hangup"}')
        await _until(console, "call", contact=contact, state="ended")
        await phone.wait_event("CALL_CLOSED")
        # The call is over: chat is closed again.
        await console.send_json({"type": "chat", "contact": contact, "text": "Bye"})
        assert (await _until(console, "error"))["code"] == "not_now"
        await page.close()
    await console.close()
    # Neither the lines nor the card number (masked or not) reached a log.
    for needle in (CANARY, CANARY.replace(" ", "-"), MASKED, "my card", "Thanks, please"):
        assert needle not in caplog.text, needle
