"""Tone generation: DTMF, call-progress tones and comfort noise.

Levels are in dBm0 by the G.711 convention: a sine whose peak reaches the
μ-law overload point is +3.17 dBm0 (ITU-T G.711, "theoretical load
capacity"). μ-law overloads at 8159 in its 14-bit scale, 32,636 as int16, so
0 dBm0 is a sine of peak 32,636 × 10^(-3.17/20) ≈ 22,657 (RMS ≈ 16,021). The
G.711 digital milliwatt (the 1 kHz μ-law sequence 1E 0B 0B 1E 9E 8B 8B 9E,
peak 22,651 once decoded) measures 0.00 dBm0 by this convention, which is
the check in the tests. spandsp puts 0 dBm0 3.14 dB below int16 full scale
(peak 22,827); the 0.07 dB between the two matters to no detector.

Durations are exact in samples: ``round(ms × rate / 1000)``, exact for whole
milliseconds at 8 and 16 kHz. Every oscillator runs on a counter of samples
since the start of the stream, so each 20 ms frame continues the phase of
the one before, and a tone segment starts at whatever phase its frequency
has reached, as on a real line.

Call-progress defaults: the North American "precise tone plan" (dial
350+440 Hz at -13 dBm0, ringback 440+480 Hz at -19 dBm0 2 s on 4 s off,
busy 480+620 Hz at -24 dBm0 0.5/0.5 s, reorder the same at 0.25/0.25 s) and
the European 425 Hz tones of ETSI TR 101 041 / ITU-T E.180 Suppl. 2 (dial
continuous, ringback 1 s on 4 s off, busy 0.5/0.5 s), here at -13 dBm0.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterator, Sequence
from typing import Final

import numpy as np
import numpy.typing as npt

from assistline.media.frame import Samples, samples_per_frame

#: RMS of a 0 dBm0 sine in int16 units (see the module docstring).
DBM0_RMS: Final = 32636 * 10 ** (-3.17 / 20) / math.sqrt(2)

#: The sixteen keys in keypad order, row by row.
DTMF_KEYS: Final = "123A456B789C*0#D"
DTMF_ROW_HZ: Final = (697.0, 770.0, 852.0, 941.0)
DTMF_COLUMN_HZ: Final = (1209.0, 1336.0, 1477.0, 1633.0)

SUPPORTED_RATES: Final = (8000, 16000)


def dtmf_frequencies(key: str) -> tuple[float, float]:
    """The (low group, high group) frequencies of a keypad key."""
    index = DTMF_KEYS.find(key) if len(key) == 1 else -1
    if index < 0:
        raise ValueError(f"a DTMF key is one of {DTMF_KEYS!r}, not {key!r}")
    return DTMF_ROW_HZ[index // 4], DTMF_COLUMN_HZ[index % 4]


def amplitude(level_dbm0: float) -> float:
    """Peak amplitude in int16 units of a sine at ``level_dbm0``."""
    return DBM0_RMS * math.sqrt(2) * 10 ** (level_dbm0 / 20)


def level_dbm0(samples: npt.NDArray[np.integer] | npt.NDArray[np.floating]) -> float:
    """Mean power of ``samples`` in dBm0 (-inf for digital silence)."""
    if samples.size == 0:
        raise ValueError("cannot measure the level of an empty signal")
    power = float(np.mean(np.square(samples, dtype=np.float64)))
    return 10 * math.log10(power / DBM0_RMS**2) if power > 0 else -math.inf


def duration_samples(ms: float, rate: int) -> int:
    """Samples in ``ms`` milliseconds at ``rate`` Hz, rounded to the nearest."""
    _check_rate(rate)
    if ms < 0:
        raise ValueError(f"a duration cannot be negative, not {ms} ms")
    return round(ms * rate / 1000)


def _check_rate(rate: int) -> None:
    if rate not in SUPPORTED_RATES:
        raise ValueError(f"tones are generated at 8000 or 16000 Hz, not {rate}")


@dataclasses.dataclass(frozen=True, slots=True)
class Tone:
    """A sum of sines, each ``(frequency in Hz, level in dBm0)``; empty is silence."""

    components: tuple[tuple[float, float], ...]

    def __post_init__(self) -> None:
        for frequency, _ in self.components:
            if not 0 < frequency < 4000:
                raise ValueError(f"a tone frequency lies between 0 and 4000 Hz, not {frequency}")


SILENCE: Final = Tone(())


def dtmf_tone(key: str, level_dbm0: float = -10.0, twist_db: float = 2.0) -> Tone:
    """The tone of a keypad key, low group at ``level_dbm0``, high group ``twist_db`` above."""
    low, high = dtmf_frequencies(key)
    return Tone(((low, level_dbm0), (high, level_dbm0 + twist_db)))


@dataclasses.dataclass(frozen=True, slots=True)
class Segment:
    """One tone held for ``ms`` milliseconds."""

    tone: Tone
    ms: float


class ToneStream:
    """A streaming tone source: segments played in order, optionally repeated forever.

    Iterating yields 20 ms int16 frames at ``rate``; :meth:`render` returns the
    whole (finite) signal at once. Both produce the same samples.
    """

    def __init__(self, segments: Sequence[Segment], rate: int, *, repeat: bool = False) -> None:
        _check_rate(rate)
        if not segments:
            raise ValueError("a tone stream needs at least one segment")
        self.rate = rate
        self.repeat = repeat
        # Exact sample boundaries of each segment within one cycle.
        self._segments: list[tuple[Tone, int, int]] = []
        start = 0
        for segment in segments:
            end = start + duration_samples(segment.ms, rate)
            self._segments.append((segment.tone, start, end))
            start = end
        self.cycle_samples = start
        if repeat and self.cycle_samples == 0:
            raise ValueError("a repeating tone stream needs a cycle longer than 0 ms")
        self._position = 0

    def __len__(self) -> int:
        """Samples in one cycle (the whole stream when not repeating)."""
        return self.cycle_samples

    def render(self) -> Samples:
        """The whole signal of one cycle."""
        return self._samples(0, self.cycle_samples)

    def __iter__(self) -> Iterator[Samples]:
        return self

    def __next__(self) -> Samples:
        """The next 20 ms frame; the last frame of a finite stream is padded with silence."""
        frame = samples_per_frame(self.rate)
        if not self.repeat and self._position >= self.cycle_samples:
            raise StopIteration
        samples = self._samples(self._position, self._position + frame)
        self._position += frame
        return samples

    def _samples(self, start: int, end: int) -> Samples:
        out = np.zeros(end - start, dtype=np.float64)
        cycle = self.cycle_samples
        position = start
        while position < end:
            offset = position % cycle if self.repeat else position
            if offset >= cycle:
                break
            stop = min(cycle, offset + end - position)
            for tone, seg_start, seg_end in self._segments:
                lo, hi = max(offset, seg_start), min(stop, seg_end)
                if lo >= hi:
                    continue
                # Absolute sample numbers: the oscillators run on between segments and frames.
                first = position + lo - offset
                n = np.arange(first, first + hi - lo, dtype=np.float64)
                dest = out[first - start : first - start + hi - lo]
                for frequency, level in tone.components:
                    dest += amplitude(level) * np.sin(2 * np.pi * frequency / self.rate * n)
            position += stop - offset
        return _to_int16(out)


def _to_int16(signal: npt.NDArray[np.float64]) -> Samples:
    # Saturate as a codec would rather than wrap around.
    return np.clip(np.rint(signal), -32768, 32767).astype(np.int16)


@dataclasses.dataclass(frozen=True, slots=True)
class DtmfPress:
    """One key press and the silence after it, for test signals.

    Each tone can be off its nominal frequency by a relative deviation and
    has its own level in dBm0, which is what DTMF test batteries (Q.24,
    spandsp's) vary.
    """

    key: str
    on_ms: float = 50.0
    off_ms: float = 50.0
    low_dev: float = 0.0
    high_dev: float = 0.0
    low_dbm0: float = -4.0
    high_dbm0: float = -4.0


def render_presses(
    presses: list[DtmfPress], rate: int, *, lead_ms: float = 0.0, tail_ms: float = 100.0
) -> Samples:
    """The signal of ``presses``, after ``lead_ms`` and before ``tail_ms`` of silence."""
    segments = [Segment(SILENCE, lead_ms)] if lead_ms else []
    for press in presses:
        low, high = dtmf_frequencies(press.key)
        tone = Tone(
            (
                (low * (1 + press.low_dev), press.low_dbm0),
                (high * (1 + press.high_dev), press.high_dbm0),
            )
        )
        segments += [Segment(tone, press.on_ms), Segment(SILENCE, press.off_ms)]
    segments.append(Segment(SILENCE, tail_ms))
    return ToneStream(segments, rate).render()


def dtmf_stream(
    keys: str,
    rate: int,
    *,
    on_ms: float = 50.0,
    off_ms: float = 50.0,
    level_dbm0: float = -10.0,
    twist_db: float = 2.0,
) -> ToneStream:
    """Keys played ``on_ms`` each, every one followed by ``off_ms`` of silence."""
    if not keys:
        raise ValueError("a DTMF stream needs at least one key")
    segments: list[Segment] = []
    for key in keys:
        segments.append(Segment(dtmf_tone(key, level_dbm0, twist_db), on_ms))
        segments.append(Segment(SILENCE, off_ms))
    return ToneStream(segments, rate)


def dtmf(
    keys: str,
    rate: int,
    *,
    on_ms: float = 50.0,
    off_ms: float = 50.0,
    level_dbm0: float = -10.0,
    twist_db: float = 2.0,
) -> Samples:
    """The whole signal of :func:`dtmf_stream`."""
    stream = dtmf_stream(
        keys, rate, on_ms=on_ms, off_ms=off_ms, level_dbm0=level_dbm0, twist_db=twist_db
    )
    return stream.render()


@dataclasses.dataclass(frozen=True, slots=True)
class CallProgressTone:
    """A call-progress tone: its frequencies, level per frequency and on/off cadence in ms.

    An empty cadence means a continuous tone.
    """

    name: str
    frequencies: tuple[float, ...]
    level_dbm0: float
    cadence_ms: tuple[float, ...] = ()

    def stream(self, rate: int) -> ToneStream:
        """The tone as an endless stream of 20 ms frames."""
        tone = Tone(tuple((f, self.level_dbm0) for f in self.frequencies))
        if not self.cadence_ms:
            return ToneStream([Segment(tone, 1000.0)], rate, repeat=True)
        segments = [
            Segment(tone if i % 2 == 0 else SILENCE, ms) for i, ms in enumerate(self.cadence_ms)
        ]
        return ToneStream(segments, rate, repeat=True)


US_DIAL: Final = CallProgressTone("us-dial", (350.0, 440.0), -13.0)
US_RINGBACK: Final = CallProgressTone("us-ringback", (440.0, 480.0), -19.0, (2000.0, 4000.0))
US_BUSY: Final = CallProgressTone("us-busy", (480.0, 620.0), -24.0, (500.0, 500.0))
US_REORDER: Final = CallProgressTone("us-reorder", (480.0, 620.0), -24.0, (250.0, 250.0))
EU_DIAL: Final = CallProgressTone("eu-dial", (425.0,), -13.0)
EU_RINGBACK: Final = CallProgressTone("eu-ringback", (425.0,), -13.0, (1000.0, 4000.0))
EU_BUSY: Final = CallProgressTone("eu-busy", (425.0,), -13.0, (500.0, 500.0))
#: What a caller on hold hears: a short, quiet beep every 10 s (silence alone
#: sounds like a dropped call; ringback sounds like ringing again).
HOLD: Final = CallProgressTone("hold", (440.0,), -24.0, (300.0, 9700.0))

CALL_PROGRESS_TONES: Final = {
    tone.name: tone
    for tone in (US_DIAL, US_RINGBACK, US_BUSY, US_REORDER, EU_DIAL, EU_RINGBACK, EU_BUSY, HOLD)
}


class ComfortNoise:
    """White Gaussian noise at ``level_dbm0``, 20 ms frames at ``rate``.

    ``seed`` makes the noise reproducible (tests); leave it None in calls.
    """

    def __init__(self, level_dbm0: float, rate: int, seed: int | None = None) -> None:
        _check_rate(rate)
        if level_dbm0 > 0:
            raise ValueError(f"comfort noise is at most 0 dBm0, not {level_dbm0}")
        self.rate = rate
        self._rms = DBM0_RMS * 10 ** (level_dbm0 / 20)
        self._rng = np.random.default_rng(seed)
        self._frame = samples_per_frame(rate)

    def samples(self, count: int) -> Samples:
        """The next ``count`` samples of noise."""
        if count < 0:
            raise ValueError(f"a sample count cannot be negative, not {count}")
        return _to_int16(self._rng.normal(0.0, self._rms, count))

    def __iter__(self) -> Iterator[Samples]:
        return self

    def __next__(self) -> Samples:
        """The next 20 ms frame."""
        return self.samples(self._frame)
