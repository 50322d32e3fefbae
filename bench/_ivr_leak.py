"""bench/ivr.py's leak check: card keys in a secure window never reach the agent's leg.

Measured at the media worker's protocol, as ``tests/integration/sip/test_secure_window.py``
does: an agent-assisted payment from the console exists only for WebRTC
customers, and the payment line has no agent leg, so the bench is the
control process here. It listens on a control socket, starts a media worker
(``python -m assistline.sip.worker``, on the server's core) per condition,
and places two calls to the worker's echo extension with sipp: the
customer (whose RTP goes through the loss and jitter of the condition) and
the agent (clean). It then does what the payment desk does: ``bridge``,
``secure_start`` on the customer's leg, the customer keys card numbers,
expiries, security codes and ZIP codes (RFC 4733 or in-band, one method a
call), then 600 ms of a 700 Hz "voice", then ``secure_end``.

Everything the agent's socket receives is kept. **Leaks** are the digits
the media core's own detector (:class:`~assistline.media.dtmf.DtmfDetector`)
finds in the agent's audio between the ``secure_start`` answer and the
``secure_end`` answer, plus every RFC 4733 event (payload type 101) the agent
receives at all (a worker never forwards them). The same detector checks
the instrument: keys pressed before the window (``147``) and after it
(``9``) must be heard by the agent when they are in-band; the voice must
pass in the window (suppression removes tones, not speech); and the digits
the worker reported to the control socket in the window are compared with
what was keyed.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import itertools
import os
import random
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
from _ivr_caller import Call, Callers, Card
from _ivr_media import EVENT_PT, PCMU, Impairment, MarkerDetector, Method, levenshtein
from _server import SERVER_CORE, free_port, log, on_core

from assistline.media.dtmf import DtmfDetector
from assistline.media.g711 import decode_ulaw
from assistline.sip import protocol, protocol_wire

M = TypeVar("M")
BEFORE, AFTER = "147", "9"
VOICE_HZ = 700
#: The voice lasts 30 frames; the agent must hear most of them through the window.
VOICE_FRAMES_NEEDED = 20


class WorkerLink:
    """One worker's connection to the bench's control socket."""

    def __init__(self, writer: asyncio.StreamWriter) -> None:
        self.writer = writer
        self.seen: list[tuple[float, protocol.Message]] = []
        self.changed = asyncio.Event()
        self._ids = itertools.count(1)
        self._taken: set[int] = set()

    async def command(self, make: Callable[[int], protocol.Command]) -> protocol.Result:
        """Send a command and wait for its result (an error raises)."""
        request = next(self._ids)
        self.writer.write(protocol_wire.encode(make(request)))
        await self.writer.drain()
        answer = await self.expect(
            object, lambda m: isinstance(m, protocol.Result | protocol.Error) and m.id == request
        )
        if isinstance(answer, protocol.Error):
            raise RuntimeError(f"worker refused {type(make(0)).__name__}: {answer.message}")
        assert isinstance(answer, protocol.Result)
        return answer

    async def expect(
        self, kind: type[M], where: Callable[[M], bool] = lambda _: True, timeout: float = 15
    ) -> M:
        """The oldest message of ``kind`` matching ``where`` not returned yet."""
        async with asyncio.timeout(timeout):
            while True:
                for index, (_, message) in enumerate(self.seen):
                    if index not in self._taken and isinstance(message, kind) and where(message):
                        self._taken.add(index)
                        return message
                self.changed.clear()
                await self.changed.wait()


class ControlSocket:
    """The bench as the control process: a Unix socket workers connect to."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.links: dict[str, WorkerLink] = {}
        self.arrived = asyncio.Event()
        self._server: asyncio.Server | None = None

    async def start(self) -> None:
        """Listen."""
        self._server = await asyncio.start_unix_server(self._serve, path=str(self.path))

    async def close(self) -> None:
        """Stop listening and drop every worker's connection."""
        for link in self.links.values():
            link.writer.close()
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        decoder = protocol_wire.Decoder("to_control")
        link = WorkerLink(writer)
        while data := await reader.read(65536):
            for message in decoder.feed(data):
                if isinstance(message, protocol.Hello):
                    self.links[message.worker] = link
                    self.arrived.set()
                link.seen.append((time.monotonic(), message))
                link.changed.set()

    async def link(self, worker: str, timeout: float = 60) -> WorkerLink:
        """The worker's connection, once it said hello."""
        async with asyncio.timeout(timeout):
            while worker not in self.links:
                self.arrived.clear()
                await self.arrived.wait()
        return self.links[worker]


def _digits(payloads: list[bytes]) -> str:
    if not payloads:
        return ""
    detector = DtmfDetector(8000)
    samples = decode_ulaw(b"".join(payloads))
    return "".join(event.digit for event in [*detector.feed(samples), *detector.flush()])


def _voice_frames(payloads: list[bytes]) -> int:
    """Frames whose strongest component is the voice's 700 Hz."""
    if not payloads:
        return 0
    frames = decode_ulaw(b"".join(payloads)).astype(np.float32).reshape(len(payloads), -1)
    power = np.abs(np.fft.rfft(frames, axis=1)) ** 2
    loud = power.sum(axis=1) > 160**2 / 2 * 300.0**2
    return int(np.count_nonzero(loud & (power.argmax(axis=1) == VOICE_HZ // 50)))


async def _call(
    work: Path, sip_port: int, link: WorkerLink, method: Method, impair: Any, keep: bool
) -> tuple[Callers, Call, str]:
    callers = Callers(work, 0, MarkerDetector({}))
    call = Call(0, method, None, {}, False, impair, keep=keep)
    await callers.add(call)
    callers.start(1, service="echo", target=f"127.0.0.1:{sip_port}")
    answered = await link.expect(protocol.Answered, timeout=20)
    await asyncio.wait_for(call.first.wait(), 10)
    return callers, call, answered.leg


async def _until_sent(call: Call) -> None:
    # The keypad empties one frame a tick; a late tick leaves a frame or two more.
    await asyncio.sleep(call.keypad.seconds_left + 0.1)


async def leak_condition(
    control: ControlSocket, work: Path, method: Method, loss: float, cards: int, rtp: int
) -> dict[str, Any]:
    """One condition's call pair, window and figures (see the module)."""
    name = f"leak-{method}-{round(loss * 100)}"
    sip_port = free_port()
    errors = open(work / f"{name}.log", "wb")  # noqa: ASYNC230, SIM115 - the child's stderr
    worker = await asyncio.create_subprocess_exec(
        *(sys.executable, "-m", "assistline.sip.worker", "--id", name, "--port", str(sip_port)),
        *("--control", str(control.path), "--rtp-min", str(rtp), "--rtp-max", str(rtp + 98)),
        *("--parent", str(os.getpid()), "--jitter-discard", "none"),
        stdout=asyncio.subprocess.DEVNULL,
        stderr=errors,
        preexec_fn=on_core(SERVER_CORE),
    )
    pairs: list[Callers] = []
    try:
        link = await control.link(name)
        rng = random.Random(f"leak {method} {loss}")
        impair = (Impairment(loss, 0.020, rng), Impairment(loss, 0.020, rng))
        callers, customer, customer_leg = await _call(work, sip_port, link, method, impair, False)
        pairs.append(callers)
        callers, agent, agent_leg = await _call(work, sip_port, link, "inband", None, True)
        pairs.append(callers)
        await link.command(lambda r: protocol.Bridge(r, customer_leg, agent_leg))
        await asyncio.sleep(0.5)
        bridged = time.monotonic()
        customer.press(BEFORE)
        await _until_sent(customer)
        await asyncio.sleep(0.8)
        await link.command(lambda r: protocol.SecureStart(r, customer_leg))
        window_start = time.monotonic()
        keyed = ""
        for _ in range(cards):
            card = Card.random(rng, datetime.date.today())
            keyed += card.number + "#" + card.expiry + card.security_code + card.postal_code
        customer.press(keyed)
        await _until_sent(customer)
        voice = np.sin(2 * np.pi * VOICE_HZ * np.arange(160 * 30) / 8000) * 6000
        customer.keypad.play(voice.astype(np.int16))
        await _until_sent(customer)
        await asyncio.sleep(0.6)
        await link.command(lambda r: protocol.SecureEnd(r, customer_leg))
        window_end = time.monotonic()
        await asyncio.sleep(0.3)
        customer.press(AFTER)
        await _until_sent(customer)
        await asyncio.sleep(0.8)
        finished = time.monotonic()
        await link.command(lambda r: protocol.Hangup(r, customer_leg, 0))
    finally:
        for callers in pairs:
            await callers.stop()
        if worker.returncode is None:
            worker.terminate()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(worker.wait(), 10)
        if worker.returncode is None:
            worker.kill()
            await worker.wait()
        errors.close()
    reported = "".join(
        message.digit
        for when, message in link.seen
        if isinstance(message, protocol.Digit)
        and message.leg == customer_leg
        and window_start <= when <= window_end
    )

    def audio(start: float, end: float) -> list[bytes]:
        return [p for when, pt, _, p in agent.log if pt == PCMU and start <= when <= end]

    in_window = audio(window_start, window_end)
    leaked_inband = _digits(in_window)
    events = {(pt, stamp) for _, pt, stamp, _ in agent.log if pt == EVENT_PT}
    heard_before, heard_after = (
        _digits(audio(bridged, window_start)),
        _digits(audio(window_end, finished)),
    )
    expect_heard = method == "inband"
    voice_frames = _voice_frames(in_window)
    digits_keyed = sum(1 for key in keyed if key.isdigit())
    figures = {
        "method": method,
        "loss_percent": loss * 100,
        "keys_in_window": len(keyed),
        "card_digits_in_window": digits_keyed,
        "leaked_inband_digits": len(leaked_inband),
        "leaked_rfc4733_events": len(events),
        "leaked": len(leaked_inband) + len(events),
        "agent_frames_in_window": len(in_window),
        "voice_frames_heard_in_window": voice_frames,
        "agent_heard_keys_before_window": len(heard_before),
        "agent_heard_keys_after_window": len(heard_after),
        "instrument_ok": voice_frames >= VOICE_FRAMES_NEEDED
        and (
            (heard_before, heard_after) == (BEFORE, AFTER)
            if expect_heard
            else heard_before == heard_after == ""
        ),
        "worker_reported_keys": len(reported),
        "worker_key_errors": levenshtein(keyed, reported),
        "customer_packets_dropped": impair[0].dropped,
    }
    log(
        f"  leak {method} at {loss:.0%} loss: {figures['leaked']} leaked of "
        f"{len(keyed)} keys; agent heard {len(heard_before)} before / "
        f"{len(heard_after)} after the window; worker got {len(reported)} keys"
    )
    return figures
