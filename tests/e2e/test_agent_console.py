"""The agent console in Chromium: sign in, be available, see the screen pop, chat, see the end.

The same real parts as ``test_call_to_agent`` (its fixtures: the app with
Kamailio and one media worker, PostgreSQL, baresip as Ada's phone, Debian's
Chromium with a 1 kHz sine as the fake microphone). Two tabs of that
Chromium: Ada's console at ``/agent``, and the customer's page opened from
its join link. Ada's phone answers when the test tells it to, so the
console's ringing screen pop is there to be read; Ada hangs up on the phone.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import asyncpg
import pytest
from playwright.async_api import BrowserContext, Page, expect

from assistline.signalling.agent_auth import set_console_password
from tests.e2e.conftest import API_KEY
from tests.e2e.pages import (
    CONTACT,
    horizontal_overflow,
    join_path,
    low_contrast,
    unnamed_controls,
)
from tests.e2e.test_call_to_agent import chromium_args, sip_server
from tests.integration.sip.app_server import Server, ended_contact
from tests.integration.sip.test_agent_bridge import phone_of_ada

pytestmark = [pytest.mark.e2e, pytest.mark.slow]
__all__ = ["chromium_args", "sip_server"]  # fixtures used here

CONSOLE_PASSWORD = "console-secret-e2e-1234"
CANARY = "4111 1111 1111 1111"  # Luhn-valid: must reach the agent masked
POP = {
    "currency": "USD",
    "step": "payment failed: card declined",
    "context_trail": [
        {"at": "2025-01-31T14:05:00Z", "step": "login"},
        {"at": "2025-01-31T14:06:10Z", "step": "pay", "detail": "declined"},
    ],
}


async def _create_contact(server: Server) -> dict[str, Any]:
    response = await server.client.post(
        "/api/v1/contacts", json=CONTACT | POP, headers={"Authorization": f"Bearer {API_KEY}"}
    )
    assert response.status == 201, await response.text()
    created: dict[str, Any] = await response.json()
    return created


async def _sign_in(console: Page, url: str) -> None:
    await console.goto(url + "/agent")
    await console.get_by_label("Agent id").fill("agent-ada")
    await console.get_by_label("Password").fill(CONSOLE_PASSWORD)
    await console.get_by_role("button", name="Sign in").click()
    await expect(console.locator("#agent-name")).to_have_text("Ada Agent")


async def test_the_console_shows_the_screen_pop_chats_both_ways_and_sees_the_end(
    sip_server: Server,
    browser: BrowserContext,
    page: Page,
    page_errors: list[str],
    db: asyncpg.Connection,
    tmp_path: Path,
) -> None:
    console = page
    await set_console_password(sip_server.db, "agent-ada", CONSOLE_PASSWORD)
    async with phone_of_ada(sip_server, tmp_path / "baresip", answermode="manual") as phone:
        await _sign_in(console, sip_server.url)
        state = console.locator("#agent-state")
        available = console.get_by_role("switch", name="Available for calls")
        # Ada steps away; the customer calls and waits; Ada sets herself available.
        await expect(state).to_have_text("Available")
        await available.uncheck()
        await expect(state).to_have_text("Offline")

        contact = await _create_contact(sip_server)
        customer = await browser.new_page()
        customer.on("pageerror", lambda error: page_errors.append(error.message))
        await customer.goto(sip_server.url + join_path(contact["contact"], contact["token"]))
        await customer.get_by_role("button", name="Call", exact=True).click()
        call_state = customer.locator("#call-state")
        await expect(call_state).to_have_text("You are number 1 in the queue.", timeout=20_000)
        # Chat is not open before an agent is connected.
        await customer.get_by_role("textbox", name="Message").fill("anyone there?")
        await customer.get_by_role("button", name="Send").click()
        await expect(customer.locator("#notice")).to_contain_text(
            "Not available yet: chat opens when an agent is connected."
        )
        await customer.get_by_role("textbox", name="Message").fill("")

        await available.check()
        # The screen pop while Ada's phone rings.
        await phone.wait_event("CALL_INCOMING")
        await expect(console.locator("#call-state")).to_have_text(
            "Your phone is ringing: answer it to take the call."
        )
        pop = console.locator("#offer-pop")
        await expect(pop.locator("dd")).to_have_text(
            ["cust-e2e", "AR-42", "$123.45", "payment failed: card declined", contact["contact"]]
        )
        await expect(pop.locator(".trail li")).to_have_count(2)
        await expect(pop.locator(".trail li").nth(0)).to_contain_text("login")
        await expect(pop.locator(".trail li").nth(1)).to_contain_text("pay: declined")
        await expect(console.locator("#notice")).to_have_text(
            "Incoming call: customer cust-e2e, account AR-42."
        )
        await expect(state).to_have_text("Busy")
        chat_box = console.get_by_role("textbox", name="Message")
        await expect(chat_box).to_be_disabled()
        await expect(call_state).to_have_text("Calling Ada Agent…")

        await phone.command("accept")
        await phone.wait_event("CALL_ESTABLISHED")
        await expect(console.locator("#call-state")).to_have_text("Connected.")
        await expect(call_state).to_have_text("You are talking with Ada Agent.")
        await expect(chat_box).to_be_enabled()
        # The console with its chat at a phone's width: named, readable, no sideways scroll.
        assert await unnamed_controls(console) == []
        assert await horizontal_overflow(console) == 0
        assert await low_contrast(console) == []

        # The customer types a card number: the agent sees it masked; both see the line.
        customer_box = customer.get_by_role("textbox", name="Message")
        await customer_box.fill(f"my card is {CANARY}, can I pay <b>Friday</b>?")
        await customer.get_by_role("button", name="Send").click()
        line = "my card is [card …1111], can I pay <b>Friday</b>?"
        await expect(console.locator("#chat-log li")).to_have_text([f"Customer: {line}"])
        await expect(customer.locator("#chat-log li")).to_have_text([f"You: {line}"])
        await expect(customer_box).to_have_value("")  # the masked echo empties the box

        await chat_box.fill("Friday works. Please don't type card numbers here.")
        await console.get_by_role("button", name="Send").click()
        reply = "Friday works. Please don't type card numbers here."
        await expect(customer.locator("#chat-log li")).to_have_text(
            [f"You: {line}", f"Agent: {reply}"]
        )
        await expect(console.locator("#chat-log li")).to_have_text(
            [f"Customer: {line}", f"You: {reply}"]
        )
        await expect(chat_box).to_have_value("")
        for tab in (console, customer):
            assert CANARY not in await tab.locator("#chat-log").inner_text()

        # Ada hangs up on her phone: both sides see the end; chat closes.
        await phone.command("hangup")
        await phone.wait_event("CALL_CLOSED")
        await expect(console.locator("#call-state")).to_have_text("The call has ended.")
        await expect(state).to_have_text("Wrapping up")
        await expect(chat_box).to_be_disabled()
        await expect(customer.locator("#notice")).to_contain_text(
            "The call has ended: the agent hung up."
        )
        await customer.close()

    assert await ended_contact(db, contact["contact"]) == "agent_hangup"
