"""WebRTC bench: customers' browsers bridged to agents' phones, per core, and time to ringing.

The real thing end to end on loopback: ``assistline serve`` (control
process, media workers, Kamailio, embedded PostgreSQL) pinned to core 0;
the customers, the agents' phone and tcpdump pinned to core 1. Customers
are aiortc peers (Opus, DTLS-SRTP, host candidates on 127.0.0.1 only),
:data:`CLIENTS_PER_PROCESS` to a process, each process with its own event
loop. Each customer does what the page does: creates its contact with the
backend's API key (``POST /api/v1/contacts``), joins it on ``/ws`` (with
its Origin), sends an offer carrying a 1 kHz sine (the "click"), applies
the answer and waits for ``connected``. The sine is one second of Opus
packets encoded once per process and looped, and what a customer hears is
decoded on its event loop as a worker decodes (``decode_on_loop``): an
aiortc peer encoding its own frames costs about as much as the server's
side of the call, and the load core would be the limit. Agents are in the directory,
``available``, before the server starts; their phone is one sipp UAS
registered for all of them with digest authentication, answering every
INVITE and streaming a 1 kHz G.711 tone back (as bench/sip.py's). The
server offers each waiting contact to an agent and bridges the two legs in
the same media worker, recording the call as in production.

Concurrent calls: each level N runs on a fresh server with N/4 + 2 media
workers (each WebRTC call takes one of a worker's four pjsua slots, for its
agent leg; idle workers cost CPU too, and fewer processes share the core's
caches better); N customers call at :data:`RAMP_RATE` a second and
hold; once every page is told ``connected``, a 10 s window measures the
server's CPU (every process under ``serve``, in /proc) and memory (PSS),
the load generator's CPU, and tcpdump captures the media of the N calls on
``lo``. SRTP keeps the RTP header in clear, so per stream (ports, SSRC)
the capture gives the largest interval between packets and the gaps in the
sequence, in four directions: page → worker (Opus SRTP, the customers'
timing), worker → page (Opus SRTP), worker → agent (G.711 RTP), agent →
worker (sipp's timing). A level passes when every call was bridged and
stayed up, and each of the 2N streams the workers send had no interval over
40 ms and no gap in the window. The load generator's own directions are
reported beside them: when it was late too (it shares core 1 with nothing
of the server's, but aiortc is CPU-heavy, and the VM stalls), the window is
measured again, up to :data:`WINDOW_TRIES` times, and the last one counts;
when it was late or its core was saturated in a failed level, the JSON says
the load generator may be the limit (``limited_by_load_generator``).
Raising stops after the first level that fails.

Click to agent ringing: from the moment a customer sends its offer to the
moment the agent's INVITE (carrying ``X-Assistline-Contact: <contact id>``)
is seen on the agents' phone's port in a capture of the whole ramp, matched
by contact id; both are epoch seconds. It includes ICE and DTLS: the
contact is queued once its media is up. p50 and p95 over every call of
every level (each level's are in its figures too).

Targets (exit 1 when missed): ≥ 25 bridged calls on the server's core with
frames on time; ringing p95 ≤ 300 ms. Prints progress, then one JSON object
as the last line. ``--client`` is the customers' process (internal).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import fractions
import functools
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))

# bench/ is on sys.path just above.
from _server import (  # noqa: E402
    LOAD_CORE,
    Server,
    core_busy_seconds,
    cpu_seconds,
    log,
    on_core,
)
from _sip_db import create_agents, jitter_buffer_totals  # noqa: E402
from _sip_load import PASSWORD, REALM, AgentPhone  # noqa: E402
from _sip_rtp import FrameTiming, stream_timing, udp_datagrams  # noqa: E402

TARGET_CALLS = 25
TARGET_RINGING_P95_MS = 300.0
LEVELS = (5, 10, 15, 20, 25, 30)
WINDOW = 10.0
#: Windows tried per level: one in which the load generator was late too is
#: measured again.
WINDOW_TRIES = 3
MAX_INTERVAL = 0.040
#: Customers calling per second: a DTLS handshake and an aiortc peer's set-up
#: cost both cores a burst; the ramp keeps set-ups from piling up.
RAMP_RATE = 2.0
#: Customers per load-generator process (each its own event loop).
CLIENTS_PER_PROCESS = 5
API_KEY = "bench-webrtc-backend-key"
CUSTOMER_HZ = 1000
#: The load generator's core this busy (every process on it), or its own
#: processes this busy, counts as saturated: it may be what failed.
SATURATED_PERCENT = 95.0
DIRECTIONS = ("page_to_worker", "worker_to_page", "worker_to_agent", "agent_to_worker")
#: Directions the server sends (judged) and the ones the load generator sends.
SERVER_SENT = ("worker_to_page", "worker_to_agent")
LOAD_SENT = ("page_to_worker", "agent_to_worker")


# ============================================================ the customers
# (``--client``: a process of its own on the load core; imports aiortc only there)


def client_main(first: int, count: int, url: str) -> int:
    """``count`` customers from index ``first``; stdin says when to start and hang up."""
    return asyncio.run(_clients(first, count, url))


def _emit(**event: Any) -> None:
    print(json.dumps(event), flush=True)


async def _clients(first: int, count: int, url: str) -> int:
    import aiohttp  # only the customers' processes need it

    loop = asyncio.get_running_loop()
    hangup = asyncio.Event()
    _emit(event="ready")
    command = await loop.run_in_executor(None, sys.stdin.readline)
    start_at = float(command.split()[1])
    async with aiohttp.ClientSession() as session:
        calls = [
            asyncio.create_task(
                _customer(session, url, first + i, start_at + (first + i) / RAMP_RATE, hangup)
            )
            for i in range(count)
        ]
        await loop.run_in_executor(None, sys.stdin.readline)  # "hangup", or EOF
        hangup.set()
        await asyncio.gather(*calls, return_exceptions=True)
    _emit(event="done")
    return 0


async def _customer(
    session: Any, url: str, index: int, start_at: float, hangup: asyncio.Event
) -> None:
    from aiortc import RTCPeerConnection, RTCSessionDescription

    from assistline.webrtc.audio import IncomingAudio, decode_on_loop
    from assistline.webrtc.ice import gathering_on, rtc_configuration

    await asyncio.sleep(max(0.0, start_at - time.time()))
    pc = RTCPeerConnection(rtc_configuration([]))
    socket = None
    try:
        reply = await session.post(
            url + "/api/v1/contacts",
            json={"customer_id": f"bench-{index}", "account": f"AC-{index}", "balance_cents": 100},
            headers={"Authorization": f"Bearer {API_KEY}"},
        )
        created = await reply.json()
        if reply.status != 201:
            raise RuntimeError(f"POST /api/v1/contacts: {reply.status} {created}")
        contact = str(created["contact"])
        socket = await session.ws_connect(
            url + "/ws",
            params={"contact": contact, "token": created["token"]},
            headers={"Origin": url},
        )
        hello = await socket.receive_json()
        if hello.get("type") != "hello":
            raise RuntimeError(f"first frame {hello}")
        transceiver = pc.addTransceiver(_sine_track(), direction="sendrecv")
        # What the customer hears is decoded as the worker does it, on the event loop.
        decode_on_loop(transceiver.receiver, IncomingAudio())
        with gathering_on(["127.0.0.1"]):
            await pc.setLocalDescription(await pc.createOffer())
        offer = str(pc.localDescription.sdp)
        click = time.time()
        await socket.send_str(json.dumps({"type": "offer", "sdp": offer}))
        answer = await _until(socket, "answer")
        await pc.setRemoteDescription(RTCSessionDescription(sdp=answer["sdp"], type="answer"))
        ringing = (await _until(socket, "state", "ringing", 60))["at"]
        connected = (await _until(socket, "state", "connected", 60))["at"]
        _emit(
            event="connected",
            index=index,
            contact=contact,
            click=click,
            ringing=ringing,
            connected=connected,
            page_port=_candidate_port(offer),
        )
        # Held until told to hang up; the server ending it first is reported.
        waiting = asyncio.create_task(hangup.wait())
        ended = asyncio.create_task(_until(socket, "state", "ended", None))
        done, _ = await asyncio.wait({waiting, ended}, return_when=asyncio.FIRST_COMPLETED)
        if ended in done:
            waiting.cancel()
            _emit(event="ended", index=index, reason=ended.result().get("reason"))
            return
        ended.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await ended
        await socket.send_str('{"type": "hangup"}')
        with contextlib.suppress(Exception):
            await _until(socket, "state", "ended", 10)
    except Exception as error:  # noqa: BLE001 - reported to the bench, which judges
        _emit(event="failed", index=index, error=f"{type(error).__name__}: {error}"[:300])
    finally:
        if socket is not None:
            await socket.close()
        await pc.close()


async def _until(
    socket: Any, kind: str, state: str | None = None, timeout: float | None = 30
) -> dict[str, Any]:
    """The next frame of ``kind`` (and ``state``), stamped with its arrival ``at``."""
    async with asyncio.timeout(timeout):
        while True:
            message: dict[str, Any] = await socket.receive_json()
            if message.get("type") == "error":
                raise RuntimeError(f"server error: {message}")
            ended = message.get("type") == "state" and message.get("state") == "ended"
            if ended and state != "ended":
                raise RuntimeError(f"ended before {state or kind}: {message.get('reason')}")
            if message.get("type") == kind and (state is None or message.get("state") == state):
                message["at"] = time.time()
                return message


def _candidate_port(sdp: str) -> int:
    """The port of the (only) host candidate of ``sdp``."""
    found = re.search(r"^a=candidate:\S+ 1 udp \d+ 127\.0\.0\.1 (\d+) typ host", sdp, re.M)
    if found is None:
        raise RuntimeError("the offer has no host candidate on 127.0.0.1")
    return int(found.group(1))


@functools.cache
def _sine_packets() -> list[bytes]:
    """One second of a 1 kHz sine as 50 Opus packets (48 kHz mono, 32 kbit/s), encoded once.

    20 ms holds exactly 20 periods of 1 kHz, so the encoder's steady-state
    packets repeat without a seam: the customers loop them, as a browser's
    microphone would send a held tone, without each encoding its own.
    """
    import av

    from assistline.webrtc.opus import OPUS_BITRATE

    samples = np.rint(8000 * np.sin(2 * np.pi * CUSTOMER_HZ * np.arange(960) / 48000))
    pcm = samples.astype(np.int16).reshape(1, -1)
    encoder = av.CodecContext.create("libopus", "w")
    assert isinstance(encoder, av.AudioCodecContext)
    encoder.bit_rate = OPUS_BITRATE
    encoder.format = "s16"
    encoder.layout = "mono"
    encoder.sample_rate = 48000
    encoder.time_base = fractions.Fraction(1, 48000)
    encoder.options = {"application": "voip"}
    packets: list[bytes] = []
    for index in range(60):
        frame = av.AudioFrame.from_ndarray(pcm, format="s16", layout="mono")
        frame.sample_rate = 48000
        frame.pts = index * 960
        frame.time_base = fractions.Fraction(1, 48000)
        packets += [bytes(packet) for packet in encoder.encode(frame)]
    return packets[-50:]


def _sine_track() -> Any:
    """A 1 kHz sine, one 20 ms Opus packet per 20 ms (a browser's microphone, pre-encoded).

    aiortc's sender only packs packets; handed frames, it would encode each
    customer's in stereo at 96 kbit/s and measure its level in Python, and
    the load core would run out before the server's.
    """
    import av
    from aiortc.mediastreams import MediaStreamError, MediaStreamTrack

    payloads = _sine_packets()
    time_base = fractions.Fraction(1, 48000)

    class Sine(MediaStreamTrack):
        kind = "audio"

        def __init__(self) -> None:
            super().__init__()
            self.count = 0
            self.start: float | None = None

        async def recv(self) -> Any:
            if self.readyState != "live":
                raise MediaStreamError
            loop = asyncio.get_running_loop()
            if self.start is None:
                self.start = loop.time()
            delay = self.start + self.count * 0.02 - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
            packet = av.Packet(payloads[self.count % len(payloads)])
            packet.pts = self.count * 960
            packet.time_base = time_base
            self.count += 1
            return packet

    return Sine()


# ============================================================ the bench side


@dataclass
class Customers:
    """The customers' processes on the load core, and what they reported."""

    calls: int
    url: str
    directory: Path
    processes: list[subprocess.Popen[str]] = field(default_factory=list)
    events: list[dict[str, Any]] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _readers: list[threading.Thread] = field(default_factory=list)

    def start(self) -> None:
        """Start the processes, wait until they have imported aiortc, then let them call."""
        for first in range(0, self.calls, CLIENTS_PER_PROCESS):
            count = min(CLIENTS_PER_PROCESS, self.calls - first)
            errors = open(self.directory / f"customers-{first}.log", "a")  # noqa: SIM115
            process = subprocess.Popen(
                [sys.executable, __file__, "--client", str(first), str(count), self.url],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=errors,
                text=True,
                preexec_fn=on_core(LOAD_CORE),
            )
            self.processes.append(process)
            assert process.stdout is not None
            reader = threading.Thread(target=self._read, args=(process.stdout,), daemon=True)
            reader.start()
            self._readers.append(reader)
        deadline = time.monotonic() + 60
        while self.count("ready") < len(self.processes):
            if time.monotonic() > deadline or any(p.poll() is not None for p in self.processes):
                raise RuntimeError("the customers' processes did not start; see customers-*.log")
            time.sleep(0.1)
        self._tell(f"start {time.time() + 0.5}")

    def _read(self, stream: IO[str]) -> None:
        for line in stream:
            with contextlib.suppress(json.JSONDecodeError):
                event = json.loads(line)
                with self._lock:
                    self.events.append(event)

    def _tell(self, line: str) -> None:
        for process in self.processes:
            assert process.stdin is not None
            with contextlib.suppress(OSError):
                process.stdin.write(line + "\n")
                process.stdin.flush()

    def of(self, kind: str) -> list[dict[str, Any]]:
        """The events of ``kind`` reported so far."""
        with self._lock:
            return [event for event in self.events if event.get("event") == kind]

    def count(self, kind: str) -> int:
        """How many events of ``kind`` so far."""
        return len(self.of(kind))

    def pids(self) -> list[int]:
        """The customers' processes."""
        return [process.pid for process in self.processes]

    def hang_up(self) -> None:
        """Every customer hangs up; wait for the processes to end."""
        self._tell("hangup")
        deadline = time.monotonic() + 30
        for process in self.processes:
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(max(0.1, deadline - time.monotonic()))

    def stop(self) -> None:
        """Kill whatever is still running (after :meth:`hang_up`, or on an error)."""
        for process in self.processes:
            if process.poll() is None:
                process.kill()
            process.wait()
            for stream in (process.stdin, process.stdout):
                if stream is not None:
                    with contextlib.suppress(OSError):
                        stream.close()
        for reader in self._readers:
            reader.join(5)


def tcpdump(capture: Path, snap: int, expression: str) -> subprocess.Popen[bytes]:
    """tcpdump of ``lo`` on the load core, written as packets come (``-U``)."""
    return subprocess.Popen(
        [
            *("tcpdump", "-i", "lo", "-s", str(snap), "-B", "16384", "-U", "-n"),
            *("-w", str(capture), expression),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        preexec_fn=on_core(LOAD_CORE),
    )


def stop_process(process: subprocess.Popen[bytes] | None) -> None:
    """SIGTERM (tcpdump then writes its last packets), SIGKILL after 10 s."""
    if process is not None and process.poll() is None:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@dataclass
class Invite:
    """An agent leg's INVITE as the agents' phone got it."""

    at: float
    worker_port: int  # the worker's RTP port for the agent leg (its SDP's m=audio)


def agent_invites(capture: Path) -> dict[str, Invite]:
    """The first INVITE to the agents' phone for each contact, by contact id."""
    found: dict[str, Invite] = {}
    for when, _, _, payload in udp_datagrams(capture):
        if not payload.startswith(b"INVITE "):
            continue
        text = payload.decode("utf-8", "replace")
        contact = re.search(r"^X-Assistline-Contact:\s*(\S+)", text, re.M | re.I)
        media = re.search(r"^m=audio (\d+) ", text, re.M)
        if contact and media and contact.group(1) not in found:
            found[contact.group(1)] = Invite(when, int(media.group(1)))
    return found


@dataclass
class Window:
    """One measured window of a level."""

    server_cpu_percent: float
    pss_mb: float
    load_cpu_percent: float
    load_core_busy_percent: float
    timing: dict[str, FrameTiming]
    jbuf: tuple[int, int]

    def load_late(self) -> int:
        """Streams the load generator sent with an interval over the limit."""
        return sum(self.timing[name].late_streams for name in LOAD_SENT)

    def saturated(self) -> bool:
        """The load core (or the load generator) was busy nearly all the window."""
        busiest = max(self.load_core_busy_percent, self.load_cpu_percent)
        return busiest >= SATURATED_PERCENT


def measure_window(
    server: Server,
    load_pids: Sequence[int],
    capture: Path,
    page_ports: set[int],
    leg_ports: set[int],
    since: float,
) -> Window:
    """CPU, PSS and the media's timing in the four directions over :data:`WINDOW` seconds."""
    ports = sorted(page_ports | leg_ports)
    expression = "udp and (" + " or ".join(f"port {port}" for port in ports) + ")"
    dump = tcpdump(capture, 64, expression)
    try:
        time.sleep(1)
        before = asyncio.run(jitter_buffer_totals(server.data_dir, since))
        server_cpu, load_cpu = server.cpu_seconds(), cpu_seconds(load_pids)
        busy, total = core_busy_seconds(LOAD_CORE)
        started = time.monotonic()
        time.sleep(WINDOW)
        elapsed = time.monotonic() - started
        server_percent = (server.cpu_seconds() - server_cpu) / elapsed * 100
        load_percent = (cpu_seconds(load_pids) - load_cpu) / elapsed * 100
        busy_after, total_after = core_busy_seconds(LOAD_CORE)
        core_percent = (busy_after - busy) / max(total_after - total, 1e-9) * 100
        pss = server.pss_mb()
    finally:
        stop_process(dump)
    time.sleep(1.5)  # the window's last quality reports (one a second)
    after = asyncio.run(jitter_buffer_totals(server.data_dir, since))

    def direction(source: int, destination: int) -> str | None:
        if source in page_ports:
            return "page_to_worker"
        if destination in page_ports:
            return "worker_to_page"
        if source in leg_ports:
            return "worker_to_agent"
        if destination in leg_ports:
            return "agent_to_worker"
        return None

    timing = stream_timing(capture, direction, MAX_INTERVAL)
    capture.unlink()
    return Window(
        server_percent,
        pss,
        load_percent,
        core_percent,
        {name: timing.get(name, FrameTiming()) for name in DIRECTIONS},
        (after[0] - before[0], after[1] - before[1]),
    )


@dataclass
class Level:
    """One concurrency level's figures."""

    calls: int
    passed: bool = False
    reason: str = ""
    connected: int = 0
    ended_early: int = 0
    window: Window | None = None
    windows_measured: int = 0
    ringing_ms: list[float] = field(default_factory=list)
    connected_ms: list[float] = field(default_factory=list)
    invites_missing: int = 0
    errors: list[str] = field(default_factory=list)

    def load_generator_limited(self) -> bool:
        """The load generator was late or saturated in this level's window."""
        return self.window is not None and (self.window.load_late() > 0 or self.window.saturated())

    def as_json(self) -> dict[str, Any]:
        """The figures for the report."""
        figures: dict[str, Any] = {
            "calls": self.calls,
            "passed": self.passed,
            "reason": self.reason,
            "connected": self.connected,
            "ended_early": self.ended_early,
            "ringing_ms_p50": _percentile(self.ringing_ms, 50),
            "ringing_ms_p95": _percentile(self.ringing_ms, 95),
            "click_to_connected_ms_p50": _percentile(self.connected_ms, 50),
            "invites_not_seen": self.invites_missing,
            "errors": self.errors[:5],
        }
        window = self.window
        if window is None:
            return figures
        figures |= {
            "server_cpu_percent_of_core": round(window.server_cpu_percent, 1),
            "cpu_percent_per_call": round(window.server_cpu_percent / self.calls, 2),
            "pss_mb": round(window.pss_mb, 1),
            "pss_mb_per_call": round(window.pss_mb / self.calls, 2),
            "streams": {name: window.timing[name].streams for name in DIRECTIONS},
            "late_streams": {name: window.timing[name].late_streams for name in DIRECTIONS},
            "worst_interval_ms": {
                name: round(window.timing[name].worst_interval_ms, 1) for name in DIRECTIONS
            },
            "sequence_gaps": {name: window.timing[name].sequence_gaps for name in DIRECTIONS},
            "window_agent_legs_jbuf_lost": window.jbuf[0],
            "window_agent_legs_jbuf_discarded": window.jbuf[1],
            "load_generator_cpu_percent": round(window.load_cpu_percent, 1),
            "load_core_busy_percent": round(window.load_core_busy_percent, 1),
            "load_generator_late_streams": window.load_late(),
            "load_generator_worst_interval_ms": round(
                max(window.timing[name].worst_interval_ms for name in LOAD_SENT), 1
            ),
            "load_generator_cpu_percent_per_call": round(window.load_cpu_percent / self.calls, 2),
            "load_core_saturated": window.saturated(),
            "windows_measured": self.windows_measured,
        }
        return figures


def _percentile(values: Sequence[float], q: float) -> float | None:
    return round(float(np.percentile(values, q)), 1) if values else None


async def available_agents(data_dir: Path, count: int) -> None:
    """``count`` agents in the directory, available (the router reads them at start)."""
    from assistline.queue.agents import AgentDirectory, AgentState
    from assistline.settings import StoreSettings
    from assistline.store.database import open_store

    await create_agents(data_dir, count, REALM, PASSWORD)
    async with open_store(StoreSettings(data_dir=data_dir)) as database:
        directory = AgentDirectory(database.pool, REALM)
        for index in range(count):
            await directory.set_state(f"a{index}", AgentState.AVAILABLE)


@contextlib.contextmanager
def running(work: Path, calls: int) -> Iterator[tuple[Server, AgentPhone]]:
    """A fresh server sized for ``calls``, its agents available and registered."""
    data_dir = work / f"data-{calls}"
    data_dir.mkdir()
    asyncio.run(available_agents(data_dir, calls))
    settings = {
        "ASSISTLINE_HTTP_API_KEYS": API_KEY,
        "ASSISTLINE_WEBRTC_ICE_HOST_ADDRESSES": "127.0.0.1",
    }
    server = Server(data_dir, True, workers=calls // 4 + 2, settings=settings)
    phone = AgentPhone(work, server.edge_port, calls)
    try:
        server.start()
        phone.start()
        yield server, phone
    finally:
        phone.stop()
        server.stop()


def concurrency(server: Server, phone: AgentPhone, calls: int, work: Path) -> Level:
    """``calls`` customers bridged to agents and held: measure a window of them."""
    level = Level(calls)
    since = time.time()
    sip_capture = work / f"sip-{calls}.pcap"
    sip_dump = tcpdump(sip_capture, 0, f"udp and dst port {phone.agent_port}")
    customers = Customers(calls, server.url(""), work)
    try:
        time.sleep(1)  # tcpdump is capturing
        customers.start()
        deadline = time.monotonic() + calls / RAMP_RATE + 30
        while time.monotonic() < deadline:
            settled = customers.count("connected") + customers.count("failed")
            if settled >= calls:
                break
            time.sleep(0.5)
        # tcpdump shares the busy load core and loses what it has not read when stopped:
        # give it time to catch up with the last INVITEs.
        time.sleep(2.0)
        stop_process(sip_dump)
        connected = customers.of("connected")
        level.connected = len(connected)
        level.errors = [event["error"] for event in customers.of("failed")]
        invites = agent_invites(sip_capture)
        for event in connected:
            level.connected_ms.append((event["connected"] - event["click"]) * 1000)
        for event in connected + customers.of("failed"):
            invite = invites.get(event.get("contact", ""))
            if invite is not None:
                level.ringing_ms.append((invite.at - event["click"]) * 1000)
        level.invites_missing = len(connected) - sum(
            1 for event in connected if event["contact"] in invites
        )
        if level.connected < calls:
            level.reason = f"only {level.connected} of {calls} calls bridged"
            log(f"  {calls} calls: {level.reason}; {level.errors[:3]}")
            return level
        if level.invites_missing:
            level.reason = f"the capture missed {level.invites_missing} agents' INVITEs"
            log(f"  {calls} calls: {level.reason}")
            return level
        page_ports = {int(event["page_port"]) for event in connected}
        leg_ports = {invites[event["contact"]].worker_port for event in connected}
        time.sleep(2)  # past every call's first frames
        load_pids = [*customers.pids(), *([phone.phone.pid] if phone.phone else [])]
        for attempt in range(1, WINDOW_TRIES + 1):
            capture = work / f"media-{calls}-{attempt}.pcap"
            level.window = measure_window(server, load_pids, capture, page_ports, leg_ports, since)
            level.windows_measured = attempt
            if level.window.load_late() == 0:
                break  # the load generator kept time: the window is clean
            log(f"  window {attempt}: the load generator itself was late; measuring again")
        level.ended_early = customers.count("ended")
    finally:
        stop_process(sip_dump)
        customers.hang_up()
        customers.stop()
        sip_capture.unlink(missing_ok=True)
    judge(level)
    log(f"  {calls} calls: {json.dumps(level.as_json())}")
    return level


def judge(level: Level) -> None:
    """Pass or fail a measured level, with the reasons."""
    window = level.window
    assert window is not None
    reasons = []
    if level.ended_early:
        reasons.append(f"{level.ended_early} calls ended before the hang-up")
    for name in SERVER_SENT:
        timing = window.timing[name]
        if timing.streams < level.calls:
            reasons.append(f"{timing.streams} {name} streams seen, not {level.calls}")
        if timing.late_streams or timing.sequence_gaps:
            reasons.append(f"{name} frames late or missing")
    if reasons and level.load_generator_limited():
        reasons.append(
            f"the load generator was late too ({window.load_late()} streams) or saturated"
            f" (its core {window.load_core_busy_percent:.0f} % busy)"
        )
    level.passed = not reasons
    level.reason = "; ".join(reasons)


def main(argv: Sequence[str] | None = None) -> int:
    """Run every level and print the report."""
    arguments = sys.argv[1:] if argv is None else list(argv)
    if arguments[:1] == ["--client"]:
        return client_main(int(arguments[1]), int(arguments[2]), arguments[3])
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--levels", default=",".join(map(str, LEVELS)), help="concurrent calls")
    parser.add_argument("--keep", action="store_true", help="keep the work directory (logs)")
    args = parser.parse_args(arguments)
    levels = [int(n) for n in args.levels.split(",") if n]
    for program in ("sipp", "kamailio", "tcpdump"):
        if shutil.which(program, path="/usr/sbin:/usr/bin:/usr/local/bin") is None:
            log(f"bench/webrtc.py needs {program}; `make bench` installs it")
            return 2
    if len(os.sched_getaffinity(0)) < 2:
        log("bench/webrtc.py needs two cores: the server on one, the load on the other")
        return 2
    results: list[Level] = []
    with tempfile.TemporaryDirectory(prefix="assistline-bench-webrtc-") as temporary:
        work = (
            Path(tempfile.mkdtemp(prefix="assistline-bench-webrtc-"))
            if args.keep
            else Path(temporary)
        )
        log(f"work directory {work}")
        for calls in levels:
            log(f"{calls} calls, {calls // 4 + 2} media workers")
            with running(work, calls) as (server, phone):
                level = concurrency(server, phone, calls, work)
            results.append(level)
            if not level.passed:
                break  # higher levels fail the same way
    best = max((level.calls for level in results if level.passed), default=0)
    top = next((level for level in results if level.calls == best), None)
    ringing = [ms for level in results for ms in level.ringing_ms]
    p95 = _percentile(ringing, 95)
    failed = next((level for level in results if not level.passed), None)
    met = {
        "concurrent_calls": best >= TARGET_CALLS,
        "ringing_ms_p95": p95 is not None and p95 <= TARGET_RINGING_P95_MS,
    }
    window = top.window if top is not None else None
    result = {
        "bench": "webrtc",
        "concurrent_bridged_calls_per_core": best,
        "cpu_percent_per_call": round(window.server_cpu_percent / best, 2) if window else None,
        "pss_mb_per_call": round(window.pss_mb / best, 2) if window else None,
        "ringing_ms_p50": _percentile(ringing, 50),
        "ringing_ms_p95": p95,
        "ringing_samples": len(ringing),
        "limited_by_load_generator": failed is not None and failed.load_generator_limited(),
        "levels": [level.as_json() for level in results],
        "ramp_calls_per_second": RAMP_RATE,
        "recorded": True,
        "targets": {
            "concurrent_calls": TARGET_CALLS,
            "ringing_ms_p95": TARGET_RINGING_P95_MS,
        },
        "met": met,
    }
    print(json.dumps(result))
    return 0 if all(met.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
