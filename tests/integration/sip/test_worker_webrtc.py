"""A media worker carrying a WebRTC leg bridged to a SIP leg, with real peers on loopback.

The test plays the control process and the customer's browser (an aiortc
peer sending a 1 kHz tone); sipp places the SIP call, whose RTP the test
replaces with a 600 Hz tone and listens to.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import numpy as np
import pytest

from assistline.media.g711 import decode_alaw
from assistline.sip import protocol
from tests.integration.sip.test_worker import _dominant_hz, _tone_payloads
from tests.integration.sip.worker_peers import (
    Control,
    RtpSink,
    free_udp_port,
    rtp_packet,
    run_sipp,
    worker_process,
)
from tests.integration.webrtc.peers import Browser, dominant_frequency, new_offer

LOOPBACK_ONLY = ("--ice-host-addresses", "127.0.0.1")


@pytest.fixture
async def browser() -> AsyncIterator[Browser]:
    peer = Browser(1000.0)
    try:
        yield peer
    finally:
        await peer.close()


async def test_a_webrtc_leg_bridged_to_a_sip_leg_hears_and_is_heard(
    control: Control, browser: Browser
) -> None:
    loop = asyncio.get_running_loop()
    transport, sink = await loop.create_datagram_endpoint(
        RtpSink, local_addr=("127.0.0.1", free_udp_port())
    )
    try:
        async with worker_process(control, extra=LOOPBACK_ONLY) as worker:
            await control.expect(protocol.Hello)
            await control.send(protocol.WebRtcOffer(1, "contact-1", await new_offer(browser)))
            result = await control.expect(protocol.Result, lambda r: r.id == 1)
            customer = result.leg
            assert result.sdp.startswith("v=0") and "UDP/TLS/RTP/SAVPF" in result.sdp
            await browser.take_answer(result.sdp)
            await control.expect(protocol.Answered, lambda m: m.leg == customer)
            await asyncio.wait_for(browser.connected.wait(), 10)

            port = str(transport.get_extra_info("sockname")[1])
            call = asyncio.create_task(
                run_sipp("echo_call.xml", worker.port, pause_ms=5000, keys=[("rtp_sink", port)])
            )
            agent = (await control.expect(protocol.Answered, lambda m: m.leg != customer)).leg
            await control.send(protocol.Bridge(2, customer, agent))
            assert await control.expect(protocol.Result, lambda r: r.id == 2) == protocol.Result(2)
            await asyncio.wait_for(sink.first.wait(), 5)
            start, heard_from = len(sink.packets), len(browser.recorder.frames)
            tone = _tone_payloads(75, 600.0)
            for seq in range(75):  # 1.5 s of 600 Hz from the agent's phone
                transport.sendto(rtp_packet(8, seq, seq * 160, 4321, tone[seq]), sink.packets[0][1])
                await asyncio.sleep(0.02)
            await asyncio.sleep(0.3)

            # The agent's phone hears the customer's 1 kHz.
            frames = [decode_alaw(data[12:]) for data, _ in sink.packets[start:]]
            loud = [f for f in frames if np.sqrt(np.mean(f.astype(np.float64) ** 2)) > 1000]
            assert len(loud) >= 25
            assert round(_dominant_hz(np.concatenate(loud)) / 50) * 50 == 1000
            # The customer hears the agent's 600 Hz (the recorder keeps 48 kHz frames).
            rate = browser.recorder.frames[-1].sample_rate
            heard = browser.recorder.mono()[-int(rate * 1.0) :]
            assert browser.recorder.frames[heard_from:]
            assert abs(dominant_frequency(heard, rate) - 600.0) <= 20.0

            await control.send(protocol.Hangup(3, customer, 0))
            assert (await control.expect(protocol.Result, lambda r: r.id == 3)).id == 3
            ended = await control.expect(protocol.CallEnded, lambda m: m.leg == customer)
            assert (ended.status, ended.reason) == (200, "Hung up")
            await control.send(protocol.Hangup(4, agent, 0))
            await control.expect(protocol.CallEnded, lambda m: m.leg == agent)
            await call
    finally:
        transport.close()


async def test_offers_and_candidates_the_worker_cannot_take_are_refused(
    control: Control, browser: Browser
) -> None:
    async with worker_process(control, extra=LOOPBACK_ONLY):
        await control.expect(protocol.Hello)
        plain = (await new_offer(browser)).replace("UDP/TLS/RTP/SAVPF", "RTP/AVP")
        await control.send(protocol.WebRtcOffer(1, "contact-1", plain))
        refused = await control.expect(protocol.Error, lambda e: e.id == 1)
        assert refused.code == 400 and refused.message.startswith("offer refused:")
        # The refused leg released the slot it had kept for its agent.
        ended = await control.expect(protocol.CallEnded)
        assert ended.status == 200
        candidate = "candidate:1 1 udp 1 127.0.0.1 9 typ host"
        await control.send(protocol.WebRtcCandidate(2, "t1-99", candidate))
        assert (await control.expect(protocol.Error, lambda e: e.id == 2)).code == 404
        bad_servers = (("http://stun.example", "", ""),)
        await control.send(protocol.WebRtcOffer(3, "contact-2", "v=0", bad_servers))
        assert (await control.expect(protocol.Error, lambda e: e.id == 3)).code == 400
