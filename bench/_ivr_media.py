"""bench/ivr.py's media on the caller's side: keypad frames, prompt markers, loss and jitter.

No I/O here: frames and verdicts over bytes, numpy arrays and given times.

- :class:`Keypad` is a caller's RTP source, one 20 ms G.711 μ-law frame at a
  time: silence, or keys as RFC 4733 events or as in-band tones. Both
  methods take 200 ms a key: RFC 4733 sends five event packets (100 ms of
  key), three end packets (RFC 4733 §2.5.1.4's redundant end), then two of
  silence; in-band sends 100 ms of tone (-10 dBm0 a tone, 2 dB twist) and
  100 ms of silence. Each key's *press* is the send time of its first
  packet and its *release* that of its first end packet (RFC 4733) or of
  the first silent frame after its tone (in-band).
- Prompt markers: the bench records each prompt it needs to recognise as a
  WAV (:func:`marker_wav`) that starts with a pure tone of its own (a
  multiple of 50 Hz, so a 20 ms frame holds whole cycles and one 160-point
  FFT bin holds it all). :class:`MarkerDetector` finds them in what the
  caller receives: three frames in a row whose energy is ≥ 90 % in one
  marker bin name the prompt playing.
- :class:`Impairment` decides each packet's fate on the impaired path: lost
  with probability ``loss`` (a seeded RNG), else delayed by a uniform
  0..``jitter`` seconds, never overtaking the packet before it (no
  reordering: a packet whose draw would put it before its predecessor
  leaves right after it).
"""

from __future__ import annotations

import collections
import dataclasses
import random
import struct
import wave
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Literal

import numpy as np
import numpy.typing as npt

from assistline.media.g711 import decode_ulaw, encode_ulaw
from assistline.media.tones import dtmf

Method = Literal["rfc4733", "inband"]
METHODS: tuple[Method, ...] = ("rfc4733", "inband")
FRAME = 160  # samples of a 20 ms G.711 frame
PCMU = 0
EVENT_PT = 101
SILENCE = encode_ulaw(np.zeros(FRAME, dtype=np.int16)).tobytes()
EVENTS = {**{str(n): n for n in range(10)}, "*": 10, "#": 11}
KEY_FRAMES = 10  # 200 ms a key, either method
#: Marker tones: 50 Hz apart from 400 Hz, each the whole of one FFT bin.
MARKER_BASE_HZ = 400
MARKER_STEP_HZ = 50
MARKER_SECONDS = 0.24
MARKER_RUN = 3  # frames in a row that name a prompt
MARKER_PURITY = 0.9
#: One-sided FFT power of a frame with an rms of 200 (about -44 dBFS): quieter is not a marker.
MARKER_MIN_POWER = FRAME**2 / 2 * 200.0**2


def rtp_packet(
    payload_type: int, seq: int, timestamp: int, ssrc: int, payload: bytes, marker: bool = False
) -> bytes:
    """A minimal RTP packet (no CSRC, no extension)."""
    second = payload_type | (0x80 if marker else 0)
    return struct.pack("!BBHII", 0x80, second, seq & 0xFFFF, timestamp & 0xFFFFFFFF, ssrc) + payload


def rtp_header(packet: bytes) -> tuple[int, int, int, int] | None:
    """(payload type, sequence, timestamp, SSRC) of an RTP packet, or None."""
    if len(packet) < 12 or packet[0] >> 6 != 2:
        return None
    second, seq, timestamp, ssrc = struct.unpack("!xBHII", packet[:12])
    return second & 0x7F, seq, timestamp, ssrc


@dataclasses.dataclass(frozen=True, slots=True)
class Frame:
    """One 20 ms packet to send: what it carries, and which key edge it is."""

    payload_type: int
    payload: bytes
    event: int = 0  # >0: the number of the RFC 4733 event it belongs to
    marker: bool = False
    key: str = ""
    edge: Literal["", "press", "release"] = ""


SILENT_FRAME = Frame(PCMU, SILENCE)


class Keypad:
    """A caller's outgoing frames: silence unless keys are queued."""

    def __init__(self, method: Method) -> None:
        self.method = method
        self._queue: collections.deque[Frame] = collections.deque()
        self._events = 0

    @property
    def busy(self) -> bool:
        """Whether keys are still being sent."""
        return bool(self._queue)

    @property
    def seconds_left(self) -> float:
        """How long the frames queued take to send."""
        return len(self._queue) * 0.02

    def press(self, keys: str) -> None:
        """Queue ``keys`` (each 200 ms, see the module)."""
        for key in keys:
            if self.method == "rfc4733":
                self._rfc4733(key)
            else:
                self._inband(key)

    def play(self, samples: npt.NDArray[np.int16]) -> None:
        """Queue audio (8 kHz; padded to whole frames) after any keys."""
        codes = encode_ulaw(np.concatenate([samples, np.zeros(-len(samples) % FRAME, np.int16)]))
        data = codes.tobytes()
        for start in range(0, len(data), FRAME):
            self._queue.append(Frame(PCMU, data[start : start + FRAME]))

    def next_frame(self) -> Frame:
        """The frame to send now."""
        return self._queue.popleft() if self._queue else SILENT_FRAME

    def _rfc4733(self, key: str) -> None:
        self._events += 1
        code = EVENTS[key]
        for step in range(1, 6):
            payload = struct.pack("!BBH", code, 10, step * FRAME)
            edge: Literal["", "press"] = "press" if step == 1 else ""
            self._queue.append(Frame(EVENT_PT, payload, self._events, step == 1, key, edge))
        for repeat in range(3):
            payload = struct.pack("!BBH", code, 0x80 | 10, 5 * FRAME)
            release: Literal["", "release"] = "release" if repeat == 0 else ""
            self._queue.append(Frame(EVENT_PT, payload, self._events, False, key, release))
        self._queue.extend([SILENT_FRAME] * (KEY_FRAMES - 8))

    def _inband(self, key: str) -> None:
        codes = encode_ulaw(dtmf(key, 8000, on_ms=100, off_ms=100)).tobytes()
        for index in range(KEY_FRAMES):
            payload = codes[index * FRAME : (index + 1) * FRAME]
            edge: Literal["", "press", "release"] = (
                "press" if index == 0 else "release" if index == KEY_FRAMES // 2 else ""
            )
            self._queue.append(Frame(PCMU, payload, 0, False, key, edge))


# ----------------------------------------------------------------- prompt markers


def marker_frequencies(keys: Sequence[str]) -> dict[str, int]:
    """Each prompt key's marker tone (Hz), in the order given."""
    top = MARKER_BASE_HZ + MARKER_STEP_HZ * (len(keys) - 1)
    if top > 3400:
        raise ValueError(f"{len(keys)} markers do not fit under 3400 Hz")
    return {key: MARKER_BASE_HZ + MARKER_STEP_HZ * index for index, key in enumerate(keys)}


def marker_wav(path: Path, hertz: int, body: npt.NDArray[np.int16] | None = None) -> float:
    """Write a 16 kHz prompt: the marker tone, then ``body`` (16 kHz); its length in seconds."""
    rate = 16000
    t = np.arange(int(rate * MARKER_SECONDS)) / rate
    tone = (np.sin(2 * np.pi * hertz * t) * 6000).astype(np.int16)
    parts = [tone, np.zeros(rate // 20, dtype=np.int16)]
    if body is not None:
        parts.append(body.astype(np.int16))
    samples = np.concatenate(parts)
    with wave.open(str(path), "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(rate)
        wav.writeframes(samples.astype("<i2").tobytes())
    return len(samples) / rate


class MarkerDetector:
    """Names the marker prompts in the frames callers receive, many calls at once."""

    def __init__(self, frequencies: dict[str, int]) -> None:
        self._key_of_bin = {hertz // MARKER_STEP_HZ: key for key, hertz in frequencies.items()}
        self._bins = np.array(sorted(self._key_of_bin), dtype=np.int64)

    def frame_bins(self, payloads: Sequence[bytes]) -> npt.NDArray[np.int64]:
        """Per μ-law payload of 160 bytes, its marker bin, or 0 when it holds no marker."""
        if not payloads:
            return np.zeros(0, dtype=np.int64)
        samples = decode_ulaw(b"".join(payloads)).astype(np.float32).reshape(len(payloads), FRAME)
        power = np.abs(np.fft.rfft(samples, axis=1)) ** 2
        power[:, 0] = 0.0
        total = power.sum(axis=1)
        best = power.argmax(axis=1)
        pure = (total >= MARKER_MIN_POWER) & (
            power[np.arange(len(payloads)), best] >= MARKER_PURITY * total
        )
        return np.where(pure & np.isin(best, self._bins), best, 0)

    def key(self, bin_number: int) -> str:
        """The prompt key of a marker bin."""
        return self._key_of_bin[bin_number]


class MarkerRun:
    """One call's run of marker frames: says a prompt once, when its run is long enough."""

    def __init__(self) -> None:
        self._bin = 0
        self._length = 0

    def feed(self, bin_number: int) -> int:
        """The marker bin heard with this frame (once per run), else 0."""
        if bin_number and bin_number == self._bin:
            self._length += 1
        else:
            self._bin, self._length = bin_number, 1 if bin_number else 0
        return self._bin if self._length == MARKER_RUN else 0


# ----------------------------------------------------------------- impairment


class Impairment:
    """Loss and jitter on one direction of a path (see the module)."""

    def __init__(self, loss: float, jitter: float, rng: random.Random) -> None:
        self.loss = loss
        self.jitter = jitter
        self._rng = rng
        self._last = 0.0
        self.passed = 0
        self.dropped = 0
        self.delays: list[float] = []

    def release_time(self, now: float) -> float | None:
        """When a packet arriving ``now`` leaves, or None when it is lost."""
        if self.loss and self._rng.random() < self.loss:
            self.dropped += 1
            return None
        due = now + (self._rng.uniform(0.0, self.jitter) if self.jitter else 0.0)
        due = max(due, self._last)
        self._last = due
        self.passed += 1
        self.delays.append(due - now)
        return due


def levenshtein(sent: str, received: str) -> int:
    """Keys inserted, dropped or changed between two key strings."""
    previous = list(range(len(received) + 1))
    for i, a in enumerate(sent, 1):
        current = [i]
        for j, b in enumerate(received, 1):
            current.append(min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (a != b)))
        previous = current
    return previous[-1]


def percentile(values: Iterable[float], share: float) -> float | None:
    """The ``share`` quantile (0..1) of ``values``, or None when there are none."""
    found = sorted(values)
    if not found:
        return None
    return float(np.quantile(np.array(found), share))
