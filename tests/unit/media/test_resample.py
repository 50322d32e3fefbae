import numpy as np
import numpy.typing as npt
import pytest

from assistline.media.frame import samples_per_frame
from assistline.media.resample import Resampler, resample

PAIRS = [
    (8_000, 16_000),
    (16_000, 8_000),
    (16_000, 48_000),
    (48_000, 16_000),
    (8_000, 48_000),
    (48_000, 8_000),
]
MAX_RIPPLE_DB = 0.1
MIN_STOPBAND_DB = 60.0

Samples = npt.NDArray[np.int16]
Floats = npt.NDArray[np.float64]


def _tones(rate: int, freqs: list[int], amplitude: float, seconds: int = 2) -> Samples:
    """Integer-Hz tones with fixed random phases, rounded to int16."""
    phases = np.random.default_rng(len(freqs)).uniform(0, 2 * np.pi, len(freqs))
    t = np.arange(rate * seconds) / rate
    signal = np.zeros(len(t))
    for freq, phase in zip(freqs, phases, strict=True):
        signal += amplitude * np.sin(2 * np.pi * freq * t + phase)
    return np.round(signal).astype(np.int16)


def _frame_by_frame(samples: Samples, from_rate: int, to_rate: int) -> Samples:
    resampler = Resampler(from_rate, to_rate)
    step = samples_per_frame(from_rate)
    frames = [resampler.process_frame(samples[i : i + step]) for i in range(0, len(samples), step)]
    return np.concatenate(frames)


def _amplitudes(samples: Samples, rate: int) -> Floats:
    """Amplitude per 1 Hz bin over one second, after half a second to settle."""
    window = samples[rate // 2 : rate // 2 + rate].astype(np.float64)
    amplitudes: Floats = np.abs(np.fft.rfft(window)) / (rate / 2)
    return amplitudes


def _alias(freq: int, rate: int) -> int:
    return abs((freq + rate // 2) % rate - rate // 2)


@pytest.mark.parametrize(("from_rate", "to_rate"), PAIRS)
def test_a_sine_frame_by_frame_equals_one_shot_delayed(from_rate: int, to_rate: int) -> None:
    sine = _tones(from_rate, [1000], 12000, seconds=1)
    streamed = _frame_by_frame(sine, from_rate, to_rate)
    one_shot = resample(sine, from_rate, to_rate)
    delay = Resampler(from_rate, to_rate).delay
    assert len(streamed) == len(one_shot) == to_rate
    assert np.array_equal(streamed[delay:], one_shot[: len(one_shot) - delay])


@pytest.mark.parametrize(("from_rate", "to_rate"), PAIRS)
def test_any_split_gives_the_same_output(from_rate: int, to_rate: int) -> None:
    noise = np.random.default_rng(1).normal(0, 6000, from_rate).astype(np.int16)
    cuts = np.sort(np.random.default_rng(2).integers(0, len(noise), 30))
    resampler = Resampler(from_rate, to_rate)
    pieces = np.concatenate([resampler.process(piece) for piece in np.split(noise, cuts)])
    assert np.array_equal(pieces, _frame_by_frame(noise, from_rate, to_rate))


@pytest.mark.parametrize(("from_rate", "to_rate"), PAIRS)
def test_every_frame_out_is_20_ms_from_the_first(from_rate: int, to_rate: int) -> None:
    resampler = Resampler(from_rate, to_rate)
    frame = np.full(samples_per_frame(from_rate), 1000, dtype=np.int16)
    lengths = {len(resampler.process_frame(frame)) for _ in range(5)}
    assert lengths == {samples_per_frame(to_rate)}


@pytest.mark.parametrize(
    ("from_rate", "to_rate", "delay"),
    [
        (8_000, 16_000, 88),
        (16_000, 8_000, 44),
        (16_000, 48_000, 132),
        (48_000, 16_000, 44),
        (8_000, 48_000, 264),
        (48_000, 8_000, 44),
        (16_000, 16_000, 0),
    ],
)
def test_an_impulse_peaks_after_the_delay(from_rate: int, to_rate: int, delay: int) -> None:
    resampler = Resampler(from_rate, to_rate)
    assert resampler.delay == delay
    impulse = np.zeros(samples_per_frame(from_rate) * 2, dtype=np.int16)
    impulse[0] = 30000
    out = np.concatenate([resampler.process(impulse), resampler.process(impulse[:0])])
    assert int(np.argmax(out)) == delay


@pytest.mark.parametrize(("from_rate", "to_rate"), PAIRS)
def test_passband_ripple_is_within_a_tenth_of_a_db(from_rate: int, to_rate: int) -> None:
    edge = 0.45 * min(from_rate, to_rate)
    freqs = [round(f) for f in np.linspace(50, edge, 20)]
    out = _frame_by_frame(_tones(from_rate, freqs, 1500), from_rate, to_rate)
    gains_db = 20 * np.log10(_amplitudes(out, to_rate)[freqs] / 1500)
    assert float(gains_db.max() - gains_db.min()) <= MAX_RIPPLE_DB
    assert float(np.abs(gains_db).max()) <= MAX_RIPPLE_DB


@pytest.mark.parametrize(("from_rate", "to_rate"), [p for p in PAIRS if p[0] > p[1]])
def test_tones_above_the_output_nyquist_alias_60_db_down(from_rate: int, to_rate: int) -> None:
    nyquist = to_rate // 2
    freqs = [nyquist + 3, nyquist + 37, *range(nyquist + 211, from_rate // 2, 613)]
    worst = -np.inf
    for freq in freqs:
        out = _frame_by_frame(_tones(from_rate, [freq], 20000), from_rate, to_rate)
        level = _amplitudes(out, to_rate)[_alias(freq, to_rate)] / 20000
        worst = max(worst, 20 * np.log10(max(level, 1e-12)))
    assert worst <= -MIN_STOPBAND_DB


@pytest.mark.parametrize(("from_rate", "to_rate"), [p for p in PAIRS if p[0] < p[1]])
def test_images_above_the_input_nyquist_are_60_db_down(from_rate: int, to_rate: int) -> None:
    nyquist = from_rate // 2
    freqs = [*range(100, nyquist, 487), nyquist - 37, nyquist - 3]
    worst = -np.inf
    for freq in freqs:
        out = _frame_by_frame(_tones(from_rate, [freq], 20000), from_rate, to_rate)
        images = _amplitudes(out, to_rate)[nyquist + 1 :] / 20000
        worst = max(worst, 20 * np.log10(float(images.max())))
    assert worst <= -MIN_STOPBAND_DB


@pytest.mark.parametrize(("from_rate", "to_rate"), PAIRS)
@pytest.mark.parametrize("level", [12345, -1000])
def test_a_constant_comes_out_unchanged(from_rate: int, to_rate: int, level: int) -> None:
    out = resample(np.full(from_rate // 5, level, dtype=np.int16), from_rate, to_rate)
    settled = out[to_rate // 50 : -to_rate // 50]
    assert settled.min() == settled.max() == level


def test_one_shot_lengths() -> None:
    assert len(resample(np.zeros(161, dtype=np.int16), 8_000, 48_000)) == 966
    assert len(resample(np.zeros(961, dtype=np.int16), 48_000, 16_000)) == 321
    assert len(resample(np.zeros(7, dtype=np.int16), 16_000, 16_000)) == 7


def test_full_scale_clips_instead_of_wrapping() -> None:
    # 200 Hz full-scale square wave at 16 kHz: 40 samples high, 40 low.
    square = np.tile(np.repeat(np.array([32767, -32768], dtype=np.int16), 40), 100)
    out = _frame_by_frame(square, 16_000, 8_000)
    # The filter overshoots each edge; the overshoot must clip, never wrap and change sign.
    assert out.max() == 32767
    assert out.min() == -32768
    source = 2 * np.arange(100, len(out)) - 2 * Resampler(16_000, 8_000).delay
    away_from_edges = (source % 40 >= 10) & (source % 40 < 30)
    high = (source // 40) % 2 == 0
    assert out[100:][away_from_edges & high].min() > 0
    assert out[100:][away_from_edges & ~high].max() < 0


def test_same_rate_copies() -> None:
    resampler = Resampler(16_000, 16_000)
    frame = np.arange(320, dtype=np.int16)
    out = resampler.process_frame(frame)
    assert np.array_equal(out, frame)
    assert out is not frame


@pytest.mark.parametrize(("from_rate", "to_rate"), [(44_100, 16_000), (16_000, 22_050), (0, 8_000)])
def test_unsupported_rates_are_refused(from_rate: int, to_rate: int) -> None:
    bad = from_rate if from_rate not in (8_000, 16_000) else to_rate
    with pytest.raises(ValueError) as raised:
        Resampler(from_rate, to_rate)
    assert str(raised.value) == f"resampling supports 8000, 16000 and 48000 Hz, not {bad}"


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        (np.zeros(320, dtype=np.float32), "resampling takes int16 samples, not float32"),
        (np.zeros(320, dtype=np.uint16), "resampling takes int16 samples, not uint16"),
        (
            np.zeros((320, 2), dtype=np.int16),
            "resampling takes mono samples in one dimension, not shape (320, 2)",
        ),
        (b"\x00" * 640, "resampling takes int16 samples, not bytes"),
    ],
)
def test_bad_samples_are_refused(bad: object, message: str) -> None:
    resampler = Resampler(16_000, 8_000)
    for convert in (resampler.process, resampler.process_frame):
        with pytest.raises(ValueError) as raised:
            convert(bad)  # type: ignore[arg-type]
        assert str(raised.value) == message
    with pytest.raises(ValueError) as raised:
        resample(bad, 16_000, 8_000)  # type: ignore[arg-type]
    assert str(raised.value) == message


def test_a_frame_of_the_wrong_length_is_refused() -> None:
    with pytest.raises(ValueError) as raised:
        Resampler(8_000, 16_000).process_frame(np.zeros(320, dtype=np.int16))
    assert str(raised.value) == "a 20 ms frame at 8000 Hz is 160 samples, not 320"


def test_a_frame_after_a_partial_piece_is_refused() -> None:
    resampler = Resampler(48_000, 16_000)
    resampler.process(np.zeros(100, dtype=np.int16))
    with pytest.raises(ValueError) as raised:
        resampler.process_frame(np.zeros(960, dtype=np.int16))
    assert str(raised.value) == (
        "the input so far is not whole 20 ms frames, so this frame would not give "
        "320 samples at 16000 Hz"
    )
