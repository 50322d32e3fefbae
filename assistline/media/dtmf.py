"""Streaming DTMF detection at 8 and 16 kHz.

:class:`DtmfDetector` takes int16 samples in any slicing and returns one
:class:`DigitEvent` per key press, when the key is released (:attr:`current`
tells which key is down before that). It never logs: during a payment the
digits are card data, and :class:`DigitEvent`'s repr hides them.

How it works, and why:

- **10 ms blocks, one numpy pass per call.** The blocks of a call are
  copied into a kept float32 buffer, projected onto the eight DTMF
  frequencies over the whole block and its first half and copied
  (``[cos, -sin interleaved | first half | identity]``), squared, and
  summed by a weight matrix into one row per block: a screening sum, the
  eight powers summed, each power and the block energy. Python then looks
  at a few numbers per block. Here a numpy call costs 0.3-1.5 µs whatever
  its size and a line of Python about 0.1 µs, so the layout is built
  around their count: five numpy calls per call, into kept outputs, and
  per block only comparisons, inlined in :meth:`DtmfDetector.feed`. The
  optional C module ``_dtmf`` (built at install like ``_g711``) does that
  pass in one call; numpy is the fallback; the tests run both.
- **Screening.** Unless a key is down or pending, a call whose blocks'
  eight powers together hold less than the purity share of the energy is
  done with at once: that is most speech and all silence.
- **A block is tonal** when the strongest row and column each reach
  ``min_level_dbm0``, their twist is within the limits (with 2.5 dB of
  slack: leakage between the tones moves a 10 ms block's twist that much)
  and together they hold ``purity`` (70 %) of the block's energy. Purity is
  what rejects speech and noise: two clean sines put their energy in two
  bins, a voice spreads it. A block that may go on with a run of tonal
  blocks is first tried with the run's key under the same limits: tones
  holding the purity share leave the other tones of their groups little
  room, and the window that confirms the run checks those exactly.
- **A run of three tonal blocks with one key is confirmed by its last
  20 ms window** (``confirm_windows`` + 1 blocks): the phase advance of
  each tone from the second block to the third measures its frequency
  within about a hertz (unambiguous over ±50 Hz; the 5 ms halves of each
  block settle the ambiguity), and each must lie within 2.5 % of nominal,
  midway between ITU-T Q.24's 1.5 % must-accept and 3.5 % must-reject.
  With that offset taken out, the 20 ms coherent amplitudes give the exact
  twist (9 dB normal, high group weaker; 5 dB reverse), and no other row
  or column may come within 10 dB. If the window fails, the run starts
  again at its last block. Only the last window is checked because it is
  the dearest step of a key press (about 3 µs of complex arithmetic in
  Python) and the better measurement: the first block of a run is usually
  partly covered by the tone, and a window over it measured twist and
  frequency less well. Checking every window of the run cost about 10 %
  more per frame on key presses, stopped the twist sweep at 8.5/4.5 dB
  instead of the 9/5 dB limits and found every digit only down to 6 dB
  SNR, not 5; the talk-off corpus gives no false digit either way.
- **Timing.** Three tonal blocks (30 ms of tone) confirm a digit, so a
  40 ms tone is detected whatever its alignment with the blocks and a
  20 ms tone (at most two tonal blocks: a block needs 70 % of it covered
  to be pure enough) never is. A confirmed digit holds while its tones
  still lead their groups under looser limits, and ends after three
  blocks without them: a 40 ms pause always spans three whole blocks, a
  10 ms interruption touches two at most.
- **Start and end** are refined within a block from the share of the
  partly covered blocks at either end the tones fill (a share *s* of a
  block holds *s²* of a whole block's power): within ±2.5 ms on clean
  tones, leakage between the two tones being the error.

Measured against spandsp on the same 8 kHz signals (``bench/media.py``):
every Q.24 item passes (spandsp misses nine, among them ±1.5 % on the
high group and 8/4 dB twist); dynamic range 41 dB (+3 to -37 dBm0 per
tone; spandsp 45); every digit still found at 5 dB SNR per tone in white
noise (spandsp 8 dB); no false digit in 5.6 hours of espeak-ng speech from
all 131 voices at four levels (spandsp none either). The same tests run at
16 kHz in the unit tests. Per 20 ms frame, against spandsp's C receiver
called through ctypes (the bench's cost stage: the same frames, taking
turns, median of five, on a shared 2-core machine), this costs 0.62× on
speech, 1.11× on the battery's signals and 1.24× on key presses in noise
(50 ms on/off) with the C projections; numpy alone gave 1.22-1.31×,
1.76-1.90× and 1.98-2.10× (its calls' fixed cost dominates at 160 samples).

Levels follow :mod:`assistline.media.tones` (0 dBm0 ↔ RMS 16,021).
"""

from __future__ import annotations

import cmath
import dataclasses
import math
from typing import Final

import numpy as np
import numpy.typing as npt

from assistline.media.tones import DBM0_RMS, DTMF_COLUMN_HZ, DTMF_KEYS, DTMF_ROW_HZ

try:
    from assistline.media import _dtmf

    ACCELERATED = True
except ImportError:  # built without a C compiler: the numpy projections are used
    ACCELERATED = False

SUPPORTED_RATES: Final = (8000, 16000)
BLOCK_MS: Final = 10

BLOCK_TWIST_MARGIN_DB: Final = 2.5  # see DtmfDetector.__init__
HOLD_TWIST_MARGIN_DB: Final = 4.0
END_BLOCKS: Final = 3  # blocks without the tones that end a digit


@dataclasses.dataclass(frozen=True, slots=True)
class DtmfThresholds:
    """What the detector accepts as a key press (the defaults meet ITU-T Q.24).

    Levels are per frequency. ``purity`` is the share of a block's energy the
    two tones must hold; ``frequency_tolerance`` is relative (0.025 = 2.5 %).
    Normal twist is the high group weaker than the low group, reverse the
    other way (spandsp's convention). A run of ``confirm_windows`` + 1 tonal
    blocks with one key, whose last 20 ms window is valid, confirms a digit.
    The ``hold_*`` limits keep a confirmed digit held.
    :data:`~assistline.media.dtmf_suppression.SUPPRESSION` is a more
    sensitive set.
    """

    min_level_dbm0: float = -38.0
    normal_twist_db: float = 9.0
    reverse_twist_db: float = 5.0
    purity: float = 0.70
    frequency_tolerance: float = 0.025
    relative_peak_db: float = 10.0
    confirm_windows: int = 2
    hold_level_dbm0: float = -44.0
    hold_purity: float = 0.35

    def __post_init__(self) -> None:
        if not 0 < self.purity <= 1 or not 0 < self.hold_purity <= 1:
            raise ValueError(f"purity lies in (0, 1], not {self.purity} / {self.hold_purity}")
        if self.confirm_windows < 1:
            raise ValueError(f"confirm_windows is at least 1, not {self.confirm_windows}")


DETECTION: Final = DtmfThresholds()

_FREQUENCIES: Final = DTMF_ROW_HZ + DTMF_COLUMN_HZ
# Where each value sits in a block's row (see DtmfDetector.__init__).
_SCREEN: Final = 0
_TONES: Final = 1
_POWER: Final = 2  # the eight powers at 2..9
_ENERGY: Final = 10
_ROW_VALUES: Final = 11
_INT16: Final = np.dtype(np.int16)
_PI: Final = math.pi
_phase: Final = cmath.phase
_dot: Final = np.dot
_multiply: Final = np.multiply


@dataclasses.dataclass(frozen=True, slots=True)
class DigitEvent:
    """One key press: the key, and where its tone started and how long it lasted.

    ``start`` and ``duration`` are in samples at the detector's rate, counted
    from the first sample the detector was fed.
    """

    digit: str
    start: int
    duration: int

    @property
    def end(self) -> int:
        """The first sample after the tone."""
        return self.start + self.duration

    def __repr__(self) -> str:
        # Digits are card data during a payment: keep them out of reprs and tracebacks.
        return f"DigitEvent(digit=<hidden>, start={self.start}, duration={self.duration})"


# A frozen dataclass's __init__ sets each field through object.__setattr__; filling the
# slots directly makes an event in 60 % of the time, which counts once per key press.
_set_digit = DigitEvent.__dict__["digit"].__set__
_set_start = DigitEvent.__dict__["start"].__set__
_set_duration = DigitEvent.__dict__["duration"].__set__


def _event(digit: str, start: int, duration: int) -> DigitEvent:
    event = object.__new__(DigitEvent)
    _set_digit(event, digit)
    _set_start(event, start)
    _set_duration(event, duration)
    return event


def _db(value: float) -> float:
    return 10 ** (value / 10)


class DtmfDetector:
    """A streaming DTMF receiver for one audio stream at 8000 or 16000 Hz."""

    def __init__(self, rate: int = 8000, thresholds: DtmfThresholds = DETECTION) -> None:
        if rate not in SUPPORTED_RATES:
            raise ValueError(f"the DTMF detector runs at 8000 or 16000 Hz, not {rate}")
        self.rate = rate
        self.thresholds = t = thresholds
        n = rate * BLOCK_MS // 1000
        self._n = n
        omega = 2 * np.pi * np.asarray(_FREQUENCIES) / rate
        angles = np.outer(np.arange(n), omega)
        first_half = (np.arange(n) < n // 2)[:, np.newaxis]
        # One product projects a block onto the eight frequencies over the whole block and
        # over its first half (real and imaginary parts interleaved, so the first 32 values
        # read as complex64 are Z0..Z7 and H0..H7) and copies its samples.
        basis = np.zeros((n, 32 + n))
        basis[:, 0:16:2] = np.cos(angles)
        basis[:, 1:16:2] = -np.sin(angles)
        basis[:, 16:32:2] = np.cos(angles) * first_half
        basis[:, 17:32:2] = -np.sin(angles) * first_half
        basis[:, 32:] = np.eye(n)
        self._basis = basis.astype(np.float32)
        self._basis32 = np.ascontiguousarray(self._basis[:, :32])  # for the C projections
        self._allocate(0)
        self._size = -1  # no call has been this size yet
        tone_power = n * n / 2 * DBM0_RMS**2  # |Z|^2 of a 0 dBm0 tone over one block
        self._min_power = tone_power * _db(t.min_level_dbm0)
        self._hold_power = tone_power * _db(t.hold_level_dbm0)
        self._floor = 2 * self._min_power  # the eight powers summed, in a tonal block
        self._purity = purity = t.purity * n / 2
        self._hold_purity = t.hold_purity * n / 2
        # Leakage between the tones moves a 10 ms block's twist by up to ~2 dB; blocks get
        # that much slack and the 20 ms window applies the exact limits.
        self._block_normal = _db(t.normal_twist_db + BLOCK_TWIST_MARGIN_DB)
        self._block_reverse = _db(t.reverse_twist_db + BLOCK_TWIST_MARGIN_DB)
        self._hold_normal = _db(t.normal_twist_db + HOLD_TWIST_MARGIN_DB)
        self._hold_reverse = _db(t.reverse_twist_db + HOLD_TWIST_MARGIN_DB)
        # Squared and summed by the weights, each block becomes one row:
        # [screen, the eight powers summed, p0..p7, energy].
        weights = np.zeros((32 + n, _ROW_VALUES))
        weights[:16, _SCREEN] = 1.0
        weights[32:, _SCREEN] = -purity
        weights[:16, _TONES] = 1.0
        for i in range(8):
            weights[2 * i : 2 * i + 2, _POWER + i] = 1.0
        weights[32:, _ENERGY] = 1.0
        self._weights = weights.astype(np.float32)
        # Per key, what its window is checked with: its tones, e^{-j w n} undoing their
        # nominal phase advance over a block, the phase advance that makes the frequency
        # tolerance, and the other rows and columns with their own e^{-j w n}.
        advance = [cmath.exp(-1j * w * n) for w in omega.tolist()]
        limit = [2 * math.pi * t.frequency_tolerance * f * BLOCK_MS / 1000 for f in _FREQUENCIES]
        self._keys = [
            (
                low,
                high,
                advance[low],
                advance[high],
                limit[low],
                limit[high],
                tuple((i, advance[i]) for i in range(4) if i != low),
                tuple((i, advance[i]) for i in range(4, 8) if i != high),
            )
            for low in range(4)
            for high in range(4, 8)
        ]
        self._normal_amplitude = math.sqrt(_db(t.normal_twist_db))
        self._reverse_amplitude = math.sqrt(_db(t.reverse_twist_db))
        self._relative_peak_amplitude = 1 / math.sqrt(_db(t.relative_peak_db))
        self._confirm_windows = t.confirm_windows
        self._reset()

    def _allocate(self, count: int) -> None:
        n = self._n
        self._count = count
        self._size = count * n
        self._blocks = np.zeros((count, n), dtype=np.float32)
        self._samples = self._blocks.reshape(-1)
        self._parity = 0
        # Two sets of projections, each with its Z0..Z7 and H0..H7 read as complex numbers.
        projections = [np.zeros((count, 32 + n), dtype=np.float32) for _ in range(2)]
        self._buffers = [(p, p[:, :32].view(np.complex64)) for p in projections]
        self._projections = self._buffers[0]
        self._squares = np.zeros((count, 32 + n), dtype=np.float32)
        self._rows = np.zeros((count, _ROW_VALUES), dtype=np.float32)

    def _reset(self) -> None:
        self._carry = np.zeros(0, dtype=np.int16)
        self._carried = 0
        self._block = 0  # index of the next block
        self._idle = True  # no digit held and no run of tonal blocks
        self._prev_row: list[float] = []  # the previous block's row
        # The run of tonal blocks with one code that may become a digit: its first block,
        # the power of its two tones in that block and the one before, and in the rest;
        # where its last block's projections are, for the window that confirms it.
        self._run_code = -1
        self._run_row = self._run_col = 0  # indices of its powers in a row
        self._run_block = 0
        self._run_first = 0.0
        self._run_before = 0.0
        self._run_sum = 0.0  # power of its two tones summed over the blocks after the first
        self._run_count = 0  # blocks after the first
        self._run_last: tuple[npt.NDArray[np.complex64], int] = (self._buffers[0][1], 0)
        # The confirmed digit, if any: where it started (in blocks), a whole block's power,
        # the last block that carried it and that block's power, and the misses since.
        self._on = -1
        self._on_row = self._on_col = 0  # indices of its powers in a row
        self._on_start = 0.0
        self._on_peak = 0.0
        self._on_last = 0
        self._on_last_power = 0.0
        self._misses = 0
        self._miss_power = 0.0
        self._events: list[DigitEvent] = []

    @property
    def current(self) -> str | None:
        """The key held down right now, once confirmed; None between keys."""
        return DTMF_KEYS[self._on] if self._on >= 0 else None

    @property
    def current_start(self) -> int | None:
        """Where the tone of :attr:`current` started (samples since the stream began)."""
        return round(self._on_start * self._n) if self._on >= 0 else None

    @property
    def position(self) -> int:
        """Samples analysed so far (fed samples short of a whole 10 ms block wait)."""
        return self._block * self._n

    def feed(self, samples: npt.NDArray[np.int16]) -> list[DigitEvent]:
        """Run the detector over the next samples; return the key presses that ended."""
        # One pass of numpy per call, into buffers kept for calls of one size; then the
        # blocks' rows in Python.
        if samples.dtype is not _INT16 and samples.dtype != _INT16 or samples.ndim != 1:
            raise ValueError(
                f"the DTMF detector takes 1-D int16 samples, not {samples.ndim}-D {samples.dtype}"
            )
        if len(samples) != self._size or self._carried:
            whole = self._whole_blocks(samples)
            if whole is None:
                return []
            samples = whole
        projections, measures = self._projections
        rows: list[list[float]]
        if ACCELERATED:
            rows = _dtmf.project(samples, self._basis32, projections, self._purity)
        else:
            # Copying into float32 costs less than np.dot converting the int16 itself,
            # and outputs given cost less than new ones.
            self._samples[:] = samples
            _dot(self._blocks, self._basis, projections)
            _multiply(projections, projections, self._squares)
            rows = _dot(self._squares, self._weights, self._rows).tolist()
        if self._idle:
            # Screening: a block can only be tonal if the eight powers together hold the
            # purity share of its energy and reach twice the minimum level.
            for row in rows:
                if row[_SCREEN] >= 0 and row[_TONES] >= self._floor:
                    break
            else:
                self._block += self._count
                self._prev_row = rows[-1]
                return []
        # Block by block. This runs on every block while a key is pressed, so it is
        # written for CPython: comparisons, and no calls on the common paths (a call
        # costs as much as a dozen comparisons).
        block, prev_row = self._block, self._prev_row
        for index, row in enumerate(rows):
            on = self._on
            if on >= 0:
                # Does the block still carry the held digit? Its two tones must still lead
                # their groups, under looser level, purity and twist limits than a new one.
                pr, pc = row[self._on_row], row[self._on_col]
                if (
                    pr >= self._hold_power
                    and pc >= self._hold_power
                    and pr + pc >= self._hold_purity * row[_ENERGY]
                    and pc <= pr * self._hold_reverse
                    and pr <= pc * self._hold_normal
                    and pr >= row[2]
                    and pr >= row[3]
                    and pr >= row[4]
                    and pr >= row[5]
                    and pc >= row[6]
                    and pc >= row[7]
                    and pc >= row[8]
                    and pc >= row[9]
                ):
                    self._on_last = block
                    self._on_last_power = pr + pc
                    self._misses = 0
                    if self._run_code < 0:
                        prev_row = row
                        block += 1
                        continue
                else:
                    if not self._misses:
                        self._miss_power = pr + pc
                    self._misses += 1
                    if self._misses >= END_BLOCKS:
                        self._finish()
                    if self._run_code < 0 and (row[_SCREEN] < 0 or row[_TONES] < self._floor):
                        prev_row = row
                        block += 1
                        continue
            # Is the block tonal, and with which key? Its strongest row and column (the
            # first of equals) at the minimum level, pure, and within the block's twist.
            code = self._run_code
            if code >= 0:
                # Most often it goes on with the run: try that key first. Its tones
                # holding the purity share leave the other tones of their groups little
                # room, and the window that confirms the run checks their peaks exactly.
                pr, pc = row[self._run_row], row[self._run_col]
                if (
                    pr < self._min_power
                    or pc < self._min_power
                    or pr + pc < self._purity * row[_ENERGY]
                    or pc > pr * self._block_reverse
                    or pr > pc * self._block_normal
                ):
                    code = -1
            if code < 0:
                pr, code = row[2], 0
                if row[3] > pr:
                    pr, code = row[3], 4
                if row[4] > pr:
                    pr, code = row[4], 8
                if row[5] > pr:
                    pr, code = row[5], 12
                pc, column = row[6], 0
                if row[7] > pc:
                    pc, column = row[7], 1
                if row[8] > pc:
                    pc, column = row[8], 2
                if row[9] > pc:
                    pc, column = row[9], 3
                code += column
                if (
                    pr < self._min_power
                    or pc < self._min_power
                    or pr + pc < self._purity * row[_ENERGY]
                    or pc > pr * self._block_reverse
                    or pr > pc * self._block_normal
                    or code == self._on
                ):
                    # Not tonal, or tonal with the held digit: no run of a new one. (A block
                    # out of a run ends it, so a run's code says the previous block was in it.)
                    self._run_code = -1
                    prev_row = row
                    block += 1
                    continue
            # A tonal block: track the run of them that may become the next digit. A run
            # confirms once it has the blocks for its windows and the last window is valid.
            if code == self._run_code:
                self._run_sum += pr + pc
                self._run_count += 1
                if self._on < 0 and self._run_count >= self._confirm_windows:
                    if self._window_ok(code, prev_row, row, self._run_last, measures, index):
                        self._confirm(block)
                    else:
                        r, c = self._run_row, self._run_col
                        self._start_run(code, block, pr + pc, prev_row[r] + prev_row[c])
            else:
                r, c = _POWER + code // 4, _POWER + 4 + code % 4
                before = prev_row[r] + prev_row[c] if prev_row else 0.0
                self._start_run(code, block, pr + pc, before)
            self._run_last = measures, index
            prev_row = row
            block += 1
        self._block, self._prev_row = block, prev_row
        if self._run_code >= 0:
            # The next call projects into the other buffers: the run's window may need
            # this call's last block.
            self._idle = False
            self._parity ^= 1
            self._projections = self._buffers[self._parity]
        else:
            self._idle = self._on < 0
        if not self._events:
            return []
        events, self._events = self._events, []
        return events

    def _whole_blocks(self, samples: npt.NDArray[np.int16]) -> npt.NDArray[np.int16] | None:
        """The whole blocks of what was carried over and ``samples``, keeping the rest."""
        n = self._n
        if self._carried:
            samples = np.concatenate([self._carry, samples])
        used = len(samples) - len(samples) % n
        self._carry = samples[used:].copy()
        self._carried = len(self._carry)
        if not used:
            return None
        if used != self._size:
            self._allocate(used // n)
        return samples[:used]

    def flush(self) -> list[DigitEvent]:
        """End the stream: report a key still held, and forget all state."""
        if self._on >= 0:
            self._finish()
        events = self._events
        self._reset()
        return events

    def _start_run(self, code: int, block: int, power: float, before: float) -> None:
        self._run_code = code
        self._run_row = _POWER + code // 4
        self._run_col = _POWER + 4 + code % 4
        self._run_block = block
        self._run_first = power
        self._run_before = before
        self._run_sum = 0.0
        self._run_count = 0

    def _confirm(self, block: int) -> None:
        # A tone covering a share s of a block puts s^2 of a full block's power in it: the
        # first block and the one before tell where in them the tone began.
        # The blocks after the first are whole; their mean is a whole block's power.
        peak = self._run_sum / self._run_count
        first = self._run_first / peak
        first = 1.0 if first >= 1.0 else math.sqrt(first)
        before = self._run_before / peak
        before = 1.0 if before >= 1.0 else math.sqrt(before)
        self._on = self._run_code
        self._on_row = self._run_row
        self._on_col = self._run_col
        self._on_start = self._run_block + 1 - first - before
        self._on_peak = peak
        self._on_last = block
        self._on_last_power = peak
        self._misses = 0
        self._miss_power = 0.0
        self._run_code = -1

    def _finish(self) -> None:
        n = self._n
        peak = self._on_peak
        last = self._on_last_power / peak
        last = 1.0 if last >= 1.0 else math.sqrt(last)
        after = self._miss_power / peak if self._misses else 0.0
        after = 1.0 if after >= 1.0 else math.sqrt(after)
        start = round(self._on_start * n)
        end = round((self._on_last + last + after) * n)
        self._events.append(_event(DTMF_KEYS[self._on], start, end - start))
        self._on = -1
        self._misses = 0

    def _window_ok(
        self,
        code: int,
        row0: list[float],
        row1: list[float],
        before: tuple[npt.NDArray[np.complex64], int],
        measures: npt.NDArray[np.complex64],
        index: int,
    ) -> bool:
        """Check the 20 ms window of a block and the one before: frequencies, twist, peaks.

        ``row0`` and ``row1`` are the blocks' rows; ``before`` and ``measures``/``index``
        say where their projections are.
        """
        earlier, at = before
        if earlier is measures:
            z0, z1 = measures[at : index + 1].tolist()
        else:
            z0, z1 = earlier[at].tolist(), measures[index].tolist()
        low, high, a_low, a_high, t_low, t_high, rows, columns = self._keys[code]
        # Fine: each tone's phase advance over one block beyond the nominal one (within
        # the tolerance, or the tone is off), ambiguous by whole turns, which the coarse
        # advance of each block's second half over its first settles (Z/H - 1 is the
        # second half over the first, H, both against the nominal tone).
        w0, w1 = z0[low], z1[low]
        fine = _phase(w1 * a_low / w0)
        if not -t_low <= fine <= t_low:
            return False
        if not -_PI < 2 * _phase(w0 / z0[low + 8] + w1 / z1[low + 8] - 2) - fine < _PI:
            return False
        # 20 ms coherent amplitude with the measured offset taken out: the tone adds up
        # whole (|Z0| + |Z1|), leakage from the other tone does not.
        a_row = abs(w0) + abs(w1)
        w0, w1 = z0[high], z1[high]
        fine = _phase(w1 * a_high / w0)
        if not -t_high <= fine <= t_high:
            return False
        if not -_PI < 2 * _phase(w0 / z0[high + 8] + w1 / z1[high + 8] - 2) - fine < _PI:
            return False
        a_col = abs(w0) + abs(w1)
        if a_col > a_row * self._reverse_amplitude or a_row > a_col * self._normal_amplitude:
            return False
        # No other row or column may come close (nominal 20 ms coherent amplitude). As
        # |Z0 + Z1 e^{-j w n}|^2 <= 2 (|Z0|^2 + |Z1|^2), the blocks' powers settle it for the
        # tones that leakage does not reach; only the others take complex arithmetic.
        limit = a_row * self._relative_peak_amplitude
        bound = limit * limit / 2
        for i, a in rows:
            if row0[_POWER + i] + row1[_POWER + i] > bound and abs(z0[i] + z1[i] * a) > limit:
                return False
        limit = a_col * self._relative_peak_amplitude
        bound = limit * limit / 2
        for i, a in columns:
            if row0[_POWER + i] + row1[_POWER + i] > bound and abs(z0[i] + z1[i] * a) > limit:
                return False
        return True
