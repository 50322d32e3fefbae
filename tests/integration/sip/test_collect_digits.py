"""collect_digits on a real worker: digits keyed as in-band tones into an echo call.

The test plays the control process; sipp calls the echo extension and the
test sends the tones from its own RTP socket to the worker (the way
test_worker.py's echo test does), so each outcome is driven by real
audio through the media core's detector.
"""

from __future__ import annotations

import asyncio

from assistline.media.g711 import encode_alaw
from assistline.media.tones import dtmf
from assistline.sip import protocol
from tests.integration.sip.worker_peers import (
    Control,
    RtpSink,
    free_udp_port,
    rtp_packet,
    run_sipp,
    worker_process,
)


async def test_collect_digits_ends_on_max_terminator_and_silence(control: Control) -> None:
    loop = asyncio.get_running_loop()
    sink_port = free_udp_port()
    transport, sink = await loop.create_datagram_endpoint(
        RtpSink, local_addr=("127.0.0.1", sink_port)
    )
    seq = 0

    async def key(keys: str) -> None:
        nonlocal seq
        codes = encode_alaw(dtmf(keys, 8000, on_ms=80, off_ms=80))
        for index in range(len(codes) // 160):
            payload = codes[index * 160 : (index + 1) * 160].tobytes()
            transport.sendto(rtp_packet(8, seq, seq * 160, 99, payload), worker_rtp)
            seq += 1
            await asyncio.sleep(0.02)

    async def collect(request: int, command: protocol.CollectDigits) -> None:
        await control.send(command)
        assert await control.expect(protocol.Result, lambda r: r.id == request) == (
            protocol.Result(request, "")
        )

    try:
        async with worker_process(control) as worker:
            await control.expect(protocol.Hello)
            sipp = asyncio.create_task(
                run_sipp(
                    "echo_call.xml", worker.port, pause_ms=9000, keys=[("rtp_sink", str(sink_port))]
                )
            )
            leg = (await control.expect(protocol.IncomingCall)).leg
            await control.expect(protocol.Answered, lambda e: e.leg == leg)
            await asyncio.wait_for(sink.first.wait(), 5)
            worker_rtp = sink.packets[0][1]

            # Bad requests are refused at once, naming what is wrong.
            await control.send(protocol.CollectDigits(1, "t1-99", 1, 4, "#", 1000, 1000))
            error = await control.expect(protocol.Error, lambda e: e.id == 1)
            assert (error.code, error.message) == (404, "no leg t1-99")
            await control.send(protocol.CollectDigits(2, leg, 3, 2, "#", 1000, 1000))
            error = await control.expect(protocol.Error, lambda e: e.id == 2)
            assert (error.code, "min_digits" in error.message) == (400, True)

            await collect(3, protocol.CollectDigits(3, leg, 1, 2, "#", 5000, 3000))
            await key("42")
            done = await control.expect(protocol.DigitsCollected)
            assert done == protocol.DigitsCollected(leg, "42", "max_digits", True)

            await collect(4, protocol.CollectDigits(4, leg, 2, 8, "#", 5000, 3000))
            await key("9#")
            done = await control.expect(protocol.DigitsCollected)
            assert done == protocol.DigitsCollected(leg, "9", "terminator", False)

            await collect(5, protocol.CollectDigits(5, leg, 1, 8, "#", 5000, 300))
            await key("5")
            done = await control.expect(protocol.DigitsCollected)
            assert done == protocol.DigitsCollected(leg, "5", "timeout", True)

            await collect(6, protocol.CollectDigits(6, leg, 1, 8, "#", 200, 3000))
            done = await control.expect(protocol.DigitsCollected)
            assert done == protocol.DigitsCollected(leg, "", "no_input", False)

            # A collection still running when the call ends says so.
            await collect(7, protocol.CollectDigits(7, leg, 1, 8, "#", 60_000, 60_000))
            done = await control.expect(protocol.DigitsCollected, timeout=20)
            assert done.outcome == "hangup" and done.leg == leg
            await control.expect(protocol.CallEnded, lambda e: e.leg == leg)
            result = await sipp
            assert (result.successful, result.failed) == (1, 0), result.errors
    finally:
        transport.close()
