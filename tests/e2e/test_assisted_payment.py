"""An agent takes a secure payment from the console; the customer keys the card on the page.

The real parts of ``test_console_video`` (the app with Kamailio and one media
worker, the sandbox gateway, PostgreSQL, two Chromiums with fake media): Ada
takes the customer's call in her console, enters an amount and chooses
*Take secure payment*. The customer's page keys card, expiry, security code
and ZIP code on its in-call keypad, one field at a time as the console's
masked progress reaches it (a key pressed early would go to the field still
being keyed). The console shows ``•••• •••• •••• 4242`` and then the approved
result; nothing the console ever showed, logged or received holds a digit
of the card beyond its last four.
"""

from __future__ import annotations

import json
import re
import time
from typing import Any

import asyncpg
import pytest
from playwright.async_api import BrowserContext, ConsoleMessage, Locator, Page, expect

from assistline.redaction import contains_card_number
from tests.e2e.conftest import record_frames
from tests.e2e.pages import focused, horizontal_overflow, low_contrast, unnamed_controls
from tests.e2e.test_call_to_agent import chromium_args, sip_server
from tests.e2e.test_console_video import RECORD_PEERS, _connect, _console, _hang_up, console_browser
from tests.integration.sip.app_server import Server, ended_contact

pytestmark = [pytest.mark.e2e, pytest.mark.slow]
__all__ = ["chromium_args", "console_browser", "sip_server"]  # fixtures used here

CARD = "4242424242424242"
EXPIRY = "1230"
SECURITY_CODE = "737"  # not 123: the screen pop shows the balance, $123.45
ZIP = "94105"
SECRETS = (CARD, "4242 4242 4242 4242", EXPIRY, "12/30", SECURITY_CODE, ZIP)
#: How long the customer may take over one field, prompts included.
FIELD_SECONDS = 20

# Every text the console's body ever showed (window.__texts), however briefly.
WATCH_TEXT = """
window.__texts = [];
new MutationObserver(() => {
  const text = document.body ? document.body.innerText : "";
  if (text && window.__texts.at(-1) !== text) window.__texts.push(text);
}).observe(document, { subtree: true, childList: true, characterData: true, attributes: true });
"""


async def _key(customer: Page, keys: str) -> None:
    for key in keys:
        await customer.locator(f'#keypad button[data-digit="{key}"]').click()


async def _reaches(progress: Locator, field: str) -> None:
    """The console's progress names ``field``: the capture is asking for it."""
    await expect(progress).to_contain_text(field, timeout=FIELD_SECONDS * 1000)


def _leaks(text: str, harmless: list[str]) -> list[str]:
    """The card's secrets in ``text``, once the random ids it may hold are taken out."""
    for value in harmless:
        text = text.replace(value, "")
    found = [secret for secret in SECRETS if secret in text]
    return found + (["a card number"] if contains_card_number(text) else [])


async def test_the_agent_takes_a_secure_payment_and_sees_only_masked_progress(
    sip_server: Server,
    browser: BrowserContext,
    console_browser: BrowserContext,
    page: Page,
    page_errors: list[str],
    db: asyncpg.Connection,
) -> None:
    customer = page
    console = await _console(console_browser, page_errors)
    await console_browser.add_init_script(RECORD_PEERS + WATCH_TEXT)
    logged: list[str] = []

    def log(message: ConsoleMessage) -> None:
        logged.append(message.text)

    console.on("console", log)
    frames = record_frames(console)
    contact, _ = await _connect(sip_server, customer, console)
    contact_id: str = contact["contact"]

    amount = console.get_by_role("textbox", name="Amount in US dollars")
    take = console.get_by_role("button", name="Take secure payment")
    progress = console.locator("#payment-progress")
    result = console.locator("#payment-result")
    # The screen pop's balance is the default; a bad amount is refused by name, here.
    await expect(amount).to_have_value("123.45")
    await expect(take).to_be_enabled()
    await amount.fill("12.345")
    await take.click()
    await expect(console.locator("#payment-error")).to_have_text(
        "Enter the amount in dollars and cents, for example 42.10."
    )
    await expect(amount).to_have_attribute("aria-invalid", "true")
    assert await focused(console) == "payment-amount"
    await amount.fill("2,000,000")
    await take.click()
    await expect(console.locator("#payment-error")).to_have_text(
        "The amount can be at most $1,000,000.00."
    )
    assert frames.of("take_payment", "sent") == []

    started = time.monotonic()
    await amount.fill("42.10")
    await take.click()
    await expect(console.locator("#payment-error")).to_be_hidden()
    assert frames.of("take_payment", "sent") == [
        {"type": "take_payment", "contact": contact_id, "amount_cents": 4210}
    ]
    # While it runs, the control is off and focus is on the progress.
    await expect(take).to_be_disabled()
    await expect(amount).to_be_disabled()
    assert await focused(console) == "payment-progress"

    # The page opens its keypad by itself and says the agent cannot hear the keys.
    await expect(customer.locator("#keypad")).to_be_visible()
    await expect(customer.locator("#secure-note")).to_contain_text("cannot hear")
    await _reaches(progress, "card number")
    await _key(customer, CARD + "#")
    await _reaches(progress, "expiry")
    await expect(progress).to_contain_text("•••• •••• •••• 4242, Luhn ✓")
    await _key(customer, EXPIRY)
    await _reaches(progress, "security code")
    await expect(progress).to_contain_text("expiry ✓")
    await _key(customer, SECURITY_CODE)
    await _reaches(progress, "postal code")
    await _key(customer, ZIP)
    await expect(result).to_contain_text("Payment approved", timeout=FIELD_SECONDS * 1000)
    print(f"take to approved: {time.monotonic() - started:.1f} s")

    (end,) = [f["result"] for f in frames.of("payment") if "result" in f]
    assert (end["outcome"], end["brand"], end["last4"]) == ("approved", "visa", "4242"), end
    confirmation: str = end["confirmation"]
    assert re.fullmatch(r"\d{8}", confirmation), end
    await expect(result).to_have_text(
        f"Payment approved: $42.10 paid with Visa ending 4242. Confirmation number {confirmation}."
    )
    await expect(progress).to_have_text(
        "•••• •••• •••• 4242, Luhn ✓, expiry ✓, security code ✓, postal code ✓, approved"
    )
    # Every key went to the capture: none was refused on the customer's page.
    await expect(customer.locator("#notice")).not_to_contain_text("keypad digits")
    # Another payment may be taken while connected; the console works at a phone's width.
    await expect(take).to_be_enabled()
    assert await unnamed_controls(console) == []
    assert await horizontal_overflow(console) == 0
    for scheme in ("dark", "light"):
        await console.emulate_media(color_scheme=scheme)
        assert await low_contrast(console) == [], scheme

    await _hang_up(console, customer)
    await expect(take).to_be_disabled()
    await expect(result).to_contain_text("Payment approved")  # the result stays in view
    assert await ended_contact(db, contact_id) == "agent_hangup"

    # Nothing the console showed, logged or received holds the card (its last four aside).
    texts: list[str] = await console.evaluate("() => window.__texts")
    texts.append(await console.evaluate("() => document.body.innerText"))
    assert any("card number: 16 digits" in text for text in texts)  # the watch saw progress
    progress_lines = [f["progress"] for f in frames.of("payment") if "progress" in f]
    assert any("•••• •••• •••• 4242" in line for line in progress_lines), progress_lines
    # Not the SDP answers or hello's ICE servers: their random numbers are no card's.
    received = [
        json.dumps(f, ensure_ascii=False)
        for f in frames.received
        if f.get("type") in ("payment", "error", "call", "state", "chat")
    ]
    harmless = [contact_id, confirmation]
    for where, seen in (("page text", texts), ("console log", logged), ("frames", received)):
        leaks = {leak for text in seen for leak in _leaks(text, harmless)}
        assert leaks == set(), (where, leaks)

    row: Any = await db.fetchrow("SELECT * FROM payment")
    assert row is not None
    assert (row["channel"], row["outcome"], row["account"]) == ("agent", "approved", "AR-42")
    assert (row["brand"], row["last4"], row["amount_cents"]) == ("visa", "4242", 4210)
    assert row["confirmation"] == confirmation
