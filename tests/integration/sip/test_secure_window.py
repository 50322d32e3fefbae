"""A worker's secure window on a bridged, recorded call: tones reach neither the agent nor the file.

Two sipp calls stand for the customer and the agent; the test sends each
call's RTP itself and listens to what the worker sends back. The pair is
bridged inside pjmedia and the customer's leg recorded there. During
``secure_start`` … ``secure_end`` the customer keys 4242 as in-band tones:
the control process gets the digits, the agent hears the customer's voice
but none of the tones, and the recording is paused over the whole window.
After the window, a key the customer presses reaches the agent again.
"""

from __future__ import annotations

import asyncio
import json
import wave
from pathlib import Path

import numpy as np
import numpy.typing as npt

from assistline.media.dtmf import DtmfDetector
from assistline.media.g711 import decode_alaw, encode_alaw
from assistline.media.tones import dtmf
from assistline.sip import protocol
from tests.integration.sip.test_worker import _dominant_hz, _tone_payloads
from tests.integration.sip.worker_peers import (
    Control,
    RtpSink,
    free_udp_port,
    rtp_packet,
    run_sipp,
    worker_process,
)


class _Caller:
    """One sipp call's RTP, sent by the test from its sink's socket."""

    def __init__(self, transport: asyncio.DatagramTransport, sink: RtpSink) -> None:
        self.transport, self.sink = transport, sink
        self.seq = 0

    async def send(self, payloads: list[bytes]) -> None:
        for payload in payloads:
            packet = rtp_packet(8, self.seq, self.seq * 160, 4242, payload)
            self.transport.sendto(packet, self.sink.packets[0][1])
            self.seq += 1
            await asyncio.sleep(0.02)

    def heard_since(self, start: int) -> npt.NDArray[np.int16]:
        frames = [decode_alaw(data[12:]) for data, _ in self.sink.packets[start:]]
        return np.concatenate(frames).astype(np.int16)


def _keys(keys: str) -> list[bytes]:
    codes = encode_alaw(dtmf(keys, 8000, on_ms=80, off_ms=80))
    codes = np.concatenate([codes, encode_alaw(np.zeros(160 - len(codes) % 160, np.int16))])
    return [codes[i : i + 160].tobytes() for i in range(0, len(codes), 160)]


def _digits(samples: npt.NDArray[np.int16], rate: int) -> str:
    detector = DtmfDetector(rate)
    return "".join(event.digit for event in [*detector.feed(samples), *detector.flush()])


async def test_tones_in_the_secure_window_reach_the_control_process_only(
    control: Control, tmp_path: Path
) -> None:
    loop = asyncio.get_running_loop()
    callers: list[_Caller] = []
    for _ in range(2):
        transport, sink = await loop.create_datagram_endpoint(
            RtpSink, local_addr=("127.0.0.1", free_udp_port())
        )
        callers.append(_Caller(transport, sink))
    customer, agent = callers
    path = tmp_path / "secure.wav"
    try:
        async with worker_process(control) as worker:
            await control.expect(protocol.Hello)
            calls, legs = [], []
            for caller in callers:  # one after the other: each leg knows its caller
                sink_port = str(caller.transport.get_extra_info("sockname")[1])
                sipp = run_sipp(
                    "echo_call.xml", worker.port, pause_ms=9000, keys=[("rtp_sink", sink_port)]
                )
                calls.append(asyncio.create_task(sipp))
                legs.append((await control.expect(protocol.Answered)).leg)
                await asyncio.wait_for(caller.sink.first.wait(), 5)
            customer_leg, agent_leg = legs
            await control.send(protocol.Bridge(1, customer_leg, agent_leg))
            assert await control.expect(protocol.Result, lambda r: r.id == 1) == protocol.Result(1)
            await control.send(protocol.Record(2, customer_leg, str(path)))
            assert (await control.expect(protocol.Result, lambda r: r.id == 2)).id == 2

            await customer.send(_tone_payloads(15, 1000.0))  # before: voice passes
            await control.send(protocol.SecureStart(3, customer_leg))
            assert await control.expect(protocol.Result, lambda r: r.id == 3) == protocol.Result(3)
            window_start = len(agent.sink.packets)
            await customer.send(_keys("4242") + _tone_payloads(25, 700.0))
            got = [
                await control.expect(protocol.Digit, lambda d: d.method == "inband")
                for _ in range(4)
            ]
            assert [(d.leg, d.digit) for d in got] == [(customer_leg, k) for k in "4242"]
            await asyncio.sleep(0.3)
            in_window = agent.heard_since(window_start)
            await control.send(protocol.SecureEnd(4, customer_leg))
            assert await control.expect(protocol.Result, lambda r: r.id == 4) == protocol.Result(4)
            await control.send(protocol.SecureEnd(5, customer_leg))
            assert (await control.expect(protocol.Error, lambda e: e.id == 5)).code == 404
            after_start = len(agent.sink.packets)
            await customer.send(_keys("9") + _tone_payloads(10, 1000.0))
            await asyncio.sleep(0.3)
            after = agent.heard_since(after_start)

            await control.send(protocol.Hangup(6, customer_leg))
            await control.expect(protocol.CallEnded)
            await control.expect(protocol.CallEnded)
            await asyncio.gather(*calls)
    finally:
        for caller in callers:
            caller.transport.close()

    # The agent heard the customer's voice in the window, but no key of it.
    assert _digits(in_window, 8000) == ""
    voice = in_window[np.abs(in_window.astype(np.int32)) > 0]
    assert len(voice) > 8000 and abs(_dominant_hz(in_window[-4000:]) - 700) < 20
    # After the window the agent hears keys again (suppression is for the window only).
    assert _digits(after, 8000) == "9"
    # The recording is paused across the window, and holds none of its keys.
    sidecar = json.loads(path.with_suffix(".json").read_text())
    assert sidecar["complete"] is True and len(sidecar["pauses"]) == 1
    with wave.open(str(path), "rb") as wav:
        rate = wav.getframerate()
        audio = np.frombuffer(wav.readframes(wav.getnframes()), dtype="<i2").reshape(-1, 2)
    pause = sidecar["pauses"][0]
    assert not audio[pause["start_sample"] : pause["end_sample"]].any()
    # 4242 took 640 ms and the voice after it 500 ms, all inside the pause.
    assert (pause["end_sample"] - pause["start_sample"]) / rate > 1.1
    for channel in (audio[:, 0], audio[:, 1]):
        assert not set(_digits(channel.copy(), rate)) & {"4", "2"}
