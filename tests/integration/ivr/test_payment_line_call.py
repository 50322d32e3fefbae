"""A real call to the payment line, through Kamailio and a media worker, paying by card.

sipp sets the call up (``ivr_caller.xml``) and waits for the line to hang
up; the test is the caller's phone: it sends the RTP itself — silence, keys
as RFC 4733 events and as in-band tones — and keys each answer when the
flow asks for it (it watches the call's engine and capture in the app it
runs). The caller identifies, chooses to pay in full, keys a Visa test card
(the sandbox gateway approves it) and declines a receipt. Afterwards: the
payment row keeps brand, last four, amount and result, the balance is paid,
the audit trail has the secure window, the recording's pause covers the
window, and the card number and security code are in no log line, no table
and the recording.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import json
import logging
import struct
import wave
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import numpy as np
import pytest

from assistline.ivr.calls import IvrCall
from assistline.ivr.secure_capture_messages import Stage
from assistline.media.dtmf import DtmfDetector
from assistline.media.g711 import encode_ulaw
from assistline.media.tones import dtmf
from assistline.redaction import contains_card_number
from assistline.settings import IvrSettings
from assistline.signalling.keys import IVR_CALLS_KEY
from tests.integration.sip.app_server import Server, sip_app
from tests.integration.sip.worker_peers import RtpSink, rtp_packet, run_sipp

pytestmark = pytest.mark.slow

CARD = "4242424242424242"
SECURITY_CODE = "737"
EVENTS = {**{str(n): n for n in range(10)}, "*": 10, "#": 11}
SILENCE = encode_ulaw(np.zeros(160, dtype=np.int16)).tobytes()


@pytest.fixture
async def server(database_url: str) -> AsyncIterator[Server]:
    async with sip_app(database_url, [], ivr=IvrSettings(tts_words_per_minute=450)) as app:
        await app.db.execute(
            "INSERT INTO account (number, customer_id, name, postal_code, balance_cents,"
            " minimum_due_cents, due_date) VALUES ('123456', 'cust-1', 'Ann', '94105', 4210,"
            " 2500, $1)",
            datetime.date.today() + datetime.timedelta(days=10),
        )
        yield app


class Keypad:
    """The caller's RTP: 20 ms of silence at a time, or keys, to the worker's RTP port."""

    def __init__(self, transport: asyncio.DatagramTransport, sink: RtpSink) -> None:
        self.transport, self.sink = transport, sink
        self.seq = self.timestamp = 0
        self._queue: asyncio.Queue[tuple[int, bytes, int]] = asyncio.Queue()
        self._events = 0
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        await asyncio.wait_for(self.sink.first.wait(), 10)
        self._task = asyncio.create_task(self._send(self.sink.packets[0][1]))

    async def _send(self, to: tuple[str, int]) -> None:
        loop = asyncio.get_running_loop()
        start, count, event_at, last_event = loop.time(), 0, 0, -1
        while True:
            try:
                payload_type, payload, event = self._queue.get_nowait()
            except asyncio.QueueEmpty:
                payload_type, payload, event = 0, SILENCE, -1
            timestamp = self.timestamp
            if event >= 0:  # every packet of one event carries the event's start time
                if event != last_event:
                    event_at, last_event = self.timestamp, event
                timestamp = event_at
            packet = rtp_packet(payload_type, self.seq, timestamp, 0xCA11, payload)
            self.transport.sendto(packet, to)
            self.seq += 1
            self.timestamp += 160
            count += 1
            await asyncio.sleep(max(0.0, start + count * 0.02 - loop.time()))

    def rfc4733(self, keys: str) -> None:
        """Each key as an RFC 4733 event of 100 ms, then 100 ms of silence."""
        for key in keys:
            self._events += 1
            for step in range(1, 6):
                payload = struct.pack("!BBH", EVENTS[key], 10, step * 160)
                self._queue.put_nowait((101, payload, self._events))
            for _ in range(3):
                payload = struct.pack("!BBH", EVENTS[key], 0x80 | 10, 800)
                self._queue.put_nowait((101, payload, self._events))
            for _ in range(5):
                self._queue.put_nowait((0, SILENCE, -1))

    def inband(self, keys: str) -> None:
        """The keys as tones (80 ms on, 80 ms off)."""
        codes = encode_ulaw(dtmf(keys, 8000, on_ms=80, off_ms=80))
        codes = np.concatenate([codes, encode_ulaw(np.zeros(-len(codes) % 160, np.int16))])
        for i in range(0, len(codes), 160):
            self._queue.put_nowait((0, codes[i : i + 160].tobytes(), -1))

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        self.transport.close()


async def _until(check: Callable[[], bool], timeout: float = 30.0) -> None:
    async with asyncio.timeout(timeout):
        while True:
            if check():
                return
            await asyncio.sleep(0.05)


def _the_call(server: Server) -> IvrCall:
    calls = list(server.client.app[IVR_CALLS_KEY].calls.values())
    assert len(calls) == 1
    return calls[0]


@pytest.mark.parametrize("method", ["rfc4733", "inband"])
async def test_a_caller_pays_a_balance_by_card_and_no_card_digit_is_kept(
    server: Server, caplog: pytest.LogCaptureFixture, method: str
) -> None:
    caplog.set_level(logging.DEBUG)
    loop = asyncio.get_running_loop()
    transport, sink = await loop.create_datagram_endpoint(RtpSink, local_addr=("127.0.0.1", 0))
    keypad = Keypad(transport, sink)
    port = str(transport.get_extra_info("sockname")[1])
    sipp = asyncio.create_task(
        run_sipp(
            "ivr_caller.xml",
            server.edge_port,
            service="pay",
            keys=[("rtp_sink", port)],
            timeout=150,
        )
    )
    try:
        await keypad.start()
        call = _the_call(server)

        def asking(step: str) -> bool:
            return call.engine.step.name == step and call.engine.phase.name == "INPUT"

        desk = server.client.app[IVR_CALLS_KEY]._payments

        def capturing(stage: Stage) -> bool:
            run = desk._runs.get(call.id)  # type: ignore[attr-defined]
            return run is not None and run.capture.stage is stage

        # One method a call: a worker stops reporting in-band tones once a leg has
        # sent an RFC 4733 event (phones that send both would count each key twice).
        press = keypad.rfc4733 if method == "rfc4733" else keypad.inband
        await _until(lambda: asking("ask_account"))
        press("123456#")
        await _until(lambda: asking("ask_zip"))
        press("94105")
        await _until(lambda: asking("choose"))
        press("1")
        await _until(lambda: capturing(Stage.CARD_NUMBER))
        press(CARD + "#")
        await _until(lambda: capturing(Stage.EXPIRY))
        press("1230")
        await _until(lambda: capturing(Stage.SECURITY_CODE))
        press(SECURITY_CODE)
        await _until(lambda: capturing(Stage.POSTAL_CODE))
        press("94105")
        await _until(lambda: asking("offer_receipt"))
        press("9")
        result = await sipp
        assert (result.successful, result.failed) == (1, 0), result.errors
    finally:
        await keypad.close()
        if not sipp.done():
            sipp.cancel()

    db = server.db
    payment = await db.fetchrow("SELECT * FROM payment")
    assert payment is not None
    assert (payment["outcome"], payment["brand"], payment["last4"]) == ("approved", "visa", "4242")
    assert payment["amount_cents"] == 4210 + 105  # the IVR's convenience fee: 2.5 %, half up
    assert len(payment["confirmation"]) == 8
    assert await db.fetchval("SELECT balance_cents FROM account") == 0
    actions = [r["action"] for r in await db.fetch("SELECT action FROM audit_event ORDER BY id")]
    assert actions == ["secure_capture.start", "secure_capture.end"]

    # No card number or security code in any table (as text) nor in any log line.
    for table in ("account", "payment", "audit_event", "call_record", "recording"):
        for row in await db.fetch(f"SELECT t::text AS line FROM {table} t"):  # noqa: S608
            assert CARD not in row["line"] and not contains_card_number(row["line"]), table
    assert CARD not in caplog.text and not contains_card_number(caplog.text)
    assert f"'{SECURITY_CODE}'" not in caplog.text

    # The recording: paused over the secure window, and no key of the card in it.
    recording = await db.fetchrow("SELECT path FROM recording")
    assert recording is not None
    path = Path(recording["path"])
    async with asyncio.timeout(10):
        while True:
            sidecar = json.loads(path.with_suffix(".json").read_text())
            if sidecar.get("complete"):
                break
            await asyncio.sleep(0.1)
    assert len(sidecar["pauses"]) == 1
    with wave.open(str(path), "rb") as wav:
        rate = wav.getframerate()
        audio = np.frombuffer(wav.readframes(wav.getnframes()), dtype="<i2").reshape(-1, 2)
    pause = sidecar["pauses"][0]
    assert not audio[pause["start_sample"] : pause["end_sample"]].any()
    heard = ""
    for channel in (audio[:, 0], audio[:, 1]):
        detector = DtmfDetector(rate)
        heard += "".join(e.digit for e in [*detector.feed(channel.copy()), *detector.flush()])
    # Outside the window: the ZIP code (in-band) and the menu key may be there; no card.
    assert CARD not in heard and "1230" not in heard and SECURITY_CODE not in heard
