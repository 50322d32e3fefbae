"""The media worker's recordings: ``record``, ``pause_recording``, ``resume_recording``.

``record`` writes a leg to a new stereo WAV file through
:class:`~assistline.media.recorder.Recorder` (pause intervals in its JSON
sidecar): left what the leg sends us, right what it hears (its echo, its
bridged peer, a prompt). A leg bridged inside pjmedia is recorded there
(:class:`~assistline.sip.conference.ConferenceRecording`, merged into the
same stereo file and sidecar when it stops, before the leg's ``hangup``
event is sent). Otherwise the worker's 20 ms media task queues each side's
frames on a :class:`~assistline.sip.worker_media.PairedRecording` and
:meth:`WorkerRecordings.write` pairs them in order once every leg has been
served, so frames of one tick meet; a side with nothing for
:data:`~assistline.sip.worker_media.PAIR_WAIT` is written as silence. The
writes stay on the event loop because they are small: measured here, 4.5 µs
per stereo pair (flush amortised), 0.26 ms to open a recording, 0.2 ms to
close it, 0.2–0.3 ms per real pause or resume (a sidecar rewrite); a failing
disk stops that recording (logged), never the media.

:class:`WorkerRecordings` is owned by
:class:`~assistline.sip.worker.MediaWorker`, whose state comes in through
the constructor, so this module never imports the worker.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from assistline.sip import protocol
from assistline.sip.conference import ConferenceRecording
from assistline.sip.leg import SipLeg
from assistline.sip.pjthread import PjThread
from assistline.sip.worker_media import (
    CommandError,
    PairedRecording,
    close_recording,
    open_recorder,
)

logger = logging.getLogger(__name__)


class WorkerRecordings:
    """A worker's recordings by leg id, and the commands that start and pause them.

    ``legs`` and ``bridged`` are the worker's own dicts (legs it knows; leg
    id -> the leg it hears), read here, never changed. ``send`` sends an
    event to the control process, ``finish`` keeps a task until the worker
    stops, ``pj_call`` runs a media change on the pjsua2 thread and logs
    its failure (the leg may be gone meanwhile).
    """

    def __init__(
        self,
        pjt: PjThread,
        legs: dict[str, SipLeg],
        bridged: dict[str, str],
        bridge_rate: int,
        *,
        send: Callable[[protocol.Message], None],
        finish: Callable[[Awaitable[None]], None],
        pj_call: Callable[[Callable[[], object]], Awaitable[None]],
    ) -> None:
        self.pjt = pjt
        self.legs = legs
        self.bridged = bridged
        self.bridge_rate = bridge_rate
        self.send = send
        self.finish = finish
        self.pj_call = pj_call
        self.paired: dict[str, PairedRecording] = {}  # leg id -> its recording through Python
        self.conference: dict[str, ConferenceRecording] = {}  # leg id -> its recording in pjmedia

    async def record(self, leg: SipLeg, path: str, *, direct: bool) -> None:
        """Start recording ``leg`` to ``path``: in pjmedia if ``direct``, else through Python."""
        if leg.id in self.paired or leg.id in self.conference:
            raise CommandError(409, f"leg {leg.id} is already being recorded")
        if direct:
            await self._record_conference(leg, path)
        else:
            self.paired[leg.id] = PairedRecording(open_recorder(path))

    def is_recording(self, leg_id: str) -> bool:
        """Whether the leg is being recorded (through Python or in pjmedia)."""
        return leg_id in self.paired or leg_id in self.conference

    async def pause(self, leg_id: str) -> None:
        """Record silence for ``leg_id`` until :meth:`resume`."""
        if leg_id in self.conference:
            await self.pjt.run(self.conference[leg_id].pj_pause)
        else:
            self._paired(leg_id).recorder.pause()

    async def resume(self, leg_id: str) -> None:
        """Record ``leg_id``'s audio again after :meth:`pause`."""
        if leg_id in self.conference:
            await self.pjt.run(self.conference[leg_id].pj_resume)
        else:
            recording = self._paired(leg_id)
            # Frames queued before the resume were heard while paused: silence.
            recording.write(None)
            recording.recorder.resume()

    def write(self, now: float) -> None:
        """Write the frames due at ``now`` (monotonic seconds); a failing recording stops."""
        for leg_id, recording in list(self.paired.items()):
            try:
                recording.write(now)
            except (OSError, ValueError) as error:
                logger.error("recording of %s failed, stopped: %s", leg_id, error)
                self.stop(leg_id)

    def stop(self, leg_id: str) -> None:
        """Close ``leg_id``'s recording through Python, if it has one."""
        recording = self.paired.pop(leg_id, None)
        if recording is not None:
            close_recording(recording, leg_id)

    def send_after(self, event: protocol.CallEnded) -> bool:
        """Close the ended leg's recording in pjmedia, then send ``event``; False if none."""
        conference = self.conference.pop(event.leg, None)
        if conference is None:
            return False
        self.finish(self._close_conference(conference, event))
        return True

    def close_all(self) -> None:
        """Close every recording, once the pjsua2 thread has stopped."""
        for leg_id in list(self.paired):
            self.stop(leg_id)
        # pjsua2 is gone, so are the writers: merge what they wrote.
        for leg_id in list(self.conference):
            self.finish(self._close_conference(self.conference.pop(leg_id), None))

    def _paired(self, leg_id: str) -> PairedRecording:
        if leg_id not in self.legs:
            raise CommandError(404, f"no leg {leg_id}")
        recording = self.paired.get(leg_id)
        if recording is None:
            raise CommandError(404, f"leg {leg_id} is not being recorded")
        return recording

    async def _record_conference(self, leg: SipLeg, path: str) -> None:
        peer = self.legs.get(self.bridged[leg.id])
        if peer is None:
            raise CommandError(409, f"leg {leg.id} has no bridged peer to record")
        conference = ConferenceRecording(open_recorder(path, self.bridge_rate), self.bridge_rate)

        def start() -> None:
            audio, peer_audio = leg.pj_audio(), peer.pj_audio()
            if audio is None or peer_audio is None:
                raise CommandError(409, f"leg {leg.id} has no audio to record yet")
            conference.pj_start(self.pjt.hold, audio, peer_audio)

        try:
            await self.pjt.run(start)
        except BaseException:
            await self.pj_call(lambda: conference.pj_stop(self.pjt.forget))
            conference.discard()
            raise
        self.conference[leg.id] = conference

    async def _close_conference(
        self, conference: ConferenceRecording, event: protocol.Event | None
    ) -> None:
        try:
            if self.pjt.running:
                await self.pj_call(lambda: conference.pj_stop(self.pjt.forget))
            await asyncio.to_thread(conference.merge)
        except (OSError, ValueError) as error:
            logger.error("recording %s failed: %s", conference.recorder.path, error)
        finally:
            if event is not None:
                self.send(event)
