"""Links the server turns down (issue 5, item 2 (e)): the page says so and nothing is half-done.

A missing or damaged token is caught by the page itself, which then asks
nothing of the server. An expired, reused or foreign token and a page on a
disallowed origin are refused by ``/ws`` before the upgrade; a browser is
not told why a WebSocket was refused, so the page names the likely causes.
Each time the contact never gets past ``created`` (or stays ended), and no
token is spent but the foreign one, which the server spends on purpose.
"""

from __future__ import annotations

import datetime
from typing import Any

import asyncpg
import pytest
from playwright.async_api import Page, expect

from tests.e2e.conftest import Frames, Server, ServerFactory, record_frames
from tests.e2e.pages import create_contact, join_path

pytestmark = pytest.mark.e2e

WHOLE_LINK = "Open the whole link you were sent, or ask us for a new one."
REFUSED = (
    "We could not start a call with this link. A link works once, for a few minutes, "
    "and only on the site that sent it: it may have expired or been used already. "
    "Please ask us for a new link."
)


async def _token_row(db: asyncpg.Connection, contact: dict[str, Any]) -> asyncpg.Record:
    row = await db.fetchrow(
        "SELECT c.state, c.end_reason, t.used_at FROM contact c"
        " JOIN contact_token t ON t.contact_id = c.id WHERE c.id = $1",
        contact["contact"],
    )
    assert row is not None
    return row


async def _assert_untouched(db: asyncpg.Connection, contact: dict[str, Any]) -> None:
    row = await _token_row(db, contact)
    assert (row["state"], row["end_reason"], row["used_at"]) == ("created", None, None)


async def _call_and_expect_refusal(page: Page, frames: Frames) -> None:
    call = page.get_by_role("button", name="Call", exact=True)
    await call.click()
    await expect(page.locator("#notice")).to_have_text(REFUSED)
    assert len(frames.sockets) >= 1
    assert frames.received == []  # not even hello: refused before the upgrade
    await expect(page.locator("#in-call")).to_be_hidden()
    await expect(call).to_be_visible()


@pytest.mark.parametrize(
    ("token", "says"),
    [
        (None, "This link is incomplete: its token is missing."),
        ("", "This link is incomplete: its token is missing."),
        ("not-a-token", "This link is damaged: its token is not whole"),
        ("cut", "This link is damaged: its token is not whole"),
    ],
)
async def test_a_missing_or_malformed_token_is_explained_and_nothing_is_asked_of_the_server(
    start_server: ServerFactory,
    page: Page,
    db: asyncpg.Connection,
    token: str | None,
    says: str,
) -> None:
    server = await start_server()
    contact = await create_contact(server)
    if token == "cut":  # the real token, cut short by a mail app
        token = contact["token"][:-5]
    path = f"/?contact={contact['contact']}" + ("" if token is None else f"&token={token}")
    frames = record_frames(page)
    await page.goto(server.url + path)
    await expect(page.locator("#notice")).to_contain_text(says)
    await expect(page.locator("#notice")).to_contain_text(WHOLE_LINK)
    await expect(page.get_by_role("button", name="Call", exact=True)).to_be_hidden()
    await expect(page.get_by_role("button", name="Try a demo call")).to_be_hidden()
    assert frames.sockets == []
    await _assert_untouched(db, contact)


async def test_a_damaged_contact_id_is_explained(start_server: ServerFactory, page: Page) -> None:
    server = await start_server()
    contact = await create_contact(server)
    await page.goto(server.url + join_path("42", contact["token"]))
    await expect(page.locator("#notice")).to_contain_text(
        "This link is damaged: its contact part is not right."
    )
    await expect(page.get_by_role("button", name="Call", exact=True)).to_be_hidden()


async def test_an_expired_token_is_refused(
    start_server: ServerFactory, page: Page, db: asyncpg.Connection
) -> None:
    server = await start_server()
    contact = await create_contact(server)
    await db.execute(
        "UPDATE contact_token SET expires_at = now() - interval '1 second' WHERE contact_id = $1",
        contact["contact"],
    )
    frames = record_frames(page)
    await page.goto(server.url + join_path(contact["contact"], contact["token"]))
    await _call_and_expect_refusal(page, frames)
    await _assert_untouched(db, contact)


async def test_a_reused_token_is_refused_after_a_reload(
    start_server: ServerFactory, page: Page, db: asyncpg.Connection
) -> None:
    server = await start_server()
    contact = await create_contact(server)
    frames = record_frames(page)
    await page.goto(server.url + join_path(contact["contact"], contact["token"]))
    await page.get_by_role("button", name="Call", exact=True).click()
    await expect(page.locator("#in-call")).to_be_visible()
    first = await _token_row(db, contact)
    assert first["state"] == "joined" and first["used_at"] is not None

    await page.reload()  # the page hangs up as it goes; the link is spent
    frames.received.clear()
    await _call_and_expect_refusal(page, frames)
    after = await _token_row(db, contact)
    assert (after["state"], after["end_reason"]) == ("ended", "hangup")
    assert after["used_at"] == first["used_at"]  # spent once, by the first join
    assert len(frames.sockets) == 2


async def test_a_foreign_token_is_refused_and_joins_neither_contact(
    start_server: ServerFactory, page: Page, db: asyncpg.Connection
) -> None:
    server = await start_server()
    mine, theirs = await create_contact(server), await create_contact(server)
    frames = record_frames(page)
    await page.goto(server.url + join_path(mine["contact"], theirs["token"]))
    await _call_and_expect_refusal(page, frames)
    await _assert_untouched(db, mine)
    leaked = await _token_row(db, theirs)
    # The server spends a token shown for the wrong contact (it has leaked), joining nobody.
    assert leaked["state"] == "created" and leaked["used_at"] is not None


async def test_a_page_on_a_disallowed_origin_is_refused_and_the_token_kept(
    start_server: ServerFactory, page: Page, db: asyncpg.Connection
) -> None:
    server: Server = await start_server(allowed_origins=("http://127.0.0.1:{port}",))
    contact = await create_contact(server)
    link = join_path(contact["contact"], contact["token"])
    frames = record_frames(page)
    await page.goto(server.on("localhost") + link)
    await _call_and_expect_refusal(page, frames)
    assert frames.sockets[0].startswith(f"ws://localhost:{server.port}/ws?")
    await _assert_untouched(db, contact)

    # The same link on the allowed origin joins: the origin was the only fault.
    await page.goto(server.url + link)
    await page.get_by_role("button", name="Call", exact=True).click()
    await expect(page.locator("#in-call")).to_be_visible()
    row = await _token_row(db, contact)
    assert row["state"] == "joined"
    assert row["used_at"] > datetime.datetime(2000, 1, 1, tzinfo=datetime.UTC)
