"""The worker's media task: frames of legs carried through Python, every 20 ms.

Why 20 ms, one frame's time: a pass costs an event-loop turn whatever it
carries, and every leg's port holds 200 ms of frames each way, so passing
twice per frame bought nothing but wake-ups. Measured with ``bench/ivr.py``
(C leg ports, 40 payment calls in 22 workers): 74.5 % of the core at 10 ms,
47.8 % at 20 ms, prompts on time in both. What it costs: a frame bridged
through Python waits up to 20 ms more, and a digit is seen up to 20 ms
later.

Each pass takes every leg's received frames: a SIP leg's through its
in-band DTMF detector (digits go out as ``digit`` events), then to the leg
it is bridged to, or back to itself (the echo extension), and to its
recording; a WebRTC leg's to the leg it is bridged to. A playing prompt or
tone is kept :data:`PLAY_AHEAD` frames ahead of the leg's clock. Recorded
frames are queued on the leg's
:class:`~assistline.sip.worker_media.PairedRecording` and written once every
leg has been served, so frames of the same tick meet.

**Secure capture** (``secure_start``/``secure_end``): while a leg is in
:attr:`MediaPump.secure`, everything it sends passes through a
:class:`~assistline.media.dtmf_suppression.DtmfSuppressor` before it
reaches the leg it is bridged to or a recording: 40 ms later, with every
keypad tone replaced by silence. The detector still sees the raw frames, so
the control process gets the caller's in-band digits as ``digit`` events,
and only it. Keypad *events* (RFC 4733, SIP INFO) are never forwarded from
one leg to another by a worker at all: they only ever go to the control
process. When the window ends, the audio still in the delay line is
dropped (it may hold the tail of a tone). A leg in secure capture may be
played prompts while bridged (an agent-assisted payment): while one plays,
the prompt is all the leg hears; its peer's frames toward it are dropped.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterator, Mapping
from typing import Protocol

import numpy as np

from assistline.media.dtmf_suppression import DtmfSuppressor
from assistline.media.frame import FRAME_SAMPLES, AudioFrame, Samples
from assistline.sip import protocol
from assistline.sip.leg import SipLeg
from assistline.sip.worker_recording import WorkerRecordings
from assistline.webrtc.leg import WebRtcLeg

#: Seconds between passes: one frame's time (see :meth:`MediaPump.run`).
TICK = 0.02
#: Frames kept queued toward a leg while playing: 80 ms ahead of pjmedia's
#: clock, so a pass up to 60 ms late still finds a frame queued.
PLAY_AHEAD = 4

_SILENT_FRAME = np.zeros(FRAME_SAMPLES, np.int16)
_SILENT_FRAME.flags.writeable = False


class FrameSink(Protocol):
    """Where the media task writes frames: a SIP leg's port or a WebRTC leg's track."""

    id: str

    def write_frame(self, frame: AudioFrame) -> None:
        """Queue one internal-rate frame."""


class MediaPump:
    """Moves frames between legs carried through Python; shares the worker's tables."""

    def __init__(
        self,
        legs: Mapping[str, SipLeg],
        pages: Mapping[str, WebRtcLeg],
        bridged: Mapping[str, str],
        direct: set[str],
        echo: set[str],
        recordings: WorkerRecordings,
        event: Callable[[protocol.Event], None],
    ) -> None:
        self._legs = legs
        self._pages = pages
        self._bridged = bridged
        self._direct = direct
        self._echo = echo
        self._recordings = recordings
        self._event = event
        #: Leg id -> frames still to play (a prompt or a tone).
        self.playing: dict[str, Iterator[Samples]] = {}
        #: Legs in secure capture -> the suppressor their audio passes through.
        self.secure: dict[str, DtmfSuppressor] = {}
        #: Legs on hold: nothing of theirs reaches their peer (they hear the hold tone).
        self.held: set[str] = set()

    async def run(self, python_media: asyncio.Event) -> None:
        """Every :data:`TICK` while ``python_media`` is set."""
        while True:
            await python_media.wait()
            await asyncio.sleep(TICK)
            self.tick(time.monotonic())

    def tick(self, now: float) -> None:
        """One pass over every leg carried through Python."""
        recordings = self._recordings.paired
        for leg in list(self._legs.values()):
            if leg.id in self._direct:
                continue
            target: FrameSink | None = leg if leg.id in self._echo else self._peer(leg.id)
            if leg.id in self.held:
                target = None
            recording = recordings.get(leg.id)
            suppressor = self.secure.get(leg.id)
            heard = target is not None or (recording is not None and not recording.recorder.paused)
            while (frame := leg.read_frame()) is not None:
                for digit in leg.inband_digits(frame):
                    self._event(protocol.Digit(leg.id, digit, "inband"))
                if suppressor is not None:
                    frame, suppressor = self._suppressed(leg.id, suppressor, frame, heard)
                if recording is not None:
                    recording.sent.append((now, frame))
                    recording.last_sent = now
                if target is not None and target.id not in self.playing:
                    self.send(target, frame, now)
            self.play_ahead(leg, now)
        for page in list(self._pages.values()):
            heard_by = None if page.id in self.held else self._peer(page.id)
            suppressor = self.secure.get(page.id)
            heard = heard_by is not None
            while (frame := page.read_frame()) is not None:
                if suppressor is not None:
                    frame, suppressor = self._suppressed(page.id, suppressor, frame, heard)
                if heard_by is not None and heard_by.id not in self.playing:
                    self.send(heard_by, frame, now)
            self.play_ahead(page, now)
        self._recordings.write(now)

    def _suppressed(
        self, leg_id: str, suppressor: DtmfSuppressor, frame: AudioFrame, heard: bool
    ) -> tuple[AudioFrame, DtmfSuppressor]:
        """``frame`` with its keypad tones silenced, or silence if nothing hears the leg.

        A caller keying a card number to the IVR is heard by nobody (no peer,
        its recording paused), so the suppressor's work would be thrown away.
        A suppressor fed again after such a gap starts afresh, as at
        ``secure_start``, so no tone straddles audio it never saw.
        """
        if heard:
            return AudioFrame(suppressor.process(frame.samples), frame.timestamp), suppressor
        if suppressor.started:
            suppressor = self.secure[leg_id] = DtmfSuppressor()
        return AudioFrame(_SILENT_FRAME, frame.timestamp), suppressor

    def _peer(self, leg_id: str) -> FrameSink | None:
        peer = self._bridged.get(leg_id)
        if peer is None:
            return None
        return self._legs.get(peer) or self._pages.get(peer)

    def play_ahead(self, leg: SipLeg | WebRtcLeg, now: float) -> None:
        """Keep a playing prompt or tone PLAY_AHEAD frames ahead of the leg's clock."""
        source = self.playing.get(leg.id)
        while source is not None and leg.queued() < PLAY_AHEAD:
            samples = next(source, None)
            if samples is None:
                del self.playing[leg.id]
                self._event(protocol.Played(leg.id))
                break
            self.send(leg, AudioFrame(samples, 0), now)

    def send(self, leg: FrameSink, frame: AudioFrame, now: float) -> None:
        """Queue ``frame`` toward ``leg``, and on the leg's recording as heard."""
        leg.write_frame(frame)
        recording = self._recordings.paired.get(leg.id)
        if recording is not None:
            recording.heard.append((now, frame))
