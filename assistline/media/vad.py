"""Voice activity detection: speech segments from 20 ms frames.

Two layers. :class:`SpeechSegmenter` is a pure state machine over one
voiced/unvoiced flag per 20 ms frame: a segment opens after ``onset_ms`` of
consecutive voiced frames and closes once ``hangover_ms`` have passed
without one, so short noises do not open segments and pauses between words
do not split them. :class:`VoiceActivityDetector` is the thin layer that asks
webrtcvad for each frame's flag at 8 or 16 kHz and feeds the segmenter.
:func:`trim_to_speech` cuts a whole recording (a voice message) down to its
speech.

A segment runs from the start of its first voiced frame to the end of its
last voiced frame, in ms since the first frame fed; the hangover only decides
when it is over and is not part of it.

Defaults, measured on espeak-ng sentences resampled to 8 and 16 kHz with
white noise added (webrtcvad-wheels 2.0.14):

- **Aggressiveness 3.** At 30 and 20 dB SNR every mode kept the silence
  around the speech clean and marked 83-92 % of speech frames voiced (mode 3:
  83-87 %, mode 2: 84-89 %). On louder noise the low modes give up: white
  noise at -30 dBFS (RMS 1000) read as 100 % speech at modes 0-1 and 56 % at
  mode 2 at 8 kHz (in runs of up to 29 frames, which no onset rejects), and
  at mode 3 only the start-up frames described below; at 10 dB SNR only
  mode 3 still found the pauses at 8 kHz.
  Speech lost at mode 3 comes back through the hangover and the trim padding.
- **Onset 120 ms** (6 frames). webrtcvad marks the first frames of every
  stream as speech until its noise model settles: on white noise of RMS 30
  to 1000 (40 seeds each) that was 4-5 frames at mode 3 and up to 17 at
  mode 2; after them, mode 3 never marked more than 4 noise frames in a row.
  At the default mode six frames reject both, while the shortest voiced run
  of espeak-ng speech was 12 frames. The segment still starts at the
  onset's first frame; only the :class:`SpeechStarted` report waits 120 ms.
- **Hangover 400 ms** (20 frames). The longest unvoiced run inside an
  espeak-ng sentence was 14 frames (280 ms, a full stop at mode 3); 400 ms
  keeps such a pause inside one segment with margin, and still ends a
  segment within half a second of the caller falling silent.
- **Trim padding 200 ms**: on five espeak-ng phrases, clean and at 20 dB
  SNR, segments started between 16 ms early and 49 ms late (soft word onsets
  read as unvoiced) and ended 4 ms early to 116 ms late (webrtcvad keeps
  flagging 5-8 frames after a sound stops), so 200 ms before the first
  segment keeps every phoneme of a voice message with margin, and after the
  last it leaves a natural tail.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import webrtcvad

from assistline.media.frame import FRAME_MS, INTERNAL_RATE, AudioFrame, Samples, samples_per_frame

#: The rates this module runs webrtcvad at: telephone band and the internal rate.
SUPPORTED_RATES = (8000, 16000)
DEFAULT_AGGRESSIVENESS = 3
DEFAULT_ONSET_MS = 120
DEFAULT_HANGOVER_MS = 400
DEFAULT_TRIM_PADDING_MS = 200


@dataclasses.dataclass(frozen=True, slots=True)
class SpeechStarted:
    """A segment opened: ``start_ms`` is the start of its first voiced frame."""

    start_ms: int


@dataclasses.dataclass(frozen=True, slots=True)
class SpeechSegment:
    """A closed segment: from the start of its first to the end of its last voiced frame."""

    start_ms: int
    end_ms: int

    @property
    def duration_ms(self) -> int:
        """How long the segment lasts."""
        return self.end_ms - self.start_ms


SpeechEvent = SpeechStarted | SpeechSegment


def _frames(name: str, ms: int) -> int:
    if ms < FRAME_MS or ms % FRAME_MS:
        raise ValueError(f"{name} must be a positive multiple of {FRAME_MS} ms, not {ms}")
    return ms // FRAME_MS


class SpeechSegmenter:
    """Onset and hangover over per-frame voiced flags; knows nothing of audio.

    Each :meth:`push` advances time by one 20 ms frame. A :class:`SpeechStarted`
    comes on the frame that completes the onset, and the matching
    :class:`SpeechSegment` on the frame that completes the hangover, or from
    :meth:`flush` at the end of the stream.
    """

    def __init__(
        self, *, onset_ms: int = DEFAULT_ONSET_MS, hangover_ms: int = DEFAULT_HANGOVER_MS
    ) -> None:
        self._onset = _frames("onset_ms", onset_ms)
        self._hangover = _frames("hangover_ms", hangover_ms)
        self._frame = 0  # index of the next frame
        self._run = 0  # consecutive voiced frames so far, while outside a segment
        self._start: int | None = None  # first frame of the open segment
        self._last_voiced = 0  # index after the open segment's last voiced frame

    @property
    def in_speech(self) -> bool:
        """Whether a segment is open."""
        return self._start is not None

    def push(self, voiced: bool) -> list[SpeechEvent]:
        """Take the flag of the next frame."""
        index = self._frame
        self._frame += 1
        if self._start is None:
            self._run = self._run + 1 if voiced else 0
            if self._run < self._onset:
                return []
            self._start = index + 1 - self._run
            self._last_voiced = index + 1
            return [SpeechStarted(self._start * FRAME_MS)]
        if voiced:
            self._last_voiced = index + 1
            return []
        if index + 1 - self._last_voiced < self._hangover:
            return []
        return self.flush()

    def flush(self) -> list[SpeechEvent]:
        """Close the open segment, as at the end of the stream."""
        start, self._start, self._run = self._start, None, 0
        if start is None:
            return []
        return [SpeechSegment(start * FRAME_MS, self._last_voiced * FRAME_MS)]


class VoiceActivityDetector:
    """Speech segments of a stream of 20 ms frames, by webrtcvad.

    Feed :class:`AudioFrame` objects (at 16 kHz) or bare 20 ms int16 arrays at
    ``rate`` to :meth:`push`; call :meth:`flush` when the stream ends.
    ``aggressiveness`` is webrtcvad's mode, 0 (keeps most speech) to 3
    (rejects most noise).
    """

    def __init__(
        self,
        rate: int = INTERNAL_RATE,
        *,
        aggressiveness: int = DEFAULT_AGGRESSIVENESS,
        onset_ms: int = DEFAULT_ONSET_MS,
        hangover_ms: int = DEFAULT_HANGOVER_MS,
    ) -> None:
        if rate not in SUPPORTED_RATES:
            raise ValueError(f"voice activity detection runs at 8000 or 16000 Hz, not {rate}")
        if aggressiveness not in range(4):
            raise ValueError(f"aggressiveness is 0-3, not {aggressiveness}")
        self.rate = rate
        self._frame_samples = samples_per_frame(rate)
        self._vad = webrtcvad.Vad(aggressiveness)
        self._segmenter = SpeechSegmenter(onset_ms=onset_ms, hangover_ms=hangover_ms)

    @property
    def in_speech(self) -> bool:
        """Whether a segment is open."""
        return self._segmenter.in_speech

    def is_voiced(self, audio: AudioFrame | Samples) -> bool:
        """Whether webrtcvad hears speech in one frame; the segmenter does not advance."""
        if isinstance(audio, AudioFrame):
            if self.rate != INTERNAL_RATE:
                raise ValueError(
                    f"an AudioFrame is at {INTERNAL_RATE} Hz; this detector runs at {self.rate} Hz"
                )
            samples = audio.samples
        else:
            samples = audio
        if samples.dtype != np.int16 or samples.shape != (self._frame_samples,):
            raise ValueError(
                f"a 20 ms frame at {self.rate} Hz is {self._frame_samples} int16 samples, not "
                f"{samples.shape} {samples.dtype}"
            )
        return bool(self._vad.is_speech(samples.astype("<i2", copy=False).tobytes(), self.rate))

    def push(self, audio: AudioFrame | Samples) -> list[SpeechEvent]:
        """Take the next 20 ms frame."""
        return self._segmenter.push(self.is_voiced(audio))

    def flush(self) -> list[SpeechEvent]:
        """Close the open segment at the end of the stream."""
        return self._segmenter.flush()


def speech_segments(
    samples: Samples,
    rate: int,
    *,
    aggressiveness: int = DEFAULT_AGGRESSIVENESS,
    onset_ms: int = DEFAULT_ONSET_MS,
    hangover_ms: int = DEFAULT_HANGOVER_MS,
) -> list[SpeechSegment]:
    """The speech segments of a whole recording (int16 mono at ``rate``).

    A last partial frame is padded with silence.
    """
    if samples.dtype != np.int16 or samples.ndim != 1:
        raise ValueError(f"a recording is 1-D int16 samples, not {samples.ndim}-D {samples.dtype}")
    detector = VoiceActivityDetector(
        rate, aggressiveness=aggressiveness, onset_ms=onset_ms, hangover_ms=hangover_ms
    )
    size = samples_per_frame(rate)
    padded = np.zeros(-(-len(samples) // size) * size, dtype=np.int16)
    padded[: len(samples)] = samples
    events: list[SpeechEvent] = []
    for frame in padded.reshape(-1, size):
        events += detector.push(frame)
    events += detector.flush()
    return [event for event in events if isinstance(event, SpeechSegment)]


def trim_to_speech(
    samples: Samples,
    rate: int,
    *,
    padding_ms: int = DEFAULT_TRIM_PADDING_MS,
    aggressiveness: int = DEFAULT_AGGRESSIVENESS,
) -> Samples:
    """The part of a recording from its first speech to its last, with padding.

    Pauses between segments are kept. A recording without speech trims to
    an empty array.
    """
    if padding_ms < 0:
        raise ValueError(f"padding_ms must not be negative, not {padding_ms}")
    segments = speech_segments(samples, rate, aggressiveness=aggressiveness)
    if not segments:
        return samples[:0].copy()
    per_ms = rate // 1000
    start = max(0, (segments[0].start_ms - padding_ms) * per_ms)
    end = min(len(samples), (segments[-1].end_ms + padding_ms) * per_ms)
    return samples[start:end].copy()
