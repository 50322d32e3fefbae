"""What a media worker does with frames in Python: paired recordings and prompts.

:class:`PairedRecording` records a leg whose frames pass through Python
(the echo extension, a leg hearing a prompt, a leg bridged through Python)
with the media core's :class:`~assistline.media.recorder.Recorder`; a leg
bridged inside pjmedia is recorded by
:class:`~assistline.sip.conference.ConferenceRecording` instead.
:func:`open_recorder` checks a ``record`` command's path and reserves it
for either kind; :func:`playing` gives a ``play`` command's frames, a tone
or a prompt file (:func:`read_wav`, :func:`prompt_frames`), to a SIP leg or a
waiting WebRTC leg alike. :class:`CommandError` is how any of them answers a
command with the protocol's ``error`` (a status code and a message).
"""

from __future__ import annotations

import asyncio
import logging
import os
import wave
from collections import deque
from collections.abc import Iterator

import numpy as np

from assistline.media.frame import FRAME_SAMPLES, INTERNAL_RATE, AudioFrame, Samples
from assistline.media.recorder import Recorder, sidecar_path
from assistline.media.resample import resample
from assistline.media.tones import CALL_PROGRESS_TONES
from assistline.sip.leg_port import RING_FRAMES

logger = logging.getLogger(__name__)

#: Seconds a recorded frame waits for its other channel before silence stands in.
PAIR_WAIT = 0.04


class CommandError(Exception):
    """A command the worker answers with ``error``: ``code`` (SIP-like) and ``text``."""

    def __init__(self, code: int, text: str) -> None:
        super().__init__(text)
        self.code = code
        self.text = text


class PairedRecording:
    """A leg's stereo recording: left what the leg sends us, right what it hears.

    Frames are queued with the time the media loop saw them. :meth:`write`
    pairs them in order, one pair per 20 ms tick; a frame whose other
    channel has had nothing for :data:`PAIR_WAIT` is written beside
    silence. The leg's own frames set the pace: what it hears is written
    alone only while it sends nothing (no media yet, or on hold), and that
    queue drops its oldest frame beyond :data:`~assistline.sip.leg_port.RING_FRAMES`,
    as the leg's outgoing ring does.
    """

    __slots__ = ("heard", "last_sent", "recorder", "sent")

    def __init__(self, recorder: Recorder) -> None:
        self.recorder = recorder
        self.sent: deque[tuple[float, AudioFrame]] = deque()
        self.heard: deque[tuple[float, AudioFrame]] = deque(maxlen=RING_FRAMES)
        self.last_sent = -PAIR_WAIT

    def write(self, now: float | None) -> None:
        """Write the pairs due at ``now`` (monotonic seconds); None writes every queued frame."""
        sent, heard, recorder = self.sent, self.heard, self.recorder
        while sent and heard:
            recorder.write(sent.popleft()[1], heard.popleft()[1])
        due = float("inf") if now is None else now - PAIR_WAIT
        while sent and sent[0][0] <= due:
            recorder.write(sent.popleft()[1], None)
        if self.last_sent <= due:
            while heard and heard[0][0] <= due:
                recorder.write(None, heard.popleft()[1])


def open_recorder(path: str, rate: int = INTERNAL_RATE) -> Recorder:
    """A new stereo :class:`Recorder` at ``path``, or a command error saying what is wrong."""
    if not os.path.isabs(path):
        raise CommandError(400, f"a recording path must be absolute, not {path!r}")
    directory = os.path.dirname(path)
    if not os.path.isdir(directory):
        raise CommandError(400, f"the recording directory {directory} does not exist")
    sidecar = sidecar_path(path)
    if str(sidecar) == os.path.normpath(path):
        raise CommandError(400, f"a recording cannot be a .json file: {path}")
    if sidecar.exists():
        raise CommandError(409, f"{sidecar} exists; a recording never overwrites a file")
    try:
        return Recorder(path, channels=2, rate=rate)
    except FileExistsError:
        raise CommandError(409, f"{path} exists; a recording never overwrites a file") from None
    except OSError as error:
        raise CommandError(400, f"cannot record to {path}: {error.strerror}") from None


def read_wav(path: str) -> Samples:
    """A mono 16-bit WAV file at 8 or 16 kHz as samples at the internal rate."""
    with wave.open(path, "rb") as wav:
        if wav.getnchannels() != 1 or wav.getsampwidth() != 2:
            raise ValueError("a prompt is a mono 16-bit PCM WAV file")
        rate = wav.getframerate()
        if rate not in (8000, 16000):
            raise ValueError(f"a prompt is recorded at 8000 or 16000 Hz, not {rate}")
        samples = np.frombuffer(wav.readframes(wav.getnframes()), dtype="<i2").astype(np.int16)
    return resample(samples, rate, INTERNAL_RATE) if rate != INTERNAL_RATE else samples


def prompt_frames(samples: Samples) -> Iterator[Samples]:
    """``samples`` in 20 ms frames, the last one padded with silence."""
    for start in range(0, len(samples), FRAME_SAMPLES):
        frame = samples[start : start + FRAME_SAMPLES]
        if len(frame) < FRAME_SAMPLES:
            frame = np.concatenate([frame, np.zeros(FRAME_SAMPLES - len(frame), np.int16)])
        yield frame


def close_recording(recording: PairedRecording, leg_id: str) -> None:
    """Write what is queued, close the file and its sidecar (complete); failures are logged."""
    try:
        recording.write(None)
    except (OSError, ValueError) as error:
        logger.error("recording of %s failed: %s", leg_id, error)
    try:
        recording.recorder.close()
    except OSError as error:
        logger.error("closing the recording of %s failed: %s", leg_id, error)


async def playing(file: str | None, tone: str | None) -> Iterator[Samples]:
    """What a ``play`` command plays: a call-progress tone, or a WAV file (read off the loop)."""
    if tone is not None:
        progress = CALL_PROGRESS_TONES.get(tone)
        if progress is None:
            raise CommandError(400, f"unknown tone; use {', '.join(CALL_PROGRESS_TONES)}")
        return iter(progress.stream(INTERNAL_RATE))
    assert file is not None  # the protocol allows exactly one of them
    try:
        samples = await asyncio.to_thread(read_wav, file)
    except (OSError, ValueError, EOFError) as error:
        raise CommandError(400, f"cannot play {file}: {error}") from None
    return prompt_frames(samples)
