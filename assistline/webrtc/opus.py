"""Opus for WebRTC legs: 20 ms of internal-rate audio to a packet and back.

Two ways, the same contract (:class:`Encoding`, :class:`Decoding`):

- **Directly** (``_opus.c``): libopus encodes from and decodes to 16 kHz
  mono, one C call a packet. It drives the libopus that PyAV's libavcodec
  has already loaded, found in ``/proc/self/maps``
  (:func:`libopus_direct`), so nothing else is installed or loaded.
- **Through PyAV** (:class:`PyAvEncoder`, :class:`PyAvDecoder`), when the
  extension was not compiled or libopus is not found: PyAV decodes at
  48 kHz only, so each packet is also resampled to 16 kHz, and each frame
  to encode is wrapped in an ``av.AudioFrame``.

Both encode mono voice (``OPUS_APPLICATION_VOIP``) at :data:`OPUS_BITRATE`
and :data:`OPUS_COMPLEXITY`. libopus takes 8, 12, 16, 24 or 48 kHz input;
whatever the rate, Opus travels on a 48 kHz RTP clock (RFC 7587).

Measured per 20 ms frame on the 2-core development machine, 1 kHz tone
with noise: encoding 42 µs directly, 63 µs through PyAV (complexity 1;
138 µs at 5, 214 µs at 10, 253 µs at 10 from 48 kHz as before); decoding
13 µs directly, 24 µs through PyAV plus 27 µs of resampling.
"""

from __future__ import annotations

import fractions
import functools
import logging
from typing import Final, Protocol

import av
import numpy as np

from assistline.media.frame import FRAME_SAMPLES, INTERNAL_RATE, Samples
from assistline.media.resample import Resampler

try:
    from assistline.webrtc import _opus
except ImportError:  # built without a C compiler: PyAV's way is used
    _opus = None  # type: ignore[assignment]

#: Whether the extension was compiled (a module-level flag: mypy sees the module only).
_compiled = _opus is not None

logger = logging.getLogger(__name__)

#: Opus bit rate of what the customer hears: mono voice.
OPUS_BITRATE: Final = 32_000
#: libopus's effort, 0–10 (its default is 10). What the customer hears is the
#: agent, mostly from a narrowband G.711 phone; at 1 the SILK encoder keeps its
#: simplest pitch and noise-shaping analysis, for 45 % of the cost of 5.
OPUS_COMPLEXITY: Final = 1
_PYAV_RATE: Final = 48_000
_TIME_BASE: Final = fractions.Fraction(1, INTERNAL_RATE)


class Encoding(Protocol):
    """A mono Opus encoder of 20 ms internal-rate frames."""

    def encode(self, samples: Samples) -> bytes | None:
        """One packet for ``samples`` (:data:`FRAME_SAMPLES`), or None while priming."""


class Decoding(Protocol):
    """A mono Opus decoder to the internal rate."""

    def decode(self, payload: bytes) -> Samples:
        """The packet's samples; :class:`ValueError` when libopus refuses it."""


def to_internal_rate(frame: av.AudioFrame, resampler: Resampler) -> Samples:
    """The mono int16 samples of a PyAV ``s16``/``s16p`` frame, through ``resampler``."""
    channels = len(frame.layout.channels)
    data = frame.to_ndarray()
    if frame.format.name == "s16":  # packed: one row, channels interleaved
        samples = data.reshape(-1, channels)
    elif frame.format.name == "s16p":  # planar: one row per channel
        samples = data.T
    else:
        raise ValueError(f"a WebRTC leg takes s16 or s16p audio, not {frame.format.name}")
    if channels == 1:
        mono: Samples = np.ascontiguousarray(samples[:, 0])
    else:
        mono = (samples.sum(axis=1, dtype=np.int32) // channels).astype(np.int16)
    return resampler.process(mono)


class PyAvEncoder:
    """PyAV's libopus encoder, at the internal rate."""

    def __init__(self) -> None:
        codec = av.CodecContext.create("libopus", "w")
        assert isinstance(codec, av.AudioCodecContext)
        codec.bit_rate = OPUS_BITRATE
        codec.format = "s16"
        codec.layout = "mono"
        codec.sample_rate = INTERNAL_RATE
        codec.time_base = _TIME_BASE
        codec.options = {"application": "voip", "compression_level": str(OPUS_COMPLEXITY)}
        self._codec = codec
        self._count = 0

    def encode(self, samples: Samples) -> bytes | None:
        """One packet for ``samples`` (PyAV's libopus gives one a frame from the first)."""
        frame = av.AudioFrame.from_ndarray(samples.reshape(1, -1), format="s16", layout="mono")
        frame.sample_rate = INTERNAL_RATE
        frame.pts = self._count * FRAME_SAMPLES
        frame.time_base = _TIME_BASE
        self._count += 1
        packets = self._codec.encode(frame)
        return bytes(packets[0]) if packets else None


class PyAvDecoder:
    """PyAV's libopus decoder (48 kHz), resampled to the internal rate."""

    def __init__(self) -> None:
        codec = av.CodecContext.create("libopus", "r")
        assert isinstance(codec, av.AudioCodecContext)
        codec.format = "s16"
        codec.layout = "mono"
        codec.sample_rate = _PYAV_RATE
        self._codec = codec
        self._resampler = Resampler(_PYAV_RATE, INTERNAL_RATE)

    def decode(self, payload: bytes) -> Samples:
        """The packet's samples at the internal rate."""
        if not payload:
            # PyAV takes an empty packet as the end of the stream and would refuse the rest.
            raise ValueError("an Opus packet is at least 1 byte, not 0")
        try:
            frames = self._codec.decode(av.Packet(payload))
        except av.FFmpegError as error:
            raise ValueError(f"libopus refused the packet: {error}") from None
        parts = [to_internal_rate(frame, self._resampler) for frame in frames]
        if len(parts) == 1:
            return parts[0]
        return np.concatenate(parts) if parts else np.zeros(0, dtype=np.int16)


def _loaded_libopus() -> str | None:
    """The path of the libopus this process has loaded (PyAV's libavcodec needs one)."""
    try:
        with open("/proc/self/maps", encoding="utf-8", errors="replace") as maps:
            for line in maps:
                fields = line.split(maxsplit=5)
                if len(fields) == 6 and "/libopus" in fields[5]:
                    return fields[5].strip()
    except OSError:  # no /proc (not Linux): PyAV's way
        return None
    return None


@functools.cache
def libopus_direct() -> bool:
    """Whether libopus is driven directly; the first call logs why not, when not."""
    if not _compiled:
        logger.warning("assistline.webrtc._opus was not compiled: Opus goes through PyAV")
        return False
    path = _loaded_libopus()
    if path is None:
        logger.warning("no libopus is loaded beside PyAV: Opus goes through PyAV")
        return False
    try:
        version = _opus.load(path)
    except RuntimeError as error:
        logger.warning("libopus cannot be driven directly (%s): Opus goes through PyAV", error)
        return False
    logger.debug("Opus through %s (%s)", path, version)
    return True


def _use_direct(direct: bool | None) -> bool:
    available = libopus_direct()
    if direct and not available:
        raise RuntimeError("libopus cannot be driven directly here (the log says why)")
    return available if direct is None else direct


def new_encoder(direct: bool | None = None) -> Encoding:
    """An encoder: direct when it can be, or as ``direct`` says."""
    if _use_direct(direct):
        assert _opus is not None
        return _opus.Encoder(INTERNAL_RATE, OPUS_BITRATE, OPUS_COMPLEXITY)
    return PyAvEncoder()


def new_decoder(direct: bool | None = None) -> Decoding:
    """A decoder: direct when it can be, or as ``direct`` says."""
    if _use_direct(direct):
        assert _opus is not None
        return _opus.Decoder(INTERNAL_RATE)
    return PyAvDecoder()
