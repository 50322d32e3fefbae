"""The media worker's bridges: two legs that hear each other, and how they change.

Two SIP legs meet inside pjmedia's conference bridge (``direct``, see
:mod:`assistline.sip.conference`) unless one is recorded through Python; a
WebRTC leg meets its peer through the worker's 20 ms media task. A bridged
leg can be held (it hears the hold tone, its peer nothing of it) or put in
secure capture (its recordings paused, its keypad tones silenced toward its
peer, a direct pair moved to Python for it).

**Connected on answer** (``place_call`` with connect_to): the worker, not
the control process, answers the caller and bridges and records the pair
when the placed leg answers. Measured at 40 short calls/s with recording
(bench/sip.py's setup rate): the three round trips it replaces (answer,
bridge, record) each left the placed leg's frames in Python until the
bridge came, and a caller's hang-up moved its peer back to Python until
the control process hung it up; the media task ran through most of every
worker's second for it. The pair is arranged when the call is placed
(each leg's ``direct_peer``), so the placed leg's media waits for the
caller's instead of passing through Python, and each leg's ``ends_with``
lets the pjsua2 thread hang up the survivor at once.

:class:`WorkerBridges` is owned by :class:`~assistline.sip.worker.MediaWorker`,
whose tables come in through the constructor.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping

from assistline.media.dtmf_suppression import DtmfSuppressor
from assistline.sip import protocol
from assistline.sip.leg import SipLeg
from assistline.sip.pjthread import PjThread
from assistline.sip.worker_media import CommandError, playing
from assistline.sip.worker_pump import MediaPump
from assistline.sip.worker_recording import WorkerRecordings
from assistline.sip.worker_webrtc import WorkerWebRtc

logger = logging.getLogger(__name__)


class WorkerBridges:
    """Bridge, hold, secure capture and connect-on-answer, over the worker's tables.

    ``bridged`` (leg id -> the leg it hears) and ``direct`` (legs bridged,
    or arranged to be, inside pjmedia) are the worker's, shared with its
    media task and recordings. ``awaiting_agent`` is changed on the pjsua2
    thread only. ``media_changed`` re-decides whether the media task runs.
    """

    def __init__(
        self,
        pjt: PjThread,
        legs: Mapping[str, SipLeg],
        webrtc: WorkerWebRtc,
        pump: MediaPump,
        recordings: WorkerRecordings,
        *,
        bridged: dict[str, str],
        direct: set[str],
        echo: set[str],
        awaiting_agent: set[str],
        media_changed: Callable[[], None],
        send: Callable[[protocol.Message], None],
        finish: Callable[[Awaitable[None]], None],
        pj_call: Callable[[Callable[[], object]], Awaitable[None]],
    ) -> None:
        self.pjt = pjt
        self.legs = legs
        self.webrtc = webrtc
        self.pump = pump
        self.recordings = recordings
        self.bridged = bridged
        self.direct = direct
        self.echo = echo
        self.awaiting_agent = awaiting_agent
        self.media_changed = media_changed
        self.send = send
        self.finish = finish
        self.pj_call = pj_call
        #: Placed leg -> its caller, until connected (see SipLeg.connect_to).
        self.links: dict[str, str] = {}
        # Legs in secure capture -> recordings secure_start paused (to resume at its end).
        self._secure_paused: dict[str, list[str]] = {}

    def leg(self, leg_id: str) -> SipLeg:
        """The SIP leg ``leg_id``, or a 404."""
        leg = self.legs.get(leg_id)
        if leg is None:
            raise CommandError(404, f"no leg {leg_id}")
        return leg

    # ------------------------------------------------- connect on answer

    def adopted(self, placed: SipLeg) -> None:
        """A leg the loop now knows: one placed with connect_to waits for its answer."""
        caller = placed.connect_to
        if caller is not None:
            self.links[placed.id] = caller.id
            self.direct.update((placed.id, caller.id))

    async def connect(self, placed_id: str) -> None:
        """``placed_id`` answered: answer its caller, bridge them, record; say ``connected``."""
        caller_id = self.links.pop(placed_id, "")
        placed, caller = self.legs.get(placed_id), self.legs.get(caller_id)
        if placed is None or caller is None:
            return  # one ended meanwhile; the other is (or was) hung up with it
        path = placed.record_path

        def answer() -> bool:
            if placed.ended or caller.ended:
                return False
            placed.ends_with = caller
            caller.pj_answer(200)  # its media connects to the placed leg's in pjmedia
            return True

        try:
            if not await self.pjt.run(answer):
                return
        except Exception as error:  # noqa: BLE001 - the caller's INVITE may be gone
            logger.warning("answering %s for %s failed: %s", caller_id, placed_id, error)
            await self.pj_call(lambda: placed.pj_hangup(480))
            return
        self.bridged[placed_id], self.bridged[caller_id] = caller_id, placed_id
        recording = False
        if path:
            try:
                await self.recordings.record(caller, path, direct=True)
                recording = True
            except (CommandError, OSError) as error:
                text = error.text if isinstance(error, CommandError) else str(error)
                logger.error("leg %s is not recorded: %s", caller_id, text)
        self.send(protocol.Connected(placed_id, caller_id, recording))

    # ---------------------------------------------------------- bridges

    async def bridge(self, leg_a: str, leg_b: str) -> None:
        """Two legs hear each other: in pjmedia, unless one is recorded through Python."""
        if self.webrtc.has(leg_a, leg_b):
            await self._bridge_webrtc(leg_a, leg_b)
            return
        a, b = self.leg(leg_a), self.leg(leg_b)
        if a is b or a.id in self.bridged or b.id in self.bridged:
            raise CommandError(409, "a leg is bridged to one other leg at most")
        self.echo.difference_update((a.id, b.id))
        self.pump.playing.pop(a.id, None)
        self.pump.playing.pop(b.id, None)
        self.bridged[a.id], self.bridged[b.id] = b.id, a.id
        await self.pjt.run(lambda: self.awaiting_agent.difference_update((a.id, b.id)))
        if a.id not in self.recordings.paired and b.id not in self.recordings.paired:
            await self.pjt.run(lambda: _pj_pair(a, b))
            self.direct.update((a.id, b.id))
        self.media_changed()

    async def _bridge_webrtc(self, leg_a: str, leg_b: str) -> None:
        """A WebRTC leg and a SIP or WebRTC leg hear each other through the 20 ms media task."""
        customer_id, agent_id = (leg_a, leg_b) if leg_a in self.webrtc.legs else (leg_b, leg_a)
        if agent_id in self.webrtc.legs:  # an agent's browser console
            if customer_id == agent_id or {customer_id, agent_id} & self.bridged.keys():
                raise CommandError(409, "a leg is bridged to one other leg at most")
            self.pump.playing.pop(agent_id, None)
            self.pump.playing.pop(customer_id, None)
            self.bridged[customer_id], self.bridged[agent_id] = agent_id, customer_id
            self.webrtc.bridge_video(customer_id, agent_id)
            return
        agent = self.leg(agent_id)
        if customer_id in self.bridged or agent.id in self.bridged:
            raise CommandError(409, "a leg is bridged to one other leg at most")
        if agent.id in self.direct or agent.id in self.recordings.conference:
            raise CommandError(409, f"leg {agent.id} is bridged inside pjmedia")
        self.echo.discard(agent.id)
        self.pump.playing.pop(agent.id, None)
        self.pump.playing.pop(customer_id, None)  # the comfort tone ends when the agent is there
        self.bridged[customer_id], self.bridged[agent.id] = agent.id, customer_id
        await self.pjt.run(lambda: self.awaiting_agent.difference_update((agent_id, customer_id)))
        self.media_changed()

    async def hold(self, leg_id: str, on: bool) -> None:
        """Put a leg bridged through Python on hold (the hold tone), or take it off."""
        leg_id = (self.webrtc.legs.get(leg_id) or self.leg(leg_id)).id
        if not self.bridged.get(leg_id) or leg_id in self.direct:
            raise CommandError(409, "only a leg bridged through Python is held here")
        if on:
            self.pump.held.add(leg_id)
            self.pump.playing[leg_id] = await playing(None, "hold")
        else:
            self.pump.held.discard(leg_id)
            self.pump.playing.pop(leg_id, None)
        self.media_changed()

    def ended(self, leg_id: str) -> None:
        """``leg_id`` ended: its bridge or link is over.

        A survivor bridged (or arranged to be) in pjmedia goes back to
        Python, unless it is being hung up with it.
        """
        self.pump.secure.pop(leg_id, None)
        self.pump.held.discard(leg_id)
        self._secure_paused.pop(leg_id, None)
        other = self.bridged.pop(leg_id, None) or self.links.pop(leg_id, None)
        if other is not None:
            self.bridged.pop(other, None)
        for placed, caller in list(self.links.items()):
            if caller == leg_id:  # its placed leg is cancelled with it (ends_with)
                del self.links[placed]
                other = placed
        self.direct.discard(leg_id)
        if other is not None and other in self.direct:
            self.direct.discard(other)
            peer = self.legs.get(other)
            if peer is not None:  # a leg being hung up gets no port (leg.py)
                self.finish(self.pj_call(peer.pj_go_python))

    # --------------------------------------------------- secure capture

    async def secure_start(self, leg_id: str) -> None:
        """Card data may come: pause recordings, and suppress tones toward the peer."""
        leg_id = (self.webrtc.legs.get(leg_id) or self.leg(leg_id)).id
        if leg_id in self.pump.secure:
            return
        paused = []
        for recorded in (leg_id, self.bridged.get(leg_id)):
            if recorded is not None and self.recordings.is_recording(recorded):
                await self.recordings.pause(recorded)
                paused.append(recorded)
        self._secure_paused[leg_id] = paused
        self.pump.secure[leg_id] = DtmfSuppressor()
        peer = self.legs.get(self.bridged.get(leg_id, ""))
        if leg_id in self.direct and peer is not None:  # tones are muted in Python only
            leg = self.legs[leg_id]
            self.direct.difference_update((leg_id, peer.id))
            await self.pjt.run(lambda: _pj_unpair(leg, peer))
        self.media_changed()

    async def secure_end(self, leg_id: str) -> None:
        """The window closes: the recordings secure_start paused resume."""
        if self.pump.secure.pop(leg_id, None) is None:
            raise CommandError(404, f"leg {leg_id} is not in secure capture")
        for recorded in self._secure_paused.pop(leg_id, []):
            if self.recordings.is_recording(recorded):
                await self.recordings.resume(recorded)


def _pj_pair(a: SipLeg, b: SipLeg) -> None:
    a.pj_go_direct(b)
    b.pj_go_direct(a)


def _pj_unpair(a: SipLeg, b: SipLeg) -> None:
    a.pj_go_python()
    b.pj_go_python()
