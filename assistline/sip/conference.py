"""Bridged legs and their recordings inside pjmedia's conference bridge.

A worker carries a leg's audio one of two ways. Through Python (the
leg's port in the bridge, :mod:`~assistline.sip.leg_port`): the echo extension, prompts,
in-band DTMF detection and the media core's recorder need the frames. Or,
once two legs are bridged and nothing needs their frames, **directly** in
pjmedia's conference bridge: each leg's call port transmits to the other
and no frame crosses into Python. The direct path is what ``bridge`` uses;
a leg leaves it (back to a port of its own) when its peer ends.

Why direct: measured here with sipp on both sides of one worker, a bridged
G.711 call with recording cost ~4 % of a core through Python (two SWIG
director callbacks per leg per 20 ms frame, the media loop, the recorder),
which would cap a core at ~25 bridged calls; the issue's target is 100.
Direct, pjmedia's C code does the same work (figures in ``bench/sip.py``).
What the direct path gives up: in-band DTMF detection on bridged legs
(RFC 4733 and SIP INFO digits are still reported) and Python taps; secure
capture, which needs the media core's per-listener input filter, moves the
legs back to the Python path.

**Recording a bridged call** (:class:`ConferenceRecording`): two pjmedia
WAV writers in the bridge, one hearing the leg (left channel: what the leg
sends us) and one hearing its peer (right: what the leg hears), clocked by
the same conference tick so the channels stay aligned. Pause sets both
writers' level to zero (``adjustRxLevel(0)``): the bridge keeps writing,
silence, so the timeline is preserved as the media core's recorder does.
When the recording stops the two mono parts are merged into the stereo
WAV and JSON sidecar of :class:`~assistline.media.recorder.Recorder`
(created, and the path reserved, when recording starts), pause intervals
at the sample positions the pause and resume commands arrived, and the
parts deleted. The writers, and the recording, are at the bridge's rate
(``sip.bridge_rate``): a narrowband call is recorded at 8 kHz, nothing lost
from G.711, half the disk, and no resampling. Merging with a conversion to
16 kHz had cost ~110 ms of CPU per minute-long call, and 100 calls ending
within 20 s on one core made BYEs go unanswered (``bench/sip.py``: at 100
recorded calls, 95 callers timed out on their BYE; without recording all
100 completed). A worker killed mid-call leaves the reserved WAV empty,
its sidecar marked incomplete, and the two ``.part.wav`` files beside it.
"""

from __future__ import annotations

import contextlib
import os
import time
import wave
import weakref
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pjsua2 as pj

from assistline.media.frame import INTERNAL_RATE
from assistline.media.recorder import Recorder
from assistline.media.resample import resample

#: Bytes of the header pjmedia's WAV writer puts before the samples.
PJMEDIA_WAV_HEADER = 44


def part_paths(path: Path) -> tuple[Path, Path]:
    """The mono parts of the recording at ``path``: what the leg sends, what it hears."""
    # pjsua's recorder picks its format by the extension: it must end in .wav.
    return (
        path.with_name(path.stem + ".sent.part.wav"),
        path.with_name(path.stem + ".heard.part.wav"),
    )


class ConferenceRecording:
    """A bridged leg's stereo recording made by pjmedia's WAV writers.

    Created with the :class:`Recorder` that reserved the path; ``pj_*``
    methods run on the pjsua2 thread, :meth:`merge` in a worker thread.
    """

    def __init__(self, recorder: Recorder, bridge_rate: int = INTERNAL_RATE) -> None:
        self.recorder = recorder
        #: The rate pjmedia's writers record at (the bridge's); merged at the recorder's.
        self.bridge_rate = bridge_rate
        self.sent_part, self.heard_part = part_paths(recorder.path)
        # Weak: the PjThread's registry is the only owner of pjsua2 objects, so
        # none outlives its shutdown (deleted after libDestroy, pjlib aborts).
        self._writers: list[weakref.ref[Any]] = []
        self._started = 0.0
        #: [start, end) sample positions of pauses; the last end is None while paused.
        self.pauses: list[list[int | None]] = []

    @property
    def paused(self) -> bool:
        """True between a pause and the next resume."""
        return bool(self.pauses) and self.pauses[-1][1] is None

    def pj_start(self, hold: Any, leg_audio: Any, peer_audio: Any) -> None:
        """Create both writers and connect them (pjsua2 thread); ``hold`` keeps them alive."""
        for part, source in ((self.sent_part, leg_audio), (self.heard_part, peer_audio)):
            if part.exists():
                raise FileExistsError(f"{part} exists; a recording never overwrites a file")
            writer = hold(pj.AudioMediaRecorder())
            writer.createRecorder(str(part))
            self._writers.append(weakref.ref(writer))
            source.startTransmit(writer)
        self._started = time.monotonic()

    def pj_stop(self, forget: Callable[[Any], None]) -> None:
        """Delete both writers now (pjsua2 thread, in a job): their files are complete."""
        for writer in self._live_writers():
            forget(writer)
        self._writers.clear()

    def discard(self) -> None:
        """The recording could not start: remove its reserved file, sidecar and parts."""
        self.recorder.close()
        for path in (self.recorder.path, self.recorder.metadata_path, *self._parts()):
            path.unlink(missing_ok=True)

    def _live_writers(self) -> list[Any]:
        return [writer for ref in self._writers if (writer := ref()) is not None]

    def _parts(self) -> tuple[Path, Path]:
        return self.sent_part, self.heard_part

    def _position(self) -> int:
        tick = self.recorder.rate // 50
        frames = round((time.monotonic() - self._started) * 50)
        return frames * tick

    def pj_pause(self) -> None:
        """Silence both channels from now on (idempotent)."""
        if self.paused:
            return
        for writer in self._live_writers():
            writer.adjustRxLevel(0.0)
        self.pauses.append([self._position(), None])

    def pj_resume(self) -> None:
        """Record audio again (idempotent)."""
        if not self.paused:
            return
        for writer in self._live_writers():
            writer.adjustRxLevel(1.0)
        self.pauses[-1][1] = self._position()

    def merge(self) -> None:
        """Write the stereo WAV and sidecar from the parts, then delete them (blocking I/O)."""
        rate = self.recorder.rate
        sent = _read_part(self.sent_part, self.bridge_rate, rate)
        heard = _read_part(self.heard_part, self.bridge_rate, rate)
        tick = rate // 50
        total = -(-max(len(sent), len(heard)) // tick) * tick
        sent, heard = _padded(sent, total), _padded(heard, total)
        starts = {pause[0] for pause in self.pauses if pause[0] is not None}
        ends = {pause[1] for pause in self.pauses if pause[1] is not None}
        recorder = self.recorder
        # Pause and resume at their frames, the audio between in one write each.
        edges = sorted({0, total} | {p for p in starts | ends if 0 <= p < total})
        try:
            for start, end in zip(edges, edges[1:], strict=False):
                if start in ends:
                    recorder.resume()
                if start in starts:
                    recorder.pause()
                recorder.write_frames(sent[start:end], heard[start:end])
        finally:
            recorder.close()
        for part in self._parts():
            with contextlib.suppress(FileNotFoundError):
                os.unlink(part)


def _read_part(path: Path, rate: int, wanted: int) -> np.ndarray[Any, np.dtype[np.int16]]:
    """One of pjmedia's mono WAV parts at ``wanted`` Hz (its header may be unfinished).

    ``rate`` is what the writer was created at, the bridge's; a part at
    another rate than ``wanted`` is converted by the media core's resampler.
    """
    try:
        with wave.open(str(path), "rb") as wav:
            if wav.getnchannels() == 1 and wav.getsampwidth() == 2:
                rate = wav.getframerate()
                samples = np.frombuffer(wav.readframes(wav.getnframes()), "<i2").astype(np.int16)
                return _at_rate(samples, rate, wanted)
    except (wave.Error, EOFError):
        pass  # a writer not closed yet: its sizes are still zero
    except FileNotFoundError:
        return np.zeros(0, np.int16)
    data = path.read_bytes()[PJMEDIA_WAV_HEADER:]
    samples = np.frombuffer(data[: len(data) // 2 * 2], "<i2").astype(np.int16)
    return _at_rate(samples, rate, wanted)


def _at_rate(
    samples: np.ndarray[Any, np.dtype[np.int16]], rate: int, wanted: int
) -> np.ndarray[Any, np.dtype[np.int16]]:
    if rate == wanted or not len(samples):
        return samples
    return resample(samples, rate, wanted)


def _padded(
    samples: np.ndarray[Any, np.dtype[np.int16]], total: int
) -> np.ndarray[Any, np.dtype[np.int16]]:
    if len(samples) >= total:
        return samples[:total]
    return np.concatenate([samples, np.zeros(total - len(samples), np.int16)])
