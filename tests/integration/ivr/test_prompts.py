"""Prompts: real eSpeak NG synthesis into the disk cache, recorded overrides, the 16 kHz filter."""

from __future__ import annotations

import asyncio
import datetime
import importlib.util
import threading
import time
import wave
from pathlib import Path

import numpy as np
import pytest

from assistline.ivr.prompts import (
    CardNumberInPrompt,
    EspeakLibrary,
    EspeakSynthesiser,
    PromptError,
    Prompts,
    RecordedPromptError,
    Speech,
    SpeechEngineMissing,
    SpeechError,
    cache_name,
    check_recording,
    convert_rate,
    find_espeak,
    write_wav,
)
from assistline.ivr.utterance import Amount, Date, Digits, Number, Utterance, Words
from assistline.media.frame import Samples
from assistline.media.resample import resample

BALANCE: Utterance = (
    Words("Your balance is"),
    Amount(4210),
    Words(", due on"),
    Date(datetime.date(2026, 12, 1)),
    Words(". Press one to pay."),
)
TEXT = "Your balance is forty-two dollars and ten cents, due on December first, twenty twenty-six."


def _espeak() -> EspeakLibrary:
    try:
        return find_espeak()
    except SpeechEngineMissing:
        pytest.skip("no espeak-ng (`make test` installs Debian's espeak-ng)")


class CountingSynthesiser:
    """The real engine, counting the texts it is asked to speak; optionally slow."""

    def __init__(self, inner: EspeakSynthesiser, delay: float = 0.0, fail_first: bool = False):
        self.inner = inner
        self.delay = delay
        self.fail_first = fail_first
        self.texts: list[str] = []
        self._lock = threading.Lock()

    def identity(self) -> str:
        return self.inner.identity()

    def synthesise(self, text: str) -> Speech:
        with self._lock:
            self.texts.append(text)
            fail = self.fail_first and len(self.texts) == 1
        time.sleep(self.delay)
        if fail:
            raise SpeechError("planned failure")
        return self.inner.synthesise(text)


@pytest.fixture
def synthesiser() -> CountingSynthesiser:
    return CountingSynthesiser(EspeakSynthesiser(library=_espeak()))


def _read(path: Path) -> tuple[int, int, int, Samples]:
    with wave.open(str(path), "rb") as wav:
        frames = wav.readframes(wav.getnframes())
        return (
            wav.getnchannels(),
            wav.getsampwidth(),
            wav.getframerate(),
            np.frombuffer(frames, "<i2").astype(np.int16),
        )


def _write(path: Path, rate: int, channels: int = 1, width: int = 2, seconds: float = 0.1) -> None:
    with wave.open(str(path), "wb") as wav:
        wav.setnchannels(channels)
        wav.setsampwidth(width)
        wav.setframerate(rate)
        wav.writeframes(b"\x01" * (int(rate * seconds) * channels * width))


def _dbfs(samples: Samples) -> float:
    return float(20 * np.log10(np.sqrt(np.mean(samples.astype(np.float64) ** 2)) / 32768))


# --- real synthesis and the cache ------------------------------------------------------------


async def test_speech_is_16_khz_mono_16_bit_and_audible(
    tmp_path: Path, synthesiser: CountingSynthesiser
) -> None:
    prompts = Prompts(tmp_path / "cache", synthesiser)
    path = await prompts.path_for("payment_line.say_balance", BALANCE)
    assert synthesiser.texts == [TEXT + " Press one to pay."]
    assert path == tmp_path / "cache" / cache_name(synthesiser.identity(), synthesiser.texts[0])
    channels, width, rate, samples = _read(path)
    assert (channels, width, rate) == (1, 2, 16_000)
    assert 6.0 < len(samples) / rate < 9.0  # measured 7.55 s at 160 words a minute
    assert -26.0 < _dbfs(samples) < -16.0  # measured -21.0 dBFS, peak 25,652
    assert np.abs(samples).max() > 16_000
    assert sorted(p.name for p in path.parent.iterdir()) == [path.name]  # no temporary left


async def test_the_second_call_hits_the_cache(
    tmp_path: Path, synthesiser: CountingSynthesiser
) -> None:
    prompts = Prompts(tmp_path / "cache", synthesiser)
    first = await prompts.path_for("a", BALANCE)
    before = (first.stat().st_mtime_ns, first.read_bytes())
    again = await Prompts(tmp_path / "cache", synthesiser).path_for("b", BALANCE)
    assert again == first
    assert (again.stat().st_mtime_ns, again.read_bytes()) == before
    assert len(synthesiser.texts) == 1


async def test_concurrent_requests_for_one_text_synthesise_once(tmp_path: Path) -> None:
    slow = CountingSynthesiser(EspeakSynthesiser(library=_espeak()), delay=0.1)
    prompts = Prompts(tmp_path / "cache", slow)
    paths = await asyncio.gather(
        *(prompts.path_for("say_balance", BALANCE) for _ in range(5)),
        prompts.path_for("menu", (Words("Press"), Number(2), Words("for an agent."))),
    )
    assert len(set(paths[:5])) == 1
    assert paths[5] != paths[0]
    assert sorted(slow.texts) == ["Press two for an agent.", TEXT + " Press one to pay."]
    assert len(list((tmp_path / "cache").iterdir())) == 2


async def test_a_failed_synthesis_leaves_nothing_and_the_next_call_retries(tmp_path: Path) -> None:
    flaky = CountingSynthesiser(EspeakSynthesiser(library=_espeak()), fail_first=True)
    prompts = Prompts(tmp_path / "cache", flaky)
    with pytest.raises(SpeechError, match="^planned failure$"):
        await prompts.path_for("k", BALANCE)
    assert not (tmp_path / "cache").exists()
    path = await prompts.path_for("k", BALANCE)
    assert path.exists()
    assert len(flaky.texts) == 2


async def test_voice_speed_and_engine_version_are_in_the_cache_name(tmp_path: Path) -> None:
    library = _espeak()
    slow = EspeakSynthesiser(words_per_minute=140, library=library)
    normal = EspeakSynthesiser(library=library)
    assert normal.identity().startswith("espeak-ng 1.5")
    assert normal.identity().endswith(" en-us 160 wpm")
    assert slow.identity().endswith(" en-us 140 wpm")
    a = await Prompts(tmp_path, normal).path_for("k", BALANCE)
    b = await Prompts(tmp_path, slow).path_for("k", BALANCE)
    assert a != b
    assert len(_read(b)[3]) > len(_read(a)[3])


@pytest.mark.skipif(
    importlib.util.find_spec("espeakng_loader") is None, reason="espeakng-loader not installed"
)
def test_the_wheel_is_preferred_when_installed() -> None:
    library = find_espeak()
    assert library.source == "espeakng-loader"
    assert EspeakSynthesiser(library=library).identity().startswith("espeak-ng 1.52")


def test_an_unknown_voice_is_named() -> None:
    with pytest.raises(SpeechError, match="^espeak-ng has no voice 'xx-nowhere'$"):
        EspeakSynthesiser("xx-nowhere", library=_espeak()).synthesise("hello")


def test_a_missing_library_says_what_to_install(tmp_path: Path) -> None:
    missing = EspeakLibrary(str(tmp_path / "libespeak-ng.so.1"), None, "system")
    with pytest.raises(SpeechEngineMissing, match="^cannot load .*libespeak-ng.so.1: "):
        EspeakSynthesiser(library=missing).identity()
    assert str(SpeechEngineMissing()) == (
        "No text-to-speech engine: pip install espeakng-loader, or apt-get install espeak-ng."
    )


def test_speed_outside_espeaks_range_is_refused() -> None:
    with pytest.raises(ValueError, match="^words_per_minute must be between 80 and 450$"):
        EspeakSynthesiser(words_per_minute=20, library=EspeakLibrary("unused", None, "system"))


# --- recorded overrides ----------------------------------------------------------------------


@pytest.mark.parametrize("rate", [8_000, 16_000])
async def test_a_recording_wins(
    tmp_path: Path, synthesiser: CountingSynthesiser, rate: int
) -> None:
    recorded = tmp_path / "recorded"
    recorded.mkdir()
    _write(recorded / "payment_line.say_balance.wav", rate)
    prompts = Prompts(tmp_path / "cache", synthesiser, recorded)
    path = await prompts.path_for("payment_line.say_balance", BALANCE)
    assert path == recorded / "payment_line.say_balance.wav"
    assert synthesiser.texts == []
    assert await prompts.path_for("other", (Words("Goodbye."),)) != path
    assert synthesiser.texts == ["Goodbye."]


@pytest.mark.parametrize(
    ("write", "found"),
    [
        ({"rate": 44_100, "channels": 2}, "is 2 channels, 44100 Hz"),
        ({"rate": 8_000, "width": 1}, "is 8-bit"),
        ({"rate": 22_050}, "is 22050 Hz"),
        ({"rate": 16_000, "seconds": 0}, "holds no audio"),
    ],
)
async def test_a_bad_recording_is_refused_naming_the_file(
    tmp_path: Path, synthesiser: CountingSynthesiser, write: dict[str, int], found: str
) -> None:
    path = tmp_path / "greeting.wav"
    _write(path, **write)
    with pytest.raises(RecordedPromptError) as caught:
        await Prompts(tmp_path / "cache", synthesiser, tmp_path).path_for("greeting", BALANCE)
    assert str(caught.value) == (
        f"{path} {found}; a recorded prompt must be mono 16-bit PCM WAV at 8000 or 16000 Hz"
    )
    assert synthesiser.texts == []


def test_a_file_that_is_not_a_wav_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "greeting.wav"
    path.write_bytes(b"ID3\x03 an mp3 renamed")
    with pytest.raises(RecordedPromptError) as caught:
        check_recording(path)
    assert str(caught.value) == (
        f"{path} is not a PCM WAV file (file does not start with RIFF id); "
        "a recorded prompt must be mono 16-bit PCM WAV at 8000 or 16000 Hz"
    )


@pytest.mark.parametrize("key", ["", "../secrets", ".hidden", "a/b", "-x", "k" * 201])
async def test_a_key_that_is_not_a_plain_name_is_refused(
    tmp_path: Path, synthesiser: CountingSynthesiser, key: str
) -> None:
    with pytest.raises(PromptError, match="^a prompt key is letters, digits"):
        await Prompts(tmp_path / "cache", synthesiser, tmp_path).path_for(key, BALANCE)


# --- what may never be spoken ---------------------------------------------------------------


@pytest.mark.parametrize(
    "utterance",
    [
        (Words("You entered"), Digits("4111111111111111")),
        (Words("You entered 4111 1111 1111 1111."),),
        (Number(4_222_222_222_222),),
    ],
)
async def test_a_card_number_is_never_spoken_or_cached(
    tmp_path: Path, synthesiser: CountingSynthesiser, utterance: Utterance
) -> None:
    with pytest.raises(CardNumberInPrompt) as caught:
        await Prompts(tmp_path / "cache", synthesiser).path_for("readback", utterance)
    assert str(caught.value) == (
        "A prompt would speak a card number, which the cache keeps on disk; say the last four only."
    )
    assert synthesiser.texts == []
    assert not (tmp_path / "cache").exists()


async def test_the_last_four_digits_may_be_spoken(
    tmp_path: Path, synthesiser: CountingSynthesiser
) -> None:
    await Prompts(tmp_path, synthesiser).path_for("k", (Words("Card ending"), Digits("1111")))
    assert synthesiser.texts == ["Card ending one one one one"]


async def test_an_utterance_without_words_is_refused(
    tmp_path: Path, synthesiser: CountingSynthesiser
) -> None:
    with pytest.raises(
        PromptError, match="^prompt silence has no words to speak and no recording$"
    ):
        await Prompts(tmp_path, synthesiser).path_for("silence", (Words(" "),))


# --- the 22,050 → 16,000 Hz filter -----------------------------------------------------------


def _tone(frequency: float, rate: int = 22_050, seconds: float = 1.0) -> Samples:
    t = np.arange(int(rate * seconds)) / rate
    tone: Samples = np.rint(16_384 * np.sin(2 * np.pi * frequency * t)).astype(np.int16)
    return tone


def _gain_db(frequency: float) -> float:
    tone = _tone(frequency)
    out = convert_rate(tone, 22_050, 16_000)[1_000:-1_000]
    return _dbfs(out) - _dbfs(tone)


@pytest.mark.parametrize(("frequency", "most"), [(300, 0.001), (1_000, 0.001), (7_000, 0.01)])
def test_the_passband_keeps_a_tones_level(frequency: float, most: float) -> None:
    assert abs(_gain_db(frequency)) < most  # measured 0.0000-0.0012 dB


@pytest.mark.parametrize("frequency", [8_000, 8_200, 9_000, 10_000, 11_000])
def test_tones_that_would_alias_are_removed(frequency: float) -> None:
    assert _gain_db(frequency) < -80  # measured -82.5 to -90.8 dB


@pytest.mark.parametrize(
    ("count", "expected"), [(0, 0), (1, 1), (441, 320), (442, 321), (22_050, 16_000)]
)
def test_the_output_length_is_the_input_length_times_the_ratio(count: int, expected: int) -> None:
    assert len(convert_rate(np.zeros(count, np.int16), 22_050, 16_000)) == expected


def test_there_is_no_delay() -> None:
    impulse = np.zeros(441 * 20, np.int16)
    impulse[441 * 10] = 30_000
    out = convert_rate(impulse, 22_050, 16_000)
    assert int(np.argmax(out)) == 320 * 10


@pytest.mark.parametrize(("source", "target"), [(8_000, 16_000), (48_000, 16_000), (16_000, 8_000)])
def test_integer_ratios_agree_with_the_media_resampler(source: int, target: int) -> None:
    noise = (np.random.default_rng(7).standard_normal(source) * 3_000).astype(np.int16)
    ours = convert_rate(noise, source, target).astype(np.int32)
    assert int(np.abs(ours - resample(noise, source, target)).max()) <= 1  # measured 1 LSB


def test_the_same_rate_is_a_copy() -> None:
    tone = _tone(440, 16_000)
    out = convert_rate(tone, 16_000, 16_000)
    assert out is not tone
    assert np.array_equal(out, tone)


def test_write_wav_leaves_no_temporary_when_it_fails(tmp_path: Path) -> None:
    with pytest.raises(wave.Error):
        write_wav(tmp_path / "x.wav", _tone(440), 0)
    assert list(tmp_path.iterdir()) == []
