from __future__ import annotations

import shutil
import subprocess
import wave
from pathlib import Path

import numpy as np
import pytest
import soxr

import assistline.media.dtmf as dtmf_module
from assistline.media.dtmf import DigitEvent, DtmfDetector
from assistline.media.dtmf_suppression import DELAY_MS, GUARD_MS, DtmfSuppressor
from assistline.media.frame import Samples
from assistline.media.tones import (
    DBM0_RMS,
    DTMF_KEYS,
    SILENCE,
    Segment,
    Tone,
    ToneStream,
    dtmf_frequencies,
)

RATES = (8000, 16000)
TEXT = "Please hold while I check your account. Thank you, that payment has gone through."


@pytest.fixture(params=["c", "numpy"], autouse=True)
def projections(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Run every test on the C projections and on the numpy fallback."""
    if request.param == "numpy":
        monkeypatch.setattr(dtmf_module, "ACCELERATED", False)
    return str(request.param)


def key_tone(key: str, level: float = -10.0, deviation: float = 0.0, twist: float = 0.0) -> Tone:
    low, high = dtmf_frequencies(key)
    return Tone(((low * (1 + deviation), level), (high * (1 - deviation), level + twist)))


def through(suppressor: DtmfSuppressor, signal: Samples, chunk: int) -> Samples:
    parts = [suppressor.process(signal[i : i + chunk]) for i in range(0, signal.shape[0], chunk)]
    return np.concatenate([*parts, suppressor.flush()])


def detected(signal: Samples, rate: int) -> list[DigitEvent]:
    detector = DtmfDetector(rate)
    return detector.feed(signal) + detector.flush()


def noise(count: int, level: float, seed: int) -> Samples:
    rng = np.random.default_rng(seed)
    samples = rng.normal(0.0, DBM0_RMS * 10 ** (level / 20), count)
    return np.clip(np.rint(samples), -32768, 32767).astype(np.int16)


@pytest.fixture(scope="module")
def voice(tmp_path_factory: pytest.TempPathFactory) -> np.ndarray:
    """Two espeak-ng sentences at 16 kHz, -20 dBm0."""
    if shutil.which("espeak-ng") is None:
        pytest.skip("espeak-ng is not installed (`make test` installs it)")
    path: Path = tmp_path_factory.mktemp("voice") / "voice.wav"
    subprocess.run(["espeak-ng", "-v", "gmw/en+f3", "-w", str(path), TEXT], check=True)
    with wave.open(str(path)) as wav:
        pcm = np.frombuffer(wav.readframes(wav.getnframes()), dtype=np.int16)
        speech = soxr.resample(pcm.astype(np.float64), wav.getframerate(), 16000)
    return np.asarray(speech * DBM0_RMS * 0.1 / np.sqrt(np.mean(speech**2)))


def speech_and_keys(
    voice: np.ndarray, rate: int, tones: list[Tone]
) -> tuple[Samples, list[tuple[int, int]]]:
    """Speech, then key presses (varied lengths and gaps), then speech again; tone spans."""
    speech = voice if rate == 16000 else soxr.resample(voice, 16000, 8000)
    half = speech.shape[0] // 2
    segments: list[Segment] = []
    for index, tone in enumerate(tones):
        segments += [Segment(tone, 45.0 + 7 * index), Segment(SILENCE, 50.0 + 3 * index)]
    keys = ToneStream(segments, rate).render()
    per_ms = rate // 1000
    spans = []
    position = half + 13 * per_ms
    for index in range(len(tones)):
        spans.append((position, position + (45 + 7 * index) * per_ms))
        position += (95 + 10 * index) * per_ms
    signal = np.concatenate(
        [speech[:half], np.zeros(13 * per_ms), keys.astype(np.float64), speech[half:]]
    )
    return np.clip(np.rint(signal), -32768, 32767).astype(np.int16) + noise(
        signal.shape[0], -60.0, 3
    ), spans


@pytest.mark.parametrize("rate", RATES)
def test_keys_are_silenced_and_speech_is_only_delayed(rate: int, voice: np.ndarray) -> None:
    # -3 to -42 dBm0: the last four are below what the detector reports.
    tones = [
        key_tone(k, level) for k, level in zip("41111111111111", range(-3, -45, -3), strict=True)
    ]
    signal, spans = speech_and_keys(voice, rate, tones)
    assert len(detected(signal, rate)) == 12  # the detector reports down to -38 dBm0
    suppressor = DtmfSuppressor(rate)
    assert suppressor.latency == DELAY_MS * rate // 1000
    out = through(suppressor, signal, rate // 50)
    delayed = out[suppressor.latency : suppressor.latency + signal.shape[0]]
    assert detected(delayed, rate) == []
    # Every tone comes out as digital silence; nothing else changes.
    guard = GUARD_MS * rate // 1000
    changed = np.flatnonzero(delayed != signal)
    allowed = np.zeros(signal.shape[0], dtype=bool)
    for start, end in spans:
        assert np.count_nonzero(delayed[start:end]) == 0
        allowed[start - guard - 3 * rate // 1000 : end + guard + 3 * rate // 1000] = True
    assert np.all(allowed[changed])
    assert np.count_nonzero(out[: suppressor.latency]) == 0


@pytest.mark.parametrize("rate", RATES)
@pytest.mark.parametrize(
    ("low_dev", "high_dev", "low_dbm0", "high_dbm0"),
    [
        (0.03, 0.0, -20.0, -20.0),
        (-0.03, 0.0, -20.0, -20.0),
        (0.0, 0.025, -20.0, -20.0),
        (0.0, -0.025, -20.0, -20.0),
        (0.02, 0.02, -20.0, -20.0),
        (-0.02, -0.02, -20.0, -20.0),
        (0.0, 0.0, -3.0, -13.0),  # normal twist 10 dB
        (0.0, 0.0, -12.0, -6.0),  # reverse twist 6 dB
        (0.0, 0.0, -44.0, -44.0),  # 6 dB below what the detector reports
    ],
)
def test_keys_beyond_the_detector_limits_are_silenced_too(
    rate: int, low_dev: float, high_dev: float, low_dbm0: float, high_dbm0: float
) -> None:
    segments = [Segment(SILENCE, 3.3)]
    for key in DTMF_KEYS:
        low, high = dtmf_frequencies(key)
        tone = Tone(((low * (1 + low_dev), low_dbm0), (high * (1 + high_dev), high_dbm0)))
        segments += [Segment(tone, 40.0), Segment(SILENCE, 61.3)]
    signal = ToneStream(segments, rate).render()
    out = through(DtmfSuppressor(rate), signal, rate // 50)
    assert np.count_nonzero(out) == 0


@pytest.mark.parametrize("rate", RATES)
def test_speech_alone_comes_out_bit_exact(rate: int, voice: np.ndarray) -> None:
    speech = voice if rate == 16000 else soxr.resample(voice, 16000, 8000)
    for level in (1.0, 0.1, 0.01):  # -10, -30, -50 dBm0
        signal = np.clip(np.rint(speech * level * 3.16), -32768, 32767).astype(np.int16)
        suppressor = DtmfSuppressor(rate)
        out = through(suppressor, signal, rate // 50)
        assert np.array_equal(out[suppressor.latency :], signal)
        assert suppressor.muted_samples == 0


@pytest.mark.parametrize("rate", RATES)
@pytest.mark.parametrize("chunk", [1, 37, 333])
def test_no_tone_leaks_whatever_the_slicing(rate: int, chunk: int) -> None:
    segments = [Segment(SILENCE, 7.0)]
    for key in "2580":
        segments += [Segment(key_tone(key), 60.0), Segment(SILENCE, 70.0)]
    signal = ToneStream(segments, rate).render()
    out = through(DtmfSuppressor(rate), signal, chunk)
    assert out.shape == (signal.shape[0] + DELAY_MS * rate // 1000,)
    assert np.count_nonzero(out) == 0


@pytest.mark.parametrize("rate", RATES)
def test_output_length_matches_input_and_flush_empties_the_line(rate: int) -> None:
    suppressor = DtmfSuppressor(rate)
    signal = noise(rate // 10, -30.0, 9)
    first = suppressor.process(signal[:100])
    second = suppressor.process(signal[100:])
    rest = suppressor.flush()
    assert first.shape == (100,) and second.shape == (signal.shape[0] - 100,)
    assert rest.shape == (suppressor.latency,)
    assert np.array_equal(np.concatenate([first, second, rest])[suppressor.latency :], signal)
    # After a flush the suppressor starts a new stream.
    assert np.count_nonzero(suppressor.process(signal[:160])) == 0


def test_bad_input_is_refused() -> None:
    with pytest.raises(ValueError, match="8000 or 16000 Hz, not 48000"):
        DtmfSuppressor(48000)
    with pytest.raises(ValueError, match="1-D int16 samples, not 1-D float32"):
        DtmfSuppressor(8000).process(np.zeros(160, dtype=np.float32))
