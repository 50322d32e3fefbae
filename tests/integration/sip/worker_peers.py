"""Real peers for the worker tests: sipp, a control-socket endpoint, an RTP socket.

Every process started here is stopped by the helper that started it (kill
and reap in ``finally``), and everything listens on 127.0.0.1.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import os
import random
import re
import shutil
import socket
import struct
import sys
import tempfile
import typing
from collections.abc import AsyncIterator, Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

from assistline.sip import protocol, protocol_wire

SCENARIOS = Path(__file__).parent / "scenarios"
SIPP = shutil.which("sipp")
SIPP_PCAPS = Path("/usr/share/sip-tester")
M = TypeVar("M")


def free_udp_port() -> int:
    """A UDP port free on 127.0.0.1 right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def free_media_base() -> int:
    """A base for sipp's ``-mp``: sipp binds its audio RTP there and its video RTP two
    above (CI saw the second taken), so all four ports from it are probed free."""
    while True:
        base = free_udp_port()
        if base > 65531:
            continue
        probes = [socket.socket(socket.AF_INET, socket.SOCK_DGRAM) for _ in range(4)]
        try:
            for offset, probe in enumerate(probes):
                probe.bind(("127.0.0.1", base + offset))
        except OSError:
            continue
        finally:
            for probe in probes:
                probe.close()
        return base


def short_dir() -> Path:
    """A fresh directory with a short path (Unix socket paths are limited to 107 bytes)."""
    return Path(tempfile.mkdtemp(prefix="al-sip-", dir="/tmp"))


class Control:
    """The control side of the protocol, as a test sees it: a Unix socket server."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.messages: asyncio.Queue[protocol.Message] = asyncio.Queue()
        self.seen: list[protocol.Message] = []
        self._taken: set[int] = set()
        self._writer: asyncio.StreamWriter | None = None
        self._server: asyncio.Server | None = None
        self._connected = asyncio.Event()

    async def start(self) -> None:
        """Listen on :attr:`path`."""
        self._server = await asyncio.start_unix_server(self._serve, path=str(self.path))

    async def close(self) -> None:
        """Stop listening and drop the worker's connection."""
        if self._writer is not None:
            self._writer.close()
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._writer = writer
        self._connected.set()
        decoder = protocol_wire.Decoder("to_control")
        while data := await reader.read(65536):
            for message in decoder.feed(data):
                self.seen.append(message)
                await self.messages.put(message)

    async def send(self, message: protocol.Message) -> None:
        """Send a command to the worker."""
        await asyncio.wait_for(self._connected.wait(), 10)
        assert self._writer is not None
        self._writer.write(protocol_wire.encode(message))
        await self._writer.drain()

    async def expect(
        self, kind: type[M], where: Callable[[M], bool] = lambda _: True, timeout: float = 10
    ) -> M:
        """The oldest message of type ``kind`` matching ``where`` not yet returned.

        Messages that do not match stay available to later calls, so the
        order in which a test asks does not have to be the order of arrival.
        """
        async with asyncio.timeout(timeout):
            while True:
                for index, message in enumerate(self.seen):
                    if index not in self._taken and isinstance(message, kind) and where(message):
                        self._taken.add(index)
                        return message
                await self.messages.get()


@dataclasses.dataclass
class WorkerProcess:
    """A media worker started by a test."""

    process: asyncio.subprocess.Process
    port: int


@contextlib.asynccontextmanager
async def worker_process(
    control: Control, worker_id: str = "t1", extra: Sequence[str] = ()
) -> AsyncIterator[WorkerProcess]:
    """Start ``python -m assistline.sip.worker`` against ``control``; stop and reap it after."""
    port = free_udp_port()
    rtp = random.randrange(20000, 29000, 200)
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "assistline.sip.worker",
        *("--id", worker_id, "--port", str(port), "--control", str(control.path)),
        *("--rtp-min", str(rtp), "--rtp-max", str(rtp + 198)),
        *extra,
        stdout=asyncio.subprocess.DEVNULL,
    )
    try:
        yield WorkerProcess(process, port)
    finally:
        await stop_process(process)


async def stop_process(process: asyncio.subprocess.Process, grace: float = 5) -> None:
    """SIGTERM, then SIGKILL after ``grace`` seconds; always reaped."""
    if process.returncode is None:
        with contextlib.suppress(ProcessLookupError):
            process.terminate()
        try:
            await asyncio.wait_for(process.wait(), grace)
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                process.kill()
            await process.wait()


@dataclasses.dataclass
class SippRun:
    """What a finished sipp run reported."""

    returncode: int
    successful: int
    failed: int
    errors: str


async def run_sipp(
    scenario: str,
    target_port: int,
    *,
    service: str = "echo",
    calls: int = 1,
    pause_ms: int = 500,
    keys: Sequence[tuple[str, str]] = (),
    timeout: float = 40,
) -> SippRun:
    """Run sipp as a caller with ``scenario`` until its calls end; kill it on timeout."""
    assert SIPP is not None
    workdir = short_dir()
    (workdir / "pcap").symlink_to(SIPP_PCAPS)
    errors = workdir / "errors.log"
    args = [
        *(SIPP, "-sf", str(SCENARIOS / scenario), f"127.0.0.1:{target_port}"),
        *("-s", service, "-i", "127.0.0.1", "-p", str(free_udp_port())),
        *("-mp", str(free_media_base()), "-m", str(calls), "-l", str(calls), "-r", "50"),
        *("-d", str(pause_ms), "-nostdin", "-timeout", f"{int(timeout)}s"),
        *("-trace_err", "-error_file", str(errors)),
    ]
    for name, value in keys:
        args += ["-key", name, value]
    process = await asyncio.create_subprocess_exec(
        *args, cwd=workdir, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT
    )
    try:
        out, _ = await asyncio.wait_for(process.communicate(), timeout + 10)
    finally:
        await stop_process(process, grace=1)
        shutil.rmtree(workdir, ignore_errors=True)
    text = out.decode(errors="replace")
    return SippRun(
        process.returncode if process.returncode is not None else -1,
        _count(text, "Successful call"),
        _count(text, "Failed call"),
        errors.read_text(errors="replace") if errors.exists() else text,
    )


def _count(text: str, label: str) -> int:
    found = re.findall(rf"{label}\s*\|\s*\d+\s*\|\s*(\d+)", text)
    return int(found[-1]) if found else -1


class RtpSink(asyncio.DatagramProtocol):
    """A UDP socket that keeps every RTP packet it receives, with its sender."""

    def __init__(self) -> None:
        self.packets: list[tuple[bytes, tuple[str, int]]] = []
        self.first = asyncio.Event()
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        """Keep the transport for sending."""
        self.transport = typing.cast(asyncio.DatagramTransport, transport)

    def datagram_received(self, data: bytes, addr: Any) -> None:
        """Keep RTP version 2 packets."""
        if len(data) >= 12 and data[0] >> 6 == 2:
            self.packets.append((data, addr))
            self.first.set()


def rtp_packet(payload_type: int, seq: int, timestamp: int, ssrc: int, payload: bytes) -> bytes:
    """A minimal RTP packet (no CSRC, no extension)."""
    header = struct.pack("!BBHII", 0x80, payload_type, seq & 0xFFFF, timestamp, ssrc)
    return header + payload


def sip_response(
    request: bytes, status: str, tag: str, extra: tuple[tuple[str, str], ...] = ()
) -> bytes:
    """A bodiless response to ``request``: its Via, From, Call-ID and CSeq, its To with ``tag``."""
    head = request.split(b"\r\n\r\n", 1)[0].split(b"\r\n")[1:]
    copied = [
        line
        for line in head
        if line.split(b":", 1)[0].strip().lower() in (b"via", b"from", b"call-id", b"cseq")
    ]
    to = next(line for line in head if line.split(b":", 1)[0].strip().lower() == b"to")
    lines = [f"SIP/2.0 {status}".encode(), *copied, to + f";tag={tag}".encode()]
    lines += [f"{name}: {value}".encode() for name, value in (*extra, ("Content-Length", "0"))]
    return b"\r\n".join(lines) + b"\r\n\r\n"


def pid_alive(pid: int) -> bool:
    """True while ``pid`` exists (zombies count as gone once reaped)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


async def until(condition: Callable[[], bool], timeout: float, step: float = 0.05) -> None:
    """Poll ``condition`` every ``step`` seconds until true; TimeoutError after ``timeout``."""
    for _ in range(int(timeout / step)):
        if condition():
            return
        await asyncio.sleep(step)
    raise TimeoutError(f"condition still false after {timeout} s")


def consecutive_free_ports(count: int) -> int:
    """The first of ``count`` consecutive loopback ports free for UDP and TCP."""
    for _ in range(200):
        first = random.randrange(30000, 60000 - count)
        try:
            for port in range(first, first + count):
                for kind in (socket.SOCK_DGRAM, socket.SOCK_STREAM):
                    with socket.socket(socket.AF_INET, kind) as probe:
                        probe.bind(("127.0.0.1", port))
        except OSError:
            continue
        return first
    raise AssertionError("no free loopback ports")
