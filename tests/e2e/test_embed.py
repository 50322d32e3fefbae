"""The embeddable snippet: a host app on another origin opens the customer page over itself.

The host page (a tiny aiohttp app on a second loopback port) includes
``/web/assistline.js`` from the server with one script tag and calls
``Assistline.open(...)``; the customer page loads in an iframe that may use
the microphone, joins its contact and ends it when the overlay is closed.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import asyncpg
import pytest
from aiohttp import web
from playwright.async_api import Page, expect

from tests.e2e.conftest import PHONE, Server, ServerFactory, bound_socket, serve
from tests.e2e.pages import create_contact, join_path

pytestmark = pytest.mark.e2e

HOST_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Example bank</title></head>
<body>
  <h1>Your account</h1>
  <button id="help" type="button">Get help</button>
  <script src="{server}/web/assistline.js"></script>
  <script>
    document.getElementById("help").addEventListener("click", () => Assistline.open({options}));
  </script>
</body></html>
"""


async def _host(server: Server, options: dict[str, Any], runners: list[web.AppRunner]) -> str:
    """Serve the host page on a second origin; its URL."""
    html = HOST_PAGE.format(server=server.url, options=json.dumps(options))

    async def page(request: web.Request) -> web.Response:
        return web.Response(text=html, content_type="text/html")

    app = web.Application()
    app.router.add_get("/", page)
    sock = bound_socket()
    port = sock.getsockname()[1]
    await serve(app, sock, runners)
    return f"http://127.0.0.1:{port}/"


async def _contact_state(db: asyncpg.Connection, contact: dict[str, Any]) -> str:
    state: str = await db.fetchval("SELECT state FROM contact WHERE id = $1", contact["contact"])
    return state


@pytest.mark.parametrize("form", ["contact and token", "join URL"])
async def test_a_host_page_opens_the_customer_page_in_an_overlay_that_can_call(
    start_server: ServerFactory,
    runners: list[web.AppRunner],
    page: Page,
    db: asyncpg.Connection,
    form: str,
) -> None:
    server = await start_server()
    contact = await create_contact(server)
    options: dict[str, Any] = (
        {"contact": contact["contact"], "token": contact["token"]}
        if form == "contact and token"
        else {"joinUrl": contact["join_url"]}
    )
    host = await _host(server, options, runners)
    assert host != server.url + "/"
    await page.goto(host)
    await page.get_by_role("button", name="Get help").click()

    dialog = page.get_by_role("dialog", name="Call us")
    await expect(dialog).to_be_visible()
    iframe = dialog.locator("iframe")
    await expect(iframe).to_have_attribute("allow", "microphone; camera; autoplay")
    await expect(iframe).to_have_attribute(
        "src", server.url + join_path(contact["contact"], contact["token"])
    )
    box = await iframe.bounding_box()
    assert box is not None and box["width"] == PHONE["width"]  # a phone: the whole screen
    close = dialog.get_by_role("button", name="Close call us")
    close_box = await close.bounding_box()
    assert close_box is not None and min(close_box["width"], close_box["height"]) >= 44

    customer = page.frame_locator("iframe[title='Call us']")
    await expect(customer.get_by_role("heading", level=1)).to_have_text(
        "Get help with your account"
    )
    # The iframe may use the microphone: the call starts and reaches the server.
    await customer.get_by_role("button", name="Call", exact=True).click()
    await expect(customer.locator("#in-call")).to_be_visible()
    await expect(customer.locator("#notice")).to_contain_text("Not available yet: ")
    assert await _contact_state(db, contact) == "joined"

    await close.click()
    await expect(dialog).to_have_count(0)
    await expect(page.get_by_role("button", name="Get help")).to_be_focused()
    # The page went with the overlay, so its contact ends.
    for _ in range(200):
        if await _contact_state(db, contact) == "ended":
            break
        await asyncio.sleep(0.05)
    assert await _contact_state(db, contact) == "ended"


async def test_open_without_a_link_says_what_it_needs(
    start_server: ServerFactory, runners: list[web.AppRunner], page: Page, page_errors: list[str]
) -> None:
    server = await start_server()
    host = await _host(server, {"contact": "only"}, runners)
    await page.goto(host)
    async with page.expect_event("pageerror") as raised:
        await page.get_by_role("button", name="Get help").click()
    error = await raised.value
    assert error.message == "Assistline.open needs {contact, token} or {joinUrl}"
    assert page_errors == [error.message]
    page_errors.clear()  # the one error expected
    await expect(page.get_by_role("dialog")).to_have_count(0)
