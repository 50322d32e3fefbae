from __future__ import annotations

import functools
import io
import shutil
import subprocess
import wave

import numpy as np
import pytest
import soxr

from assistline.media.frame import FRAME_SAMPLES, AudioFrame, Samples
from assistline.media.vad import (
    SpeechEvent,
    SpeechSegment,
    SpeechSegmenter,
    SpeechStarted,
    VoiceActivityDetector,
    speech_segments,
    trim_to_speech,
)

RATES = (8000, 16000)


def run_pattern(segmenter: SpeechSegmenter, pattern: str) -> list[tuple[int, SpeechEvent]]:
    """Push one flag per character ('#' voiced, '.' not) and note the frame of each event."""
    return [
        (index, event)
        for index, char in enumerate(pattern)
        for event in segmenter.push(char == "#")
    ]


# --- the segmenter, exact -----------------------------------------------------------------


def test_onset_needs_six_consecutive_voiced_frames() -> None:
    segmenter = SpeechSegmenter()
    assert run_pattern(segmenter, "#####.#####.#.##.#####") == []
    assert not segmenter.in_speech
    assert segmenter.push(True) == [SpeechStarted(17 * 20)]
    assert segmenter.in_speech


def test_segment_starts_at_first_frame_of_onset_and_ends_after_hangover() -> None:
    pattern = "..." + "#" * 10 + "." * 25
    events = run_pattern(SpeechSegmenter(), pattern)
    # Started on the 6th voiced frame (index 8); closed on the 20th unvoiced frame (index 32).
    assert events == [(8, SpeechStarted(60)), (32, SpeechSegment(60, 260))]


def test_pause_shorter_than_hangover_keeps_one_segment() -> None:
    pattern = "#" * 6 + "." * 19 + "#" * 3 + "." * 20
    events = run_pattern(SpeechSegmenter(), pattern)
    assert events == [(5, SpeechStarted(0)), (47, SpeechSegment(0, 560))]


def test_pause_as_long_as_hangover_splits_segments() -> None:
    pattern = "#" * 6 + "." * 20 + "#" * 6 + "." * 20
    events = run_pattern(SpeechSegmenter(), pattern)
    assert events == [
        (5, SpeechStarted(0)),
        (25, SpeechSegment(0, 120)),
        (31, SpeechStarted(520)),
        (51, SpeechSegment(520, 640)),
    ]


def test_short_voiced_bursts_after_a_segment_do_not_reopen_it() -> None:
    pattern = "#" * 6 + "." * 20 + "##.#####.#" + "." * 30
    events = run_pattern(SpeechSegmenter(), pattern)
    assert events == [(5, SpeechStarted(0)), (25, SpeechSegment(0, 120))]


def test_custom_onset_and_hangover() -> None:
    segmenter = SpeechSegmenter(onset_ms=20, hangover_ms=40)
    events = run_pattern(segmenter, ".#.#..#")
    assert events == [
        (1, SpeechStarted(20)),
        (5, SpeechSegment(20, 80)),
        (6, SpeechStarted(120)),
    ]


def test_flush_closes_open_segment_once() -> None:
    segmenter = SpeechSegmenter()
    run_pattern(segmenter, "#" * 8 + "...")
    assert segmenter.flush() == [SpeechSegment(0, 160)]
    assert segmenter.flush() == []
    assert not segmenter.in_speech


def test_flush_forgets_a_partial_onset() -> None:
    segmenter = SpeechSegmenter()
    run_pattern(segmenter, "#####")
    assert segmenter.flush() == []
    assert segmenter.push(True) == []


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"onset_ms": 0}, "onset_ms must be a positive multiple of 20 ms, not 0"),
        ({"onset_ms": 30}, "onset_ms must be a positive multiple of 20 ms, not 30"),
        ({"hangover_ms": -20}, "hangover_ms must be a positive multiple of 20 ms, not -20"),
    ],
)
def test_segmenter_rejects_bad_timings(kwargs: dict[str, int], message: str) -> None:
    with pytest.raises(ValueError, match=f"^{message}$"):
        SpeechSegmenter(**kwargs)


# --- webrtcvad on synthetic signals --------------------------------------------------------


def vowel(rate: int, ms: int, f0: float = 120.0) -> Samples:
    """A steady synthetic /a/: harmonics of f0 shaped by three formant resonances."""
    t = np.arange(rate * ms // 1000) / rate
    signal = np.zeros_like(t)
    for k in range(1, int(3400 / f0)):
        f = k * f0
        gain = sum(
            1 / (1 + ((f - fc) / bw) ** 2) for fc, bw in ((700, 130), (1220, 70), (2600, 160))
        )
        signal += gain / np.sqrt(k) * np.sin(2 * np.pi * f * t)
    scaled: Samples = (signal / np.abs(signal).max() * 8000).astype(np.int16)
    return scaled


def silence(rate: int, ms: int) -> Samples:
    return np.zeros(rate * ms // 1000, dtype=np.int16)


def noise(rate: int, ms: int, rms: float, seed: int) -> Samples:
    values = np.random.default_rng(seed).standard_normal(rate * ms // 1000) * rms
    return values.astype(np.int16)


@pytest.mark.parametrize("rate", RATES)
def test_silence_and_noise_have_no_speech(rate: int) -> None:
    assert speech_segments(silence(rate, 2000), rate) == []
    for seed, rms in enumerate((30, 300, 1000)):
        assert speech_segments(noise(rate, 2000, rms, seed), rate) == []


@pytest.mark.parametrize("rate", RATES)
def test_vowel_between_silences_is_one_segment(rate: int) -> None:
    signal = np.concatenate([silence(rate, 500), vowel(rate, 1000), silence(rate, 1000)])
    [segment] = speech_segments(signal, rate)
    assert segment.start_ms == 500
    # webrtcvad keeps flagging a few frames after a sound stops.
    assert 1500 <= segment.end_ms <= 1660


@pytest.mark.parametrize("rate", RATES)
def test_streaming_reports_start_after_onset_and_segment_after_hangover(rate: int) -> None:
    signal = np.concatenate([silence(rate, 400), vowel(rate, 600), silence(rate, 1000)])
    detector = VoiceActivityDetector(rate)
    size = rate // 50
    events = [
        (index * 20, event)
        for index, frame in enumerate(signal.reshape(-1, size))
        for event in detector.push(frame)
    ]
    (started_at, started), (ended_at, segment) = events
    assert started == SpeechStarted(400)
    assert started_at == 400 + 100
    assert isinstance(segment, SpeechSegment)
    assert segment.start_ms == 400
    assert ended_at == segment.end_ms + 400 - 20
    assert detector.flush() == []


def test_audio_frames_and_bare_arrays_give_the_same_flags() -> None:
    signal = np.concatenate([noise(16000, 200, 100, 7), vowel(16000, 400), silence(16000, 200)])
    by_frame = VoiceActivityDetector()
    by_array = VoiceActivityDetector()
    flags = []
    for index, chunk in enumerate(signal.reshape(-1, FRAME_SAMPLES)):
        voiced = by_frame.is_voiced(AudioFrame(chunk, index * FRAME_SAMPLES))
        assert voiced == by_array.is_voiced(chunk.copy())
        flags.append(voiced)
    assert any(flags) and not all(flags)


def test_partial_last_frame_is_padded() -> None:
    signal = np.concatenate([silence(8000, 300), vowel(8000, 510)])
    [segment] = speech_segments(signal, 8000)
    assert segment.start_ms == 300
    assert segment.end_ms >= 800


def test_detector_rejects_bad_input() -> None:
    with pytest.raises(ValueError, match="^voice activity detection runs at 8000 or 16000 Hz"):
        VoiceActivityDetector(44100)
    with pytest.raises(ValueError, match="^aggressiveness is 0-3, not 4$"):
        VoiceActivityDetector(aggressiveness=4)
    narrowband = VoiceActivityDetector(8000)
    with pytest.raises(ValueError, match="^an AudioFrame is at 16000 Hz"):
        narrowband.push(AudioFrame.silence(0))
    with pytest.raises(ValueError, match=r"^a 20 ms frame at 8000 Hz is 160 int16 samples"):
        narrowband.push(np.zeros(320, dtype=np.int16))
    with pytest.raises(ValueError, match=r"^a 20 ms frame at 8000 Hz is 160 int16 samples"):
        narrowband.push(np.zeros(160, dtype=np.float32))
    with pytest.raises(ValueError, match="^a recording is 1-D int16 samples, not 2-D int16$"):
        speech_segments(np.zeros((2, 160), dtype=np.int16), 8000)
    with pytest.raises(ValueError, match="^padding_ms must not be negative, not -1$"):
        trim_to_speech(silence(8000, 100), 8000, padding_ms=-1)


# --- real speech from espeak-ng ------------------------------------------------------------


@functools.cache
def _espeak(text: str) -> tuple[int, bytes]:
    if shutil.which("espeak-ng") is None:
        pytest.fail("espeak-ng is missing: install the Debian package espeak-ng (make test does)")
    wav = subprocess.run(["espeak-ng", "--stdout", text], capture_output=True, check=True).stdout
    with wave.open(io.BytesIO(wav)) as reader:
        return reader.getframerate(), reader.readframes(reader.getnframes())


def speech(text: str, rate: int) -> Samples:
    """espeak-ng speaking ``text``, resampled to ``rate``."""
    source_rate, pcm = _espeak(text)
    samples = np.frombuffer(pcm, dtype="<i2").astype(np.float32)
    resampled = soxr.resample(samples, source_rate, rate)
    pcm16: Samples = np.clip(np.round(resampled), -32768, 32767).astype(np.int16)
    return pcm16


def true_bounds_ms(samples: Samples, rate: int) -> tuple[float, float]:
    """First and last sample above 2 % of the peak, in ms."""
    loud = np.flatnonzero(np.abs(samples) > 0.02 * np.abs(samples).max())
    return loud[0] * 1000 / rate, (loud[-1] + 1) * 1000 / rate


def add_noise(signal: Samples, speech_rms: float, snr_db: float, seed: int) -> Samples:
    level = speech_rms / 10 ** (snr_db / 20)
    noisy = signal + np.random.default_rng(seed).standard_normal(len(signal)) * level
    return np.clip(np.round(noisy), -32768, 32767).astype(np.int16)


SENTENCE = "Hello, I would like to pay my invoice today."


@pytest.mark.parametrize("rate", RATES)
@pytest.mark.parametrize("snr_db", [None, 20.0])
def test_spoken_sentence_is_one_segment_at_its_true_bounds(rate: int, snr_db: float | None) -> None:
    spoken = speech(SENTENCE, rate)
    start, end = true_bounds_ms(spoken, rate)
    signal = np.concatenate([silence(rate, 1000), spoken, silence(rate, 1500)])
    if snr_db is not None:
        speech_rms = float(np.sqrt(np.mean(spoken.astype(np.float64) ** 2)))
        signal = add_noise(signal, speech_rms, snr_db, seed=rate)
    [segment] = speech_segments(signal, rate)
    assert abs(segment.start_ms - (1000 + start)) <= 60
    assert -60 <= segment.end_ms - (1000 + end) <= 160


@pytest.mark.parametrize("rate", RATES)
def test_two_utterances_a_second_apart_are_two_segments(rate: int) -> None:
    first, second = speech("Yes.", rate), speech("Please call me back tomorrow.", rate)
    signal = np.concatenate(
        [silence(rate, 500), first, silence(rate, 1000), second, silence(rate, 1000)]
    )
    segments = speech_segments(signal, rate)
    assert len(segments) == 2
    second_start = 500 + len(first) * 1000 / rate + 1000 + true_bounds_ms(second, rate)[0]
    assert abs(segments[1].start_ms - second_start) <= 60


@pytest.mark.parametrize("rate", RATES)
def test_trim_keeps_the_speech_and_padding(rate: int) -> None:
    spoken = speech(SENTENCE, rate)
    start, end = true_bounds_ms(spoken, rate)
    signal = np.concatenate([silence(rate, 2000), spoken, silence(rate, 3000)])
    trimmed = trim_to_speech(signal, rate)
    assert trimmed.dtype == np.int16
    kept_ms = len(trimmed) * 1000 / rate
    # The speech itself plus 200 ms each side, give or take the detector's error.
    assert end - start + 400 - 60 <= kept_ms <= end - start + 400 + 220
    loud = np.abs(trimmed) > 0.02 * np.abs(spoken).max()
    assert loud.sum() == (np.abs(spoken) > 0.02 * np.abs(spoken).max()).sum()


def test_trim_of_silence_is_empty() -> None:
    trimmed = trim_to_speech(noise(8000, 1000, 100, 3), 8000)
    assert trimmed.shape == (0,)
    assert trimmed.dtype == np.int16
