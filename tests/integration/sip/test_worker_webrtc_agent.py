"""A customer's WebRTC leg bridged to an agent's browser console (a second WebRTC leg).

The test plays the control process and both browsers (aiortc peers on
loopback): the customer sends 1 kHz, the agent 1.5 kHz; once bridged each
hears the other's tone. Then both pages add video mid-call (a renegotiation
each, as after "escalate to video"): each page decodes frames of the
colour the other page sends.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Literal

import pytest

from assistline.sip import protocol
from tests.integration.sip.worker_peers import Control, worker_process
from tests.integration.webrtc.peers import Browser, dominant_frequency, new_offer

LOOPBACK_ONLY = ("--ice-host-addresses", "127.0.0.1")
RED = (200, 30, 30)
BLUE = (30, 30, 200)


@pytest.fixture
async def pages() -> AsyncIterator[tuple[Browser, Browser]]:
    customer, agent = Browser(1000.0), Browser(1500.0)
    try:
        yield customer, agent
    finally:
        await customer.close()
        await agent.close()


async def _connect(
    control: Control, page: Browser, request: int, role: Literal["customer", "agent"]
) -> str:
    offer = protocol.WebRtcOffer(request, "contact-1", await new_offer(page), role=role)
    await control.send(offer)
    result = await control.expect(protocol.Result, lambda r: r.id == request)
    await page.take_answer(result.sdp)
    await control.expect(protocol.Answered, lambda m: m.leg == result.leg)
    return result.leg


async def _add_video(
    control: Control, page: Browser, leg: str, request: int, colour: tuple[int, int, int]
) -> None:
    page.add_video(colour)
    await control.send(protocol.WebRtcRenegotiate(request, leg, await new_offer(page)))
    result = await control.expect(protocol.Result, lambda r: r.id == request)
    assert result.leg == leg and "m=video" in result.sdp
    assert "a=sendrecv" in result.sdp.split("m=video")[1]
    await page.take_answer(result.sdp)


def _heard(page: Browser, seconds: float) -> float:
    rate = page.recorder.frames[-1].sample_rate
    return dominant_frequency(page.recorder.mono()[-int(rate * seconds) :], rate)


async def test_a_customer_and_a_browser_agent_hear_then_see_each_other(
    control: Control, pages: tuple[Browser, Browser]
) -> None:
    customer_page, agent_page = pages
    async with worker_process(control, extra=LOOPBACK_ONLY):
        await control.expect(protocol.Hello)
        customer = await _connect(control, customer_page, 1, "customer")
        agent = await _connect(control, agent_page, 2, "agent")
        await control.send(protocol.Bridge(3, customer, agent))
        assert await control.expect(protocol.Result, lambda r: r.id == 3) == protocol.Result(3)
        await asyncio.sleep(1.5)
        assert abs(_heard(customer_page, 1.0) - 1500.0) <= 20.0
        assert abs(_heard(agent_page, 1.0) - 1000.0) <= 20.0

        await _add_video(control, customer_page, customer, 5, RED)
        await _add_video(control, agent_page, agent, 6, BLUE)
        for page in pages:
            await asyncio.wait_for(page.video.first.wait(), 15)
        seen = {page: page.video.frames for page in pages}
        await asyncio.sleep(1.0)
        for page in pages:
            assert page.video.frames - seen[page] >= 5  # still flowing, not one stray frame
        assert _near(customer_page.video.colour, BLUE)
        assert _near(agent_page.video.colour, RED)
        # Audio went on across the renegotiations.
        assert abs(_heard(customer_page, 1.0) - 1500.0) <= 20.0

        await control.send(protocol.Hangup(7, customer, 0))
        await control.expect(protocol.CallEnded, lambda m: m.leg == customer)
        await control.send(protocol.Hangup(8, agent, 0))
        await control.expect(protocol.CallEnded, lambda m: m.leg == agent)


def _near(colour: tuple[int, int, int] | None, expected: tuple[int, int, int]) -> bool:
    # VP8 and the YUV round trip move each channel a little.
    return colour is not None and all(
        abs(a - b) <= 25 for a, b in zip(colour, expected, strict=True)
    )


async def test_a_renegotiation_for_an_unknown_leg_or_a_plain_rtp_offer_is_refused(
    control: Control, pages: tuple[Browser, Browser]
) -> None:
    customer_page, _ = pages
    async with worker_process(control, extra=LOOPBACK_ONLY):
        await control.expect(protocol.Hello)
        await control.send(protocol.WebRtcRenegotiate(1, "t1-99", "v=0"))
        assert (await control.expect(protocol.Error, lambda e: e.id == 1)).code == 404
        customer = await _connect(control, customer_page, 2, "customer")
        customer_page.add_video(RED)
        plain = (await new_offer(customer_page)).replace("UDP/TLS/RTP/SAVPF", "RTP/AVP")
        await control.send(protocol.WebRtcRenegotiate(3, customer, plain))
        refused = await control.expect(protocol.Error, lambda e: e.id == 3)
        assert refused.code == 400 and refused.message.startswith("offer refused:")
        await control.send(protocol.Hangup(4, customer, 0))
        await control.expect(protocol.CallEnded, lambda m: m.leg == customer)
