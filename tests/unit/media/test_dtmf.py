"""The ITU-T Q.24 / Mitel CM7291 battery in test form, at 8 and 16 kHz."""

from __future__ import annotations

import dataclasses
import shutil
import subprocess
import warnings
import wave
from pathlib import Path

import numpy as np
import pytest
import soxr

import assistline.media.dtmf as dtmf_module
from assistline.media.dtmf import DigitEvent, DtmfDetector, DtmfThresholds
from assistline.media.frame import Samples
from assistline.media.tones import (
    CALL_PROGRESS_TONES,
    DBM0_RMS,
    DTMF_KEYS,
    DtmfPress,
    render_presses,
)

with warnings.catch_warnings():
    # audioop is deprecated; it is only the reference G.711 codec here.
    warnings.simplefilter("ignore", DeprecationWarning)
    import audioop

RATES = (8000, 16000)


@pytest.fixture(params=["c", "numpy"], autouse=True)
def projections(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Run every test on the C projections and on the numpy fallback."""
    if request.param == "numpy":
        monkeypatch.setattr(dtmf_module, "ACCELERATED", False)
    return str(request.param)


Press = DtmfPress


def render(presses: list[Press], rate: int, lead_ms: float = 0.0) -> Samples:
    return render_presses(presses, rate, lead_ms=lead_ms)


def detect(signal: Samples, rate: int, chunk: int | None = None) -> list[DigitEvent]:
    detector = DtmfDetector(rate)
    step = chunk or rate // 50
    events: list[DigitEvent] = []
    for start in range(0, signal.shape[0], step):
        events += detector.feed(signal[start : start + step])
    return events + detector.flush()


def digits(signal: Samples, rate: int) -> str:
    return "".join(event.digit for event in detect(signal, rate))


def add_noise(signal: Samples, noise_dbm0: float, seed: int) -> Samples:
    rng = np.random.default_rng(seed)
    noise = rng.normal(0.0, DBM0_RMS * 10 ** (noise_dbm0 / 20), signal.shape[0])
    noisy: Samples = np.clip(np.rint(signal + noise), -32768, 32767).astype(np.int16)
    return noisy


# --- Q.24 battery -------------------------------------------------------------------------


@pytest.mark.parametrize("rate", RATES)
def test_all_16_digits_once_each_at_50_ms_on_50_ms_off(rate: int) -> None:
    events = detect(render([Press(k) for k in DTMF_KEYS * 3], rate), rate)
    assert "".join(e.digit for e in events) == DTMF_KEYS * 3
    per_ms = rate // 1000
    for index, event in enumerate(events):
        assert abs(event.start - index * 100 * per_ms) <= 2.5 * per_ms
        assert abs(event.duration - 50 * per_ms) <= 2.5 * per_ms


@pytest.mark.parametrize("rate", RATES)
@pytest.mark.parametrize("deviation", [0.015, -0.015])
@pytest.mark.parametrize("group", ["low", "high", "both"])
def test_frequency_deviation_of_1_5_percent_is_accepted(
    rate: int, deviation: float, group: str
) -> None:
    low = deviation if group != "high" else 0.0
    high = deviation if group != "low" else 0.0
    presses = [Press(k, low_dev=low, high_dev=high, low_dbm0=-17, high_dbm0=-17) for k in DTMF_KEYS]
    assert digits(render(presses, rate), rate) == DTMF_KEYS


@pytest.mark.parametrize("rate", RATES)
@pytest.mark.parametrize("deviation", [0.035, -0.035, 0.045, -0.06])
@pytest.mark.parametrize("group", ["low", "high", "both"])
def test_frequency_deviation_of_3_5_percent_and_more_is_rejected(
    rate: int, deviation: float, group: str
) -> None:
    low = deviation if group != "high" else 0.0
    high = deviation if group != "low" else 0.0
    presses = [Press(k, low_dev=low, high_dev=high, low_dbm0=-17, high_dbm0=-17) for k in DTMF_KEYS]
    assert digits(render(presses, rate), rate) == ""


@pytest.mark.parametrize("rate", RATES)
def test_normal_twist_of_8_db_is_accepted(rate: int) -> None:
    presses = [Press(k, low_dbm0=-3.0, high_dbm0=-11.0) for k in DTMF_KEYS]
    assert digits(render(presses, rate), rate) == DTMF_KEYS


@pytest.mark.parametrize("rate", RATES)
def test_reverse_twist_of_4_db_is_accepted(rate: int) -> None:
    presses = [Press(k, low_dbm0=-7.0, high_dbm0=-3.0) for k in DTMF_KEYS]
    assert digits(render(presses, rate), rate) == DTMF_KEYS


@pytest.mark.parametrize("rate", RATES)
def test_twist_a_quarter_db_inside_the_limits_is_accepted(rate: int) -> None:
    normal = [Press(k, low_dbm0=-3.0, high_dbm0=-11.75) for k in DTMF_KEYS]
    reverse = [Press(k, low_dbm0=-7.75, high_dbm0=-3.0) for k in DTMF_KEYS]
    assert digits(render(normal + reverse, rate), rate) == DTMF_KEYS * 2


@pytest.mark.parametrize("rate", RATES)
def test_twist_beyond_the_limits_is_rejected(rate: int) -> None:
    normal = [Press(k, low_dbm0=-3.0, high_dbm0=-14.0) for k in DTMF_KEYS]
    reverse = [Press(k, low_dbm0=-10.0, high_dbm0=-3.0) for k in DTMF_KEYS]
    assert digits(render(normal + reverse, rate), rate) == ""


@pytest.mark.parametrize("rate", RATES)
def test_dynamic_range_is_41_db(rate: int) -> None:
    # Mitel test 5: key 1 from +3 dBm0 down to -50 dBm0 per tone in 1 dB steps.
    levels = list(range(3, -51, -1))
    presses = [Press("1", low_dbm0=level, high_dbm0=level) for level in levels]
    events = detect(render(presses, rate), rate)
    detected = [levels[round(e.start / (rate // 10))] for e in events]
    assert detected == list(range(3, -38, -1))


@pytest.mark.parametrize("rate", RATES)
@pytest.mark.parametrize("lead_ms", [0.0, 1.0, 2.5, 4.0, 5.0, 6.5, 8.0, 9.875])
def test_40_ms_tones_are_detected_whatever_their_alignment(rate: int, lead_ms: float) -> None:
    presses = [Press(k, on_ms=40.0) for k in DTMF_KEYS]
    assert digits(render(presses, rate, lead_ms), rate) == DTMF_KEYS


@pytest.mark.parametrize("rate", RATES)
@pytest.mark.parametrize("on_ms", [10.0, 15.0, 20.0])
@pytest.mark.parametrize("lead_ms", [0.0, 2.5, 5.0, 7.5])
def test_tones_of_20_ms_or_less_are_rejected(rate: int, on_ms: float, lead_ms: float) -> None:
    presses = [Press(k, on_ms=on_ms) for k in DTMF_KEYS]
    assert digits(render(presses, rate, lead_ms), rate) == ""


@pytest.mark.parametrize("rate", RATES)
@pytest.mark.parametrize("lead_ms", [0.0, 3.0, 5.0, 7.0])
def test_a_40_ms_pause_separates_repeated_digits(rate: int, lead_ms: float) -> None:
    presses = [p for k in DTMF_KEYS for p in (Press(k, off_ms=40.0), Press(k, off_ms=60.0))]
    assert digits(render(presses, rate, lead_ms), rate) == "".join(k + k for k in DTMF_KEYS)


@pytest.mark.parametrize("rate", RATES)
@pytest.mark.parametrize("lead_ms", [0.0, 3.0, 5.0, 7.0])
@pytest.mark.parametrize("gap_ms", [5.0, 10.0])
def test_interruptions_of_10_ms_or_less_are_bridged(
    rate: int, lead_ms: float, gap_ms: float
) -> None:
    presses = [p for k in DTMF_KEYS for p in (Press(k, off_ms=gap_ms), Press(k, off_ms=60.0))]
    events = detect(render(presses, rate, lead_ms), rate)
    assert "".join(e.digit for e in events) == DTMF_KEYS
    per_ms = rate // 1000
    assert all(abs(e.duration - (100 + gap_ms) * per_ms) <= 2.5 * per_ms for e in events)


@pytest.mark.parametrize("rate", RATES)
def test_digits_in_white_noise_at_10_db_snr(rate: int) -> None:
    # SNR per tone against noise over the whole band, as in spandsp's test 7.
    presses = [Press(k, low_dbm0=-4.0, high_dbm0=-4.0) for k in DTMF_KEYS * 4]
    noisy = add_noise(render(presses, rate), -14.0, seed=20240)
    assert digits(noisy, rate) == DTMF_KEYS * 4


# --- behaviour ----------------------------------------------------------------------------


@pytest.mark.parametrize("rate", RATES)
def test_any_slicing_of_the_input_gives_the_same_events(rate: int) -> None:
    signal = render([Press(k, on_ms=47.0, off_ms=61.0) for k in "159D*0"], rate, lead_ms=3.0)
    expected = detect(signal, rate)
    assert [e.digit for e in expected] == list("159D*0")
    for chunk in (37, 1000, signal.shape[0]):
        assert detect(signal, rate, chunk) == expected


@pytest.mark.parametrize("rate", RATES)
def test_a_long_press_is_one_event_and_current_while_held(rate: int) -> None:
    signal = render([Press("5", on_ms=2000.0, off_ms=100.0)], rate)
    detector = DtmfDetector(rate)
    frame = rate // 50
    held = []
    events: list[DigitEvent] = []
    for start in range(0, signal.shape[0], frame):
        events += detector.feed(signal[start : start + frame])
        held.append(detector.current)
    # Confirmed after three 10 ms blocks: during the second frame.
    assert held[0] is None and held[1] == "5" and held[99] == "5" and held[-1] is None
    assert detector.current_start is None
    assert len(events) == 1
    assert events[0].digit == "5"
    assert abs(events[0].duration - 2 * rate) <= rate // 500


@pytest.mark.parametrize("rate", RATES)
def test_flush_reports_a_key_still_held(rate: int) -> None:
    signal = render([Press("#", on_ms=200.0, off_ms=0.0)], rate)[: rate // 5]
    detector = DtmfDetector(rate)
    assert detector.feed(signal) == []
    assert [detector.current, detector.current_start] == ["#", 0]
    assert detector.position == rate // 5
    events = detector.flush()
    assert [(e.digit, e.start, e.duration) for e in events] == [("#", 0, rate // 5)]
    assert detector.current is None
    assert detector.position == 0


@pytest.mark.parametrize("rate", RATES)
def test_digits_back_to_back_without_a_gap_are_told_apart(rate: int) -> None:
    presses = [Press(k, on_ms=60.0, off_ms=0.0) for k in "1212"]
    assert digits(render(presses, rate), rate) == "1212"


@pytest.mark.parametrize("rate", RATES)
@pytest.mark.parametrize("law", ["ulaw", "alaw"])
def test_digits_survive_g711(rate: int, law: str) -> None:
    presses = [Press(k, low_dbm0=level, high_dbm0=level) for level in (-3, -30) for k in DTMF_KEYS]
    signal = render(presses, rate).tobytes()
    encode, decode = {
        "ulaw": (audioop.lin2ulaw, audioop.ulaw2lin),
        "alaw": (audioop.lin2alaw, audioop.alaw2lin),
    }[law]
    coded = np.frombuffer(decode(encode(signal, 2), 2), dtype=np.int16)
    assert digits(coded, rate) == DTMF_KEYS * 2


@pytest.mark.parametrize("rate", RATES)
def test_call_progress_tones_are_not_digits(rate: int) -> None:
    for tone in CALL_PROGRESS_TONES.values():
        stream = tone.stream(rate)
        detector = DtmfDetector(rate)
        events = [e for _ in range(500) for e in detector.feed(next(stream))]
        assert events == [], tone.name


@pytest.mark.parametrize("rate", RATES)
def test_reported_events_are_ordinary_frozen_digit_events(rate: int) -> None:
    (event,) = detect(render([Press("7")], rate), rate)
    assert type(event) is DigitEvent
    assert event == DigitEvent("7", event.start, event.duration)
    assert hash(event) == hash(DigitEvent("7", event.start, event.duration))
    with pytest.raises(dataclasses.FrozenInstanceError):
        event.digit = "8"  # type: ignore[misc]  # frozen on purpose


@pytest.mark.parametrize("rate", RATES)
def test_calls_of_changing_sizes_give_the_same_events(rate: int) -> None:
    signal = render([Press(k, on_ms=45.0, off_ms=55.0) for k in "2580"], rate, lead_ms=4.0)
    expected = detect(signal, rate)
    assert [e.digit for e in expected] == list("2580")
    detector = DtmfDetector(rate)
    sizes = [rate // 50, rate // 100, 3 * rate // 100, 7, rate // 25, 1, rate // 50 - 1]
    events: list[DigitEvent] = []
    start = 0
    for step in range(10_000):
        if start >= signal.shape[0]:
            break
        size = sizes[step % len(sizes)]
        events += detector.feed(signal[start : start + size])
        start += size
    assert events + detector.flush() == expected


def test_digit_events_keep_the_digit_out_of_their_repr() -> None:
    event = DigitEvent("7", 160, 400)
    assert "7" not in repr(event).replace("160", "").replace("400", "")
    assert event.end == 560


def test_bad_input_is_refused() -> None:
    with pytest.raises(ValueError, match="8000 or 16000 Hz, not 44100"):
        DtmfDetector(44100)
    detector = DtmfDetector(8000)
    with pytest.raises(ValueError, match="1-D int16 samples, not 1-D float64"):
        detector.feed(np.zeros(160))  # type: ignore[arg-type]  # the wrong type on purpose
    with pytest.raises(ValueError, match="1-D int16 samples, not 2-D int16"):
        detector.feed(np.zeros((2, 80), dtype=np.int16))
    with pytest.raises(ValueError, match="purity lies in"):
        DtmfThresholds(purity=1.5)
    with pytest.raises(ValueError, match="confirm_windows is at least 1, not 0"):
        DtmfThresholds(confirm_windows=0)


# --- talk-off -----------------------------------------------------------------------------

TALKOFF_TEXT = (
    "Thank you for calling. Could you please confirm your name and the first line of your "
    "address? Your balance is four hundred and seventy-two pounds, due at the end of August."
)
TALKOFF_VOICES = ("gmw/en+f2", "gmw/en-US", "roa/fr+f4", "gmw/de+m3", "roa/es+f3", "sit/cmn")


@pytest.fixture(scope="module")
def speech(tmp_path_factory: pytest.TempPathFactory) -> list[np.ndarray]:
    if shutil.which("espeak-ng") is None:
        pytest.skip("espeak-ng is not installed (`make test` installs it)")
    folder: Path = tmp_path_factory.mktemp("talkoff")
    utterances = []
    for index, voice in enumerate(TALKOFF_VOICES):
        path = folder / f"{index}.wav"
        subprocess.run(
            ["espeak-ng", "-v", voice, "-w", str(path), TALKOFF_TEXT],
            check=True,
            capture_output=True,
        )
        with wave.open(str(path)) as wav:
            pcm = np.frombuffer(wav.readframes(wav.getnframes()), dtype=np.int16)
            utterances.append(soxr.resample(pcm.astype(np.float64), wav.getframerate(), 16000))
    return utterances


@pytest.mark.parametrize("rate", RATES)
def test_no_talk_off_on_speech_at_three_levels(rate: int, speech: list[np.ndarray]) -> None:
    for level in (-10.0, -20.0, -30.0):
        detector = DtmfDetector(rate)
        frame = rate // 50
        for utterance in speech:
            voice = utterance if rate == 16000 else soxr.resample(utterance, 16000, 8000)
            gain = DBM0_RMS * 10 ** (level / 20) / np.sqrt(np.mean(voice**2))
            signal = add_noise(voice * gain, -55.0, seed=1)
            events = [
                e
                for i in range(0, signal.shape[0], frame)
                for e in detector.feed(signal[i : i + frame])
            ]
            assert events == [], (level, utterance.shape)


def test_the_c_projections_are_built(projections: str) -> None:
    # Development machines have a C compiler; a build that silently fell back to
    # numpy would make the benchmark measure the slower path.
    assert projections == "numpy" or dtmf_module.ACCELERATED
