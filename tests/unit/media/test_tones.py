from __future__ import annotations

import math
import warnings

import numpy as np
import pytest

from assistline.media import tones
from assistline.media.tones import (
    CALL_PROGRESS_TONES,
    DBM0_RMS,
    SILENCE,
    ComfortNoise,
    Segment,
    Tone,
    ToneStream,
    amplitude,
    dtmf,
    dtmf_frequencies,
    dtmf_stream,
    dtmf_tone,
    level_dbm0,
)

with warnings.catch_warnings():
    # audioop is deprecated; it is only the reference G.711 decoder here.
    warnings.simplefilter("ignore", DeprecationWarning)
    import audioop

RATES = (8000, 16000)


def component_level(samples: np.ndarray, frequency: float, rate: int) -> float:
    """Level in dBm0 of one sine in ``samples`` (an integer number of its periods or long)."""
    n = np.arange(samples.shape[0])
    z = np.sum(samples * np.exp(-2j * np.pi * frequency / rate * n)) * 2 / samples.shape[0]
    return 20 * math.log10(abs(z) / math.sqrt(2) / DBM0_RMS)


# --- the dBm0 convention ------------------------------------------------------------------


def test_the_g711_digital_milliwatt_is_0_dbm0() -> None:
    codes = bytes([0x1E, 0x0B, 0x0B, 0x1E, 0x9E, 0x8B, 0x8B, 0x9E]) * 1000
    pcm = np.frombuffer(audioop.ulaw2lin(codes, 2), dtype=np.int16)
    assert level_dbm0(pcm) == pytest.approx(0.0, abs=0.01)


def test_a_0_dbm0_sine_peaks_at_22657() -> None:
    assert amplitude(0.0) == pytest.approx(22657, abs=1)
    assert DBM0_RMS == pytest.approx(16021, abs=1)
    assert amplitude(-20.0) == pytest.approx(2265.7, abs=0.1)


def test_level_of_silence_is_minus_infinity_and_empty_is_an_error() -> None:
    assert level_dbm0(np.zeros(10, dtype=np.int16)) == -math.inf
    with pytest.raises(ValueError, match="empty signal"):
        level_dbm0(np.zeros(0, dtype=np.int16))


# --- DTMF ---------------------------------------------------------------------------------


def test_dtmf_frequencies_of_every_key() -> None:
    table = {key: dtmf_frequencies(key) for key in "123A456B789C*0#D"}
    assert table["1"] == (697.0, 1209.0)
    assert table["5"] == (770.0, 1336.0)
    assert table["9"] == (852.0, 1477.0)
    assert table["D"] == (941.0, 1633.0)
    assert table["*"] == (941.0, 1209.0)
    assert table["#"] == (941.0, 1477.0)
    assert table["0"] == (941.0, 1336.0)
    assert table["A"] == (697.0, 1633.0)


@pytest.mark.parametrize("key", ["E", "", "12", "a"])
def test_unknown_key_is_refused(key: str) -> None:
    with pytest.raises(ValueError, match="a DTMF key is one of"):
        dtmf_frequencies(key)


@pytest.mark.parametrize("rate", RATES)
def test_dtmf_durations_are_exact_in_samples(rate: int) -> None:
    signal = dtmf("159", rate, on_ms=47, off_ms=61)
    per_ms = rate // 1000
    assert signal.dtype == np.int16
    assert signal.shape == (3 * 108 * per_ms,)
    for i in range(3):
        start = i * 108 * per_ms
        on = signal[start : start + 47 * per_ms]
        off = signal[start + 47 * per_ms : start + 108 * per_ms]
        assert np.count_nonzero(off) == 0
        # A sum of two sines is zero at isolated samples only.
        assert np.count_nonzero(on) >= on.shape[0] - 2


@pytest.mark.parametrize("rate", RATES)
def test_dtmf_levels_per_group_and_twist(rate: int) -> None:
    signal = dtmf("8", rate, on_ms=1000, off_ms=0, level_dbm0=-12.0, twist_db=3.0)
    low, high = dtmf_frequencies("8")
    assert component_level(signal, low, rate) == pytest.approx(-12.0, abs=0.02)
    assert component_level(signal, high, rate) == pytest.approx(-9.0, abs=0.02)
    expected = 10 * math.log10(10 ** (-1.2) + 10 ** (-0.9))
    assert level_dbm0(signal) == pytest.approx(expected, abs=0.02)


def test_dtmf_tone_components() -> None:
    assert dtmf_tone("0", -7.0, 0.0) == Tone(((941.0, -7.0), (1336.0, -7.0)))


@pytest.mark.parametrize("rate", RATES)
def test_streamed_frames_equal_the_rendered_signal(rate: int) -> None:
    stream = dtmf_stream("12#", rate, on_ms=53, off_ms=41)
    whole = stream.render()
    frames = list(dtmf_stream("12#", rate, on_ms=53, off_ms=41))
    assert all(frame.shape == (rate // 50,) and frame.dtype == np.int16 for frame in frames)
    joined = np.concatenate(frames)
    # 282 ms is 14 frames and 2 ms: the last frame is padded with silence.
    assert len(frames) == 15
    assert np.array_equal(joined[: whole.shape[0]], whole)
    assert np.count_nonzero(joined[whole.shape[0] :]) == 0


@pytest.mark.parametrize("rate", RATES)
def test_phase_runs_on_across_frames(rate: int) -> None:
    stream = ToneStream([Segment(Tone(((1000.3, -3.0),)), 1000.0)], rate, repeat=True)
    joined = np.concatenate([next(stream) for _ in range(120)])
    n = np.arange(joined.shape[0])
    ideal = amplitude(-3.0) * np.sin(2 * np.pi * 1000.3 / rate * n)
    assert np.max(np.abs(joined - ideal)) <= 0.5 + 1e-9


def test_tone_stream_refuses_bad_input() -> None:
    with pytest.raises(ValueError, match="8000 or 16000 Hz, not 44100"):
        dtmf("1", 44100)
    with pytest.raises(ValueError, match="at least one segment"):
        ToneStream([], 8000)
    with pytest.raises(ValueError, match="longer than 0 ms"):
        ToneStream([Segment(SILENCE, 0.0)], 8000, repeat=True)
    with pytest.raises(ValueError, match="between 0 and 4000 Hz, not 4200"):
        Tone(((4200.0, -10.0),))
    with pytest.raises(ValueError, match="cannot be negative"):
        tones.duration_samples(-1, 8000)
    with pytest.raises(ValueError, match="at least one key"):
        dtmf("", 8000)


def test_loud_tones_saturate_instead_of_wrapping() -> None:
    signal = dtmf("1", 8000, on_ms=100, off_ms=0, level_dbm0=3.0, twist_db=0.0)
    n = np.arange(800)
    ideal = amplitude(3.0) * (
        np.sin(2 * np.pi * 697 / 8000 * n) + np.sin(2 * np.pi * 1209 / 8000 * n)
    )
    assert np.array_equal(signal[ideal > 32767], np.full(np.count_nonzero(ideal > 32767), 32767))
    assert np.all(signal[ideal < -32768] == -32768)
    inside = np.abs(ideal) < 32767
    assert np.max(np.abs(signal[inside] - ideal[inside])) <= 0.5 + 1e-6


# --- call-progress tones ------------------------------------------------------------------


def on_off_pattern(samples: np.ndarray, rate: int) -> str:
    """One character per 250 ms: '#' when the quarter second holds tone, '.' when silent."""
    quarter = rate // 4
    return "".join(
        "#" if np.count_nonzero(samples[i : i + quarter]) else "."
        for i in range(0, samples.shape[0], quarter)
    )


@pytest.mark.parametrize("rate", RATES)
@pytest.mark.parametrize(
    ("name", "pattern"),
    [
        ("us-dial", "#" * 48),
        ("us-ringback", ("#" * 8 + "." * 16) * 2),
        ("us-busy", "##.." * 12),
        ("us-reorder", "#." * 24),
        ("eu-dial", "#" * 48),
        ("eu-ringback", "####" + "." * 16 + "####" + "." * 16 + "####" + "...."),
        ("eu-busy", "##.." * 12),
    ],
)
def test_call_progress_cadences(rate: int, name: str, pattern: str) -> None:
    stream = CALL_PROGRESS_TONES[name].stream(rate)
    samples = np.concatenate([next(stream) for _ in range(600)])  # 12 s
    assert on_off_pattern(samples, rate) == pattern


@pytest.mark.parametrize(
    ("name", "frequencies", "level"),
    [
        ("us-dial", (350.0, 440.0), -13.0),
        ("us-ringback", (440.0, 480.0), -19.0),
        ("us-busy", (480.0, 620.0), -24.0),
        ("eu-dial", (425.0,), -13.0),
    ],
)
def test_call_progress_frequencies_and_levels(
    name: str, frequencies: tuple[float, ...], level: float
) -> None:
    tone = CALL_PROGRESS_TONES[name]
    assert tone.frequencies == frequencies and tone.level_dbm0 == level
    stream = tone.stream(8000)
    burst = np.concatenate([next(stream) for _ in range(25)])  # 500 ms, all tone
    for frequency in frequencies:
        assert component_level(burst, frequency, 8000) == pytest.approx(level, abs=0.02)


def test_ringback_cadence_is_exact_to_the_sample() -> None:
    stream = CALL_PROGRESS_TONES["us-ringback"].stream(8000)
    samples = np.concatenate([next(stream) for _ in range(300)])  # one 6 s cycle
    nonzero = np.flatnonzero(samples)
    assert nonzero[-1] < 16000 <= nonzero[-1] + 2
    assert np.count_nonzero(samples[16000:48000]) == 0


# --- comfort noise ------------------------------------------------------------------------


@pytest.mark.parametrize("rate", RATES)
def test_comfort_noise_level_and_seed(rate: int) -> None:
    noise = ComfortNoise(-50.0, rate, seed=7)
    samples = np.concatenate([next(noise) for _ in range(100)])
    assert samples.shape == (2 * rate,)
    assert level_dbm0(samples) == pytest.approx(-50.0, abs=0.2)
    again = ComfortNoise(-50.0, rate, seed=7)
    assert np.array_equal(np.concatenate([next(again) for _ in range(100)]), samples)
    other = ComfortNoise(-50.0, rate, seed=8)
    assert not np.array_equal(next(other), samples[: rate // 50])


def test_comfort_noise_refuses_bad_input() -> None:
    with pytest.raises(ValueError, match="at most 0 dBm0, not 3"):
        ComfortNoise(3.0, 8000)
    with pytest.raises(ValueError, match="8000 or 16000 Hz, not 22050"):
        ComfortNoise(-40.0, 22050)
    with pytest.raises(ValueError, match="cannot be negative"):
        ComfortNoise(-40.0, 8000).samples(-1)
