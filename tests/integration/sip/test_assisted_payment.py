"""An agent takes a secure payment from the customer they are connected to.

The customer's page and Ada's console are aiortc peers (as in
``test_console_call``); Ada takes calls in the console. Once connected, the
console sends ``take_payment``: the customer hears the capture's prompts,
keys the card on the page's keypad (``digit`` messages), and the console
sees masked progress and the result, never a digit of the card. The payment
row keeps brand, last four, amount and result, channel ``agent``; the audit
trail has the secure window.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import aiohttp
import pytest

from assistline.ivr.secure_capture_messages import Stage
from assistline.redaction import contains_card_number
from assistline.signalling.keys import CONTACT_CALLS_KEY
from tests.integration.sip.test_agent_bridge import Server
from tests.integration.sip.test_agent_console_call import _console
from tests.integration.sip.test_console_call import _set_console
from tests.integration.sip.test_contact_call import _join, _until, browser, server
from tests.integration.webrtc.peers import Browser, new_offer

pytestmark = pytest.mark.slow
__all__ = ["browser", "server"]  # fixtures used here

CARD = "4242424242424242"


async def _keys(page: aiohttp.ClientWebSocketResponse, keys: str) -> None:
    for key in keys:
        await page.send_str(json.dumps({"type": "digit", "digit": key}))
        await asyncio.sleep(0.05)


async def test_the_agent_takes_a_secure_payment_and_sees_only_masked_progress(
    server: Server, browser: Browser
) -> None:
    console, _ = await _console(server)
    await _set_console(console)
    agent_peer = Browser(1500.0)
    frames: list[dict[str, Any]] = []
    try:
        contact, page = await _join(server.client)
        await page.send_str(json.dumps({"type": "offer", "sdp": await new_offer(browser)}))
        await browser.take_answer((await _until(page, "answer"))["sdp"])
        await _until(console, "offer")
        accept = {"type": "accept", "contact": contact, "sdp": await new_offer(agent_peer)}
        await console.send_str(json.dumps(accept))
        await agent_peer.take_answer((await _until(console, "answer", contact=contact))["sdp"])
        await _until(console, "call", contact=contact, state="connected")

        # Bad requests are refused by name; the call goes on.
        await console.send_json({"type": "take_payment", "contact": contact, "amount_cents": 0})
        assert (await _until(console, "error"))["code"] == "bad_value"
        await console.send_json({"type": "take_payment", "contact": contact, "amount_cents": 4210})
        assert await _until(page, "secure") == {"type": "secure", "state": "on"}
        payments = server.client.app[CONTACT_CALLS_KEY].payments
        desk = payments._desk  # type: ignore[union-attr]

        async def stage(wanted: Stage) -> None:
            async with asyncio.timeout(20):
                while True:
                    run = desk._runs.get(contact)
                    if run is not None and run.capture.stage is wanted:
                        return
                    await asyncio.sleep(0.05)

        await stage(Stage.CARD_NUMBER)
        await _keys(page, CARD + "#")
        await stage(Stage.EXPIRY)
        await _keys(page, "1230")
        await stage(Stage.SECURITY_CODE)
        await _keys(page, "123")
        await stage(Stage.POSTAL_CODE)
        await _keys(page, "94105")
        async with asyncio.timeout(20):
            while True:
                frame = await console.receive_json()
                frames.append(frame)
                if frame["type"] == "payment" and "result" in frame:
                    break
        result = frames[-1]["result"]
        assert (result["outcome"], result["brand"], result["last4"]) == ("approved", "visa", "4242")
        assert result["amount_cents"] == 4210
        progress = [f["progress"] for f in frames if f["type"] == "payment" and "progress" in f]
        assert any("•••• •••• •••• 4242" in line for line in progress), progress
        assert await _until(page, "secure") == {"type": "secure", "state": "off"}
        # After the window, the page's keys reach nobody's capture again.
        await page.send_str(json.dumps({"type": "digit", "digit": "5"}))
        assert (await _until(page, "error"))[
            "message"
        ] == "keypad digits reach agents on phones only"
        await page.send_str('{"type": "hangup"}')
        await page.close()
    finally:
        await agent_peer.close()
        await console.close()

    for frame in frames:
        text = json.dumps(frame, ensure_ascii=False)
        assert CARD not in text and not contains_card_number(text)
    row = await server.db.fetchrow("SELECT * FROM payment")
    assert row is not None
    assert (row["channel"], row["account"], row["outcome"]) == ("agent", "AR-9", "approved")
    assert (row["brand"], row["last4"], row["amount_cents"]) == ("visa", "4242", 4210)
    audit = await server.db.fetch(
        "SELECT action, detail::text AS detail FROM audit_event"
        " WHERE action LIKE 'secure_capture.%' ORDER BY id"
    )
    assert [r["action"] for r in audit] == ["secure_capture.start", "secure_capture.end"]
    assert all(CARD not in r["detail"] for r in audit)
