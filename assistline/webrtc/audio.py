"""A WebRTC leg's audio: Opus to and from the media core's internal-rate frames.

What the customer hears (:class:`OutgoingAudio`): the track aiortc's sender
pulls takes one internal-rate frame per 20 ms from a ring (silence when it
is empty), encodes it (:mod:`assistline.webrtc.opus`: mono voice from
16 kHz) and hands aiortc the *packet*, stamped on Opus's 48 kHz RTP clock,
which aiortc's sender only packs. Handed frames, aiortc would resample them
to 48 kHz stereo, encode at 96 kbit/s in an executor thread and compute the
RFC 6465 audio level in pure Python.

What the customer says (:class:`IncomingAudio`): aiortc hands every
completed Opus frame to a decoder thread per receiver, which puts each
decoded PyAV frame on the track's queue through the event loop's self-pipe:
two thread hand-offs and a task wake-up per 20 ms packet.
:func:`decode_on_loop` instead wraps the receiver's audio jitter buffer
(:class:`DecodingJitterBuffer`), so each frame the buffer completes is
decoded there and then, on the event loop, straight to 16 kHz: RTP
statistics, RTCP reports and the jitter buffer's reordering stay aiortc's.
The decoder thread then idles until the receiver stops. The buffer is a
private attribute of ``aiortc.RTCRtpReceiver`` (there from 1.0 to 1.16);
where it is not found, the leg reads the receiver's track as before, and
the log says so once. Decoded audio is cut into 20 ms
:class:`~assistline.media.frame.AudioFrame` s whatever the packet length.

Measured with ``bench/webrtc.py`` (the server's share of its core): at
15 bridged calls, 79 % with decoding on the loop and PyAV's encoder at
complexity 5; 66 % at complexity 1 with packets on the RTP clock; 64 %
with libopus driven directly. With the leg sending its own RTP
(:mod:`assistline.webrtc.audio_sender`) and four customers a worker: 42 %,
and 25 calls at 74 %. Before all this, 10 calls took 57 % and 15 were late.
"""

from __future__ import annotations

import asyncio
import collections
import fractions
import logging
from typing import Any, Final

import av
import numpy as np
from aiortc import RTCRtpReceiver
from aiortc.jitterbuffer import JitterBuffer, JitterFrame
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack
from aiortc.rtp import RtpPacket

from assistline.media.frame import FRAME_MS, FRAME_SAMPLES, INTERNAL_RATE, AudioFrame, Samples
from assistline.media.resample import Resampler
from assistline.webrtc.opus import Decoding, Encoding, new_decoder, new_encoder, to_internal_rate

logger = logging.getLogger(__name__)

#: Frames each audio ring holds: 200 ms.
RING_FRAMES: Final = 10
#: Opus's RTP clock, whatever rate it encodes from (RFC 7587); packets handed to
#: aiortc carry it, so its sender converts no time base (Python fractions).
RTP_TIME_BASE: Final = fractions.Fraction(1, 48_000)
_RTP_FRAME: Final = 48_000 * FRAME_MS // 1000
_SILENCE: Final = np.zeros(FRAME_SAMPLES, dtype=np.int16)
#: The private name of a receiver's jitter buffer (Python's name mangling).
_JITTER_BUFFER: Final = "_RTCRtpReceiver__jitter_buffer"


class OutgoingAudio(MediaStreamTrack):
    """What the browser hears: internal-rate frames from a ring, as Opus packets.

    :class:`~assistline.webrtc.audio_sender.AudioSender` sends its packets;
    where it cannot, aiortc's sender takes them as a track (:meth:`recv`).

    It paces itself as aiortc's own ``AudioStreamTrack`` does: frame ``n`` is
    due ``n`` × 20 ms after the first, so sleeping never drifts.
    """

    kind = "audio"

    def __init__(self, encoder: Encoding | None = None) -> None:
        super().__init__()
        self.ring: collections.deque[Samples] = collections.deque(maxlen=RING_FRAMES)
        self._encoder = new_encoder() if encoder is None else encoder
        self._start: float | None = None
        self._count = 0
        self._sent = 0

    async def next_packet(self) -> tuple[bytes, int]:
        """The next 20 ms, encoded, and its RTP timestamp from 0; due ``n`` × 20 ms after the first.

        Silence when the ring is empty; :class:`MediaStreamError` once stopped.
        """
        while True:
            payload = self._encoder.encode(await self._next_samples())
            if payload is not None:  # one packet a frame (none only while priming)
                timestamp = self._sent * _RTP_FRAME
                self._sent += 1
                return payload, timestamp

    async def recv(self) -> av.Packet[Any]:
        """The next packet, for aiortc's own sender (where the leg does not send itself)."""
        payload, timestamp = await self.next_packet()
        packet = av.Packet(payload)
        packet.pts = timestamp
        packet.time_base = RTP_TIME_BASE
        return packet

    async def _next_samples(self) -> Samples:
        if self.readyState != "live":
            raise MediaStreamError
        loop = asyncio.get_running_loop()
        if self._start is None:
            self._start = loop.time()
        else:
            delay = self._start + self._count * FRAME_MS / 1000 - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
        self._count += 1
        try:
            return self.ring.popleft()
        except IndexError:
            return _SILENCE


class IncomingAudio:
    """What the customer says, as 20 ms internal-rate frames in a bounded ring."""

    def __init__(self, decoder: Decoding | None = None) -> None:
        #: The frames not yet read; the oldest is dropped when 200 ms wait.
        self.ring: collections.deque[AudioFrame] = collections.deque(maxlen=RING_FRAMES)
        #: Packets libopus refused: the browser's to answer for (a real one sends none).
        self.undecodable = 0
        self._decoder = decoder
        self._resampler: Resampler | None = None
        self._pending = np.zeros(0, dtype=np.int16)
        self._timestamp = 0

    def decode(self, payload: bytes) -> None:
        """Decode one Opus packet into the ring; a packet libopus refuses is counted, not fatal."""
        if self._decoder is None:
            self._decoder = new_decoder()
        try:
            samples = self._decoder.decode(payload)
        except ValueError:
            # The decoder keeps its state and takes the next packet, as aiortc's thread does.
            self.undecodable += 1
            return
        self._cut(samples)

    def take(self, frame: av.AudioFrame) -> None:
        """Add a decoded frame (any rate the resampler knows, s16 or s16p, any channels)."""
        if self._resampler is None or self._resampler.from_rate != frame.sample_rate:
            self._resampler = Resampler(frame.sample_rate, INTERNAL_RATE)
        self._cut(to_internal_rate(frame, self._resampler))

    def _cut(self, samples: Samples) -> None:
        if not len(self._pending) and len(samples) == FRAME_SAMPLES:  # a 20 ms packet
            self.ring.append(AudioFrame(samples, self._timestamp))
            self._timestamp += FRAME_SAMPLES
            return
        pending = np.concatenate((self._pending, samples))
        start = 0
        while len(pending) - start >= FRAME_SAMPLES:
            chunk = pending[start : start + FRAME_SAMPLES].copy()
            self.ring.append(AudioFrame(chunk, self._timestamp))
            self._timestamp += FRAME_SAMPLES
            start += FRAME_SAMPLES
        self._pending = pending[start:].copy()

    async def read_track(self, track: MediaStreamTrack) -> None:
        """Take every frame of aiortc's receiving track (when :func:`decode_on_loop` cannot)."""
        while True:
            try:
                frame = await track.recv()
            except MediaStreamError:
                return
            if isinstance(frame, av.AudioFrame):
                self.take(frame)


class DecodingJitterBuffer:
    """aiortc's audio jitter buffer, whose completed frames are decoded here, not in a thread.

    aiortc queues a frame for its decoder thread only when ``add`` returns
    one; this returns none, having decoded it into ``incoming``.
    """

    def __init__(self, inner: JitterBuffer, incoming: IncomingAudio) -> None:
        self._inner = inner
        self._incoming = incoming

    def add(self, packet: RtpPacket) -> tuple[bool, JitterFrame | None]:
        """Add a packet; decode the frame it completes, if any."""
        pli, frame = self._inner.add(packet)
        if frame is not None:
            self._incoming.decode(frame.data)
        return pli, None


_warned = False


def decode_on_loop(receiver: RTCRtpReceiver, incoming: IncomingAudio) -> bool:
    """Make ``receiver`` decode into ``incoming`` on the event loop; False when it cannot."""
    global _warned
    inner = getattr(receiver, _JITTER_BUFFER, None)
    if isinstance(inner, DecodingJitterBuffer):
        return True
    if not isinstance(inner, JitterBuffer):
        if not _warned:
            _warned = True
            logger.warning(
                "this aiortc has no receiver jitter buffer where expected; WebRTC audio is"
                " decoded in aiortc's decoder thread, which costs more CPU per call"
            )
        return False
    setattr(receiver, _JITTER_BUFFER, DecodingJitterBuffer(inner, incoming))
    return True
