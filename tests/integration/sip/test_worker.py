"""The media worker against real peers on loopback: sipp calls, RTP, the control socket.

The test plays the control process (a Unix socket server speaking
:mod:`assistline.sip.protocol`); sipp (Debian ``sip-tester``) is the caller.
"""

from __future__ import annotations

import asyncio
import json
import random
import wave
from pathlib import Path

import numpy as np

from assistline.media.g711 import decode_alaw, encode_alaw
from assistline.media.tones import dtmf
from assistline.sip import protocol
from tests.integration.sip.worker_peers import (
    Control,
    RtpSink,
    free_udp_port,
    rtp_packet,
    run_sipp,
    short_dir,
    worker_process,
)


def _tone_payloads(count: int, frequency: float = 1000.0) -> list[bytes]:
    t = np.arange(count * 160) / 8000
    samples = (8000 * np.sin(2 * np.pi * frequency * t)).astype(np.int16)
    codes = encode_alaw(samples)
    return [codes[i * 160 : (i + 1) * 160].tobytes() for i in range(count)]


def _dominant_hz(samples: np.ndarray, rate: int = 8000) -> float:
    spectrum = np.abs(np.fft.rfft(samples.astype(np.float64) * np.hanning(len(samples))))
    return float(np.argmax(spectrum) * rate / len(samples))


async def test_echo_call_loops_audio_back_and_reports_inband_and_rfc4733_digits(
    control: Control,
) -> None:
    loop = asyncio.get_running_loop()
    sink_port = free_udp_port()
    transport, sink = await loop.create_datagram_endpoint(
        RtpSink, local_addr=("127.0.0.1", sink_port)
    )
    try:
        async with worker_process(control) as worker:
            hello = await control.expect(protocol.Hello)
            assert (hello.version, hello.sip_port, hello.capacity) == (2, worker.port, 4)
            sipp = asyncio.create_task(
                run_sipp(
                    "echo_call.xml", worker.port, pause_ms=3500, keys=[("rtp_sink", str(sink_port))]
                )
            )
            incoming = await control.expect(protocol.IncomingCall)
            assert incoming.to_uri.endswith("<sip:echo@127.0.0.1>")
            assert ("X-Assistline-Contact", "contact-42") in incoming.headers
            await control.expect(protocol.Answered, lambda e: e.leg == incoming.leg)

            # The worker sends RTP (echoed silence) as soon as the call is up;
            # its source is the worker's RTP port: send a 1 kHz tone there.
            await asyncio.wait_for(sink.first.wait(), 5)
            worker_rtp = sink.packets[0][1]
            start = len(sink.packets)
            ssrc = random.getrandbits(32)
            for seq, payload in enumerate(_tone_payloads(50)):
                transport.sendto(rtp_packet(8, seq, seq * 160, ssrc, payload), worker_rtp)
                await asyncio.sleep(0.02)
            await asyncio.sleep(0.4)
            echoed = [
                decode_alaw(data[12:]) for data, _ in sink.packets[start:] if data[1] & 0x7F == 8
            ]
            loud = [s for s in echoed if np.sqrt(np.mean(s.astype(np.float64) ** 2)) > 2000]
            assert len(loud) >= 30, (
                f"only {len(loud)} of {len(echoed)} echoed frames carry the tone"
            )
            assert abs(_dominant_hz(np.concatenate(loud)) - 1000) < 20

            # In-band DTMF: the keys 7 and # as tones, found by the media core's detector.
            keys = encode_alaw(dtmf("7#", 8000, on_ms=80, off_ms=80))
            for index in range(len(keys) // 160):
                seq = 50 + index
                payload = keys[index * 160 : (index + 1) * 160].tobytes()
                transport.sendto(rtp_packet(8, seq, seq * 160, ssrc, payload), worker_rtp)
                await asyncio.sleep(0.02)
            inband = [
                await control.expect(protocol.Digit, lambda d: d.method == "inband")
                for _ in range(2)
            ]
            assert [(d.leg, d.digit) for d in inband] == [(incoming.leg, "7"), (incoming.leg, "#")]

            digit = await control.expect(protocol.Digit, lambda d: d.method != "inband", 15)
            assert (digit.leg, digit.digit, digit.method) == (incoming.leg, "1", "rfc4733")
            ended = await control.expect(protocol.CallEnded, timeout=15)
            assert (ended.leg, ended.status) == (incoming.leg, 200)
            result = await sipp
            assert (result.returncode, result.successful, result.failed) == (0, 1, 0), result.errors
    finally:
        transport.close()


async def test_sip_info_digit_is_reported_like_rfc4733(control: Control) -> None:
    async with worker_process(control) as worker:
        await control.expect(protocol.Hello)
        result = await run_sipp("info_dtmf.xml", worker.port, pause_ms=300)
        assert (result.returncode, result.successful) == (0, 1), result.errors
        incoming = await control.expect(protocol.IncomingCall)
        digit = await control.expect(protocol.Digit)
        assert (digit.leg, digit.digit, digit.method) == (incoming.leg, "5", "info")
        assert "5" not in repr(digit)
        await control.expect(protocol.CallEnded, lambda e: e.leg == incoming.leg)


async def test_fifth_simultaneous_call_is_refused_busy(control: Control) -> None:
    async with worker_process(control) as worker:
        await control.expect(protocol.Hello)
        result = await run_sipp("info_dtmf.xml", worker.port, calls=5, pause_ms=2500)
        assert (result.successful, result.failed) == (4, 1), result.errors
        assert "SIP/2.0 486" in result.errors
        answered = [m for m in control.seen if isinstance(m, protocol.Answered)]
        assert len(answered) == 4
        health = await control.expect(protocol.Health, lambda h: h.calls == 0)
        assert health.capacity == 4


async def test_a_call_receiving_no_rtp_is_hung_up_after_the_media_timeout(
    control: Control,
) -> None:
    # info_dtmf.xml sends a SIP INFO digit and no RTP, then would wait 30 s.
    async with worker_process(control, extra=("--media-timeout", "2")) as worker:
        await control.expect(protocol.Hello)
        sipp = asyncio.create_task(run_sipp("info_dtmf.xml", worker.port, pause_ms=30_000))
        try:
            incoming = await control.expect(protocol.IncomingCall)
            await control.expect(protocol.Answered, lambda e: e.leg == incoming.leg)
            ended = await control.expect(protocol.CallEnded, timeout=15)
            assert ended.leg == incoming.leg
            # The worker sent the BYE: the leg was answered, so the cause is not used.
            assert ended.status in (200, 408), ended
        finally:
            sipp.cancel()
            await asyncio.gather(sipp, return_exceptions=True)


async def test_commands_answer_reject_and_errors(control: Control) -> None:
    async with worker_process(control) as worker:
        await control.expect(protocol.Hello)
        await control.send(protocol.Answer(1, "nope"))
        error = await control.expect(protocol.Error)
        assert (error.id, error.code) == (1, 404)
        await control.send(protocol.Record(2, "nope", "/nowhere/x.wav"))
        error = await control.expect(protocol.Error)
        assert (error.id, error.code, error.message) == (2, 404, "no leg nope")
        sipp = asyncio.create_task(run_sipp("info_dtmf.xml", worker.port, service="agent"))
        incoming = await control.expect(protocol.IncomingCall)
        await control.send(protocol.Reject(3, incoming.leg, 486, "Busy Here"))
        assert await control.expect(protocol.Result) == protocol.Result(3, "")
        ended = await control.expect(protocol.CallEnded)
        assert (ended.leg, ended.status) == (incoming.leg, 486)
        result = await sipp
        assert (result.successful, result.failed) == (0, 1)
        await control.send(protocol.Stop(4))
        assert await control.expect(protocol.Result) == protocol.Result(4, "")
        assert await asyncio.wait_for(worker.process.wait(), 10) == 0


async def test_calls_ended_by_either_side_and_by_stop_leave_a_clean_exit(
    control: Control, tmp_path: Path
) -> None:
    async with worker_process(control) as worker:
        await control.expect(protocol.Hello)
        sipp = asyncio.create_task(run_sipp("info_dtmf.xml", worker.port, calls=3, pause_ms=8000))
        for _ in range(3):
            await control.expect(protocol.Answered)
        legs = [m.leg for m in control.seen if isinstance(m, protocol.Answered)]
        # One ended by the control process (BYE from the worker) ...
        await control.send(protocol.Hangup(1, legs[1]))
        ended = await control.expect(protocol.CallEnded, lambda e: e.leg == legs[1])
        assert (ended.status, ended.reason) == (603, "Decline")  # the cause it was given
        # ... the others by stopping the worker with the calls up.
        # A recording open when the worker stops is closed (sidecar complete).
        await control.send(protocol.Record(3, legs[0], str(tmp_path / "stop.wav")))
        assert await control.expect(protocol.Result, lambda r: r.id == 3) == protocol.Result(3, "")
        await control.send(protocol.Stop(2))
        assert await asyncio.wait_for(worker.process.wait(), 10) == 0
        ended_legs = {m.leg for m in control.seen if isinstance(m, protocol.CallEnded)}
        assert ended_legs == set(legs)
        assert json.loads((tmp_path / "stop.json").read_text())["complete"] is True
        result = await sipp
        assert result.successful + result.failed == 3


async def test_hold_and_unhold_are_reported(control: Control) -> None:
    async with worker_process(control) as worker:
        await control.expect(protocol.Hello)
        result = await run_sipp("hold_call.xml", worker.port)
        assert (result.successful, result.failed) == (1, 0), result.errors
        await control.expect(protocol.CallEnded)
        quiet = (protocol.Health, protocol.MediaStats)
        kinds = [type(m).__name__ for m in control.seen if not isinstance(m, quiet)]
        assert kinds == ["Hello", "IncomingCall", "Answered", "Hold", "Unhold", "CallEnded"]
        # Each re-INVITE replaced the audio stream: its receive figures came with it.
        stats = [m for m in control.seen if isinstance(m, protocol.MediaStats)]
        assert len(stats) >= 1 and all(m.leg == stats[0].leg for m in stats)


async def test_bridged_legs_hear_each_other_and_are_recorded(
    control: Control, tmp_path: Path
) -> None:
    loop = asyncio.get_running_loop()
    sinks = []
    for _ in range(2):
        transport, sink = await loop.create_datagram_endpoint(
            RtpSink, local_addr=("127.0.0.1", free_udp_port())
        )
        sinks.append((transport, sink))
    try:
        async with worker_process(control) as worker:
            await control.expect(protocol.Hello)
            calls = [
                asyncio.create_task(
                    run_sipp(
                        "echo_call.xml",
                        worker.port,
                        pause_ms=4000,
                        keys=[("rtp_sink", str(transport.get_extra_info("sockname")[1]))],
                    )
                )
                for transport, _ in sinks
            ]
            legs = [(await control.expect(protocol.Answered)).leg for _ in range(2)]
            incoming = {m.leg: m for m in control.seen if isinstance(m, protocol.IncomingCall)}
            assert set(incoming) == set(legs)
            await control.send(protocol.Record(4, legs[0], str(tmp_path / "bridged.wav")))
            assert await control.expect(protocol.Result) == protocol.Result(4, "")
            await control.send(protocol.Bridge(1, legs[0], legs[1]))
            assert await control.expect(protocol.Result) == protocol.Result(1, "")
            await control.send(protocol.Bridge(2, legs[0], legs[1]))
            assert (await control.expect(protocol.Error)).code == 409
            # Which sink belongs to which leg does not matter: each must hear
            # the other's tone, and not its own.
            for _, sink in sinks:
                await asyncio.wait_for(sink.first.wait(), 5)
            starts = [len(sink.packets) for _, sink in sinks]
            payloads = [_tone_payloads(40, 600.0), _tone_payloads(40, 1400.0)]
            for seq in range(40):
                for (transport, sink), tone in zip(sinks, payloads, strict=True):
                    packet = rtp_packet(8, seq, seq * 160, 1234, tone[seq])
                    transport.sendto(packet, sink.packets[0][1])
                await asyncio.sleep(0.02)
            await asyncio.sleep(0.4)
            heard = []
            for (_, sink), start in zip(sinks, starts, strict=True):
                frames = [decode_alaw(data[12:]) for data, _ in sink.packets[start:]]
                loud = [f for f in frames if np.sqrt(np.mean(f.astype(np.float64) ** 2)) > 2000]
                assert len(loud) >= 20
                heard.append(round(_dominant_hz(np.concatenate(loud)) / 100) * 100)
            assert heard == [1400, 600]
            await control.send(protocol.Hangup(3, legs[0]))
            await control.expect(protocol.CallEnded)
            await control.expect(protocol.CallEnded)
            await asyncio.gather(*calls)
    finally:
        for transport, _ in sinks:
            transport.close()
    # The recording of the first leg: its own tone on one channel, its peer's
    # on the other (which tone is whose depends on which sink it got).
    with wave.open(str(tmp_path / "bridged.wav"), "rb") as wav:
        audio = np.frombuffer(wav.readframes(wav.getnframes()), dtype="<i2").reshape(-1, 2)
    tones = []
    for channel in (audio[:, 0], audio[:, 1]):
        ticks = channel[: len(channel) // 320 * 320].reshape(-1, 320).astype(np.float64)
        loud_ticks = ticks[np.sqrt(np.mean(ticks**2, axis=1)) > 2000]
        assert len(loud_ticks) >= 20
        tones.append(round(_dominant_hz(loud_ticks.ravel(), 16000) / 100) * 100)
    assert sorted(tones) == [600, 1400]


async def test_answer_then_play_a_tone_and_a_wav_file(control: Control) -> None:
    loop = asyncio.get_running_loop()
    transport, sink = await loop.create_datagram_endpoint(
        RtpSink, local_addr=("127.0.0.1", free_udp_port())
    )
    prompt = short_dir()
    try:
        t = np.arange(8000) / 8000  # 1 s of 1 kHz at 8 kHz (resampled to 16 kHz inside)
        with wave.open(str(prompt / "prompt.wav"), "wb") as wav:
            wav.setnchannels(1)
            wav.setsampwidth(2)
            wav.setframerate(8000)
            wav.writeframes((8000 * np.sin(2 * np.pi * 1000 * t)).astype("<i2").tobytes())
        async with worker_process(control) as worker:
            await control.expect(protocol.Hello)
            sink_port = transport.get_extra_info("sockname")[1]
            call = asyncio.create_task(
                run_sipp(
                    "echo_call.xml",
                    worker.port,
                    service="ivr",
                    pause_ms=4000,
                    keys=[("rtp_sink", str(sink_port))],
                )
            )
            incoming = await control.expect(protocol.IncomingCall)
            assert incoming.to_uri.endswith("<sip:ivr@127.0.0.1>")
            await control.send(protocol.Answer(1, incoming.leg))
            assert await control.expect(protocol.Result) == protocol.Result(1, "")
            await control.expect(protocol.Answered)

            async def heard(seconds: float) -> float:
                start = len(sink.packets)
                await asyncio.sleep(seconds)
                frames = [decode_alaw(data[12:]) for data, _ in sink.packets[start:]]
                loud = [f for f in frames if np.sqrt(np.mean(f.astype(np.float64) ** 2)) > 1000]
                assert len(loud) >= seconds * 50 * 0.6, f"{len(loud)} loud of {len(frames)}"
                return _dominant_hz(np.concatenate(loud))

            await control.send(protocol.Play(2, incoming.leg, tone="eu-dial"))
            assert await control.expect(protocol.Result) == protocol.Result(2, "")
            assert abs(await heard(0.6) - 425) < 15
            await control.send(protocol.Play(3, incoming.leg, file=str(prompt / "prompt.wav")))
            assert await control.expect(protocol.Result) == protocol.Result(3, "")
            assert abs(await heard(0.6) - 1000) < 15
            await control.send(protocol.Play(4, incoming.leg, file=str(prompt / "missing.wav")))
            assert (await control.expect(protocol.Error)).code == 400
            await control.send(protocol.Play(5, incoming.leg, tone="fanfare"))
            assert (await control.expect(protocol.Error)).code == 400
            await control.expect(protocol.CallEnded, timeout=15)
            assert (await call).successful == 1
    finally:
        transport.close()
        (prompt / "prompt.wav").unlink(missing_ok=True)
        prompt.rmdir()


async def test_echo_call_is_recorded_in_stereo_with_a_pause(
    control: Control, tmp_path: Path
) -> None:
    loop = asyncio.get_running_loop()
    transport, sink = await loop.create_datagram_endpoint(
        RtpSink, local_addr=("127.0.0.1", free_udp_port())
    )
    path = tmp_path / "call.wav"
    (tmp_path / "taken.wav").write_bytes(b"")
    try:
        async with worker_process(control) as worker:
            await control.expect(protocol.Hello)
            sink_port = transport.get_extra_info("sockname")[1]
            sipp = asyncio.create_task(
                run_sipp(
                    "echo_call.xml", worker.port, pause_ms=4000, keys=[("rtp_sink", str(sink_port))]
                )
            )
            leg = (await control.expect(protocol.IncomingCall)).leg

            async def error(
                command: protocol.Record | protocol.PauseRecording | protocol.ResumeRecording,
            ) -> tuple[int, str]:
                await control.send(command)
                answer = await control.expect(protocol.Error, lambda e: e.id == command.id)
                return answer.code, answer.message

            assert (await error(protocol.PauseRecording(1, leg)))[0] == 404
            assert (await error(protocol.ResumeRecording(2, leg)))[0] == 404
            code, message = await error(protocol.Record(3, leg, "call.wav"))
            assert (code, "absolute" in message) == (400, True)
            code, message = await error(protocol.Record(4, leg, str(tmp_path / "no" / "c.wav")))
            assert (code, "does not exist" in message) == (400, True)
            assert (await error(protocol.Record(5, leg, str(tmp_path / "taken.wav"))))[0] == 409
            await control.send(protocol.Record(6, leg, str(path)))
            assert await control.expect(protocol.Result) == protocol.Result(6, "")
            recording_since = loop.time()
            assert (await error(protocol.Record(7, leg, str(tmp_path / "again.wav"))))[0] == 409

            # A 1 kHz tone for 2.2 s; recording paused from 0.8 s to about 1.4 s.
            await asyncio.wait_for(sink.first.wait(), 5)
            worker_rtp = sink.packets[0][1]
            paused_for = 0.0
            for seq, payload in enumerate(_tone_payloads(110)):
                transport.sendto(rtp_packet(8, seq, seq * 160, 4321, payload), worker_rtp)
                if seq == 40:
                    await control.send(protocol.PauseRecording(8, leg))
                    await control.expect(protocol.Result, lambda r: r.id == 8)
                    paused_at = loop.time()
                    await control.send(protocol.PauseRecording(9, leg))  # idempotent
                    await control.expect(protocol.Result, lambda r: r.id == 9)
                elif seq == 70:
                    await control.send(protocol.ResumeRecording(10, leg))
                    await control.expect(protocol.Result, lambda r: r.id == 10)
                    paused_for = loop.time() - paused_at
                await asyncio.sleep(0.02)

            ended = await control.expect(protocol.CallEnded, timeout=15)
            recorded_for = loop.time() - recording_since
            assert ended.leg == leg
            result = await sipp
            assert (result.successful, result.failed) == (1, 0), result.errors
    finally:
        transport.close()

    # The recorder was closed when the call ended: a complete sidecar, one pause.
    sidecar = json.loads((tmp_path / "call.json").read_text())
    assert (sidecar["complete"], sidecar["channels"], sidecar["rate"]) == (True, 2, 16000)
    assert len(sidecar["pauses"]) == 1
    pause = sidecar["pauses"][0]
    start, end = pause["start_sample"], pause["end_sample"]
    # Wall-clock on both sides of a socket: loose enough for a busy machine.
    assert abs((end - start) / 16000 - paused_for) < 0.25, (pause, paused_for)
    with wave.open(str(path), "rb") as wav:
        assert (wav.getnchannels(), wav.getsampwidth(), wav.getframerate()) == (2, 2, 16000)
        audio = np.frombuffer(wav.readframes(wav.getnframes()), dtype="<i2").reshape(-1, 2)
    assert len(audio) == sidecar["samples"]
    # One tick per 20 ms of the call: the timeline follows the clock.
    assert abs(sidecar["seconds"] - recorded_for) < 0.2, (sidecar["seconds"], recorded_for)
    left, right = audio[:, 0], audio[:, 1]
    assert not audio[start:end].any(), "the paused stretch holds sound"
    # The tone just before and just after the pause, on both channels.
    for stretch in (slice(start - 8000, start), slice(end + 1600, end + 9600)):
        for channel in (left, right):
            samples = channel[stretch]
            assert np.sqrt(np.mean(samples.astype(np.float64) ** 2)) > 2000
            assert abs(_dominant_hz(samples, 16000) - 1000) < 20


async def test_receive_quality_is_reported_live_as_differences(control: Control) -> None:
    loop = asyncio.get_running_loop()
    sink_port = free_udp_port()
    transport, sink = await loop.create_datagram_endpoint(
        RtpSink, local_addr=("127.0.0.1", sink_port)
    )
    try:
        async with worker_process(control, extra=("--quality-interval", "1")) as worker:
            await control.expect(protocol.Hello)
            # sipp itself sends RTP only after its 5 s pause (its pcaps).
            sipp = asyncio.create_task(
                run_sipp(
                    "echo_call.xml", worker.port, pause_ms=5000, keys=[("rtp_sink", str(sink_port))]
                )
            )
            incoming = await control.expect(protocol.IncomingCall)
            await control.expect(protocol.Answered, lambda e: e.leg == incoming.leg)
            await asyncio.wait_for(sink.first.wait(), 5)
            worker_rtp = sink.packets[0][1]
            for seq, payload in enumerate(_tone_payloads(100)):
                transport.sendto(rtp_packet(8, seq, seq * 160, 0x5151, payload), worker_rtp)
                await asyncio.sleep(0.02)
            await asyncio.sleep(1.6)  # past the next report, before sipp's pcaps

            def live() -> list[protocol.MediaStats]:
                return [
                    m
                    for m in control.seen
                    if isinstance(m, protocol.MediaStats) and m.leg == incoming.leg
                ]

            reports = live()
            assert len(reports) >= 2, reports  # while the call is up, more than once
            assert sum(r.packets for r in reports) == 100  # differences add up to what came
            assert all(r.packets > 0 for r in reports)  # sent only when something changed
            assert not any(isinstance(m, protocol.CallEnded) for m in control.seen)

            await control.expect(protocol.CallEnded, timeout=15)
            result = await sipp
            assert (result.returncode, result.successful, result.failed) == (0, 1, 0), result.errors
            final = await control.expect(
                protocol.MediaStats,
                lambda m: m.leg == incoming.leg and all(m is not r for r in reports),
            )
            assert final.packets > 0  # sipp's pcaps, after the live reports
    finally:
        transport.close()


async def test_stop_with_bridged_recorded_legs_up_exits_cleanly(
    control: Control, tmp_path: Path
) -> None:
    # pjmedia's own bridge and recorders carry this pair: the worker must
    # delete every pjsua2 object before libDestroy (pjlib asserts otherwise).
    keys = [("rtp_sink", str(free_udp_port()))]
    async with worker_process(control) as worker:
        await control.expect(protocol.Hello)
        calls = [
            asyncio.create_task(run_sipp("echo_call.xml", worker.port, pause_ms=8000, keys=keys))
            for _ in range(2)
        ]
        legs = [(await control.expect(protocol.Answered)).leg for _ in range(2)]
        await control.send(protocol.Bridge(1, legs[0], legs[1]))
        assert await control.expect(protocol.Result) == protocol.Result(1, "")
        await control.send(protocol.Record(2, legs[0], str(tmp_path / "up.wav")))
        assert await control.expect(protocol.Result) == protocol.Result(2, "")
        await asyncio.sleep(0.5)
        await control.send(protocol.Stop(3))
        assert await asyncio.wait_for(worker.process.wait(), 10) == 0
        ended_legs = {m.leg for m in control.seen if isinstance(m, protocol.CallEnded)}
        assert ended_legs == set(legs)
        await asyncio.gather(*calls)
    assert json.loads((tmp_path / "up.json").read_text())["complete"] is True
