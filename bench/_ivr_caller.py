"""bench/ivr.py's callers: sipp sets the calls up, this module is their phones' RTP.

One sipp process places a batch of calls to the payment line through the
edge (``ivr_scenarios/caller.xml``, each call's RTP port from the injection
file) and answers the line's BYE. Each call's RTP is a :class:`Call` here:
a loopback UDP socket that learns where the worker wants its RTP from the
worker's SDP answer (sipp writes it to a file, see the scenario) and takes
packets from there only (another test's stray packets to a reused port are
counted and dropped), sends a :class:`~_ivr_media.Keypad`'s frames every
20 ms and listens for the marker prompts (:mod:`_ivr_media`). A
:class:`Script` knows the payment line's flow: on each marker it names the
keys to press (account and ZIP code, ``1`` to pay in full, the card's four
fields, ``9`` to end) and keeps what was keyed for each field entry and
which entries the line refused (an ``.invalid``, ``.no_input`` or
``.expired`` prompt of that field). One task (:class:`Callers`) sends every
call's frame each 20 ms tick and runs the marker detector over every frame
received since the last tick in one numpy pass.

``listen`` callers wait for a prompt to end (the marker WAV's length) and
half a second more before keying, as people do; the others key as soon as
a prompt is named (barge-in). Loss and jitter (:class:`~_ivr_media.Impairment`)
are applied both ways as packets cross the call's socket, so what travels
on ``lo`` is the impaired stream.

A prompt named again while its caller is still keying the answer to it, or
before it keyed anything since, is one playing heard twice (a damaged frame
split the tone's run), counted as a repeat and not answered twice. A
caller whose call went to an agent (a transfer step of the flow) or that
heard no marker for 45 s gives up: it goes silent and the line's media
timeout ends the call. A tick more than 20 ms late (frames more than 40 ms
apart) is kept as a stall of this process (:attr:`Callers.stalls`).
"""

from __future__ import annotations

import asyncio
import collections
import dataclasses
import datetime
import random
import time
import typing
from collections.abc import Callable
from pathlib import Path
from typing import Any

from _ivr_media import (
    FRAME,
    PCMU,
    Impairment,
    Keypad,
    MarkerDetector,
    MarkerRun,
    Method,
    rtp_header,
    rtp_packet,
)
from _server import free_port, log
from _sip_load import sipp

SCENARIOS = Path(__file__).parent / "ivr_scenarios"
FIELDS = ("card_number", "expiry", "security_code", "postal_code")
#: Seconds a listening caller waits after a prompt ends before keying.
THINK = 0.5
#: A call that was up and received nothing for this long has ended.
QUIET_END = 5.0
#: A tick this late (s) sends frames more than 40 ms apart: the callers, not the line, were late.
LATE_TICK = 0.020
#: A call up this long without a marker prompt is stuck: its caller gives up.
STALL = 45.0


def luhn_digit(digits: str) -> str:
    """The check digit that makes ``digits`` + it pass the Luhn check."""
    total = 0
    for index, char in enumerate(reversed(digits)):
        value = int(char) * (2 if index % 2 == 0 else 1)
        total += value - 9 if value > 9 else value
    return str(-total % 10)


@dataclasses.dataclass(frozen=True, slots=True)
class Card:
    """What a caller keys for one payment attempt (random test data, a Visa number)."""

    number: str
    expiry: str
    security_code: str
    postal_code: str

    @classmethod
    def random(cls, rng: random.Random, today: datetime.date) -> Card:
        """A Luhn-valid 16-digit Visa number, a future expiry, a code and a ZIP code."""
        body = "4" + "".join(rng.choice("0123456789") for _ in range(14))
        year = today.year + rng.randint(1, 5)
        return cls(
            body + luhn_digit(body),
            f"{rng.randint(1, 12):02d}{year % 100:02d}",
            f"{rng.randrange(1000):03d}",
            f"{rng.randrange(100000):05d}",
        )

    def value(self, field: str) -> str:
        """One field's keys."""
        return self.number if field == "card_number" else str(getattr(self, field))


@dataclasses.dataclass(eq=False)
class Entry:
    """One field keyed once; ``verdict`` is the line's refusal of it, if any."""

    field: str
    keys: str
    verdict: str = ""
    started_at: float | None = None  # the first key's press
    pressed_at: float | None = None  # the last key's press
    released_at: float | None = None  # the last key's release


@dataclasses.dataclass(eq=False)
class Attempt:
    """One secure capture: every field entry keyed in it, in order."""

    card: Card
    entries: list[Entry] = dataclasses.field(default_factory=list)

    def last(self, field: str) -> Entry | None:
        """The latest entry of ``field``."""
        return next((e for e in reversed(self.entries) if e.field == field), None)

    def complete(self) -> bool:
        """Whether every field's latest entry stands (the capture charged the card)."""
        finals = [self.last(field) for field in FIELDS]
        return all(entry is not None and not entry.verdict for entry in finals)


@dataclasses.dataclass(eq=False)
class Script:
    """A caller on the payment line: what to key on each prompt, and what was keyed."""

    account: str
    postal_code: str
    rng: random.Random
    attempts_planned: int | None  # None: pay (and be declined) until stopped
    endings: dict[str, str]  # the flow's hangup and transfer steps: "hangup" or "transfer"
    attempts: list[Attempt] = dataclasses.field(default_factory=list)
    identification_keys: int = 0
    identification_refusals: int = 0
    menu_refusals: int = 0
    unexpected: list[str] = dataclasses.field(default_factory=list)
    declined: int = 0
    ending: str = ""

    def heard(self, key: str) -> tuple[str, Entry | None]:
        """The keys to press for prompt ``key`` ("" for none), and the card entry they are."""
        flow, _, rest = key.partition(".")
        step, _, variant = rest.partition(".")
        if flow == "secure":
            return self._secure(step, variant)
        match step:
            case "ask_account" | "ask_zip":
                if variant:
                    self.identification_refusals += 1
                keys = self.account + "#" if step == "ask_account" else self.postal_code
                self.identification_keys += len(keys.rstrip("#"))
                return keys, None
            case "not_found":
                self.identification_refusals += 1
            case "choose" if variant == "1":
                more = self.attempts_planned is None or len(self.attempts) < self.attempts_planned
                return ("1" if more else "9"), None
            case "choose" if variant in ("invalid", "no_input"):
                self.menu_refusals += 1
            case "offer_receipt" if variant == "1":
                return "9", None
            case "declined":
                self.declined += 1
            case _ if step in self.endings:
                self.ending = step
        return "", None

    def _secure(self, field: str, variant: str) -> tuple[str, Entry | None]:
        if field not in FIELDS or variant == "cleared":
            self.unexpected.append(f"secure.{field}.{variant}")
            return "", None
        attempt = self.attempts[-1] if self.attempts else None
        if not variant and field == "card_number":
            attempt = Attempt(Card.random(self.rng, datetime.date.today()))
            self.attempts.append(attempt)
        if attempt is None:
            self.unexpected.append(f"secure.{field}.{variant}")
            return "", None
        if variant:
            refused = attempt.last(field)
            if refused is None or refused.verdict:
                self.unexpected.append(f"secure.{field}.{variant}")
            else:
                refused.verdict = variant
        entry = Entry(field, attempt.card.value(field))
        attempt.entries.append(entry)
        keys = entry.keys + "#" if field == "card_number" else entry.keys
        return keys, entry


class Call(asyncio.DatagramProtocol):
    """One caller's RTP socket, keypad and script."""

    def __init__(
        self,
        index: int,
        method: Method,
        script: Script | None,
        durations: dict[str, float],
        listen: bool,
        impair: tuple[Impairment, Impairment] | None,
        keep: bool = False,
    ) -> None:
        self.index = index
        self.method = method
        self.script = script
        self.keypad = Keypad(method)
        self.run = MarkerRun()
        self._durations = durations
        self._listen = listen
        self.impair = impair
        self._keep = keep
        #: With ``keep``: every packet received (time, payload type, RTP timestamp, payload).
        self.log: list[tuple[float, int, int, bytes]] = []
        self.transport: asyncio.DatagramTransport | None = None
        self.remote: tuple[str, int] | None = None  # from the far end's SDP answer
        self.strays = 0
        self.repeats = 0
        self.gave_up = False
        self.port = 0
        self.up_at: float | None = None
        self.first = asyncio.Event()  # set by the worker's first packet
        self.last_rx = 0.0
        self.ended = False
        self.received: list[bytes] = []  # PCMU payloads since the last tick
        self.heard: list[tuple[float, str]] = []
        self.presses: list[tuple[float, str]] = []
        self._seq = random.randrange(65536)
        self._timestamp = random.randrange(2**32)
        self._ssrc = random.randrange(2**32)
        self._event = 0
        self._event_timestamp = 0
        self._marks: collections.deque[list[Any]] = collections.deque()
        self._out: collections.deque[tuple[float, bytes]] = collections.deque()
        self._in: collections.deque[tuple[float, bytes]] = collections.deque()
        self._timers: dict[str, asyncio.TimerHandle | None] = {"out": None, "in": None}

    # --------------------------------------------------------------- the socket

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        """Keep the transport and its port."""
        self.transport = typing.cast(asyncio.DatagramTransport, transport)
        self.port = int(transport.get_extra_info("sockname")[1])

    def datagram_received(self, data: bytes, addr: tuple[str | Any, int]) -> None:
        """A packet from the worker, through the impairment when there is one."""
        if self.remote is None:
            self.remote = (str(addr[0]), int(addr[1]))
        if self.impair is None:
            self._receive(data)
        else:
            self._delay("in", self.impair[1], data)

    def _receive(self, data: bytes) -> None:
        now = time.monotonic()
        if self.up_at is None:
            self.up_at = now
            self.first.set()
        self.last_rx = now
        header = rtp_header(data)
        if header is None:
            return
        if self._keep:
            self.log.append((now, header[0], header[2], data[12:]))
        elif header[0] == PCMU and len(data) == 12 + FRAME:
            self.received.append(data[12:])

    def _send(self, data: bytes) -> None:
        if self.transport is not None and self.remote is not None and not self.ended:
            self.transport.sendto(data, self.remote)

    def _delay(self, direction: str, impairment: Impairment, data: bytes) -> None:
        due = impairment.release_time(time.monotonic())
        if due is None:
            return
        queue = self._out if direction == "out" else self._in
        queue.append((due, data))
        if self._timers[direction] is None:
            self._schedule(direction)

    def _schedule(self, direction: str) -> None:
        queue = self._out if direction == "out" else self._in
        if not queue:
            self._timers[direction] = None
            return
        loop = asyncio.get_running_loop()
        self._timers[direction] = loop.call_at(queue[0][0], self._release, direction)

    def _release(self, direction: str) -> None:
        queue = self._out if direction == "out" else self._in
        deliver = self._send if direction == "out" else self._receive
        now = time.monotonic()
        while queue and queue[0][0] <= now + 0.0005:
            deliver(queue.popleft()[1])
        self._schedule(direction)

    def close(self) -> None:
        """Stop sending and close the socket."""
        self.ended = True
        for timer in self._timers.values():
            if timer is not None:
                timer.cancel()
        if self.transport is not None:
            self.transport.close()

    # --------------------------------------------------------------- each tick

    def tick(self, now: float) -> None:
        """Send this tick's frame (once the worker's address is known)."""
        if self.remote is None or self.ended:
            return
        if self.up_at is not None and now - self.last_rx > QUIET_END:
            self.ended = True
            return
        if self.gave_up:
            return  # silent: the line's media timeout hangs up
        if self.up_at is not None and self.script is not None:
            last = self.heard[-1][0] if self.heard else self.up_at
            transferred = self.script.endings.get(self.script.ending) == "transfer"
            if transferred or now - last > STALL:
                self.gave_up = True
                return
        frame = self.keypad.next_frame()
        timestamp = self._timestamp
        if frame.event:
            if frame.event != self._event:
                self._event, self._event_timestamp = frame.event, self._timestamp
            timestamp = self._event_timestamp
        packet = rtp_packet(
            frame.payload_type, self._seq, timestamp, self._ssrc, frame.payload, frame.marker
        )
        self._seq += 1
        self._timestamp += FRAME
        if frame.edge:
            self._edge(frame.edge, now)
        if self.impair is None:
            self._send(packet)
        else:
            self._delay("out", self.impair[0], packet)

    def _edge(self, edge: str, now: float) -> None:
        if not self._marks:
            return
        mark = self._marks[0]  # [entry, presses left, releases left, keys]
        entry: Entry | None = mark[0]
        if edge == "press":
            if mark[1] == mark[3] and entry is not None:
                entry.started_at = now
            mark[1] -= 1
            if mark[1] == 0 and entry is not None:
                entry.pressed_at = now
        else:
            mark[2] -= 1
            if mark[2] == 0:
                if entry is not None:
                    entry.released_at = now
                self._marks.popleft()

    def prompt(self, key: str, now: float) -> None:
        """A marker prompt was named: key what the script says, now or once it has played.

        The same prompt named again before this caller keyed anything since, or
        while it is still keying its answer to it, is the same playing heard
        twice (a frame of the tone came damaged), not the line asking again.
        """
        if self.heard and self.heard[-1][1] == key:
            keyed_since = bool(self.presses) and self.presses[-1][0] >= self.heard[-1][0]
            if not keyed_since or self.keypad.busy:
                self.repeats += 1
                return
        self.heard.append((now, key))
        if self.script is None:
            return
        keys, entry = self.script.heard(key)
        if not keys:
            return
        delay = 0.0
        if self._listen:
            delay = max(0.0, self._durations.get(key, 0.0) - 0.06) + THINK
        press: Callable[[], None] = lambda: self.press(keys, entry)  # noqa: E731 - a closure
        asyncio.get_running_loop().call_later(delay, press)

    def press(self, keys: str, entry: Entry | None = None) -> None:
        """Key ``keys`` after anything queued; ``entry`` learns its last key's times."""
        if self.ended:
            return
        # The last key of an entry is its last digit (a card number's "#" is not card data).
        digits = keys.rstrip("#")
        self._marks.append([entry, len(digits), len(digits), len(digits)])
        if len(digits) < len(keys):
            extra = len(keys) - len(digits)
            self._marks.append([None, extra, extra, extra])
        self.presses.append((time.monotonic(), keys))
        self.keypad.press(keys)


class Callers:
    """A batch of calls: their sipp, their sockets and the 20 ms task that drives them."""

    def __init__(self, work: Path, edge_port: int, detector: MarkerDetector) -> None:
        self.work = work
        self.edge_port = edge_port
        self.detector = detector
        self.calls: list[Call] = []
        self.sipp_errors = ""
        self._sipp: Any = None
        self._answers: Path | None = None
        #: When this process sent late (from, to: monotonic s), a tick over LATE_TICK late.
        self.stalls: list[tuple[float, float]] = []
        self._answers_read = 0
        self._task: asyncio.Task[None] | None = None

    async def add(self, call: Call) -> None:
        """Open ``call``'s socket (before :meth:`start`)."""
        loop = asyncio.get_running_loop()
        await loop.create_datagram_endpoint(lambda: call, local_addr=("127.0.0.1", 0))
        self.calls.append(call)

    def start(self, rate: float, service: str = "pay", target: str = "") -> None:
        """Place the calls at ``rate`` a second and start ticking."""
        injection = self.work / f"calls-{len(self.calls)}-{time.monotonic_ns()}.csv"
        injection.write_text("SEQUENTIAL\n" + "".join(f"{c.port}\n" for c in self.calls))
        count = str(len(self.calls))
        self._answers = injection.with_suffix(".answers")
        self._answers.touch()
        self._sipp = sipp(
            [
                *("-sf", str(SCENARIOS / "caller.xml"), "-inf", str(injection)),
                *("-key", "answers", str(self._answers)),
                *("-s", service, "-m", count, "-l", count, "-r", f"{rate:g}", "-rp", "1000"),
                *("-p", str(free_port()), "-mp", str(free_port())),
                *("-trace_err", "-error_file", str(injection.with_suffix(".errors"))),
                target or f"127.0.0.1:{self.edge_port}",
            ],
            self.work,
        )
        self._task = asyncio.get_running_loop().create_task(self._ticks())

    async def _ticks(self) -> None:
        loop = asyncio.get_running_loop()
        start, count = loop.time(), 0
        while True:
            now = time.monotonic()
            late = loop.time() - (start + count * 0.02)
            if late > LATE_TICK:
                self.stalls.append((now - late, now))
            if count % 5 == 0:
                self._read_answers()
            for call in self.calls:
                call.tick(now)
            self._detect(now)
            count += 1
            await asyncio.sleep(max(0.0, start + count * 0.02 - loop.time()))

    def _read_answers(self) -> None:
        """Each call's far end RTP port, from the SDP answers sipp has written so far."""
        if self._answers is None:
            return
        with self._answers.open() as answers:
            answers.seek(self._answers_read)
            text = answers.read()
        complete = text[: text.rfind("\n") + 1]
        self._answers_read += len(complete)
        by_port = {call.port: call for call in self.calls}
        for line in complete.splitlines():
            ours, theirs = (int(n) for n in line.split()[:2])
            if ours in by_port:
                by_port[ours].remote = ("127.0.0.1", theirs)

    def _detect(self, now: float) -> None:
        owners: list[Call] = []
        payloads: list[bytes] = []
        for call in self.calls:
            if call.received:
                owners.extend([call] * len(call.received))
                payloads.extend(call.received)
                call.received = []
        for call, found in zip(owners, self.detector.frame_bins(payloads), strict=True):
            heard = call.run.feed(int(found))
            if heard:
                call.prompt(self.detector.key(heard), now)

    def up(self) -> int:
        """Calls whose worker has sent them RTP and that have not ended."""
        return sum(1 for call in self.calls if call.up_at is not None and not call.ended)

    def done(self) -> bool:
        """Whether every call has ended (or sipp has given up on it)."""
        sipp_gone = self._sipp is not None and self._sipp.poll() is not None
        return all(
            call.ended or call.gave_up or (sipp_gone and call.up_at is None) for call in self.calls
        )

    async def wait(self, timeout: float) -> bool:
        """Until every call has ended, or ``timeout`` seconds; whether they all did."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.done():
                return True
            await asyncio.sleep(0.25)
        return False

    async def stop(self) -> None:
        """Stop ticking, close every socket, and end sipp."""
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
        for call in self.calls:
            call.close()
        if self._sipp is not None:
            if self._sipp.poll() is None:
                self._sipp.terminate()
            try:
                _, errors = await asyncio.to_thread(self._sipp.communicate, timeout=10)
                self.sipp_errors = errors.decode(errors="replace")[-400:]
            except Exception:  # noqa: BLE001 - a stuck sipp is killed, whatever went wrong
                self._sipp.kill()
                self._sipp.wait()
            if self._sipp.returncode not in (0, -15):
                log(f"  sipp exited {self._sipp.returncode}: {self.sipp_errors[-200:]}")
