"""A customer and an agent who takes calls in the browser: voice, then video, seen on both pages.

The real parts of ``test_call_to_agent`` (the app with Kamailio and one media
worker, PostgreSQL), but Ada takes the contact in her console, not on a
phone: two Chromiums, each with fake media (the customer's microphone plays
1 kHz, Ada's 1.5 kHz; both cameras are Chromium's fake one). The customer
clicks *Call*; Ada chooses "Take calls in this browser" and accepts; each
page hears the other's tone (WebAudio). Then video is added mid-call by
renegotiation, once from each side: the customer turns video on (Ada's
console is asked and adds its camera), or Ada does (the customer's page is
asked and adds its camera). Both pages then decode the other's video:
frames painted in the remote ``<video>`` and decoded in the peer's stats,
while audio packets keep coming. Ada hangs up from the console.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from playwright.async_api import BrowserContext, Page, Playwright, expect

from assistline.signalling.agent_auth import set_console_password
from tests.e2e.conftest import API_KEY, CHROMIUM_ARGS, chromium, record_frames
from tests.e2e.pages import (
    CONTACT,
    horizontal_overflow,
    join_path,
    low_contrast,
    tab_order,
    unnamed_controls,
)
from tests.e2e.test_agent_console import CONSOLE_PASSWORD, POP, _sign_in
from tests.e2e.test_call_to_agent import (
    CUSTOMER_HZ,
    FAKE_MIC_RATE,
    FAKE_MIC_SECONDS,
    MEASURE_REMOTE,
    chromium_args,
    sip_server,
    write_sine,
)
from tests.integration.sip.app_server import Server, ended_contact

pytestmark = [pytest.mark.e2e, pytest.mark.slow]
__all__ = ["chromium_args", "sip_server"]  # fixtures used here

AGENT_HZ = 1500
CONSOLE_RINGING = "A customer is calling: accept to talk in this browser, or decline."

# Keeps every RTCPeerConnection a page makes, with the configuration it was given.
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

# What the remote <video> shows over one second: its size, the frames the
# element decoded (getVideoPlaybackQuality) and painted (requestVideoFrameCallback),
# and the brightest channel of one frame drawn to a canvas (0: black).
VIDEO_SHOWN = """async () => {
  const video = document.getElementById("remote-video");
  let painted = 0;
  const paint = () => {
    painted += 1;
    video.requestVideoFrameCallback(paint);
  };
  video.requestVideoFrameCallback(paint);
  const decoded = () => video.getVideoPlaybackQuality().totalVideoFrames;
  const before = decoded();
  await new Promise((resolve) => setTimeout(resolve, 1000));
  const canvas = document.createElement("canvas");
  canvas.width = 64;
  canvas.height = 48;
  const drawing = canvas.getContext("2d");
  drawing.drawImage(video, 0, 0, canvas.width, canvas.height);
  const pixels = drawing.getImageData(0, 0, canvas.width, canvas.height).data;
  let brightest = 0;
  for (let i = 0; i < pixels.length; i += 4) {
    brightest = Math.max(brightest, pixels[i], pixels[i + 1], pixels[i + 2]);
  }
  return {
    width: video.videoWidth,
    height: video.videoHeight,
    decoded: decoded() - before,
    painted: painted,
    paused: video.paused,
    brightest: brightest,
  };
}"""

# The page's (last) peer's inbound RTP, by kind: packets received and frames decoded.
INBOUND = """async () => {
  const stats = await window.__peers.at(-1).peer.getStats();
  const inbound = {};
  stats.forEach((report) => {
    if (report.type !== "inbound-rtp") return;
    const seen = inbound[report.kind] || { packets: 0, frames: 0 };
    seen.packets += report.packetsReceived || 0;
    seen.frames += report.framesDecoded || 0;
    inbound[report.kind] = seen;
  });
  return inbound;
}"""


@pytest.fixture
async def console_browser(
    playwright_driver: Playwright, tmp_path: Path
) -> AsyncIterator[BrowserContext]:
    """Ada's own Chromium: its fake microphone plays 1.5 kHz."""
    mic = tmp_path / "agent-1500hz.wav"
    write_sine(mic, AGENT_HZ, FAKE_MIC_RATE, FAKE_MIC_SECONDS)
    args = [*CHROMIUM_ARGS, f"--use-file-for-fake-audio-capture={mic}"]
    async with chromium(playwright_driver, tmp_path / "console-profile", args) as context:
        yield context


async def _console(context: BrowserContext, page_errors: list[str]) -> Page:
    tab = context.pages[0] if context.pages else await context.new_page()
    tab.on("pageerror", lambda error: page_errors.append(f"console: {error.message}"))
    return tab


async def _hears(tab: Page, hz: int, who: str) -> None:
    heard = await tab.evaluate(MEASURE_REMOTE)
    print(f"{who} heard {heard}")
    assert "error" not in heard, heard
    assert abs(heard["hz"] - hz) <= 0.02 * hz, (who, heard)
    assert heard["peakDb"] > -50, (who, heard)


async def _sees(tab: Page, who: str) -> None:
    """The remote video of ``tab`` is shown, decoded and painted, and not black."""
    video = tab.locator("#remote-video")
    await expect(video).to_be_visible(timeout=15_000)
    await tab.wait_for_function(
        "() => document.getElementById('remote-video').videoWidth > 0", timeout=15_000
    )
    # Right after a renegotiation the server's encoder is still starting up:
    # the first one-second window may hold fewer frames (4 seen on a loaded
    # CI machine), so up to three windows are measured.
    for _ in range(3):
        shown: dict[str, Any] = await tab.evaluate(VIDEO_SHOWN)
        print(f"{who} sees {shown}")
        if shown["decoded"] >= 5 and shown["painted"] >= 5:
            break
    assert shown["width"] > 0 and shown["height"] > 0, (who, shown)
    assert not shown["paused"], (who, shown)
    assert shown["decoded"] >= 5 and shown["painted"] >= 5, (who, shown)
    assert shown["brightest"] > 40, (who, shown)


async def _media_flows(tab: Page, who: str) -> None:
    """Over one second, the page's peer receives audio packets and decodes video frames."""
    before: dict[str, dict[str, int]] = await tab.evaluate(INBOUND)
    await asyncio.sleep(1.0)
    after: dict[str, dict[str, int]] = await tab.evaluate(INBOUND)
    print(f"{who} received {before} then {after}")
    assert after["audio"]["packets"] - before["audio"]["packets"] >= 25, (who, before, after)
    assert after["video"]["frames"] - before["video"]["frames"] >= 5, (who, before, after)


async def _connect(
    sip_server: Server, customer: Page, console: Page, media: str = "voice"
) -> tuple[dict[str, Any], float]:
    """Ada takes calls in the console; the customer calls (*Call* for voice, else *Video*);
    Ada accepts. The contact, and when Ada accepted."""
    await set_console_password(sip_server.db, "agent-ada", CONSOLE_PASSWORD)
    await _sign_in(console, sip_server.url)
    await expect(console.locator("#agent-state")).to_have_text("Available")
    await console.get_by_role("switch", name="Take calls in this browser").check()
    await expect(console.locator("#notice")).to_have_text("Calls come to this browser.")
    assert await sip_server.db.fetchval("SELECT works_in FROM agent WHERE id = 'agent-ada'") == (
        "console"
    )

    response = await sip_server.client.post(
        "/api/v1/contacts",
        json=CONTACT | POP | {"media": media},
        headers={"Authorization": f"Bearer {API_KEY}"},
    )
    assert response.status == 201, await response.text()
    contact: dict[str, Any] = await response.json()
    await customer.goto(sip_server.url + join_path(contact["contact"], contact["token"]))
    button = "Call" if media == "voice" else "Video"
    await customer.get_by_role("button", name=button, exact=True).click()
    await expect(console.locator("#call-state")).to_have_text(CONSOLE_RINGING, timeout=20_000)
    await expect(console.locator("#offer-pop dd").first).to_have_text("cust-e2e")
    await expect(console.locator("#phone-hint")).to_be_hidden()
    accept = console.get_by_role("button", name="Accept")
    assert await unnamed_controls(console) == []
    assert await horizontal_overflow(console) == 0
    await accept.click()
    clicked = time.monotonic()
    await expect(console.locator("#call-state")).to_have_text("Connected.", timeout=20_000)
    await expect(customer.locator("#call-state")).to_have_text("You are talking with Ada Agent.")
    await expect(console.get_by_role("button", name="Mute")).to_be_focused()
    return contact, clicked


async def _hang_up(console: Page, customer: Page) -> None:
    await console.get_by_role("button", name="Hang up").click()
    await expect(customer.locator("#notice")).to_contain_text(
        "The call has ended: the agent hung up."
    )
    await expect(console.locator("#call-state")).to_have_text("The call has ended.")
    await expect(console.locator("#call-controls")).to_be_hidden()
    await expect(console.locator("#remote-video")).to_be_hidden()
    closed = await console.evaluate(
        "() => window.__peers.map((p) => p.peer.connectionState === 'closed')"
    )
    assert closed == [True], closed


async def test_the_customer_turns_video_on_mid_call_and_both_pages_decode_the_other(
    sip_server: Server,
    browser: BrowserContext,
    console_browser: BrowserContext,
    page: Page,
    page_errors: list[str],
    db: asyncpg.Connection,
) -> None:
    customer = page
    console = await _console(console_browser, page_errors)
    for context in (browser, console_browser):
        await context.add_init_script(RECORD_PEERS)
    frames = record_frames(console)
    contact, accepted = await _connect(sip_server, customer, console)
    print(f"accept to connected: {time.monotonic() - accepted:.2f} s")

    # The console's peer has hello's ICE servers, nothing added; it trickled its candidates.
    (hello,) = frames.of("hello")
    peers = await console.evaluate("() => window.__peers.map((p) => p.config)")
    assert peers == [{"iceServers": hello["ice_servers"]}]
    (accept,) = frames.of("accept", "sent")
    assert accept["contact"] == contact["contact"] and "m=video" in accept["sdp"]
    assert "a=recvonly" in accept["sdp"]  # the customer's video may be seen, no camera yet
    assert frames.of("candidate", "sent"), "the console trickled no candidate"

    # Voice: each page hears the other's tone.
    await asyncio.sleep(1.0)
    await _hears(customer, AGENT_HZ, "the customer")
    await _hears(console, CUSTOMER_HZ, "the agent")
    await expect(customer.locator("#remote-video")).to_be_hidden()
    await expect(console.locator("#remote-video")).to_be_hidden()

    # The customer turns video on: the console is asked, adds its camera, renegotiates.
    await customer.get_by_role("button", name="Turn on video").click()
    await expect(console.get_by_role("button", name="Video", exact=True)).to_have_attribute(
        "aria-pressed", "true", timeout=15_000
    )
    await expect(customer.get_by_role("button", name="Turn off video")).to_be_visible()
    await expect(customer.locator("#self-view")).to_be_visible()
    await expect(console.locator("#self-view")).to_be_visible()
    assert frames.of("escalate_video") == [
        {"type": "escalate_video", "contact": contact["contact"]}
    ]
    (offer,) = frames.of("offer", "sent")
    assert "m=video" in offer["sdp"] and "a=sendrecv" in offer["sdp"]

    await _sees(customer, "the customer")
    await _sees(console, "the agent")
    assert len(frames.of("answer")) == 2  # to accept, then to the new offer
    for tab, who in ((customer, "the customer"), (console, "the agent")):
        await _media_flows(tab, who)
    # Both pages in a video call at a phone's width: named controls, no sideways scroll,
    # readable in both colour schemes; the console's call controls come first in focus order.
    for tab in (customer, console):
        assert await unnamed_controls(tab) == []
        assert await horizontal_overflow(tab) == 0
        for scheme in ("dark", "light"):
            await tab.emulate_media(color_scheme=scheme)
            assert await low_contrast(tab) == [], scheme
    await console.get_by_role("button", name="Mute").focus()
    assert await tab_order(console, 4) == ["hold", "video-button", "hangup", "chat-input"]

    await _hang_up(console, customer)
    assert await ended_contact(db, contact["contact"]) == "agent_hangup"


async def test_the_agent_turns_video_on_mid_call_and_the_customer_is_asked_to_add_theirs(
    sip_server: Server,
    browser: BrowserContext,
    console_browser: BrowserContext,
    page: Page,
    page_errors: list[str],
    db: asyncpg.Connection,
) -> None:
    customer = page
    console = await _console(console_browser, page_errors)
    for context in (browser, console_browser):
        await context.add_init_script(RECORD_PEERS)
    customer_frames = record_frames(customer)
    contact, _ = await _connect(sip_server, customer, console)

    await console.get_by_role("button", name="Video", exact=True).click()
    await expect(console.get_by_role("button", name="Video", exact=True)).to_have_attribute(
        "aria-pressed", "true"
    )
    # The page is asked, adds its camera and sends a new offer on the same connection.
    await expect(customer.get_by_role("button", name="Turn off video")).to_be_visible(
        timeout=15_000
    )
    assert customer_frames.of("escalate_video") == [{"type": "escalate_video"}]
    assert len(customer_frames.of("offer", "sent")) == 2
    assert await customer.evaluate("() => window.__peers.length") == 1

    await _sees(console, "the agent")
    await _sees(customer, "the customer")
    await _media_flows(customer, "the customer")

    # The customer turns the camera off: its track ends; the call goes on.
    await customer.get_by_role("button", name="Turn off video").click()
    await expect(customer.get_by_role("button", name="Turn on video")).to_be_visible()
    await expect(customer.locator("#self-view")).to_be_hidden()
    live = await customer.evaluate(
        "() => window.__peers[0].peer.getSenders().filter((s) => s.track && s.track.kind"
        " === 'video').length"
    )
    assert live == 0

    await _hang_up(console, customer)
    assert await ended_contact(db, contact["contact"]) == "agent_hangup"


async def test_a_video_call_shows_the_customer_at_once_and_the_agent_when_they_choose_video(
    sip_server: Server,
    browser: BrowserContext,
    console_browser: BrowserContext,
    page: Page,
    page_errors: list[str],
    db: asyncpg.Connection,
) -> None:
    customer = page
    console = await _console(console_browser, page_errors)
    for context in (browser, console_browser):
        await context.add_init_script(RECORD_PEERS)
    customer_frames = record_frames(customer)
    contact, _ = await _connect(sip_server, customer, console, media="video")

    # The console accepted without its camera, receiving only: the customer is seen at once.
    await _sees(console, "the agent")
    await expect(console.locator("#notice")).to_have_text(
        "The customer is on video. Choose Video to show your camera."
    )
    await expect(console.locator("#self-view")).to_be_hidden()
    await expect(customer.locator("#remote-video")).to_be_hidden()
    await expect(customer.get_by_role("button", name="Turn off video")).to_be_visible()

    # Ada chooses Video: the customer, already on video, only starts to see her.
    await console.get_by_role("button", name="Video", exact=True).click()
    await _sees(customer, "the customer")
    await _media_flows(console, "the agent")
    async with asyncio.timeout(5):  # the page is asked too, and has its camera on already
        while True:
            if customer_frames.of("escalate_video"):
                break
            await asyncio.sleep(0.05)
    assert customer_frames.of("escalate_video") == [{"type": "escalate_video"}]
    assert len(customer_frames.of("offer", "sent")) == 1  # its camera was on: no new offer

    await _hang_up(console, customer)
    assert await ended_contact(db, contact["contact"]) == "agent_hangup"
