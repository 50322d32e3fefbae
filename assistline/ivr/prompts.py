"""Prompts as WAV files: a recorded override, or text-to-speech from a disk cache.

The flow engine names each prompt by a stable key (``payment_line.say_balance``)
and gives its :data:`~assistline.ivr.utterance.Utterance`;
:meth:`Prompts.path_for` returns the file a media worker's ``play`` command
plays. A recording at ``<recorded_dir>/<key>.wav`` wins for any prompt,
dynamic ones included; it is checked at every use to be mono 16-bit PCM at
8 or 16 kHz, and one that is not is refused with an error naming the file,
so a bad upload fails that prompt loudly instead of playing noise. Otherwise
the utterance is verbalised (:mod:`assistline.ivr.verbalise`) and spoken by
a :class:`Synthesiser` once per distinct text: the WAV, 16 kHz mono 16-bit,
is cached as ``<cache_dir>/<sha256 of engine identity and text>.wav``, where
the identity names voice, speed, engine version and this module's output
format, so changing any of them never plays a stale file. Synthesis and
file work run in threads (``asyncio.to_thread``), never on the loop;
concurrent requests for one text synthesise once (a lock per cache file);
the file appears atomically (a temporary file in the same directory,
fsynced, then renamed), so a reader never sees half a prompt, even another
process sharing the cache.

No prompt may speak a card number (13–19 digits passing the Luhn check, in
any part): the cache would keep it on disk, so it is refused
(:class:`CardNumberInPrompt`); say the last four digits instead. Log lines
name the key, never the text.

Engine: eSpeak NG through ctypes. Measured on the 2-core development machine
for a 10-word prompt ("Your balance is forty-two dollars. Press one to pay
now.", 3.3 s of audio at 22,050 Hz), three runs of a median of 7 each:

==========================================  ===========  ============  ==========
engine                                      first audio  total         first load
==========================================  ===========  ============  ==========
``espeakng-loader`` wheel (1.52.0), ctypes  0.2–0.3 ms   3.3–5.3 ms    3.5–6.8 ms
Debian ``libespeak-ng1`` (1.51), ctypes     0.2–0.3 ms   4.2–5.8 ms    6.6–9.2 ms
Debian ``espeak-ng --stdout``, subprocess   8.2–10.2 ms  14.1–15.7 ms  —
==========================================  ===========  ============  ==========

Through :meth:`Prompts.path_for`, a new text costs 9–12 ms (synthesis,
conversion to 16 kHz, an fsynced write) and 20–30 ms on the first one of a
process (loading the library, building the filter); a cached one 0.3–0.7 ms.

All are fast enough for a cache filled once per text; what decides is what a
fresh machine needs. The wheel (10 MB download, 21 MB installed) carries the
library and its data and links only libc and libstdc++, so ``pip install``
brings it with the rest of assistline, as any user, at the version
pyproject.toml names. Debian's needs root (``apt-get install espeak-ng``)
and pulls libpcaudio0, libsonic0 and through them the PulseAudio and ALSA
client libraries (the library loads 33 shared libraries; the wheel's loads
5). So :func:`find_espeak` takes the wheel when it is installed and Debian's
library otherwise, and :class:`SpeechEngineMissing` names both when neither
is there. The library is one global state, so all calls into it are
serialised by one lock; a crash in it would take the process with it, which
is acceptable for text our own flows write, and :class:`Synthesiser` lets a
subprocess engine replace it.

16 kHz: eSpeak NG speaks at 22,050 Hz only, and
:mod:`assistline.media.resample` converts between 8, 16 and 48 kHz only, so
:func:`convert_rate` converts once per prompt with a rational polyphase
filter (320/441 for 22,050 → 16,000 Hz) built to the same specification as
that module (Kaiser-windowed sinc, 44 taps each side at the lower rate, -6 dB
at 0.4725 × the lower rate, Kaiser β for 74 dB), each phase normalised to
unity gain. Measured on -6 dBFS tones at 22,050 Hz: level change 0.0001 dB at
1 kHz, 0.001 dB at 7 kHz, 0.036 dB at 7.2 kHz; tones from 8 kHz up, whose
aliases would land in the band, come out 82–91 dB down (the int16 rounding
floor is about -90 dB). At 8↔16 and 48→16 kHz it agrees with that module
within 1 LSB. 4 s of speech converts in 2–7 ms (one matrix product per 441
input samples).
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import ctypes.util
import dataclasses
import functools
import hashlib
import importlib
import logging
import math
import os
import re
import tempfile
import threading
import time
import wave
from pathlib import Path
from typing import Protocol

import numpy as np
import numpy.typing as npt

from assistline.errors import AssistlineError
from assistline.ivr.utterance import Digits, Number, Utterance, Words
from assistline.ivr.verbalise import verbalise
from assistline.media.frame import INTERNAL_RATE, Samples
from assistline.media.resample import CUTOFF, HALF_LENGTH, KAISER_ATTENUATION_DB
from assistline.redaction import contains_card_number, luhn_valid

logger = logging.getLogger(__name__)

RECORDED_RATES = (8_000, 16_000)
# Bump when what this module writes for the same speech changes (filter, format).
CACHE_FORMAT = 1
DEFAULT_VOICE = "en-us"
# espeak-ng's default, 175 words a minute, is brisk for a caller on a phone line.
DEFAULT_WORDS_PER_MINUTE = 160
_KEY = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,199}")


class PromptError(AssistlineError, ValueError):
    """A prompt cannot be played; the message says which and why."""


class RecordedPromptError(PromptError):
    """A recorded prompt is not mono 16-bit PCM WAV at 8000 or 16000 Hz; convert it."""


class CardNumberInPrompt(PromptError):
    """A prompt would speak a card number, which the cache keeps on disk; say the last four only."""


class SpeechEngineMissing(AssistlineError, RuntimeError):
    """No text-to-speech engine: pip install espeakng-loader, or apt-get install espeak-ng."""


class SpeechError(AssistlineError, RuntimeError):
    """The text-to-speech engine failed; the message says where."""


@dataclasses.dataclass(frozen=True, slots=True)
class Speech:
    """Synthesised audio: signed 16-bit mono samples at ``rate`` Hz."""

    samples: Samples
    rate: int


class Synthesiser(Protocol):
    """A text-to-speech engine. Both methods block; :class:`Prompts` calls them in a thread."""

    def identity(self) -> str:
        """Engine, version, voice and speed: everything that changes the audio for a text."""
        ...

    def synthesise(self, text: str) -> Speech:
        """The speech for ``text``, at whatever rate the engine produces."""
        ...


# --- eSpeak NG through ctypes ------------------------------------------------------------


@dataclasses.dataclass(frozen=True, slots=True)
class EspeakLibrary:
    """Where libespeak-ng and its data are, and which package brought them."""

    path: str
    data: str | None  # None: the library's compiled-in data directory
    source: str


def find_espeak() -> EspeakLibrary:
    """The ``espeakng-loader`` wheel's library if installed, else Debian's, else an error."""
    try:
        loader = importlib.import_module("espeakng_loader")
    except ImportError:
        pass
    else:
        return EspeakLibrary(
            str(loader.get_library_path()), str(loader.get_data_path()), "espeakng-loader"
        )
    name = ctypes.util.find_library("espeak-ng")
    if name is None:
        raise SpeechEngineMissing
    return EspeakLibrary(name, None, "system")


_AUDIO_OUTPUT_SYNCHRONOUS = 2
_INITIALIZE_DONT_EXIT = 0x8000
_RATE = 1
_POS_CHARACTER = 1
_CHARS_UTF8 = 1
_CALLBACK = ctypes.CFUNCTYPE(
    ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.c_void_p
)
# The library is one global state: every call into any loaded copy goes through this lock.
_ESPEAK_LOCK = threading.Lock()


class _Engine:
    """One loaded, initialised copy of libespeak-ng, collecting audio through its callback."""

    def __init__(self, library: EspeakLibrary) -> None:
        try:
            self.lib = ctypes.CDLL(library.path)
        except OSError as error:
            raise SpeechEngineMissing(f"cannot load {library.path}: {error}") from error
        lib = self.lib
        lib.espeak_Initialize.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_char_p, ctypes.c_int]
        lib.espeak_Info.restype = ctypes.c_char_p
        lib.espeak_Info.argtypes = [ctypes.c_void_p]
        lib.espeak_SetVoiceByName.argtypes = [ctypes.c_char_p]
        lib.espeak_SetParameter.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int]
        lib.espeak_Synth.argtypes = [
            ctypes.c_char_p,
            ctypes.c_size_t,
            ctypes.c_uint,
            ctypes.c_int,
            ctypes.c_uint,
            ctypes.c_uint,
            ctypes.c_void_p,
            ctypes.c_void_p,
        ]
        data = library.data.encode() if library.data else None
        rate = int(lib.espeak_Initialize(_AUDIO_OUTPUT_SYNCHRONOUS, 0, data, _INITIALIZE_DONT_EXIT))
        if rate <= 0:
            raise SpeechError(f"espeak-ng from {library.source} failed to initialise ({rate})")
        self.rate = rate
        self.version = bytes(lib.espeak_Info(None)).decode()
        self.chunks: list[bytes] = []
        # Kept on self: the library calls it until the process ends.
        self._callback = _CALLBACK(self._collect)
        lib.espeak_SetSynthCallback(self._callback)

    def _collect(self, wav: ctypes._Pointer[ctypes.c_short], count: int, events: int) -> int:
        if count > 0:
            self.chunks.append(ctypes.string_at(wav, count * 2))
        return 0  # go on

    def call(self, name: str, *args: object) -> None:
        """Call an espeak function that returns an espeak_ERROR, raising if it is not EE_OK."""
        status = int(getattr(self.lib, name)(*args))
        if status != 0:
            raise SpeechError(f"espeak-ng: {name} failed ({status})")


_engines: dict[str, _Engine] = {}


def _engine(library: EspeakLibrary) -> _Engine:
    """The loaded copy of ``library``; call with :data:`_ESPEAK_LOCK` held."""
    engine = _engines.get(library.path)
    if engine is None:
        engine = _engines[library.path] = _Engine(library)
    return engine


class EspeakSynthesiser:
    """eSpeak NG in this process through ctypes (see the module's measurements)."""

    def __init__(
        self,
        voice: str = DEFAULT_VOICE,
        words_per_minute: int = DEFAULT_WORDS_PER_MINUTE,
        library: EspeakLibrary | None = None,
    ) -> None:
        """Find the library now, so a missing engine fails at start-up; load it on first use."""
        if not 80 <= words_per_minute <= 450:  # espeak-ng's own range
            raise ValueError("words_per_minute must be between 80 and 450")
        self.voice = voice
        self.words_per_minute = words_per_minute
        self.library = library or find_espeak()

    def identity(self) -> str:
        """``espeak-ng <version> (<source>) <voice> <words per minute> wpm``."""
        with _ESPEAK_LOCK:
            engine = _engine(self.library)
        return (
            f"espeak-ng {engine.version} ({self.library.source}) "
            f"{self.voice} {self.words_per_minute} wpm"
        )

    def synthesise(self, text: str) -> Speech:
        """The speech for ``text`` at the engine's rate (22,050 Hz)."""
        data = text.encode() + b"\0"
        with _ESPEAK_LOCK:
            engine = _engine(self.library)
            try:
                engine.call("espeak_SetVoiceByName", self.voice.encode())
            except SpeechError as error:
                raise SpeechError(f"espeak-ng has no voice {self.voice!r}") from error
            engine.call("espeak_SetParameter", _RATE, self.words_per_minute, 0)
            engine.chunks = []
            engine.call(
                "espeak_Synth", data, len(data), 0, _POS_CHARACTER, 0, _CHARS_UTF8, None, None
            )
            engine.call("espeak_Synchronize")
            audio, engine.chunks = b"".join(engine.chunks), []
        return Speech(np.frombuffer(audio, dtype="<i2").astype(np.int16), engine.rate)


# --- rate conversion -----------------------------------------------------------------------


@functools.cache
def _conversion_matrix(up: int, down: int, half: int, cutoff: float) -> npt.NDArray[np.float64]:
    """Column ``q`` holds the taps giving output ``q`` of each block from its input window.

    Output ``n`` sits at input time ``n × down / up``; outputs repeat their phase every
    ``up`` samples, which consume ``down`` inputs, so one block is ``up`` outputs from a
    window of ``down + 2 × half`` inputs.
    """
    beta = 0.1102 * (KAISER_ATTENUATION_DB - 8.7)
    base, phase = np.divmod(np.arange(up) * down, up)
    # Each tap's distance from its output's time, in input samples: one row per output.
    x = np.arange(-half + 1, half + 1)[None, :] - (phase / up)[:, None]
    window = np.i0(beta * np.sqrt(np.clip(1 - (x / half) ** 2, 0, None))) / np.i0(beta)
    taps = 2 * cutoff * np.sinc(2 * cutoff * x) * window
    matrix = np.zeros((down + 2 * half, up))
    rows = base[:, None] + 1 + np.arange(2 * half)[None, :]
    matrix[rows, np.arange(up)[:, None]] = taps / taps.sum(axis=1, keepdims=True)
    return matrix


def convert_rate(samples: Samples, from_rate: int, to_rate: int) -> Samples:
    """A whole signal at any rate converted to another, once, without delay.

    The result has ``ceil(len(samples) × to_rate / from_rate)`` samples; the
    filter is specified in the module docstring.
    """
    if from_rate <= 0 or to_rate <= 0:
        raise ValueError("sample rates must be positive")
    if from_rate == to_rate:
        return samples.copy()
    common = math.gcd(from_rate, to_rate)
    up, down = to_rate // common, from_rate // common
    lower = min(from_rate, to_rate)
    half = math.ceil(HALF_LENGTH * from_rate / lower)  # input samples each side of an output
    matrix = _conversion_matrix(up, down, half, CUTOFF * lower / from_rate)
    count = -(-len(samples) * up // down)
    if not count:
        return np.zeros(0, np.int16)
    blocks = -(-count // up)
    padded = np.zeros(blocks * down + 2 * half + 1)
    padded[half : half + len(samples)] = samples
    windows = np.lib.stride_tricks.sliding_window_view(padded, down + 2 * half)[::down][:blocks]
    out = (windows @ matrix).reshape(-1)[:count]
    return np.clip(np.rint(out), -32768, 32767).astype(np.int16)


# --- files ---------------------------------------------------------------------------------


def check_recording(path: Path) -> None:
    """Raise :class:`RecordedPromptError` naming ``path`` unless it is a playable prompt."""
    wanted = "a recorded prompt must be mono 16-bit PCM WAV at 8000 or 16000 Hz"
    try:
        with wave.open(str(path), "rb") as wav:
            channels, width, rate, frames = (
                wav.getnchannels(),
                wav.getsampwidth(),
                wav.getframerate(),
                wav.getnframes(),
            )
    except (wave.Error, EOFError) as error:
        raise RecordedPromptError(f"{path} is not a PCM WAV file ({error}); {wanted}") from error
    except OSError as error:
        raise RecordedPromptError(f"{path} cannot be read ({error.strerror})") from error
    found = []
    if channels != 1:
        found.append(f"{channels} channels")
    if width != 2:
        found.append(f"{8 * width}-bit")
    if rate not in RECORDED_RATES:
        found.append(f"{rate} Hz")
    if found:
        raise RecordedPromptError(f"{path} is {', '.join(found)}; {wanted}")
    if frames == 0:
        raise RecordedPromptError(f"{path} holds no audio; {wanted}")


def write_wav(path: Path, samples: Samples, rate: int) -> None:
    """Write mono 16-bit PCM atomically: a temporary file beside ``path``, fsynced, renamed."""
    fd, temporary = tempfile.mkstemp(dir=path.parent, prefix=".", suffix=".wav.tmp")
    try:
        with os.fdopen(fd, "wb") as file:
            with wave.open(file, "wb") as wav:
                wav.setnchannels(1)
                wav.setsampwidth(2)
                wav.setframerate(rate)
                wav.writeframes(samples.astype("<i2").tobytes())
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temporary)
        raise


def speaks_card_number(utterance: Utterance) -> bool:
    """Whether any part holds 13–19 digits passing the Luhn check."""
    for piece in utterance:
        if isinstance(piece, Words) and contains_card_number(piece.text):
            return True
        digits = (
            piece.digits
            if isinstance(piece, Digits)
            else str(abs(piece.value))
            if isinstance(piece, Number)
            else ""
        )
        if 13 <= len(digits) <= 19 and luhn_valid(digits):
            return True
    return False


def cache_name(identity: str, text: str) -> str:
    """The cache file's name for ``text`` spoken by the engine ``identity`` names."""
    digest = hashlib.sha256(f"{CACHE_FORMAT}\n{identity}\n{text}".encode()).hexdigest()
    return f"{digest[:32]}.wav"


# --- the shell -----------------------------------------------------------------------------


@dataclasses.dataclass
class _Flight:
    lock: asyncio.Lock = dataclasses.field(default_factory=asyncio.Lock)
    users: int = 0


class Prompts:
    """Prompt files: a recording in ``recorded_dir`` if given, else speech cached in ``cache_dir``.

    Use it from one event loop; it is not thread-safe.
    """

    def __init__(
        self, cache_dir: Path, synthesiser: Synthesiser, recorded_dir: Path | None = None
    ) -> None:
        self.cache_dir = cache_dir
        self.recorded_dir = recorded_dir
        self._synthesiser = synthesiser
        self._identity: str | None = None
        self._flights: dict[str, _Flight] = {}

    async def path_for(self, key: str, utterance: Utterance) -> Path:
        """The WAV file to play for prompt ``key`` saying ``utterance``."""
        if not _KEY.fullmatch(key):
            raise PromptError(
                "a prompt key is letters, digits, '_', '.' and '-', not starting with '.' or '-'"
            )
        if speaks_card_number(utterance):
            raise CardNumberInPrompt
        recorded = await asyncio.to_thread(self.recorded, key)
        if recorded is not None:
            return recorded
        text = verbalise(utterance)
        if not text:
            raise PromptError(f"prompt {key} has no words to speak and no recording")
        return await self._speech(key, text)

    def recorded(self, key: str) -> Path | None:
        """The checked recording for ``key``, or None when there is none (blocking)."""
        if self.recorded_dir is None:
            return None
        path = self.recorded_dir / f"{key}.wav"
        if not path.exists():
            return None
        check_recording(path)
        return path

    async def _speech(self, key: str, text: str) -> Path:
        if self._identity is None:
            self._identity = await asyncio.to_thread(self._synthesiser.identity)
        path = self.cache_dir / cache_name(self._identity, text)
        flight = self._flights.setdefault(path.name, _Flight())
        flight.users += 1
        try:
            async with flight.lock:
                if not await asyncio.to_thread(path.exists):
                    await asyncio.to_thread(self._synthesise_into, key, text, path)
        finally:
            flight.users -= 1
            if not flight.users:
                del self._flights[path.name]
        return path

    def _synthesise_into(self, key: str, text: str, path: Path) -> None:
        started = time.perf_counter()
        speech = self._synthesiser.synthesise(text)
        if not len(speech.samples):
            raise SpeechError(f"the engine produced no audio for prompt {key}")
        samples = convert_rate(speech.samples, speech.rate, INTERNAL_RATE)
        path.parent.mkdir(parents=True, exist_ok=True)
        write_wav(path, samples, INTERNAL_RATE)
        logger.info(
            "prompt %s synthesised: %.1f s of audio in %.0f ms",
            key,
            len(samples) / INTERNAL_RATE,
            (time.perf_counter() - started) * 1000,
        )
