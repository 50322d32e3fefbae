"""DTMF detection and suppression, measured side by side against spandsp.

``run()`` generates every test signal once, at 8 kHz (spandsp's only rate),
and runs our :class:`~assistline.media.dtmf.DtmfDetector` and spandsp's
``dtmf_rx`` (``_spandsp``, default parameters) on the same samples, fed in
20 ms frames. It returns one flat dict:

- ``battery_*``: the ITU-T Q.24 / Mitel CM7291 items of issue 3, pass/fail
  for both (a detector passes an item when the digits it reports are exactly
  the expected string); plus informational sweeps in the Mitel manner
  (recognition bandwidth, twist and shortest tone accepted).
- ``snr_*``: the lowest signal-to-noise ratio at which a detector reports
  every one of 1,008 digits (16 keys × 63, 50 ms on / 50 ms off, -4 dBm0 per
  tone) exactly, stepping down 1 dB from 24 dB, one seeded noise per step,
  both detectors run on every step until both have failed. SNR is per tone
  against white noise over 0-4 kHz, as in spandsp's test 7.
- ``talkoff_*``: false digits over espeak-ng speech from every voice
  ``espeak-ng --voices`` lists (each once, cycling through the male default
  and the f2-f5 and m3 variants so pitch spans male and female ranges), one
  fixed paragraph each, at -10/-20/-30 dBm0 active level over -55 dBm0 line
  noise and at -15 dBm0 under -35 dBm0 noise, counted per hour of audio.
- ``cost_*``: the cost target, at most twice spandsp's microseconds per
  20 ms frame on *each* signal class: the battery stage's signals (Q.24
  items, dynamic range, sweeps), key presses in noise (160 presses, 50 ms
  on and off, at each of 24, 15 and 6 dB SNR) and speech (eight voices of
  the corpus at -20 dBm0). Both detectors run on the same frames, taking
  turns signal by signal, five times over; the figures are medians of the
  five (thread CPU time: on a busy machine the other processes then count
  less). Key presses cost us most: that is where our Python runs block by
  block, while speech mostly stops at screening.
- ``us_per_frame_*``: microseconds per frame over each stage of the whole
  run above, timed once (battery with sweeps, noise, speech; ``all`` for
  everything, mostly speech), and ``cost_ratio_whole_run_*``: information.
- ``suppression_*``: a stream of speech and in-spec key presses through our
  :class:`~assistline.media.dtmf_suppression.DtmfSuppressor`: digits spandsp
  finds in its output (target 0), samples changed further than
  :data:`EDGE_TOLERANCE_MS` from a tone (target 0), and the added delay
  (target ≤ 40 ms); and
  ``talkoff_suppressor_muted_ms``, speech the suppressor muted over the whole
  talk-off corpus (target 0).

The speech corpus is synthesized once and cached in the temp directory.
"""

from __future__ import annotations

import functools
import hashlib
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import wave
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Final

import _spandsp
import numpy as np
import numpy.typing as npt
import soxr

import assistline.media.dtmf as dtmf_module
from assistline.media import tones
from assistline.media.dtmf import DtmfDetector
from assistline.media.dtmf_suppression import GUARD_MS, DtmfSuppressor

Samples = npt.NDArray[np.int16]
Floats = npt.NDArray[np.float64]

RATE: Final = 8000
FRAME: Final = 160
KEYS: Final = tones.DTMF_KEYS
DIAGONAL: Final = "159D"  # the Mitel tape's keys for bandwidth and twist sweeps
TAIL_MS: Final = 200  # silence after every signal so both detectors finish

TALKOFF_TEXT: Final = (
    "Good morning, and thank you for calling. Before we go any further, I would like to "
    "check a few details with you. Could you please confirm your full name, the first line "
    "of your address and your date of birth? Your balance today is four hundred and "
    "seventy-two pounds and eighty-nine pence, due on the thirty-first of August. "
    "Would you like to pay the whole amount now, or set up a weekly plan instead? "
    "Oh, I see! Yes, of course, that is absolutely fine. Hmm, one moment while I look."
)
VARIANTS: Final = ("", "+f2", "+f3", "+f4", "+f5", "+m3")
# (speech active level, noise level) in dBm0.
TALKOFF_CONDITIONS: Final = ((-10.0, -55.0), (-20.0, -55.0), (-30.0, -55.0), (-15.0, -35.0))

# Speech may change this close to a tone: the suppressor's guard plus its edge estimate's error.
EDGE_TOLERANCE_MS: Final = GUARD_MS + 5

DYNAMIC_RANGE_LEVELS: Final = tuple(range(3, -51, -1))  # Mitel test 5, dBm0 per tone
SNR_TOP_DB: Final = 24
SNR_REPEATS: Final = 63
SNR_TONE_DBM0: Final = -4.0

# The cost target's signals and repeats.
COST_REPEATS: Final = 5
COST_SNR_DB: Final = (24, 15, 6)
COST_SNR_REPEATS: Final = 10
COST_UTTERANCES: Final = 8
COST_TARGET: Final = 2.0  # at most twice spandsp's cost on every class
COST_CLASSES: Final = ("battery", "noise", "speech")


Press = tones.DtmfPress


def render(presses: list[Press], rate: int = RATE) -> Samples:
    """The signal of a list of key presses, followed by :data:`TAIL_MS` of silence."""
    return tones.render_presses(presses, rate, tail_ms=TAIL_MS)


def frames(signal: Samples) -> list[Samples]:
    """``signal`` cut into 20 ms frames (a shorter last frame is dropped)."""
    return [signal[i : i + FRAME] for i in range(0, signal.shape[0] - FRAME + 1, FRAME)]


class Runner:
    """One detector kept running across signals, timed per frame."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.seconds = 0.0
        self.frames = 0

    def digits(self, pieces: list[Samples]) -> str:
        """Digits reported over the frames (the detector keeps its state)."""
        raise NotImplementedError

    def fresh(self) -> None:
        """Start a new stream."""
        raise NotImplementedError

    @property
    def us_per_frame(self) -> float:
        """Mean time per frame so far."""
        return self.seconds / self.frames * 1e6 if self.frames else 0.0


class OursRunner(Runner):
    """Our detector at 8 kHz."""

    def __init__(self) -> None:
        super().__init__("ours")
        self.detector = DtmfDetector(RATE)

    def fresh(self) -> None:
        """Start a new stream."""
        self.detector = DtmfDetector(RATE)

    def digits(self, pieces: list[Samples]) -> str:
        """Digits reported over the frames (the detector keeps its state)."""
        feed = self.detector.feed
        found = []
        start = time.perf_counter()
        for piece in pieces:
            events = feed(piece)
            if events:
                found += events
        self.seconds += time.perf_counter() - start
        self.frames += len(pieces)
        return "".join(event.digit for event in found)


class SpandspRunner(Runner):
    """spandsp's receiver; its digit buffer is read every 64 frames (it holds 128)."""

    def __init__(self) -> None:
        super().__init__("spandsp")
        self.receiver = _spandsp.SpandspDtmf()

    def fresh(self) -> None:
        """Start a new stream."""
        self.receiver.close()
        self.receiver = _spandsp.SpandspDtmf()

    def digits(self, pieces: list[Samples]) -> str:
        """Digits reported over the frames (the detector keeps its state)."""
        feed, get = self.receiver.feed, self.receiver.digits
        found = []
        start = time.perf_counter()
        for index, piece in enumerate(pieces):
            feed(piece)
            if index & 63 == 63:
                found.append(get())
        found.append(get())
        self.seconds += time.perf_counter() - start
        self.frames += len(pieces)
        return "".join(found)


def _run_both(runners: list[Runner], signal: Samples) -> dict[str, str]:
    pieces = frames(signal)
    results = {}
    for runner in runners:
        runner.fresh()
        results[runner.name] = runner.digits(pieces)
    return results


def _battery() -> Iterator[tuple[str, list[Press], str]]:
    """The pass/fail items: name, key presses, the digits a detector must report."""
    yield "decode_50ms_on_50ms_off_x10", [Press(k) for k in KEYS * 10], KEYS * 10
    for dev in (0.015, -0.015, 0.035, -0.035):
        for group in ("low", "high", "both"):
            presses = [
                Press(
                    k,
                    low_dev=dev if group != "high" else 0.0,
                    high_dev=dev if group != "low" else 0.0,
                    low_dbm0=-17.0,
                    high_dbm0=-17.0,
                )
                for k in KEYS
            ]
            verdict = "accepted" if abs(dev) < 0.02 else "rejected"
            name = f"frequency_{group}_{dev * 100:+.1f}pct_{verdict}"
            yield name, presses, KEYS if verdict == "accepted" else ""
    yield (
        "normal_twist_8db_accepted",
        [Press(k, low_dbm0=-3.0, high_dbm0=-11.0) for k in KEYS],
        KEYS,
    )
    yield (
        "reverse_twist_4db_accepted",
        [Press(k, low_dbm0=-7.0, high_dbm0=-3.0) for k in KEYS],
        KEYS,
    )
    # Tone lengths against the 10 ms block grid: off times step by 1.125 ms (9 samples).
    yield (
        "tone_40ms_accepted",
        [Press(k, on_ms=40.0, off_ms=50.0 + 1.125 * (i % 9)) for i, k in enumerate(KEYS * 3)],
        KEYS * 3,
    )
    yield (
        "tone_20ms_rejected",
        [Press(k, on_ms=20.0, off_ms=50.0 + 1.125 * (i % 9)) for i, k in enumerate(KEYS * 3)],
        "",
    )
    repeats: list[Press] = []
    bridged: list[Press] = []
    for i, k in enumerate(KEYS * 2):
        repeats += [Press(k, off_ms=40.0), Press(k, off_ms=60.0 + 1.125 * (i % 9))]
        bridged += [Press(k, off_ms=10.0), Press(k, on_ms=50.0 + 1.125 * (i % 9), off_ms=60.0)]
    yield "pause_40ms_separates_repeats", repeats, "".join(k + k for k in KEYS * 2)
    yield "interruption_10ms_bridged", bridged, KEYS * 2


def _battery_results(runners: list[Runner]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for name, presses, expected in _battery():
        got = _run_both(runners, render(presses))
        for runner in runners:
            result[f"battery_{name}_{runner.name}"] = got[runner.name] == expected
    # Mitel test 5: key 1 from +3 to -50 dBm0 per tone in 1 dB steps; the range is the count.
    signal = render([Press("1", low_dbm0=lvl, high_dbm0=lvl) for lvl in DYNAMIC_RANGE_LEVELS])
    got = _run_both(runners, signal)
    for runner in runners:
        count = len(got[runner.name])
        result[f"dynamic_range_db_{runner.name}"] = count
        result[f"battery_dynamic_range_35db_{runner.name}"] = count >= 35
    result.update(_sweeps(runners))
    return result


def _sweep_signals() -> Iterator[tuple[str, str, list[float], list[Press]]]:
    """The Mitel-style sweeps: (sweep, key, the swept values, one press per value)."""
    steps = [i / 1000 for i in range(1, 61)]  # 0.1 % to 6 %
    for group in ("low", "high"):
        for sign, label in ((1, "plus"), (-1, "minus")):
            for key in DIAGONAL:
                presses = [
                    Press(
                        key,
                        low_dev=sign * d if group == "low" else 0.0,
                        high_dev=sign * d if group == "high" else 0.0,
                        low_dbm0=-17.0,
                        high_dbm0=-17.0,
                    )
                    for d in steps
                ]
                yield f"{group}_{label}", key, [d * 100 for d in steps], presses
    twists = [t / 2 for t in range(0, 41)]  # 0 to 20 dB in 0.5 dB steps
    for kind in ("normal", "reverse"):
        for key in DIAGONAL:
            presses = [
                Press(key, low_dbm0=-3.0, high_dbm0=-3.0 - t)
                if kind == "normal"
                else Press(key, low_dbm0=-3.0 - t, high_dbm0=-3.0)
                for t in twists
            ]
            yield kind, key, twists, presses
    durations = [d / 8 for d in range(400, 79, -1)]  # 50 ms down to 10 ms in 1-sample steps
    yield "shortest", "1", durations, [Press("1", on_ms=d, off_ms=60.0) for d in durations]


def _sweeps(runners: list[Runner]) -> dict[str, Any]:
    """Informational Mitel-style sweeps over the diagonal keys (no pass/fail)."""
    result: dict[str, Any] = {}
    names = [runner.name for runner in runners]
    for sweep, key, values, presses in _sweep_signals():
        got = _run_both(runners, render(presses))
        for name in names:
            # How far every step was accepted, from the first.
            accepted = _leading(got[name], key, len(values))
            reached = values[accepted - 1] if accepted else None
            if sweep == "shortest":
                result[f"sweep_shortest_tone_all_longer_accepted_ms_{name}"] = reached
            elif sweep in ("normal", "reverse"):
                stem = f"sweep_{sweep}_twist_accepted_to_db_{name}"
                least = result.get(stem, 99.0)
                result[stem] = min(least, reached if reached is not None else -1.0)
            else:
                stem = f"sweep_{sweep}_accepted_to_pct_{name}"
                result[stem] = max(result.get(stem, 0.0), round(reached or 0.0, 1))
    return result


def _leading(digits: str, key: str, limit: int) -> int:
    """How many leading presses were each reported once (exact sequence prefix)."""
    count = 0
    while count < limit and count < len(digits) and digits[count] == key:
        count += 1
    return count if len(digits) <= limit else 0


def _snr_results(runners: list[Runner]) -> dict[str, Any]:
    lowest: dict[str, int | None] = {runner.name: None for runner in runners}
    failed: set[str] = set()
    snr = SNR_TOP_DB
    # Every detector runs every step until all have failed, so both are timed on the same
    # frames (a detector that lasts longer would otherwise be timed on more noise).
    while len(failed) < len(runners) and snr > -10:
        pieces, expected = _snr_signal(snr, SNR_REPEATS)
        for runner in runners:
            runner.fresh()
            correct = runner.digits(pieces) == expected
            if runner.name not in failed:
                if correct:
                    lowest[runner.name] = snr
                else:
                    failed.add(runner.name)
        snr -= 1
    return {f"snr_lowest_all_detected_db_{name}": value for name, value in lowest.items()}


def _snr_signal(snr: int, repeats: int) -> tuple[list[Samples], str]:
    """Frames of ``repeats`` × 16 key presses in white noise at ``snr`` dB per tone."""
    clean = _snr_clean(repeats)
    rng = np.random.default_rng(1000 + snr)
    sigma = tones.DBM0_RMS * 10 ** ((SNR_TONE_DBM0 - snr) / 20)
    return frames(_to_int16(clean + rng.normal(0.0, sigma, clean.shape[0]))), KEYS * repeats


@functools.cache
def _snr_clean(repeats: int) -> Floats:
    presses = [Press(k, low_dbm0=SNR_TONE_DBM0, high_dbm0=SNR_TONE_DBM0) for k in KEYS * repeats]
    return render(presses).astype(np.float64)


def _to_int16(signal: Floats) -> Samples:
    return np.clip(np.rint(signal), -32768, 32767).astype(np.int16)


def _voices() -> list[str]:
    listing = subprocess.run(
        ["espeak-ng", "--voices"], capture_output=True, text=True, check=True
    ).stdout
    return [line.split()[4] for line in listing.splitlines()[1:] if line.strip()]


def speech_corpus() -> list[Floats]:
    """One utterance of :data:`TALKOFF_TEXT` per espeak-ng voice, at 8 kHz (cached)."""
    if shutil.which("espeak-ng") is None:
        raise RuntimeError("espeak-ng is not installed: run `apt-get install espeak-ng`")
    voices = _voices()
    version = subprocess.run(
        ["espeak-ng", "--version"], capture_output=True, text=True, check=True
    ).stdout
    key = hashlib.sha256("\n".join([version, TALKOFF_TEXT, *voices]).encode()).hexdigest()[:16]
    cache = Path(tempfile.gettempdir()) / "assistline-bench" / f"talkoff-{key}.npz"
    if cache.exists():
        with np.load(cache) as stored:
            return [stored[f"arr_{i}"] for i in range(len(voices))]
    workdir = Path(tempfile.mkdtemp(prefix="assistline-talkoff-"))

    def synthesize(item: tuple[int, str]) -> Floats:
        index, voice = item
        path = workdir / f"{index:03d}.wav"
        variant = VARIANTS[index % len(VARIANTS)]
        subprocess.run(
            ["espeak-ng", "-v", voice + variant, "-w", str(path), TALKOFF_TEXT],
            check=True,
            capture_output=True,
        )
        with wave.open(str(path)) as wav:
            pcm = np.frombuffer(wav.readframes(wav.getnframes()), dtype=np.int16)
            rate = wav.getframerate()
        resampled: Floats = soxr.resample(pcm.astype(np.float64), rate, RATE)
        return resampled

    with ThreadPoolExecutor(2) as pool:
        utterances = list(pool.map(synthesize, enumerate(voices)))
    shutil.rmtree(workdir, ignore_errors=True)
    cache.parent.mkdir(parents=True, exist_ok=True)
    np.savez(cache, *utterances)
    return utterances


def _active_gain(utterance: Floats, level_dbm0: float) -> float:
    """Gain that puts the utterance's active level (frames within 30 dB of the loudest)."""
    blocks = utterance[: utterance.shape[0] // FRAME * FRAME].reshape(-1, FRAME)
    power = np.mean(blocks * blocks, axis=1)
    active = power[power > power.max() * 1e-3]
    return float(tones.DBM0_RMS * 10 ** (level_dbm0 / 20) / np.sqrt(active.mean()))


def _talkoff_results(runners: list[Runner], corpus: list[Floats]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    total = {runner.name: 0 for runner in runners}
    seconds = 0.0
    muted = 0
    for number, (speech_dbm0, noise_dbm0) in enumerate(TALKOFF_CONDITIONS):
        rng = np.random.default_rng(77 + number)
        sigma = tones.DBM0_RMS * 10 ** (noise_dbm0 / 20)
        for runner in runners:
            runner.fresh()
        suppressor = DtmfSuppressor(RATE)
        for utterance in corpus:
            signal = utterance * _active_gain(utterance, speech_dbm0)
            noisy = _to_int16(signal + rng.normal(0.0, sigma, signal.shape[0]))
            pieces = frames(noisy)
            seconds += len(pieces) * FRAME / RATE
            for runner in runners:
                total[runner.name] += len(runner.digits(pieces))
            for piece in pieces:
                suppressor.process(piece)
        suppressor.flush()
        muted += suppressor.muted_samples
    hours = seconds / 3600
    result["talkoff_suppressor_muted_ms"] = round(muted * 1000 / RATE, 3)
    result["talkoff_voices"] = len(corpus)
    result["talkoff_hours"] = round(hours, 3)
    for runner in runners:
        result[f"talkoff_false_digits_{runner.name}"] = total[runner.name]
        result[f"talkoff_per_hour_{runner.name}"] = round(total[runner.name] / hours, 3)
    return result


def _suppression_results(corpus: list[Floats]) -> dict[str, Any]:
    """Speech and key presses through our suppressor; spandsp listens to its output."""
    rng = np.random.default_rng(4733)
    parts: list[Floats] = []
    tone_spans: list[tuple[int, int]] = []
    position = 0
    for utterance in corpus[:40]:
        speech = utterance[: 4 * RATE] * _active_gain(utterance, -20.0)
        parts.append(speech)
        position += speech.shape[0]
        for _ in range(4):
            key = str(rng.choice(list(KEYS)))
            low_dbm0 = float(rng.uniform(-30.0, -4.0))
            press = Press(
                key,
                on_ms=float(rng.integers(40, 121)),
                off_ms=float(rng.integers(50, 121)),
                low_dev=float(rng.uniform(-0.015, 0.015)),
                high_dev=float(rng.uniform(-0.015, 0.015)),
                low_dbm0=low_dbm0,
                high_dbm0=low_dbm0 + float(rng.uniform(-4.0, 4.0)),
            )
            signal = render([press])[: -RATE * TAIL_MS // 1000]
            on = round(press.on_ms * RATE / 1000)
            tone_spans.append((position, position + on))
            parts.append(signal.astype(np.float64))
            position += signal.shape[0]
    noise = rng.normal(0.0, tones.DBM0_RMS * 10 ** (-55 / 20), position)
    stream = _to_int16(np.concatenate(parts) + noise)
    suppressor = DtmfSuppressor(RATE)
    output = np.concatenate([suppressor.process(p) for p in frames(stream)] + [suppressor.flush()])
    delay = suppressor.latency
    delayed = output[delay : delay + stream.shape[0] // FRAME * FRAME]
    outside = np.ones(delayed.shape[0], dtype=bool)
    margin = RATE * EDGE_TOLERANCE_MS // 1000
    for start, end in tone_spans:
        outside[max(0, start - margin) : end + margin] = False
    changed = int(np.count_nonzero((delayed != stream[: delayed.shape[0]]) & outside))
    tail = np.zeros(RATE * TAIL_MS // 1000, dtype=np.int16)
    return {
        "suppression_key_presses": len(tone_spans),
        "suppression_spandsp_digits_in_input": len(_spandsp.detect(np.concatenate([stream, tail]))),
        "suppression_spandsp_digits_in_output": len(
            _spandsp.detect(np.concatenate([delayed, tail]))
        ),
        "suppression_samples_changed_outside_tones": changed,
        "suppression_guard_ms": GUARD_MS,
        "suppression_edge_tolerance_ms": EDGE_TOLERANCE_MS,
        "suppression_muted_ms": round(suppressor.muted_samples * 1000 / RATE, 3),
        "suppression_tones_ms": round(sum(e - s for s, e in tone_spans) * 1000 / RATE, 3),
        "suppression_delay_ms": delay * 1000 / RATE,
    }


def _cost_signals(corpus: list[Floats]) -> dict[str, list[list[Samples]]]:
    """Per signal class, the signals the cost target is measured on (as frames)."""
    # The battery stage's signals: the Q.24 items, the dynamic range and the sweeps.
    battery = [frames(render(presses)) for _, presses, _ in _battery()]
    levels = [Press("1", low_dbm0=level, high_dbm0=level) for level in DYNAMIC_RANGE_LEVELS]
    battery.append(frames(render(levels)))
    battery += [frames(render(presses)) for _, _, _, presses in _sweep_signals()]
    noise = [_snr_signal(snr, COST_SNR_REPEATS)[0] for snr in COST_SNR_DB]
    rng = np.random.default_rng(20)
    sigma = tones.DBM0_RMS * 10 ** (-55 / 20)
    speech = []
    for utterance in corpus[:: len(corpus) // COST_UTTERANCES][:COST_UTTERANCES]:
        signal = utterance * _active_gain(utterance, -20.0)
        speech.append(frames(_to_int16(signal + rng.normal(0.0, sigma, signal.shape[0]))))
    return dict(zip(COST_CLASSES, (battery, noise, speech), strict=True))


def _cost_results(corpus: list[Floats]) -> dict[str, Any]:
    """Microseconds per frame, ours and spandsp alternating signal by signal, per class.

    Each class is timed :data:`COST_REPEATS` times; the figures are medians over the
    repeats (thread CPU time, so that the other processes of a busy machine count less).
    """
    result: dict[str, Any] = {}
    for label, signals in _cost_signals(corpus).items():
        count = sum(len(pieces) for pieces in signals)
        ours: list[float] = []
        theirs: list[float] = []
        for _ in range(COST_REPEATS):
            seconds = {"ours": 0.0, "spandsp": 0.0}
            for pieces in signals:
                seconds["ours"] += _cpu_seconds_ours(pieces)
                seconds["spandsp"] += _cpu_seconds_spandsp(pieces)
            ours.append(seconds["ours"] / count * 1e6)
            theirs.append(seconds["spandsp"] / count * 1e6)
        result[f"cost_{label}_frames"] = count
        result[f"cost_{label}_us_per_frame_ours"] = round(statistics.median(ours), 3)
        result[f"cost_{label}_us_per_frame_spandsp"] = round(statistics.median(theirs), 3)
        ratios = [a / b for a, b in zip(ours, theirs, strict=True)]
        result[f"cost_ratio_{label}_ours_over_spandsp"] = round(statistics.median(ratios), 3)
    return result


def _cpu_seconds_ours(pieces: list[Samples]) -> float:
    feed = DtmfDetector(RATE).feed
    start = time.thread_time()
    for piece in pieces:
        feed(piece)
    return time.thread_time() - start


def _cpu_seconds_spandsp(pieces: list[Samples]) -> float:
    receiver = _spandsp.SpandspDtmf()
    feed, get = receiver.feed, receiver.digits
    chunks = [pieces[i : i + 64] for i in range(0, len(pieces), 64)]  # it buffers 128 digits
    start = time.thread_time()
    for chunk in chunks:
        for piece in chunk:
            feed(piece)
        get()
    seconds = time.thread_time() - start
    receiver.close()
    return seconds


def _timed_16k(corpus: list[Floats]) -> float:
    """Our detector's cost at 16 kHz on ten minutes of the corpus (informational)."""
    speech = np.concatenate(corpus)[: 600 * RATE]
    signal = _to_int16(soxr.resample(speech * _active_gain(speech, -20.0), RATE, 16000))
    pieces = [signal[i : i + 320] for i in range(0, signal.shape[0] - 319, 320)]
    detector = DtmfDetector(16000)
    start = time.perf_counter()
    for piece in pieces:
        detector.feed(piece)
    return (time.perf_counter() - start) / len(pieces) * 1e6


def _timed(
    runners: list[Runner], label: str, stage: Callable[[], dict[str, Any]]
) -> dict[str, Any]:
    """Run a stage and add each detector's microseconds per frame over it."""
    before = {runner.name: (runner.seconds, runner.frames) for runner in runners}
    result = stage()
    for runner in runners:
        seconds = runner.seconds - before[runner.name][0]
        count = runner.frames - before[runner.name][1]
        result[f"us_per_frame_{label}_{runner.name}"] = round(seconds / count * 1e6, 3)
    return result


def run(progress: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Run everything; ``targets_met`` says whether every DTMF target of issue 3 is met."""
    say = progress or (lambda _: None)
    runners: list[Runner] = [OursRunner(), SpandspRunner()]
    # Whether the detector's block projections ran in C (``_dtmf.c``) or numpy.
    result: dict[str, Any] = {"name": "media_dtmf", "dtmf_accelerated": dtmf_module.ACCELERATED}
    say("Q.24 battery and sweeps")
    result.update(_timed(runners, "battery", lambda: _battery_results(runners)))
    say("noise: lowest working SNR")
    result.update(_timed(runners, "noise", lambda: _snr_results(runners)))
    say("talk-off corpus (espeak-ng, cached after the first run)")
    corpus = speech_corpus()
    result.update(_timed(runners, "speech", lambda: _talkoff_results(runners, corpus)))
    for runner in runners:
        result[f"us_per_frame_all_{runner.name}"] = round(runner.us_per_frame, 3)
    say("suppression")
    result.update(_suppression_results(corpus))
    result["us_per_frame_16k_speech_ours"] = round(_timed_16k(corpus), 3)
    say("cost per frame, class by class")
    result.update(_cost_results(corpus))
    result.update(_targets(result))
    return result


def _targets(result: dict[str, Any]) -> dict[str, Any]:
    battery = [key for key in result if key.startswith("battery_") and key.endswith("_ours")]
    snr_ours = result["snr_lowest_all_detected_db_ours"]
    snr_spandsp = result["snr_lowest_all_detected_db_spandsp"]
    targets = {
        "target_every_battery_item_passes": all(result[key] for key in battery),
        "target_talkoff_at_most_spandsp": result["talkoff_false_digits_ours"]
        <= result["talkoff_false_digits_spandsp"],
        "target_snr_within_3db_of_spandsp": snr_ours is not None
        and (snr_spandsp is None or snr_ours <= snr_spandsp + 3),
        **{
            f"target_cost_{label}_at_most_2x_spandsp": result[
                f"cost_ratio_{label}_ours_over_spandsp"
            ]
            <= COST_TARGET
            for label in COST_CLASSES
        },
        "target_suppressed_output_has_no_digit": result["suppression_spandsp_digits_in_output"]
        == 0,
        "target_suppression_leaves_speech_unchanged": result[
            "suppression_samples_changed_outside_tones"
        ]
        == 0
        and result["talkoff_suppressor_muted_ms"] == 0,
        "target_suppression_delay_at_most_40ms": result["suppression_delay_ms"] <= 40,
    }
    whole = result["us_per_frame_all_ours"] / result["us_per_frame_all_spandsp"]
    return {
        # Informational: every frame of the bench, timed once (mostly speech).
        "cost_ratio_whole_run_ours_over_spandsp": round(whole, 3),
        **targets,
        "targets_met": all(targets.values()),
    }


if __name__ == "__main__":
    outcome = run(lambda stage: print(f"... {stage}", file=sys.stderr))
    print(json.dumps(outcome))
    sys.exit(0 if outcome["targets_met"] else 1)
