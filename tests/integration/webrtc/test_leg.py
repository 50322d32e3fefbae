"""WebRTC legs against a real aiortc "browser" on loopback.

The browser (``peers.Browser``) sends a 1 kHz sine and records what it
hears; the leg answers its offer and writes a 600 Hz tone. Both gather host
candidates on 127.0.0.1 only. The consent test runs the browser in a process
of its own and kills it with SIGKILL, so nothing tells the leg: only ICE
consent freshness can notice.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import signal
import sys
import time
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any, cast

import aioice.ice
import numpy as np
import pytest
from aioice import stun

from assistline.media.frame import FRAME_SAMPLES, INTERNAL_RATE, AudioFrame
from assistline.tasks import TaskRegistry
from assistline.webrtc import leg as leg_module
from assistline.webrtc.ice import rtc_configuration, set_consent_timeout
from assistline.webrtc.leg import OfferRejectedError, WebRtcLeg
from tests.integration.webrtc.peers import (
    LOOPBACK,
    Browser,
    candidate_lines,
    dominant_frequency,
    new_offer,
    split_candidates,
)

REPO = Path(__file__).resolve().parents[3]
LegFactory = Callable[..., WebRtcLeg]


@pytest.fixture
async def tasks() -> AsyncIterator[TaskRegistry]:
    registry = TaskRegistry()
    yield registry
    assert registry.names == [], "a leg left a task running after close()"
    await registry.close()


@pytest.fixture
async def make_leg(tasks: TaskRegistry) -> AsyncIterator[LegFactory]:
    """WebRTC legs on loopback, each closed at the end of the test."""
    legs: list[WebRtcLeg] = []

    def make(**kwargs: Any) -> WebRtcLeg:
        kwargs.setdefault("host_addresses", [LOOPBACK])
        leg = WebRtcLeg(f"leg-{len(legs)}", tasks, **kwargs)
        legs.append(leg)
        return leg

    yield make
    for leg in legs:
        await leg.close()


@pytest.fixture
async def browser() -> AsyncIterator[Browser]:
    peer = Browser(1000.0)
    yield peer
    await peer.close()


def tone_frames(frequency: float, count: int) -> list[AudioFrame]:
    """``count`` 20 ms frames of a sine at the internal rate."""
    n = np.arange(count * FRAME_SAMPLES)
    signal_ = np.rint(8000 * np.sin(2 * np.pi * frequency * n / INTERNAL_RATE)).astype(np.int16)
    return [
        AudioFrame(signal_[i : i + FRAME_SAMPLES].copy(), i)
        for i in range(0, len(signal_), FRAME_SAMPLES)
    ]


async def talk(leg: WebRtcLeg, frames: list[AudioFrame]) -> list[AudioFrame]:
    """Write one frame every 20 ms, as the bridge does, and read what the leg received."""
    heard: list[AudioFrame] = []
    start = time.monotonic()
    for index, frame in enumerate(frames):
        await asyncio.sleep(max(0.0, start + index * 0.02 - time.monotonic()))
        leg.write_frame(frame)
        while (received := leg.read_frame()) is not None:
            heard.append(received)
    return heard


@pytest.mark.parametrize("path", ["leg", "aiortc"])
async def test_audio_flows_both_ways_at_the_internal_rate(
    make_leg: LegFactory,
    browser: Browser,
    tasks: TaskRegistry,
    path: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    if path == "aiortc":  # as with an aiortc whose private parts are not where expected
        monkeypatch.setattr(leg_module, "decode_on_loop", lambda receiver, incoming: False)
        monkeypatch.setattr(leg_module, "can_send", lambda transceiver: False)
    leg = make_leg()
    # Trickled, as a browser does: the offer goes without candidates, each follows.
    offer, trickled = split_candidates(await new_offer(browser))
    assert trickled
    answer = await leg.accept_offer(offer)
    for candidate in trickled:
        await leg.add_candidate(candidate, sdp_mid="0", sdp_mline_index=0)
    await leg.add_candidate("")
    await browser.take_answer(answer)

    heard = await talk(leg, tone_frames(600.0, 100))  # 2 s
    assert leg.state == "connected"
    # The leg sends its packets and decodes on the event loop; or aiortc's sender takes
    # them from a track and a task reads the receiver's track.
    assert [name.rsplit("-", 1)[1] for name in tasks.names] == (
        ["out"] if path == "leg" else ["in"]
    )
    assert len(heard) >= 60
    assert all(frame.samples.shape == (FRAME_SAMPLES,) for frame in heard)
    assert [f.timestamp for f in heard[1:]] == [f.next_timestamp for f in heard[:-1]]
    customer = np.concatenate([frame.samples for frame in heard[-40:]])
    assert abs(dominant_frequency(customer, INTERNAL_RATE) - 1000.0) <= 20.0
    assert np.sqrt(np.mean(customer.astype(np.float64) ** 2)) > 1000

    # What the browser's aiortc decoded from the leg's mono 16 kHz Opus: 48 kHz packed stereo.
    received = browser.recorder.frames
    assert len(received) >= 60
    last = received[-1]
    assert (last.format.name, last.layout.name, last.sample_rate) == ("s16", "stereo", 48000)
    agent = browser.recorder.mono()[-48000:]
    assert abs(dominant_frequency(agent, 48000) - 600.0) <= 20.0
    assert np.sqrt(np.mean(agent.astype(np.float64) ** 2)) > 1000
    # The leg's RTCP sender reports count what it sent (the browser's view of them).
    stats = await browser.pc.getReceivers()[0].getStats()
    (reported,) = [s for s in stats.values() if s.type == "remote-outbound-rtp"]
    assert 20 <= reported.packetsSent <= 110  # 2 s at 50 a second, reported every 0.5-1.5 s
    assert 20 * 30 <= reported.bytesSent <= 110 * 200


async def test_the_answer_is_dtls_srtp_opus_on_loopback(
    make_leg: LegFactory, browser: Browser
) -> None:
    leg = make_leg()
    answer = await leg.accept_offer(await new_offer(browser))
    lines = answer.splitlines()
    (media,) = [line for line in lines if line.startswith("m=")]
    assert re.fullmatch(r"m=audio \d+ UDP/TLS/RTP/SAVPF 96", media)  # DTLS-SRTP, Opus alone
    assert "a=rtpmap:96 opus/48000/2" in lines
    assert any(
        re.fullmatch(r"a=fingerprint:sha-256 ([0-9A-F]{2}:){31}[0-9A-F]{2}", x) for x in lines
    )
    assert {"a=setup:active", "a=setup:passive"} & set(lines)
    assert "a=sendrecv" in lines
    candidates = candidate_lines(answer)
    assert candidates
    for candidate in candidates:
        fields = candidate.split()
        assert (fields[2], fields[4], fields[7]) == ("udp", LOOPBACK, "host"), candidate


async def test_the_first_video_section_is_answered_in_vp8_and_a_second_inactive(
    make_leg: LegFactory,
) -> None:
    browser = Browser(1000.0)
    browser.pc.addTransceiver("video", direction="sendrecv")
    browser.pc.addTransceiver("video", direction="sendrecv")
    try:
        answer = await make_leg().accept_offer(await new_offer(browser))
    finally:
        await browser.close()
    sections = answer.split("m=")[1:]
    assert [section.split()[0] for section in sections] == ["audio", "video", "video"]
    assert "a=sendrecv" in sections[0].splitlines()
    first_video = sections[1].splitlines()
    assert "a=sendrecv" in first_video
    first_payload = first_video[0].split()[3]
    assert f"a=rtpmap:{first_payload} VP8/90000" in first_video
    assert "a=inactive" in sections[2].splitlines()


async def test_an_empty_ice_server_list_asks_no_server(
    make_leg: LegFactory, browser: Browser, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert rtc_configuration([]).iceServers == []  # None would mean Google's STUN server
    loop = asyncio.get_running_loop()
    endpoints: list[dict[str, Any]] = []
    original_datagram = loop.create_datagram_endpoint
    original_connection = loop.create_connection

    async def datagram(*args: Any, **kwargs: Any) -> Any:
        endpoints.append(dict(kwargs))
        return await original_datagram(*args, **kwargs)

    async def connection(*args: Any, **kwargs: Any) -> Any:
        endpoints.append({"connection": args})
        return await original_connection(*args, **kwargs)

    # Every socket aiortc and aioice open goes through these two (TURN over TCP the second).
    monkeypatch.setattr(loop, "create_datagram_endpoint", datagram)
    monkeypatch.setattr(loop, "create_connection", connection)
    leg = make_leg(ice_servers=[])
    answer = await leg.accept_offer(await new_offer(browser))
    await browser.take_answer(answer)
    await asyncio.wait_for(browser.connected.wait(), 10)
    await asyncio.sleep(1.0)  # media and RTCP flow
    types = {line.split()[7] for line in candidate_lines(answer)}
    assert types == {"host"}
    # One socket per peer, each bound to 127.0.0.1 and connected nowhere: a UDP socket
    # bound to a loopback address can send to loopback addresses only.
    assert endpoints == [{"local_addr": (LOOPBACK, 0)}, {"local_addr": (LOOPBACK, 0)}]


class StunResponder(asyncio.DatagramProtocol):
    """A STUN server on loopback that answers binding requests with a fixed mapped address."""

    def __init__(self, mapped: tuple[str, int]) -> None:
        super().__init__()
        self.mapped = mapped
        self.requests: list[tuple[str, int]] = []
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.DatagramTransport, transport)

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        request = stun.parse_message(data)
        self.requests.append(addr)
        response = stun.Message(
            message_method=stun.Method.BINDING,
            message_class=stun.Class.RESPONSE,
            transaction_id=request.transaction_id,
        )
        response.attributes["XOR-MAPPED-ADDRESS"] = self.mapped
        assert self.transport is not None
        self.transport.sendto(bytes(response), addr)


async def test_the_stun_server_from_settings_is_the_one_asked(
    make_leg: LegFactory, browser: Browser
) -> None:
    loop = asyncio.get_running_loop()
    responder = StunResponder(("127.0.0.2", 40000))
    transport, _ = await loop.create_datagram_endpoint(lambda: responder, local_addr=(LOOPBACK, 0))
    try:
        port = transport.get_extra_info("sockname")[1]
        leg = make_leg(ice_servers=[{"urls": [f"stun:{LOOPBACK}:{port}"]}])
        answer = await leg.accept_offer(await new_offer(browser))
    finally:
        transport.close()
    assert [host for host, _ in responder.requests] == [LOOPBACK]  # one socket, one request
    srflx = [c.split() for c in candidate_lines(answer) if c.split()[7] == "srflx"]
    assert [(c[4], c[5]) for c in srflx] == [("127.0.0.2", "40000")]


async def test_a_browser_closing_its_peer_ends_the_leg(
    make_leg: LegFactory, browser: Browser
) -> None:
    leg = make_leg()
    ended = asyncio.Event()
    leg.on_ended = lambda _: ended.set()
    await browser.take_answer(await leg.accept_offer(await new_offer(browser)))
    await asyncio.wait_for(browser.connected.wait(), 10)
    await browser.close()  # DTLS close_notify
    await asyncio.wait_for(ended.wait(), 5)
    assert (leg.ended, leg.reason) == (True, "remote-closed")
    leg.write_frame(tone_frames(600.0, 1)[0])  # ignored, not an error
    assert leg.queued() == 0


async def test_close_ends_the_leg_once(make_leg: LegFactory, browser: Browser) -> None:
    leg = make_leg()
    reasons: list[str | None] = []
    leg.on_ended = lambda ended: reasons.append(ended.reason)
    await browser.take_answer(await leg.accept_offer(await new_offer(browser)))
    await asyncio.wait_for(browser.connected.wait(), 10)
    await leg.close()
    await leg.close()
    assert reasons == ["closed"]
    assert leg.state == "closed"


@pytest.fixture
def consent_timeout() -> Iterator[float]:
    """A 12 s consent timeout for this test's peers (webrtc.consent_timeout; default 30)."""
    before = aioice.ice.CONSENT_INTERVAL
    set_consent_timeout(12.0)
    try:
        yield 12.0
    finally:
        aioice.ice.CONSENT_INTERVAL = before


def test_the_consent_interval_makes_the_worst_case_the_timeout() -> None:
    before = aioice.ice.CONSENT_INTERVAL
    try:
        assert set_consent_timeout(30.0) == pytest.approx(3.75)
        assert 6 * (1.2 * aioice.ice.CONSENT_INTERVAL + 0.5) == pytest.approx(30.0)
        with pytest.raises(ValueError, match="too short"):
            set_consent_timeout(5.0)
    finally:
        aioice.ice.CONSENT_INTERVAL = before


@pytest.mark.slow
async def test_a_vanished_browser_ends_the_leg_within_the_consent_timeout(
    make_leg: LegFactory, consent_timeout: float
) -> None:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "tests.integration.webrtc.peers",
        "1000",
        cwd=REPO,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
    )
    assert process.stdin is not None and process.stdout is not None
    try:
        offer = json.loads(await asyncio.wait_for(process.stdout.readline(), 20))["offer"]
        leg = make_leg()
        ended = asyncio.Event()
        leg.on_ended = lambda _: ended.set()
        answer = await leg.accept_offer(offer)
        process.stdin.write((json.dumps({"answer": answer}) + "\n").encode())
        await process.stdin.drain()
        state = json.loads(await asyncio.wait_for(process.stdout.readline(), 10))
        assert state == {"state": "connected"}
        heard = await talk(leg, tone_frames(600.0, 50))
        customer = np.concatenate([frame.samples for frame in heard[-25:]])
        assert abs(dominant_frequency(customer, INTERNAL_RATE) - 1000.0) <= 20.0

        process.send_signal(signal.SIGKILL)  # no DTLS alert, no signalling: it just vanishes
        killed = time.monotonic()
        await process.wait()
        await asyncio.wait_for(ended.wait(), 45)
        elapsed = time.monotonic() - killed
        assert leg.reason == "consent-expired"
        assert elapsed <= consent_timeout + 0.5  # the loop's own latency
    finally:
        with contextlib.suppress(ProcessLookupError):
            process.kill()
        await process.wait()
        process.stdin.close()
        await process.stdin.wait_closed()


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda sdp: sdp.replace("UDP/TLS/RTP/SAVPF", "RTP/AVP"), "RTP/AVP; only UDP/TLS"),
        (lambda sdp: re.sub(r"a=fingerprint:.*\r\n", "", sdp), "no DTLS fingerprint"),
        (lambda sdp: re.sub(r"a=rtpmap:96 opus.*\r\n", "", sdp), "has no Opus"),
        (lambda sdp: sdp.replace("m=audio", "m=video"), "one audio section, not 0"),
    ],
)
async def test_offers_without_dtls_srtp_opus_are_rejected(
    make_leg: LegFactory, browser: Browser, change: Callable[[str], str], message: str
) -> None:
    offer = change(await new_offer(browser))
    with pytest.raises(OfferRejectedError, match=re.escape(message)):
        await make_leg().accept_offer(offer)


@pytest.mark.parametrize(
    ("servers", "message"),
    [
        ([{"url": "stun:x"}], "ICE server 0 has unknown keys: url"),
        ([{"urls": []}], "ICE server 0 needs 'urls'"),
        ([{"urls": "http://x"}], "ICE server 0 has 'http://x', not a stun:"),
        ([{"urls": "turn:x:3478"}], "ICE server 0 is a TURN server and needs 'username'"),
        ([{"urls": "stun:a"}, {"urls": ["stun:b", 3]}], "ICE server 1 has a URL that is not"),
    ],
)
def test_ice_servers_are_checked(servers: list[dict[str, Any]], message: str) -> None:
    with pytest.raises(ValueError, match=re.escape(message)):
        rtc_configuration(servers)


def test_ice_servers_pass_through_unchanged() -> None:
    turn = {"urls": ["turn:127.0.0.1:3478?transport=udp"], "username": "u", "credential": "c"}
    (server,) = rtc_configuration([turn]).iceServers or []
    assert (server.urls, server.username, server.credential) == (turn["urls"], "u", "c")
