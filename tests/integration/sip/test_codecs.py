"""Codec negotiation of the echo extension, with sipp as the caller and real workers.

Workers are started with ``--codecs`` lists (one per list, shared by the
module's tests, stopped at the end); sipp offers payload types and the test
reads the answer's SDP from sipp's message trace. The G.722 call's audio is
encoded and decoded by FFmpeg's G.722 codec (PyAV, installed with aiortc),
an implementation independent of pjmedia's: a 5 kHz tone, which no 8 kHz
codec can carry, must come back from the echo extension.

pjmedia's SDP negotiator, as compiled into pjsua2-python 2.15.1, follows the
*caller's* order among the codecs both sides have; the worker's answers
follow ``--codecs`` because each leg narrows its answer to our first codec
the offer has (assistline.sip.sdp). The cases offering the codecs in the
other order than ``--codecs`` check that. A codec left out of ``--codecs`` is
disabled: offered alone it gets ``488``.
"""

from __future__ import annotations

import asyncio
import dataclasses
import random
import re
import shutil
import sys
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from fractions import Fraction

import av
import numpy as np
import pytest
import pytest_asyncio

from assistline.media.frame import Samples
from assistline.sip import protocol
from tests.integration.sip.worker_peers import (
    SCENARIOS,
    SIPP,
    Control,
    RtpSink,
    SippRun,
    free_media_base,
    free_udp_port,
    rtp_packet,
    short_dir,
    stop_process,
)

pytestmark = pytest.mark.asyncio(loop_scope="module")

G722_FIRST = "G722,PCMU,PCMA"
PCMU_FIRST = "PCMU,PCMA,G722"
G711_ONLY = "PCMU,PCMA"

#: Payload type -> rtpmap as pjsua2 writes it in an answer (G.722's clock is 8000 by RFC 3551).
RTPMAP = {0: "PCMU/8000", 8: "PCMA/8000", 9: "G722/8000"}
NO_CODEC = '399 vm "No suitable codec for remote offer (PJMEDIA_SDPNEG_NOANSCODEC)"'


@dataclasses.dataclass
class Worker:
    """A media worker started with one ``--codecs`` list."""

    process: asyncio.subprocess.Process
    port: int
    control: Control


#: (codecs, bridge rate): started at first use.
WorkerFactory = Callable[..., Awaitable[Worker]]


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def workers() -> AsyncIterator[WorkerFactory]:
    """Start (at first use) one worker per codec list; stop them all at the end."""
    started: dict[str, Worker] = {}
    controls: list[Control] = []
    directory = short_dir()

    async def worker(codecs: str, bridge_rate: int = 8000) -> Worker:
        key = f"{codecs}@{bridge_rate}"
        if key not in started:
            control = Control(directory / f"{len(controls)}.sock")
            controls.append(control)
            await control.start()
            port = free_udp_port()
            rtp = random.randrange(20000, 29000, 200)
            process = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "assistline.sip.worker",
                *("--id", f"codec{len(started)}", "--port", str(port), "--codecs", codecs),
                *("--control", str(control.path), "--rtp-min", str(rtp)),
                *("--rtp-max", str(rtp + 198), "--bridge-rate", str(bridge_rate)),
                stdout=asyncio.subprocess.DEVNULL,
            )
            started[key] = Worker(process, port, control)
            await control.expect(protocol.Hello)
        return started[key]

    try:
        yield worker
    finally:
        for running in started.values():
            await stop_process(running.process)
        for control in controls:
            await control.close()
            control.path.unlink(missing_ok=True)
        directory.rmdir()


@dataclasses.dataclass
class Call:
    """A finished sipp call: its counts and the messages sipp traced."""

    run: SippRun
    messages: list[str]

    def received(self, status: int) -> list[str]:
        """The responses with ``status`` that sipp received, in order."""
        return [m for m in self.messages if m.startswith(f"SIP/2.0 {status} ")]


async def sipp_call(
    scenario: str,
    port: int,
    offer: str,
    attribute: str,
    rtp_sink: int,
    pause_ms: int = 300,
    timeout: float = 20,
) -> Call:
    """One sipp call offering the formats ``offer`` with ``a=attribute``; sipp is always reaped."""
    assert SIPP is not None
    workdir = short_dir()
    trace = workdir / "messages.log"
    args = [
        *(SIPP, "-sf", str(SCENARIOS / scenario), f"127.0.0.1:{port}"),
        *("-s", "echo", "-i", "127.0.0.1", "-p", str(free_udp_port())),
        *("-mp", str(free_media_base()), "-m", "1", "-l", "1", "-d", str(pause_ms)),
        *("-key", "offer", offer, "-key", "attribute", attribute),
        *("-key", "rtp_sink", str(rtp_sink), "-nostdin", "-timeout", f"{int(timeout)}s"),
        *("-trace_msg", "-message_file", str(trace)),
    ]
    process = await asyncio.create_subprocess_exec(
        *args, cwd=workdir, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT
    )
    try:
        out, _ = await asyncio.wait_for(process.communicate(), timeout + 10)
        text = trace.read_text(errors="replace") if trace.exists() else ""
    finally:
        await stop_process(process, grace=1)
        shutil.rmtree(workdir, ignore_errors=True)
    screen = out.decode(errors="replace")
    run = SippRun(
        process.returncode if process.returncode is not None else -1,
        _count(screen, "Successful call"),
        _count(screen, "Failed call"),
        screen[-3000:],
    )
    return Call(run, _traced_messages(text))


def _count(text: str, label: str) -> int:
    found = re.findall(rf"{label}\s*\|\s*\d+\s*\|\s*(\d+)", text)
    return int(found[-1]) if found else -1


def _traced_messages(trace: str) -> list[str]:
    """The SIP messages in a sipp ``-trace_msg`` file, each from its first line."""
    messages = []
    for block in re.split(r"^-{10,} .*$", trace, flags=re.MULTILINE):
        parts = block.strip("\r\n").split("\n\n", 1)
        if len(parts) == 2 and re.match(r"UDP message (sent|received)", parts[0]):
            messages.append(parts[1].replace("\r\n", "\n").strip("\n"))
    return messages


def _header(message: str, name: str) -> str:
    found = re.search(rf"^{re.escape(name)}:[ \t]*(.*)$", message, re.MULTILINE | re.IGNORECASE)
    return found.group(1).strip() if found else ""


def _answer(message: str) -> tuple[list[int], dict[int, str]]:
    """The audio formats of an SDP answer (m= line order) and their rtpmaps."""
    body = message.split("\n\n", 1)[1]
    media = re.search(r"^m=audio \d+ RTP/AVP ([\d ]+)$", body, re.MULTILINE)
    assert media is not None, message
    rtpmaps = {int(pt): name for pt, name in re.findall(r"^a=rtpmap:(\d+) (\S+)$", body, re.M)}
    return [int(pt) for pt in media.group(1).split()], rtpmaps


async def _reap(task: asyncio.Task[Call]) -> None:
    """Cancel a sipp call the test no longer waits for (sipp_call then kills sipp)."""
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)


async def _sink() -> tuple[asyncio.DatagramTransport, RtpSink, int]:
    loop = asyncio.get_running_loop()
    transport, sink = await loop.create_datagram_endpoint(
        RtpSink, local_addr=("127.0.0.1", free_udp_port())
    )
    return transport, sink, transport.get_extra_info("sockname")[1]


@pytest.mark.parametrize(
    ("codecs", "offer", "chosen"),
    [
        pytest.param(G722_FIRST, "9 0", 9, id="G722-first-offered-G722-PCMU"),
        pytest.param(G722_FIRST, "0 9", 9, id="G722-first-offered-PCMU-G722"),
        pytest.param(PCMU_FIRST, "9 0", 0, id="PCMU-first-offered-G722-PCMU"),
        pytest.param(PCMU_FIRST, "0 9", 0, id="PCMU-first-offered-PCMU-G722"),
        pytest.param(G722_FIRST, "8", 8, id="G722-first-offered-only-PCMA"),
        pytest.param(G711_ONLY, "9 0", 0, id="G722-disabled-offered-G722-PCMU"),
    ],
)
async def test_answer_carries_the_negotiated_codec_and_rtp_uses_it(
    workers: WorkerFactory, codecs: str, offer: str, chosen: int
) -> None:
    worker = await workers(codecs)
    transport, sink, sink_port = await _sink()
    running = asyncio.create_task(
        sipp_call("codec_offer.xml", worker.port, offer, "ptime:20", sink_port, 500)
    )
    try:
        # The worker's RTP (echoed silence while the call is up) ...
        await asyncio.wait_for(sink.first.wait(), 5)
        call = await running
    finally:
        transport.close()
        await _reap(running)
    assert (call.run.returncode, call.run.successful, call.run.failed) == (0, 1, 0), call.run
    [answer] = [m for m in call.received(200) if _header(m, "CSeq") == "1 INVITE"]
    formats, rtpmaps = _answer(answer)
    assert (formats, rtpmaps) == ([chosen], {chosen: RTPMAP[chosen]})
    # ... uses the negotiated payload type.
    assert {data[1] & 0x7F for data, _ in sink.packets} == {chosen}


@pytest.mark.parametrize(
    ("codecs", "offer", "attribute"),
    [
        pytest.param(G722_FIRST, "3", "rtpmap:3 GSM/8000", id="only-GSM"),
        pytest.param(G722_FIRST, "96", "rtpmap:96 X-NOSUCH/8000", id="only-unknown-dynamic"),
        pytest.param(G711_ONLY, "9", "rtpmap:9 G722/8000", id="only-G722-when-disabled"),
    ],
)
async def test_offer_without_a_codec_of_the_worker_is_refused_488(
    workers: WorkerFactory, codecs: str, offer: str, attribute: str
) -> None:
    worker = await workers(codecs)
    transport, sink, sink_port = await _sink()
    try:
        call = await sipp_call("codec_refused.xml", worker.port, offer, attribute, sink_port)
    finally:
        transport.close()
    assert (call.run.returncode, call.run.successful, call.run.failed) == (0, 1, 0), call.run
    finals = [m for m in call.messages if re.match(r"SIP/2\.0 [2-6]\d\d ", m)]
    assert [(m.split("\n", 1)[0], _header(m, "Warning")) for m in finals] == [
        ("SIP/2.0 488 Not Acceptable Here", NO_CODEC)
    ]
    assert not sink.packets


def _g722_packets(samples: Samples) -> list[bytes]:
    """``samples`` (16 kHz) as 20 ms G.722 payloads, by FFmpeg's encoder."""
    encoder = av.CodecContext.create("g722", "w")
    assert isinstance(encoder, av.AudioCodecContext)
    encoder.sample_rate = 16000
    encoder.format = "s16"
    encoder.layout = "mono"
    encoder.time_base = Fraction(1, 16000)
    payloads = []
    for start in range(0, len(samples), 320):
        frame = av.AudioFrame.from_ndarray(
            samples[start : start + 320].reshape(1, -1), format="s16", layout="mono"
        )
        frame.sample_rate = 16000
        frame.pts = start
        payloads += [bytes(packet) for packet in encoder.encode(frame)]
    payloads += [bytes(packet) for packet in encoder.encode(None)]
    return payloads


def _g722_decode(payloads: Sequence[bytes]) -> Samples:
    decoder = av.CodecContext.create("g722", "r")
    assert isinstance(decoder, av.AudioCodecContext)
    decoder.sample_rate = 16000
    decoder.layout = "mono"
    frames = [
        frame.to_ndarray().ravel().astype(np.int16)
        for payload in payloads
        for frame in decoder.decode(av.Packet(payload))
    ]
    return np.concatenate(frames) if frames else np.zeros(0, np.int16)


def _dominant_hz(samples: Samples, rate: int) -> float:
    spectrum = np.abs(np.fft.rfft(samples.astype(np.float64) * np.hanning(len(samples))))
    return float(np.argmax(spectrum) * rate / len(samples))


def _rms(samples: Samples) -> float:
    return float(np.sqrt(np.mean(samples.astype(np.float64) ** 2)))


@pytest.mark.parametrize("bridge_rate", [16000, 8000])
async def test_g722_call_echoes_a_tone_no_8_khz_codec_could_carry(
    workers: WorkerFactory, bridge_rate: int
) -> None:
    """A wideband bridge keeps a 5 kHz tone; a narrowband one (the default) cuts it."""
    worker = await workers(G722_FIRST, bridge_rate)
    t = np.arange(40 * 320) / 16000
    tone = (8000 * np.sin(2 * np.pi * 5000 * t)).astype(np.int16)
    payloads = _g722_packets(tone)
    assert [len(p) for p in payloads] == [160] * 40
    # FFmpeg's own round trip keeps the tone: the reference for the echo.
    assert abs(_dominant_hz(_g722_decode(payloads)[1600:], 16000) - 5000) < 20

    transport, sink, sink_port = await _sink()
    before = len(worker.control.seen)
    call = asyncio.create_task(
        sipp_call("codec_offer.xml", worker.port, "9", "rtpmap:9 G722/8000", sink_port, 2500)
    )
    try:
        incoming = await worker.control.expect(
            protocol.IncomingCall, lambda m: any(m is new for new in worker.control.seen[before:])
        )
        await worker.control.expect(protocol.Answered, lambda m: m.leg == incoming.leg)
        await asyncio.wait_for(sink.first.wait(), 5)
        worker_rtp = sink.packets[0][1]
        start = len(sink.packets)
        for seq, payload in enumerate(payloads):
            # G.722's RTP clock runs at 8 kHz (RFC 3551): 160 ticks per 20 ms.
            transport.sendto(rtp_packet(9, seq, seq * 160, 0x6722, payload), worker_rtp)
            await asyncio.sleep(0.02)
        await asyncio.sleep(0.3)
        echoed = [data[12:] for data, _ in sink.packets[start:]]
        result = await call
    finally:
        transport.close()
        await _reap(call)
    assert (result.run.returncode, result.run.successful, result.run.failed) == (0, 1, 0)
    assert {data[1] & 0x7F for data, _ in sink.packets} == {9}
    decoded = _g722_decode(echoed)
    frames = decoded[: len(decoded) // 320 * 320].reshape(-1, 320)
    loud = [frame for frame in frames if _rms(frame) > 2000]
    if bridge_rate == 8000:
        # Above the 4 kHz a narrowband bridge can carry: nothing comes back.
        assert loud == [], f"{len(loud)} echoed frames carry a 5 kHz tone through an 8 kHz bridge"
        return
    assert len(loud) >= 25, f"only {len(loud)} of {len(frames)} echoed frames carry the tone"
    assert abs(_dominant_hz(np.concatenate(loud), 16000) - 5000) < 20
    # The echo extension loops audio back at unity gain: the tone's level survives.
    level = float(np.median([_rms(frame) for frame in loud])) / _rms(tone)
    assert 0.85 < level < 1.15, level
