"""baresip (Debian ``baresip``) as an agent's SIP phone, headless, for tests.

It runs from a configuration directory of its own: no sound card (the
``ausine`` module is its microphone, a sine at a chosen frequency; ALSA's
``null`` device is its speaker), the ``sndfile`` filter dumps what it sends
and hears to WAV files, one account registered to the SIP edge with digest
credentials and ``answermode=auto`` (or ``manual``), and the ``ctrl_tcp`` module (JSON in
netstrings on a loopback TCP port) to watch its events (``REGISTER_OK``,
``CALL_ESTABLISHED``, ``CALL_CLOSED``) and to hang up. :meth:`Baresip.stop`
quits it, then terminates and kills it if needed: it never outlives a test.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import shutil
import socket
import wave
from pathlib import Path
from typing import Any

import numpy as np

from tests.integration.sip.worker_peers import free_udp_port, stop_process

BARESIP = shutil.which("baresip")
MODULES = Path("/usr/lib/baresip/modules")


def _free_tcp_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def _free_sip_port() -> int:
    """A port whose UDP and TCP, and TCP one above, are free: baresip's
    ``sip_listen`` binds SIP over UDP and TCP on it and SIP/TLS on the next."""
    while True:
        port = free_udp_port()
        if port >= 65535:
            continue
        probes = [socket.socket() for _ in range(2)]
        try:
            probes[0].bind(("127.0.0.1", port))
            probes[1].bind(("127.0.0.1", port + 1))
        except OSError:
            continue
        finally:
            for probe in probes:
                probe.close()
        return port


class _PortTaken(Exception):
    """baresip could not bind one of its ports."""


class Baresip:
    """One headless baresip registered as ``username`` at the edge on ``edge_port``."""

    def __init__(
        self,
        directory: Path,
        username: str,
        password: str,
        edge_port: int,
        tone_hz: int,
        *,
        answermode: str = "auto",
    ) -> None:
        self.directory = directory
        self.answermode = answermode
        self.username = username
        self.password = password
        self.edge_port = edge_port
        self.tone_hz = tone_hz
        self.sip_port = _free_sip_port()
        self.ctrl_port = _free_tcp_port()
        self.events: list[dict[str, Any]] = []
        self._arrived = asyncio.Event()
        self._process: asyncio.subprocess.Process | None = None
        self._reader_task: asyncio.Task[None] | None = None
        self._writer: asyncio.StreamWriter | None = None
        self._tokens = 0

    def _write_config(self) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        rtp = free_udp_port() // 2 * 2
        rtp = min(rtp, 65000)
        config = [
            "poll_method epoll",
            f"sip_listen 127.0.0.1:{self.sip_port}",
            "audio_player alsa,null",
            "audio_alert alsa,null",
            f"audio_source ausine,{self.tone_hz}",
            "ausrc_srate 48000",  # ausine makes 48 kHz stereo only; baresip resamples
            "ausrc_channels 2",
            f"module_path {MODULES}",
            "module g711.so",
            "module ausine.so",
            "module alsa.so",
            "module sndfile.so",
            f"snd_path {self.directory}",
            "module_app account.so",
            "module_app menu.so",
            "module_app ctrl_tcp.so",
            f"ctrl_tcp_listen 127.0.0.1:{self.ctrl_port}",
            f"rtp_ports {rtp}-{rtp + 20}",
        ]
        (self.directory / "config").write_text("\n".join(config) + "\n")
        account = (
            f"<sip:{self.username}@127.0.0.1:{self.edge_port}>;auth_pass={self.password}"
            f";answermode={self.answermode};regint=300;audio_codecs=PCMU,PCMA"
        )
        (self.directory / "accounts").write_text(account + "\n")

    async def start(self, timeout: float = 10.0) -> None:
        """Start baresip and connect to its control port.

        Ports are probed free just before, yet another process can take one
        in between (CI saw its SIP/TLS port taken): then new ports, up to
        three tries."""
        for attempt in range(3):
            try:
                await self._start(timeout)
                return
            except _PortTaken:
                if attempt == 2:
                    raise AssertionError(f"baresip exited: {self.log}") from None
                self.sip_port = _free_sip_port()
                self.ctrl_port = _free_tcp_port()

    async def _start(self, timeout: float) -> None:
        assert BARESIP is not None
        self._write_config()
        log = await asyncio.to_thread(open, self.directory / "baresip.log", "wb")
        try:
            self._process = await asyncio.create_subprocess_exec(
                BARESIP,
                "-f",
                str(self.directory),
                stdin=asyncio.subprocess.DEVNULL,
                stdout=log,
                stderr=log,
            )
        finally:
            log.close()
        async with asyncio.timeout(timeout):
            while True:
                try:
                    reader, self._writer = await asyncio.open_connection(
                        "127.0.0.1", self.ctrl_port
                    )
                    break
                except OSError:
                    if self._process.returncode is not None:
                        if "Address already in use" in self.log:
                            raise _PortTaken from None
                        raise AssertionError(f"baresip exited: {self.log}") from None
                    await asyncio.sleep(0.05)
        self._reader_task = asyncio.create_task(self._read(reader), name="baresip-ctrl")

    @property
    def log(self) -> str:
        """What baresip printed."""
        path = self.directory / "baresip.log"
        return path.read_text(errors="replace") if path.exists() else ""

    async def _read(self, reader: asyncio.StreamReader) -> None:
        while True:
            try:
                length = await reader.readuntil(b":")
            except (asyncio.IncompleteReadError, ConnectionError):
                return
            body = await reader.readexactly(int(length[:-1]))
            await reader.readexactly(1)  # the netstring's closing comma
            with contextlib.suppress(ValueError):
                self.events.append(json.loads(body))
                self._arrived.set()

    async def wait_event(self, kind: str, timeout: float = 15.0, after: int = 0) -> dict[str, Any]:
        """The first event of type ``kind`` (from index ``after`` on)."""
        async with asyncio.timeout(timeout):
            while True:
                for event in self.events[after:]:
                    if event.get("event") and event.get("type") == kind:
                        return event
                self._arrived.clear()
                await self._arrived.wait()

    async def command(self, command: str, params: str = "") -> None:
        """Send one ctrl_tcp command."""
        assert self._writer is not None
        self._tokens += 1
        body = json.dumps({"command": command, "params": params, "token": str(self._tokens)})
        data = body.encode()
        self._writer.write(str(len(data)).encode() + b":" + data + b",")
        await self._writer.drain()

    async def stop(self) -> None:
        """Quit baresip (terminate, then kill, if it does not) and close the control link."""
        if self._writer is not None and self._process and self._process.returncode is None:
            with contextlib.suppress(OSError):
                await self.command("quit")
        if self._process is not None:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._process.wait(), 3)
            await stop_process(self._process)
        if self._writer is not None:
            self._writer.close()
        if self._reader_task is not None:
            self._reader_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reader_task

    def dumps(self, kind: str) -> list[np.ndarray]:
        """Audio baresip dumped: ``dec`` is what it heard, ``enc`` what it sent (mono, 8 kHz)."""
        found = []
        for path in sorted(self.directory.glob(f"dump-*-{kind}.wav")):
            with wave.open(str(path), "rb") as wav:
                found.append(np.frombuffer(wav.readframes(wav.getnframes()), dtype="<i2"))
        return found
