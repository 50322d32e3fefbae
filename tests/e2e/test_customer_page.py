"""The customer page in Chromium: fits a phone, accessible, and a demo call against the server.

These servers run without media workers (SIP off), so the server answers the
page's real DTLS-SRTP offer ``not_now``: the page must say so calmly and stay
usable — chat, keypad, mute and hang-up all still work.
"""

from __future__ import annotations

import asyncpg
import pytest
from playwright.async_api import BrowserContext, Page, expect

from tests.e2e.conftest import ICE_SERVERS, ServerFactory, record_frames
from tests.e2e.pages import (
    contrast,
    control_names,
    create_contact,
    focused,
    horizontal_overflow,
    join_path,
    low_contrast,
    small_targets,
    tab_order,
    unnamed_controls,
)

# Keeps every RTCPeerConnection the page makes, with the configuration it was given.
RECORD_PEERS = """
window.__peers = [];
const Original = window.RTCPeerConnection;
window.RTCPeerConnection = class extends Original {
  constructor(config) {
    super(config);
    window.__peers.push({ config: JSON.parse(JSON.stringify(config ?? null)), peer: this });
  }
};
"""
AUDIO_ENABLED = (
    "() => window.__peers[0].peer.getSenders().find((s) => s.track && s.track.kind === 'audio')"
    ".track.enabled"
)
KEYS = ["1", "2", "3", "4", "5", "6", "7", "8", "9", "*", "0", "#"]
pytestmark = pytest.mark.e2e

IN_CALL_ORDER = ["keypad-toggle", "hangup", *KEYS, "chat-input", "chat-send"]


@pytest.mark.parametrize(
    ("foreground", "background", "ratio"),
    [
        ("rgb(0, 0, 0)", "rgb(255, 255, 255)", 21.0),
        ("rgb(255, 255, 255)", "rgb(255, 255, 255)", 1.0),
        ("rgb(119, 119, 119)", "rgb(255, 255, 255)", 4.48),  # #777: just under AA
        ("rgba(0, 0, 0, 0.5)", "rgb(255, 255, 255)", 3.98),  # blended to grey 127.5
    ],
)
def test_contrast_is_the_wcag_ratio(foreground: str, background: str, ratio: float) -> None:
    assert contrast(foreground, background) == pytest.approx(ratio, abs=0.01)


async def _check_phone_layout(page: Page) -> None:
    assert await horizontal_overflow(page) <= 0
    assert await unnamed_controls(page) == []
    assert await small_targets(page) == []
    for scheme in ("light", "dark"):
        await page.emulate_media(color_scheme=scheme)
        assert await low_contrast(page) == [], scheme
    await page.emulate_media(color_scheme="light")


async def test_the_page_fits_a_phone_names_its_controls_and_moves_focus_as_designed(
    start_server: ServerFactory, page: Page, db: asyncpg.Connection
) -> None:
    server = await start_server()
    contact = await create_contact(server)
    await page.goto(server.url + join_path(contact["contact"], contact["token"]))
    await expect(page.get_by_role("button", name="Call", exact=True)).to_be_visible()
    assert await control_names(page) == ['button "Call"', 'button "Video"']
    await _check_phone_layout(page)
    assert await tab_order(page, 2) == ["call", "video"]

    await page.get_by_role("button", name="Call", exact=True).click()
    in_call = page.locator("#in-call")
    await expect(in_call).to_be_visible()
    assert await focused(page) == "mute"  # focus moves to the call's controls
    await page.get_by_role("button", name="Keypad").click()
    await expect(page.locator("#keypad")).to_be_visible()
    await expect(page.locator("#notice")).to_contain_text("Not available yet: ")
    await page.locator("#mute").focus()
    assert await tab_order(page, len(IN_CALL_ORDER)) == IN_CALL_ORDER
    await _check_phone_layout(page)
    names = await control_names(page)
    assert names[:3] == ['button "Mute"', 'button "Keypad"', 'button "Hang up"']
    assert 'button "Star"' in names and 'button "Hash"' in names
    assert names[-2:] == ['textbox "Message"', 'button "Send"']

    await page.get_by_role("button", name="Hang up").click()
    await expect(in_call).to_be_hidden()
    assert await focused(page) == "call"  # and back to Call when the call ends
    await expect(page.locator("#notice")).to_contain_text("The call has ended: you hung up.")
    row = await db.fetchrow(
        "SELECT state, end_reason FROM contact WHERE id = $1", contact["contact"]
    )
    assert row is not None and (row["state"], row["end_reason"]) == ("ended", "hangup")


async def test_a_demo_call_offers_real_media_and_stays_usable_when_the_server_says_not_now(
    start_server: ServerFactory, browser: BrowserContext, page: Page, db: asyncpg.Connection
) -> None:
    server = await start_server(demo=True)
    await browser.add_init_script(RECORD_PEERS)
    frames = record_frames(page)
    await page.goto(server.url + "/")
    call = page.get_by_role("button", name="Call", exact=True)
    await expect(call).to_be_hidden()
    await page.get_by_role("button", name="Try a demo call").click()
    await expect(call).to_be_focused()
    assert frames.sockets == []  # the socket waits for Call: the token is not spent yet

    await call.click()
    await expect(page.locator("#call-state")).to_have_text("Waiting for an agent.")
    await expect(page.locator("#connection")).to_contain_text("Connected to the service.")
    notice = page.locator("#notice")
    await expect(notice).to_contain_text("Not available yet: ")
    # No media worker in this server (SIP is off): the offer is answered not_now, calmly.
    (not_now,) = frames.of("error")
    assert not_now["code"] == "not_now"
    await expect(notice).to_have_text(
        f"Not available yet: {not_now['message']}. "
        "Your call stays open; you can hang up at any time."
    )
    (socket_url,) = frames.sockets
    assert socket_url.startswith(f"ws://127.0.0.1:{server.port}/ws?contact=")
    (hello,) = frames.of("hello")
    assert hello["ice_servers"] == [{"urls": list(ICE_SERVERS)}]
    # Exactly the server's ICE servers reach the RTCPeerConnection, nothing added.
    peers = await page.evaluate("() => window.__peers.map((p) => p.config)")
    assert peers == [{"iceServers": hello["ice_servers"]}]
    (offer,) = frames.of("offer", "sent")
    sdp = offer["sdp"]
    assert "m=audio 9 UDP/TLS/RTP/SAVPF" in sdp and "a=fingerprint:sha-256" in sdp
    assert "m=video" not in sdp
    row = await db.fetchrow(
        "SELECT c.state, t.used_at FROM contact c JOIN contact_token t ON t.contact_id = c.id"
        " WHERE c.id = $1",
        hello["contact"],
    )
    assert row is not None and row["state"] == "joined" and row["used_at"] is not None

    # Mute is the audio track's enabled flag.
    mute = page.get_by_role("button", name="Mute")
    await mute.click()
    await expect(mute).to_have_attribute("aria-pressed", "true")
    assert await page.evaluate(AUDIO_ENABLED) is False
    await mute.click()
    assert await page.evaluate(AUDIO_ENABLED) is True

    # Chat still works: the server refuses the line (no agent yet); the text stays typed.
    box = page.get_by_role("textbox", name="Message")
    await box.fill("<b>where</b> is my <img src=x onerror=alert(1)> receipt?")
    await page.get_by_role("button", name="Send").click()
    await expect(notice).to_contain_text(
        "Not available yet: chat opens when an agent is connected."
    )
    assert frames.of("chat", "sent") == [
        {"type": "chat", "text": "<b>where</b> is my <img src=x onerror=alert(1)> receipt?"}
    ]
    await expect(box).to_have_value("<b>where</b> is my <img src=x onerror=alert(1)> receipt?")

    # The keypad sends digits.
    await page.get_by_role("button", name="Keypad").click()
    await page.get_by_role("button", name="Hash").click()
    await page.get_by_role("button", name="7", exact=True).click()
    await expect(notice).to_contain_text("Digit needs a connected call")
    assert frames.of("digit", "sent") == [
        {"type": "digit", "digit": "#"},
        {"type": "digit", "digit": "7"},
    ]
    assert await page.locator("#in-call").is_visible()

    await page.get_by_role("button", name="Hang up").click()
    await expect(call).to_be_focused()
    assert frames.of("hangup", "sent") == [{"type": "hangup"}]
    await expect(notice).to_contain_text("Choose Call or Video for another demo call.")
    assert await db.fetchval("SELECT end_reason FROM contact WHERE id = $1", hello["contact"]) == (
        "hangup"
    )


async def test_a_video_call_offers_the_camera_too(start_server: ServerFactory, page: Page) -> None:
    server = await start_server()
    contact = await create_contact(server, media="video")
    frames = record_frames(page)
    await page.goto(server.url + join_path(contact["contact"], contact["token"]))
    await page.get_by_role("button", name="Video").click()
    await expect(page.locator("#self-view")).to_be_visible()
    await expect(page.locator("#notice")).to_contain_text("Not available yet: ")
    (offer,) = frames.of("offer", "sent")
    assert "m=audio" in offer["sdp"] and "m=video 9 UDP/TLS/RTP/SAVPF" in offer["sdp"]
    await page.get_by_role("button", name="Hang up").click()
    await expect(page.locator("#self-view")).to_be_hidden()


async def test_without_a_link_and_without_demo_the_page_asks_for_a_join_link(
    start_server: ServerFactory, page: Page, db: asyncpg.Connection
) -> None:
    server = await start_server(demo=False)
    await page.goto(server.url + "/")
    await _check_phone_layout(page)
    await page.get_by_role("button", name="Try a demo call").click()
    notice = page.locator("#notice")
    await expect(notice).to_contain_text("This page needs a join link")
    await expect(notice).to_be_focused()
    await expect(page.get_by_role("button", name="Try a demo call")).to_be_hidden()
    await expect(page.get_by_role("button", name="Call", exact=True)).to_be_hidden()
    assert await db.fetchval("SELECT count(*) FROM contact") == 0
