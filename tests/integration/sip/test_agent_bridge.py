"""A caller dials an agent's extension and is bridged to the agent's phone, recorded.

Everything is real and on loopback: the control process's aiohttp app in
this process (the SIP service starts a media worker and Kamailio on free
ports, PostgreSQL is this test's database), baresip as the agent's phone
(registered to Kamailio, as its location table shows, with the agent's digest credentials, answering
automatically, its microphone a 1100 Hz sine), and sipp as the caller,
whose audio socket is the test's: it sends a 700 Hz G.711 tone from there
and keeps what the worker sends back.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import wave
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from assistline.media.g711 import decode_ulaw, encode_ulaw
from tests.integration.sip.app_server import PASSWORD, Client, Server, sip_app
from tests.integration.sip.baresip_agent import Baresip
from tests.integration.sip.worker_peers import (
    RtpSink,
    rtp_packet,
    run_sipp,
)

pytestmark = pytest.mark.slow

CALLER_HZ = 700
AGENT_HZ = 1100
__all__ = ["PASSWORD", "Client", "Server"]  # for the tests that import them from here


@pytest.fixture
async def server(database_url: str) -> AsyncIterator[Server]:
    agents = [("agent-ada", "Ada Agent", "ada"), ("agent-bo", "Bo Agent", "bo")]
    async with sip_app(database_url, agents) as app:
        yield app


@contextlib.asynccontextmanager
async def phone_of_ada(
    server: Server, directory: Path, answermode: str = "auto"
) -> AsyncIterator[Baresip]:
    """Ada's phone: baresip, registered at the edge."""
    phone = Baresip(directory, "ada", PASSWORD, server.edge_port, AGENT_HZ, answermode=answermode)
    try:
        await phone.start()
        await server.wait_registered("ada")
        yield phone
    finally:
        await phone.stop()


@pytest.fixture
async def agent(server: Server, tmp_path: Path) -> AsyncIterator[Baresip]:
    """Ada's phone, answering by itself."""
    async with phone_of_ada(server, tmp_path / "baresip") as phone:
        yield phone


class Caller:
    """The caller's audio socket: sends a tone to the worker, keeps what comes back."""

    def __init__(self, transport: asyncio.DatagramTransport, sink: RtpSink) -> None:
        self.transport = transport
        self.sink = sink
        self.port: int = transport.get_extra_info("sockname")[1]
        self._task: asyncio.Task[None] | None = None

    @classmethod
    @contextlib.asynccontextmanager
    async def open(cls) -> AsyncIterator[Caller]:
        loop = asyncio.get_running_loop()
        transport, sink = await loop.create_datagram_endpoint(RtpSink, local_addr=("127.0.0.1", 0))
        caller = cls(transport, sink)
        try:
            yield caller
        finally:
            if caller._task is not None:
                caller._task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await caller._task
            transport.close()

    async def start_tone(self) -> None:
        """Once the worker's RTP arrives (the call is up), send the tone back to its source."""
        await asyncio.wait_for(self.sink.first.wait(), 10)
        self._task = asyncio.create_task(self._send(self.sink.packets[0][1]))

    async def _send(self, worker_rtp: tuple[str, int]) -> None:
        t = np.arange(160 * 50) / 8000
        codes = encode_ulaw((8000 * np.sin(2 * np.pi * CALLER_HZ * t)).astype(np.int16))
        loop = asyncio.get_running_loop()
        started = loop.time()
        for seq in range(100_000):
            frame = codes[(seq % 50) * 160 : (seq % 50 + 1) * 160].tobytes()
            self.transport.sendto(rtp_packet(0, seq, seq * 160, 0x5EED, frame), worker_rtp)
            await asyncio.sleep(max(0.0, started + (seq + 1) * 0.02 - loop.time()))

    def heard(self) -> np.ndarray:
        """What the worker sent the caller, decoded (PCMU, 8 kHz)."""
        frames = [decode_ulaw(data[12:]) for data, _ in self.sink.packets if data[1] & 0x7F == 0]
        return np.concatenate(frames) if frames else np.zeros(0, np.int16)


def _loud(samples: np.ndarray, tick: int, threshold: float = 1000.0) -> np.ndarray:
    """The ticks of ``samples`` (``tick`` samples each) whose RMS exceeds ``threshold``."""
    ticks = samples[: len(samples) // tick * tick].reshape(-1, tick).astype(np.float64)
    loud: np.ndarray = ticks[np.sqrt(np.mean(ticks**2, axis=1)) > threshold]
    return loud


def dominant_hz(samples: np.ndarray, rate: int) -> float:
    """The frequency of the highest FFT peak."""
    windowed = samples.astype(np.float64) * np.hanning(len(samples))
    return float(np.argmax(np.abs(np.fft.rfft(windowed))) * rate / len(samples))


def assert_tone(samples: np.ndarray, rate: int, hz: int, what: str) -> None:
    """``samples`` hold at least half a second of a tone at ``hz`` (±2 %)."""
    loud = _loud(samples, rate // 50)
    assert len(loud) >= 25, f"{what}: only {len(loud)} loud 20 ms ticks"
    found = dominant_hz(loud.ravel(), rate)
    assert abs(found - hz) <= 0.02 * hz, f"{what}: {found:.0f} Hz, not {hz} Hz"


#: A narrowband bridge's recording is at its rate (sip.bridge_rate, 8000 by default).
RECORDING_RATE = 8000


def read_stereo(path: str) -> np.ndarray:
    with wave.open(path, "rb") as wav:
        shape = (wav.getnchannels(), wav.getsampwidth(), wav.getframerate())
        assert shape == (2, 2, RECORDING_RATE)
        return np.frombuffer(wav.readframes(wav.getnframes()), dtype="<i2").reshape(-1, 2)


async def _connected_call(server: Server) -> dict[str, Any]:
    """The one call in progress, once it is connected and recorded."""
    async with asyncio.timeout(15):
        while True:
            calls = await server.calls()
            if calls and calls[0]["recording"] and calls[0]["recording"]["state"] == "recording":
                return calls[0]
            await asyncio.sleep(0.05)


async def test_caller_and_agent_hear_each_other_and_both_are_recorded(
    server: Server, agent: Baresip
) -> None:
    async with Caller.open() as caller:
        keys = [("rtp_sink", str(caller.port)), ("contact", "contact-77")]
        sipp = asyncio.create_task(
            run_sipp("agent_caller.xml", server.edge_port, service="ada", pause_ms=4000, keys=keys)
        )
        await agent.wait_event("CALL_ESTABLISHED")
        await caller.start_tone()
        call = await _connected_call(server)
        assert call["state"] == "connected"
        assert call["contact"] == "contact-77"
        assert call["agent"]["id"] == "agent-ada" and call["agent"]["sip_username"] == "ada"
        assert call["caller"]["to"].startswith("<sip:ada@127.0.0.1")
        result = await sipp
        assert (result.successful, result.failed) == (1, 0), result.errors
        # The caller hung up: the agent's phone was hung up too.
        await agent.wait_event("CALL_CLOSED")
        heard_by_caller = caller.heard()
    assert await server.calls_once_ended() == []

    recording = await server.finished_recording(call["recording"]["id"])
    assert recording["status"] == "complete"
    assert recording["call_id"] == call["id"]
    assert recording["pauses"] == []
    assert (recording["caller_leg"], recording["agent_leg"]) == (
        call["caller"]["leg"],
        call["agent"]["leg"],
    )
    assert Path(recording["path"]).parent == server.data_dir / "recordings"
    audio = read_stereo(recording["path"])
    assert abs(len(audio) / RECORDING_RATE - recording["duration_seconds"]) < 0.001
    assert recording["sample_rate"] == RECORDING_RATE
    assert_tone(audio[:, 0], RECORDING_RATE, CALLER_HZ, "the recording's left channel (caller)")
    assert_tone(audio[:, 1], RECORDING_RATE, AGENT_HZ, "the recording's right channel (agent)")
    # Each tone reached the other side: the agent's phone heard the caller's,
    # the caller's socket got the agent's.
    assert_tone(heard_by_caller, 8000, AGENT_HZ, "what the caller heard")
    assert_tone(np.concatenate(agent.dumps("dec")), 8000, CALLER_HZ, "what the agent heard")

    caller_row, agent_row = await server.call_records(2)
    assert (caller_row["direction"], agent_row["direction"]) == ("inbound", "outbound")
    assert caller_row["leg"] == call["caller"]["leg"]
    assert agent_row["leg"] == call["agent"]["leg"]
    assert agent_row["to_uri"] == f"sip:ada@127.0.0.1:{server.edge_port}"
    assert caller_row["outcome"] == agent_row["outcome"] == "answered"
    assert caller_row["hangup_status"] == 200  # the caller's BYE
    ids = await server.db.fetchrow("SELECT caller_record, agent_record FROM recording")
    assert ids is not None
    assert (ids["caller_record"], ids["agent_record"]) == (caller_row["id"], agent_row["id"])


async def test_pause_and_resume_through_the_api_leave_a_silent_span(
    server: Server, agent: Baresip
) -> None:
    async with Caller.open() as caller:
        keys = [("rtp_sink", str(caller.port)), ("contact", "contact-78")]
        sipp = asyncio.create_task(
            run_sipp("agent_caller.xml", server.edge_port, service="ada", pause_ms=6000, keys=keys)
        )
        await agent.wait_event("CALL_ESTABLISHED")
        await caller.start_tone()
        call = await _connected_call(server)
        base = f"/api/v1/calls/{call['id']}/recording"
        status, body = await server.post(f"{base}/resume")
        assert (status, body["changed"], body["recording"]["state"]) == (200, False, "recording")
        await asyncio.sleep(1.0)  # tone recorded before the pause
        status, body = await server.post(f"{base}/pause")
        assert (status, body["changed"], body["recording"]["state"]) == (200, True, "paused")
        status, body = await server.post(f"{base}/pause")
        assert (status, body["changed"]) == (200, False)
        status, live = await server.get(f"/api/v1/recordings/{call['recording']['id']}")
        assert (status, live["status"], live["live_state"]) == (200, "recording", "paused")
        await asyncio.sleep(1.5)  # tone not recorded
        status, body = await server.post(f"{base}/resume")
        assert (status, body["changed"], body["recording"]["state"]) == (200, True, "recording")
        result = await sipp
        assert (result.successful, result.failed) == (1, 0), result.errors
        await agent.wait_event("CALL_CLOSED")

    # The call is over: it is unknown now (once the agent's leg has reported its
    # end too, a moment after the phone saw the BYE).
    async with asyncio.timeout(5):
        while True:
            if not await server.calls():
                break
            await asyncio.sleep(0.05)
    status, body = await server.post(f"{base}/pause")
    assert (status, body["type"]) == (404, "urn:assistline:problem:call-not-found")
    recording = await server.finished_recording(call["recording"]["id"])
    assert recording["status"] == "complete"
    assert len(recording["pauses"]) == 1
    pause = recording["pauses"][0]
    start, end = pause["start_sample"], pause["end_sample"]
    assert end - start >= RECORDING_RATE  # at least the second the test waited
    audio = read_stereo(recording["path"])
    assert not audio[start:end].any(), "the paused span holds sound"
    assert_tone(audio[:start, 0], RECORDING_RATE, CALLER_HZ, "the caller before the pause")
    assert_tone(audio[:start, 1], RECORDING_RATE, AGENT_HZ, "the agent before the pause")
    assert_tone(audio[end:, 0], RECORDING_RATE, CALLER_HZ, "the caller after the pause")

    rows = await server.db.fetch("SELECT * FROM audit_event ORDER BY id")
    assert [(r["actor"], r["action"], r["subject"]) for r in rows] == [
        ("api", "recording.resume", f"call:{call['id']}"),
        ("api", "recording.pause", f"call:{call['id']}"),
        ("api", "recording.pause", f"call:{call['id']}"),
        ("api", "recording.resume", f"call:{call['id']}"),
    ]
    details = [json.loads(r["detail"]) for r in rows]
    assert [d["changed"] for d in details] == [False, True, False, True]
    assert {tuple(sorted(d)) for d in details} == {("changed", "leg", "recording", "request_id")}


async def test_agent_hanging_up_ends_the_callers_leg(server: Server, agent: Baresip) -> None:
    async with Caller.open() as caller:
        keys = [("rtp_sink", str(caller.port)), ("contact", "contact-79")]
        sipp = asyncio.create_task(
            run_sipp("agent_caller_hung_up.xml", server.edge_port, service="ada", keys=keys)
        )
        await agent.wait_event("CALL_ESTABLISHED")
        await caller.start_tone()
        call = await _connected_call(server)
        await agent.command("hangup")
        result = await sipp  # it succeeds only if the caller got a BYE
        assert (result.successful, result.failed) == (1, 0), result.errors
    recording = await server.finished_recording(call["recording"]["id"])
    assert recording["status"] == "complete"
    caller_row, agent_row = await server.call_records(2)
    assert agent_row["hangup_status"] == 200  # the agent's BYE
    assert caller_row["outcome"] == agent_row["outcome"] == "answered"
    assert await server.calls_once_ended() == []


async def test_unregistered_agent_and_unknown_extension_are_refused_404_without_recording(
    server: Server,
) -> None:
    # Bo is an agent, but no phone of Bo's is registered; nobody has "carol".
    for extension in ("bo", "carol"):
        result = await run_sipp(
            "agent_caller_refused.xml",
            server.edge_port,
            service=extension,
            keys=[("rtp_sink", "9"), ("contact", "contact-80")],
        )
        assert (result.successful, result.failed) == (1, 0), result.errors
    rows = await server.call_records(3)
    summary = [(r["direction"], r["to_uri"], r["hangup_status"], r["outcome"]) for r in rows]
    edge = f"127.0.0.1:{server.edge_port}"
    assert [(d, status, outcome) for d, _, status, outcome in summary] == [
        ("inbound", 404, "unanswered"),  # the caller of bo: refused with the edge's 404
        ("outbound", 404, "unanswered"),  # the worker's call to bo's phone: not registered
        ("inbound", 404, "unanswered"),  # the caller of carol: no route
    ]
    assert summary[1][1] == f"sip:bo@{edge}"
    assert await server.db.fetchval("SELECT count(*) FROM recording") == 0
    assert list((server.data_dir / "recordings").iterdir()) == []
    assert await server.calls_once_ended() == []


async def test_a_ringing_call_is_not_recorded_and_a_declining_agent_makes_the_caller_busy(
    server: Server, tmp_path: Path
) -> None:
    async with phone_of_ada(server, tmp_path / "baresip", answermode="manual") as phone:
        sipp = asyncio.create_task(
            run_sipp(
                "agent_caller_refused.xml",
                server.edge_port,
                service="ada",
                keys=[("rtp_sink", "9"), ("contact", "contact-81")],
            )
        )
        await phone.wait_event("CALL_INCOMING")
        # The phone may ring before the control process has the place_call result.
        async with asyncio.timeout(5):
            while True:
                [call] = await server.calls()
                if call["agent"]["leg"]:
                    break
                await asyncio.sleep(0.05)
        assert (call["state"], call["recording"]) == ("ringing", None)
        status, body = await server.post(f"/api/v1/calls/{call['id']}/recording/pause")
        assert (status, body["type"]) == (409, "urn:assistline:problem:not-recording")
        await phone.command("hangup")  # the agent declines
        result = await sipp
        assert (result.successful, result.failed) == (1, 0), result.errors
    caller_row, agent_row = await server.call_records(2)
    assert (caller_row["hangup_status"], caller_row["outcome"]) == (486, "unanswered")
    assert agent_row["outcome"] == "unanswered"
    assert await server.db.fetchval("SELECT count(*) FROM recording") == 0
    assert await server.calls_once_ended() == []
