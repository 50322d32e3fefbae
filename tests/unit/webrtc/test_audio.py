"""A WebRTC leg's Opus coding, and the jitter buffer that decodes on the event loop.

Real libopus through PyAV and aiortc's own jitter buffer and receiver; no
network: packets are made here and handed over as aiortc's receiver would.
"""

from __future__ import annotations

import fractions
from typing import Any

import av
import numpy as np
import pytest
from aiortc import RTCPeerConnection
from aiortc.jitterbuffer import JitterBuffer
from aiortc.rtp import RtpPacket

from assistline.media.frame import FRAME_SAMPLES, INTERNAL_RATE, AudioFrame, Samples
from assistline.webrtc.audio import (
    RING_FRAMES,
    DecodingJitterBuffer,
    IncomingAudio,
    OutgoingAudio,
    decode_on_loop,
)
from assistline.webrtc.audio_sender import SENDER_FIELDS, TRANSCEIVER_FIELDS, can_send
from assistline.webrtc.ice import rtc_configuration
from assistline.webrtc.opus import Encoding, new_decoder, new_encoder


def tone(frequency: float, samples: int, rate: int) -> Samples:
    """A sine of ``samples`` samples at ``rate``, amplitude 8000."""
    signal: Samples = np.rint(8000 * np.sin(2 * np.pi * frequency * np.arange(samples) / rate))
    return signal.astype(np.int16)


def dominant(samples: Samples, rate: int) -> float:
    """The frequency of the strongest FFT bin (Hann window), in Hz."""
    spectrum = np.abs(np.fft.rfft(samples.astype(np.float64) * np.hanning(len(samples))))
    spectrum[0] = 0.0
    return float(np.argmax(spectrum)) * rate / len(samples)


def browser_decoder() -> av.AudioCodecContext:
    """PyAV's libopus decoder, 48 kHz mono, as a browser decodes."""
    decoder = av.CodecContext.create("libopus", "r")
    assert isinstance(decoder, av.AudioCodecContext)
    decoder.format = "s16"
    decoder.layout = "mono"
    decoder.sample_rate = 48_000
    return decoder


def pyav_frame(samples: Samples, rate: int, channels: int = 1) -> av.AudioFrame:
    """A packed ``s16`` PyAV frame; stereo repeats each sample on both channels."""
    data = np.repeat(samples, channels).reshape(1, -1)
    frame = av.AudioFrame.from_ndarray(
        data, format="s16", layout="stereo" if channels == 2 else "mono"
    )
    frame.sample_rate = rate
    return frame


async def opus_packets(
    frequency: float, count: int, encoder: Encoding | None = None
) -> list[av.Packet[Any]]:
    """``count`` packets of a tone, as the leg's outgoing track encodes them."""
    track = OutgoingAudio(encoder)
    signal = tone(frequency, count * FRAME_SAMPLES, INTERNAL_RATE)
    packets = []
    for index in range(count):
        track.ring.append(signal[index * FRAME_SAMPLES : (index + 1) * FRAME_SAMPLES])
        packets.append(await track.recv())
    track.stop()
    return packets


@pytest.mark.parametrize("direct", [True, False], ids=["direct", "pyav"])
async def test_the_outgoing_track_sends_20_ms_packets_on_the_rtp_clock(direct: bool) -> None:
    packets = await opus_packets(1000.0, 25, new_encoder(direct))
    # On Opus's 48 kHz RTP clock, 20 ms apart from 0: aiortc's sender converts nothing.
    assert {packet.time_base for packet in packets} == {fractions.Fraction(1, 48_000)}
    assert [packet.pts for packet in packets] == [960 * index for index in range(25)]
    # A browser decodes them at 48 kHz: the tone comes through.
    decoder = browser_decoder()
    decoded = [frame for packet in packets for frame in decoder.decode(av.Packet(bytes(packet)))]
    assert [frame.samples for frame in decoded] == [960] * 25
    heard = np.concatenate([frame.to_ndarray()[0] for frame in decoded[5:]])
    assert dominant(heard, 48_000) == pytest.approx(1000.0, abs=10)
    assert np.sqrt(np.mean(heard.astype(np.float64) ** 2)) > 3000


async def test_the_outgoing_track_sends_silence_when_its_ring_is_empty() -> None:
    track = OutgoingAudio()
    decoder = browser_decoder()
    frames = [
        frame for _ in range(5) for frame in decoder.decode(av.Packet(bytes(await track.recv())))
    ]
    track.stop()
    heard = np.concatenate([frame.to_ndarray()[0] for frame in frames]).astype(np.float64)
    assert len(heard) == 5 * 960
    assert np.sqrt(np.mean(heard**2)) < 1.0  # libopus's silence: a sample of ±2 at most here


def test_incoming_audio_cuts_any_packet_length_into_20_ms_frames() -> None:
    incoming = IncomingAudio()
    signal = tone(600.0, 48_000, 48_000)
    # 10, 40 and 60 ms packets, stereo and mono: 110 ms, so five frames and 10 ms waiting.
    for start, end, channels in ((0, 480, 2), (480, 2400, 1), (2400, 5280, 2)):
        incoming.take(pyav_frame(signal[start:end], 48_000, channels))
    assert [frame.timestamp for frame in incoming.ring] == [0, 320, 640, 960, 1280]
    incoming.take(pyav_frame(signal[5280:5760], 48_000))
    assert [frame.timestamp for frame in incoming.ring][-1] == 1600
    assert all(frame.samples.shape == (FRAME_SAMPLES,) for frame in incoming.ring)
    heard = np.concatenate([frame.samples for frame in incoming.ring])
    assert dominant(heard[160:], INTERNAL_RATE) == pytest.approx(600.0, abs=20)


def test_incoming_audio_keeps_the_last_200_ms() -> None:
    incoming = IncomingAudio()
    incoming.take(pyav_frame(tone(600.0, 960 * 15, 48_000), 48_000))
    assert len(incoming.ring) == RING_FRAMES
    assert incoming.ring[0].timestamp == 5 * FRAME_SAMPLES


@pytest.mark.parametrize("direct", [True, False], ids=["direct", "pyav"])
async def test_a_packet_libopus_refuses_is_counted_and_the_next_ones_decode(
    direct: bool,
) -> None:
    incoming = IncomingAudio(new_decoder(direct))
    packets = await opus_packets(1000.0, 6)
    incoming.decode(bytes(packets[0]))
    incoming.decode(b"\xff\xff\xff")  # code 3, frame count 63: invalid
    incoming.decode(b"")  # PyAV would take it as the end of the stream
    for packet in packets[1:]:
        incoming.decode(bytes(packet))
    assert incoming.undecodable == 2
    assert [frame.timestamp for frame in incoming.ring] == [i * FRAME_SAMPLES for i in range(6)]


async def test_the_wrapped_jitter_buffer_decodes_what_aiortc_would_have_queued() -> None:
    packets = await opus_packets(1000.0, 30)
    plain = JitterBuffer(capacity=16, prefetch=4)  # as aiortc's receiver makes it for audio
    incoming = IncomingAudio()
    wrapped = DecodingJitterBuffer(JitterBuffer(capacity=16, prefetch=4), incoming)
    queued = 0
    # In order but for one pair swapped, as the network may deliver them.
    order = [*range(10), 11, 10, *range(12, 30)]
    for index in order:
        rtp = RtpPacket(payload_type=96, sequence_number=100 + index, timestamp=960 * index)
        rtp._data = bytes(packets[index])  # type: ignore[attr-defined]  # aiortc's depayload
        queued += plain.add(rtp)[1] is not None
        assert wrapped.add(rtp) == (False, None)  # nothing for aiortc's decoder thread
    assert queued > 20
    assert len(incoming.ring) == min(queued, RING_FRAMES)
    assert incoming.undecodable == 0
    heard = np.concatenate([frame.samples for frame in incoming.ring])
    assert dominant(heard, INTERNAL_RATE) == pytest.approx(1000.0, abs=20)
    assert all(isinstance(frame, AudioFrame) for frame in incoming.ring)


async def test_decode_on_loop_wraps_an_audio_receivers_jitter_buffer_once() -> None:
    pc = RTCPeerConnection(rtc_configuration([]))  # never aiortc's default STUN server
    try:
        receiver = pc.addTransceiver("audio").receiver
        incoming = IncomingAudio()
        assert decode_on_loop(receiver, incoming)
        wrapped = receiver._RTCRtpReceiver__jitter_buffer  # type: ignore[attr-defined]
        assert isinstance(wrapped, DecodingJitterBuffer)
        assert decode_on_loop(receiver, incoming)  # a renegotiation changes nothing
        assert receiver._RTCRtpReceiver__jitter_buffer is wrapped  # type: ignore[attr-defined]
    finally:
        await pc.close()


def test_decode_on_loop_declines_a_receiver_without_the_jitter_buffer() -> None:
    class Receiver:  # an aiortc that keeps its jitter buffer elsewhere
        pass

    assert not decode_on_loop(Receiver(), IncomingAudio())  # type: ignore[arg-type]


async def test_the_leg_sends_its_own_rtp_where_aiortc_has_what_it_uses() -> None:
    pc = RTCPeerConnection(rtc_configuration([]))
    try:
        transceiver = pc.addTransceiver("audio")
        assert can_send(transceiver)
        # An aiortc that keeps one of them elsewhere, each in turn.
        owners: list[tuple[object, str]] = [(transceiver, name) for name in TRANSCEIVER_FIELDS]
        owners += [(transceiver.sender, name) for name in SENDER_FIELDS]
        owners += [(transceiver.sender.transport, "_send_rtp")]
        for owner, name in owners:
            with pytest.MonkeyPatch.context() as patch:
                patch.delattr(owner if name in vars(owner) else type(owner), name)
                assert not can_send(transceiver), name
    finally:
        await pc.close()
