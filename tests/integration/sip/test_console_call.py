"""A contact answered in the agent's browser console: voice, then video, then hang-up.

Real parts as in ``test_agent_console_call`` (one media worker, the control
process's app, PostgreSQL), but Ada takes calls in the console
(``works_in`` console): no phone rings. Two aiortc peers play the two
browsers: the customer's page (1 kHz) and Ada's console (1.5 kHz). The
console accepts the offer with its own WebRTC offer; the worker bridges the
two WebRTC legs; each hears the other's tone. The customer escalates to
video: the console is told, both add a camera and renegotiate, and each
decodes the other's colour. The console hangs up: the page is told
``agent_hangup``.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import aiohttp
import numpy as np
import pytest

from tests.integration.sip.test_agent_bridge import Server
from tests.integration.sip.test_agent_console_call import _console
from tests.integration.sip.test_contact_call import _join, _until, browser, server
from tests.integration.webrtc.peers import Browser, dominant_frequency, new_offer

pytestmark = pytest.mark.slow
__all__ = ["browser", "server"]  # fixtures used here

RED = (200, 30, 30)
BLUE = (30, 30, 200)


def _heard(page: Browser, seconds: float = 1.0) -> float:
    rate = page.recorder.frames[-1].sample_rate
    return dominant_frequency(page.recorder.mono()[-int(rate * seconds) :], rate)


def _level(page: Browser, first_frame: int) -> float:
    """RMS of the last half second heard, from ``first_frame`` on."""
    rate = page.recorder.frames[-1].sample_rate
    frames = page.recorder.frames[first_frame:]
    samples = np.concatenate([f.to_ndarray().reshape(-1) for f in frames])[-rate // 2 :]
    return float(np.sqrt(np.mean(samples.astype(np.float64) ** 2)))


def _near(colour: tuple[int, int, int] | None, expected: tuple[int, int, int]) -> bool:
    return colour is not None and all(
        abs(a - b) <= 25 for a, b in zip(colour, expected, strict=True)
    )


async def _set_console(socket: aiohttp.ClientWebSocketResponse) -> None:
    await socket.send_json({"type": "set_state", "state": "available", "works_in": "console"})
    assert await socket.receive_json(timeout=5) == {"type": "state", "state": "available"}


async def _renegotiate(
    socket: aiohttp.ClientWebSocketResponse, peer: Browser, frame: dict[str, Any]
) -> None:
    await socket.send_str(json.dumps(frame | {"sdp": await new_offer(peer)}))
    await peer.take_answer((await _until(socket, "answer"))["sdp"])


async def test_a_console_agent_takes_the_contact_in_the_browser_with_voice_then_video(
    server: Server, browser: Browser
) -> None:
    console, hello = await _console(server)
    assert hello["ice_servers"] == []
    await _set_console(console)
    agent_peer = Browser(1500.0)
    try:
        contact, page = await _join(server.client, media="video")
        await page.send_str(json.dumps({"type": "offer", "sdp": await new_offer(browser)}))
        await browser.take_answer((await _until(page, "answer"))["sdp"])
        assert (await _until(console, "offer"))["account"] == "AR-9"
        await _until(console, "call", contact=contact, state="ringing")
        await _until(page, "state", state="ringing", agent="Ada Agent")

        offer = {"type": "accept", "contact": contact, "sdp": await new_offer(agent_peer)}
        await console.send_str(json.dumps(offer))
        await agent_peer.take_answer((await _until(console, "answer", contact=contact))["sdp"])
        await _until(console, "call", contact=contact, state="connected")
        await _until(page, "state", state="connected", agent="Ada Agent")
        await asyncio.sleep(1.5)
        assert abs(_heard(browser) - 1500.0) <= 20.0
        assert abs(_heard(agent_peer) - 1000.0) <= 20.0
        # Hold: the customer hears the hold beep, the agent nothing of the customer.
        page_from = len(browser.recorder.frames)
        await console.send_json({"type": "hold", "contact": contact, "on": True})
        assert await _until(console, "hold") == {"type": "hold", "contact": contact, "on": True}
        await _until(page, "state", state="on_hold")
        heard_from = len(agent_peer.recorder.frames)
        await asyncio.sleep(1.0)
        assert _level(agent_peer, heard_from) < 100  # silence, not the customer's 1 kHz
        held = np.concatenate(
            [
                f.to_ndarray().reshape(-1, len(f.layout.channels))[:, 0]
                for f in browser.recorder.frames[page_from:]
            ]
        )
        rate = browser.recorder.frames[-1].sample_rate
        assert abs(dominant_frequency(held.astype(np.int16), rate) - 440.0) <= 20.0  # the beep
        await console.send_json({"type": "hold", "contact": contact, "on": False})
        await _until(page, "state", state="connected")
        await asyncio.sleep(1.0)
        assert abs(_heard(agent_peer) - 1000.0) <= 20.0
        # Keypad digits are for phones; a console agent's call refuses them by name.
        await page.send_str(json.dumps({"type": "digit", "digit": "5"}))
        assert (await _until(page, "error"))[
            "message"
        ] == "keypad digits reach agents on phones only"

        # The customer turns video on: the console is asked to add its camera.
        await page.send_str(json.dumps({"type": "escalate_video"}))
        await _until(console, "escalate_video", contact=contact)
        browser.add_video(RED)
        await _renegotiate(page, browser, {"type": "offer"})
        agent_peer.add_video(BLUE)
        await _renegotiate(console, agent_peer, {"type": "offer", "contact": contact})
        for peer in (browser, agent_peer):
            await asyncio.wait_for(peer.video.first.wait(), 15)
        await asyncio.sleep(0.5)
        assert _near(browser.video.colour, BLUE) and _near(agent_peer.video.colour, RED)

        await console.send_json({"type": "hangup", "contact": contact})
        await _until(page, "state", state="ended", reason="agent_hangup")
        await _until(console, "call", contact=contact, state="ended")
        await _until(console, "state", state="wrap_up")
        await page.close()
    finally:
        await agent_peer.close()
        await console.close()


async def test_a_console_that_declines_gives_the_contact_back_and_bad_frames_are_named(
    server: Server, browser: Browser
) -> None:
    console, _ = await _console(server)
    await _set_console(console)
    contact, page = await _join(server.client)
    # Nothing is offered yet: accepting is refused by name.
    await console.send_json({"type": "accept", "contact": contact, "sdp": "v=0"})
    refused = await _until(console, "error")
    assert refused["code"] in ("sdp_refused", "not_now")
    await page.send_str(json.dumps({"type": "offer", "sdp": await new_offer(browser)}))
    await browser.take_answer((await _until(page, "answer"))["sdp"])
    await _until(console, "offer")
    await console.send_json({"type": "accept", "contact": contact})
    assert await _until(console, "error") == {
        "type": "error",
        "code": "bad_message",
        "message": "accept lacks sdp",
    }
    plain = (await new_offer(browser)).replace("UDP/TLS/RTP/SAVPF", "RTP/AVP")
    await console.send_json({"type": "accept", "contact": contact, "sdp": plain})
    assert (await _until(console, "error"))["code"] == "sdp_refused"
    await console.send_json({"type": "decline", "contact": contact})
    await _until(console, "call", contact=contact, state="ended")
    # Ada is the only agent and is excluded from this contact for a while: it waits again.
    await _until(page, "state", state="queued")
    await page.send_str('{"type": "hangup"}')
    await page.close()
    await console.close()
