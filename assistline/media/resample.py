"""Streaming sample-rate conversion between 8, 16 and 48 kHz.

Legs convert at their edge: G.711 arrives at 8 kHz, Opus at 48 kHz, and the
media core runs at 16 kHz (see :mod:`assistline.media.frame`). Every pair of
those rates is an integer ratio (2, 3 or 6), so a :class:`Resampler` is a
polyphase FIR filter: a linear-phase, Kaiser-windowed sinc with 44 taps each
side counted at the lower rate, its -6 dB point at 0.4725 × the lower rate
and a Kaiser β for 74 dB. It carries its input history across calls, so
cutting a stream into frames changes nothing: the output is bit-identical
however the input is split.

Requirements, and what ``bench/_media_codecs.py`` and the tests measure on
the int16 output with FFTs of test tones: passband ripple at most 0.1 dB up
to 0.45 × the lower rate (measured 0.039 dB for every pair); at least 60 dB
of attenuation from the lower rate's Nyquist frequency up, for the aliases
of tones above it when decimating and for the images of tones below it when
interpolating (measured 73.6–74.7 dB). Cost per 20 ms frame on the 2-core
development machine in a quiet run, PyAV's in brackets (under load both
grow by up to 1.7 times): 8→16 kHz 15 µs (25), 16→8 kHz
15 µs (21), 48→16 kHz 27 µs (28), 16→48 kHz 25 µs (26); 8↔48 kHz about
30 µs.

Why not a library. soxr (``soxr.ResampleStream``, ``HQ``) meets the
filter requirements with room to spare (0.0002 dB, over 90 dB), but it
buffers internally and emits in bursts: at 8→16 kHz nothing for five 20 ms
frames, then 1,660 samples every fifth frame, so handing out steady 20 ms
frames would add about 100 ms of latency to every call (``MQ`` the same;
``LQ`` 60 ms, and its passband is too narrow); its one steady setting,
``QQ``, has no anti-alias filter (0 dB alias rejection). Its chunked int16
output also differs from its one-shot output by up to 2 LSB. PyAV's
``av.AudioResampler`` (libswresample) streams steadily, but its defaults
(``filter_size`` 32, ``cutoff`` 0.97) give 1.03 dB of ripple and 10.5 dB of
alias rejection. With ``filter_size=128, cutoff=0.95`` it decimates well
(0.0001 dB, 94–97 dB), but libswresample ignores ``cutoff`` when
interpolating and centres that filter's transition on the input's Nyquist
frequency, so the image of a tone just below it is 6 dB down and a 3.92 kHz
tone at 8→16 kHz leaves an image at 4.08 kHz only 21 dB down. It also
needs every frame wrapped in an ``av.AudioFrame`` and its first output
frame comes up short. This module costs about the same or less, meets the
requirement both ways, and its output does not depend on how input is cut.

Latency: the output lags the input by :attr:`Resampler.delay` output
samples, which is 44 samples at the lower rate: 5.5 ms when 8 kHz is
involved and 2.75 ms between 16 and 48 kHz. The filter's history starts as
silence, so the first output frame begins with the filter's ramp-in and
every 20 ms frame in gives exactly one 20 ms frame out, from the first frame
on (:meth:`Resampler.process_frame`): nothing needs priming or padding.
:func:`resample` converts a whole signal at once with the delay removed.

Arithmetic is exact: the taps are rounded to multiples of 2**-24, so every
product and partial sum of int16 samples is a multiple of 2**-24 well within
float64's 53 bits, and numpy's order of summation cannot change a result.
Rounding half to even, then clipping to int16, is the only inexact step.
"""

from __future__ import annotations

import functools

import numpy as np
import numpy.typing as npt

from assistline.media.frame import Samples, samples_per_frame

SUPPORTED_RATES = (8_000, 16_000, 48_000)

# Taps each side of the centre, counted at the lower rate: the delay in those samples.
HALF_LENGTH = 44
# The -6 dB point as a fraction of the lower rate; the passband ends at 0.45, the stopband
# starts at 0.5, and sitting just below the middle trades unused passband margin for stopband.
CUTOFF = 0.4725
KAISER_ATTENUATION_DB = 74.0

_SCALE_BITS = 24
_INT16 = np.dtype(np.int16)

Taps = npt.NDArray[np.float64]


@functools.cache
def _prototype(factor: int) -> Taps:
    """The low-pass filter at the higher rate, unity gain at DC, 2 × factor × 44 + 1 taps."""
    length = 2 * factor * HALF_LENGTH + 1
    centred = np.arange(length) - (length - 1) / 2
    cutoff = CUTOFF / factor  # in cycles per sample at the higher rate
    beta = 0.1102 * (KAISER_ATTENUATION_DB - 8.7)
    taps = 2 * cutoff * np.sinc(2 * cutoff * centred) * np.kaiser(length, beta)
    result: Taps = taps / taps.sum()
    return result


@functools.cache
def _phases(factor: int, gain: int) -> tuple[Taps, ...]:
    """The prototype split into ``factor`` phases of 2 × 44 + 1 taps, reversed and scaled.

    Phase ``p`` holds taps ``p, p + factor, p + 2 × factor, …`` in reverse order, as
    multiples of 2**-24 (``gain`` × tap, rounded), ready for :func:`numpy.correlate`.
    """
    per_phase = 2 * HALF_LENGTH + 1
    padded = np.zeros(factor * per_phase)
    padded[: 2 * factor * HALF_LENGTH + 1] = _prototype(factor) * gain
    fixed = np.round(padded * 2.0**_SCALE_BITS) * 2.0**-_SCALE_BITS
    return tuple(np.ascontiguousarray(fixed[phase::factor][::-1]) for phase in range(factor))


def _check_rate(rate: int) -> None:
    if rate not in SUPPORTED_RATES:
        raise ValueError(f"resampling supports 8000, 16000 and 48000 Hz, not {rate}")


def _to_int16(accumulated: Taps) -> Samples:
    # In place: each numpy call costs about as much as the arithmetic on a 20 ms frame.
    np.rint(accumulated, out=accumulated)
    np.minimum(accumulated, 32767.0, out=accumulated)
    np.maximum(accumulated, -32768.0, out=accumulated)
    return accumulated.astype(np.int16)


class Resampler:
    """A streaming converter from one supported rate to another.

    Feed it int16 mono samples in order, in pieces of any length; the output
    pieces, joined, are the same whatever the pieces were. Converting a rate to
    itself is allowed and copies.
    """

    def __init__(self, from_rate: int, to_rate: int) -> None:
        _check_rate(from_rate)
        _check_rate(to_rate)
        self._from_rate = from_rate
        self._to_rate = to_rate
        self._in_frame = samples_per_frame(from_rate)
        self._out_frame = samples_per_frame(to_rate)
        self._up = max(1, to_rate // from_rate)
        self._down = max(1, from_rate // to_rate)
        factor = self._up * self._down
        self._phases = _phases(factor, self._up) if factor > 1 else ()
        # The last input samples the next output still needs, zeros at first: decimating,
        # the whole prototype's span; interpolating, one phase's.
        span = len(self._phases) * (2 * HALF_LENGTH + 1) if self._down > 1 else 2 * HALF_LENGTH + 1
        self._history: Taps = np.zeros(span - 1 if factor > 1 else 0)
        # Decimating: input samples to skip before the next one an output sample lines up with.
        self._skip = 0

    @property
    def from_rate(self) -> int:
        """The input rate in Hz."""
        return self._from_rate

    @property
    def to_rate(self) -> int:
        """The output rate in Hz."""
        return self._to_rate

    @property
    def delay(self) -> int:
        """How many output samples the output lags the input: 44 at the lower rate."""
        if self._from_rate == self._to_rate:
            return 0
        return HALF_LENGTH * self._up

    def process(self, samples: Samples) -> Samples:
        """The output for the next piece of input.

        Interpolating, the output is exactly ``ratio`` times as long. Decimating,
        one output sample comes for each input sample at a multiple of the ratio
        counted from the start of the stream, so whole 20 ms frames give whole
        20 ms frames.
        """
        if type(samples) is not np.ndarray or samples.dtype is not _INT16 or samples.ndim != 1:
            _check_samples(samples)
        if not self._phases or not len(samples):
            return samples.copy()
        buffer = np.empty(len(self._history) + len(samples))
        buffer[: len(self._history)] = self._history
        buffer[len(self._history) :] = samples
        self._history = buffer[len(buffer) - len(self._history) :]
        if self._up > 1:
            return self._interpolate(buffer, len(samples))
        return self._decimate(buffer, len(samples))

    def process_frame(self, samples: Samples) -> Samples:
        """The 20 ms output frame for one 20 ms input frame."""
        _check_samples(samples)
        if len(samples) != self._in_frame:
            raise ValueError(
                f"a 20 ms frame at {self._from_rate} Hz is {self._in_frame} samples, "
                f"not {len(samples)}"
            )
        if self._skip:
            raise ValueError(
                "the input so far is not whole 20 ms frames, so this frame would not give "
                f"{self._out_frame} samples at {self._to_rate} Hz"
            )
        return self.process(samples)

    def _interpolate(self, buffer: Taps, count: int) -> Samples:
        out = np.empty((count, self._up))
        for phase, taps in enumerate(self._phases):
            out[:, phase] = np.correlate(buffer, taps, "valid")
        return _to_int16(out.reshape(-1))

    def _decimate(self, buffer: Taps, count: int) -> Samples:
        ratio = self._down
        skip = self._skip
        outputs = max(0, -(-(count - skip) // ratio))
        self._skip = (skip - count) % ratio
        accumulated = np.zeros(outputs)
        if outputs:
            # Input offset r inside each block of ``ratio`` meets phase ratio - 1 - r.
            for offset, taps in enumerate(reversed(self._phases)):
                accumulated += np.correlate(buffer[skip + offset :: ratio], taps, "valid")[:outputs]
        return _to_int16(accumulated)


def _check_samples(samples: object) -> None:
    """Raise the ValueError that says what is wrong with ``samples``, if anything is."""
    if not isinstance(samples, np.ndarray):
        raise ValueError(f"resampling takes int16 samples, not {type(samples).__name__}")
    if samples.dtype != _INT16:
        raise ValueError(f"resampling takes int16 samples, not {samples.dtype}")
    if samples.ndim != 1:
        raise ValueError(
            f"resampling takes mono samples in one dimension, not shape {samples.shape}"
        )


def resample(samples: Samples, from_rate: int, to_rate: int) -> Samples:
    """A whole signal converted at once, with the filter's delay removed.

    The result has ``len(samples) × to_rate / from_rate`` samples, rounded up
    when decimating; a prompt or a recording converts this way.
    """
    resampler = Resampler(from_rate, to_rate)
    _check_samples(samples)
    # Enough trailing silence to push the last input sample through the filter's delay.
    tail = np.zeros(HALF_LENGTH * max(1, from_rate // to_rate), dtype=np.int16)
    out = resampler.process(np.concatenate((samples, tail)) if resampler.delay else samples)
    return out[resampler.delay :]
