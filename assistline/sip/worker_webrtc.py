"""A media worker's WebRTC legs: ``webrtc_offer`` and ``webrtc_candidate`` commands.

A contact's page reaches its media worker through the control process,
which relays the page's offer (already checked against the DTLS-SRTP-only
policy) and its trickled candidates; :class:`WorkerWebRtc` makes one
:class:`~assistline.webrtc.leg.WebRtcLeg` per offer, on the worker's event
loop (aiortc's objects belong to it), and reports ``answered`` when the
leg's media connects and ``hangup`` when it ends: status 408 when the page
stopped answering ICE consent checks, 503 when ICE or DTLS never came up,
200 when the page or the control process ended it.

A WebRTC leg's frames are at the internal rate, like a SIP leg's through
Python, so the worker's 20 ms media task moves them to and from the leg it
is bridged to: an agent's phone (a SIP leg; pjsua2 never sees the WebRTC
frames) or an agent's browser console (a second WebRTC leg, ``role``
"agent", whose video is forwarded too: :mod:`assistline.webrtc.video`). A
WebRTC leg takes no pjsua call slot, but a customer's agent leg may: a
customer's offer is refused 503 when the worker has no slot free for it.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Iterator, Sequence

from assistline.sip import protocol
from assistline.sip.worker_media import CommandError
from assistline.tasks import TaskRegistry
from assistline.webrtc.ice import set_consent_timeout
from assistline.webrtc.leg import OfferRejectedError, WebRtcLeg

logger = logging.getLogger(__name__)

#: The ``hangup`` status each way a WebRTC leg ends.
END_STATUS = {
    "consent-expired": (408, "Consent expired"),
    "ice-failed": (503, "ICE failed"),
    "dtls-failed": (503, "DTLS failed"),
    "remote-closed": (200, "Page closed"),
    "closed": (200, "Hung up"),
}


class WorkerWebRtc:
    """The worker's WebRTC legs, by leg id; events go out through ``emit``."""

    def __init__(
        self,
        numbers: Iterator[int],
        worker_id: str,
        emit: Callable[[protocol.Event], None],
        reserve_slot: Callable[[str], Awaitable[bool]],
        *,
        host_addresses: Sequence[str] = (),
        consent_timeout: float | None = None,
    ) -> None:
        self._numbers = numbers
        self._worker_id = worker_id
        self._emit = emit
        self._reserve_slot = reserve_slot
        self._host_addresses = tuple(host_addresses)
        self._tasks = TaskRegistry()
        self.legs: dict[str, WebRtcLeg] = {}
        if consent_timeout is not None:
            set_consent_timeout(consent_timeout)  # per process: aioice's constants

    async def offer(self, command: protocol.WebRtcOffer) -> tuple[str, str]:
        """A new leg answering ``command.sdp``: its id and its answer."""
        leg_id = f"{self._worker_id}-{next(self._numbers)}"
        if command.role == "customer" and not await self._reserve_slot(leg_id):
            raise CommandError(503, "worker full: no call slot for the agent leg")
        servers = [
            {"urls": url, **({"username": user, "credential": secret} if user else {})}
            for url, user, secret in command.ice_servers
        ]
        try:
            leg = WebRtcLeg(
                leg_id, self._tasks, ice_servers=servers, host_addresses=self._host_addresses
            )
        except ValueError as error:
            self._emit(protocol.CallEnded(leg_id, 400, "Bad ICE servers"))  # frees its slot
            raise CommandError(400, str(error)) from None
        leg.on_connected = lambda up: self._emit(protocol.Answered(up.id))
        leg.on_ended = self._ended
        self.legs[leg_id] = leg
        try:
            answer = await leg.accept_offer(command.sdp)
        except (OfferRejectedError, ValueError) as error:
            await leg.close()  # its hangup event frees the slot it reserved
            raise CommandError(400, f"offer refused: {error}") from None
        logger.info("WebRTC leg %s for contact %s", leg_id, command.contact)
        return leg_id, answer

    async def renegotiate(self, command: protocol.WebRtcRenegotiate) -> tuple[str, str]:
        """The leg's answer to its page's new offer."""
        leg = self.legs.get(command.leg)
        if leg is None:
            raise CommandError(404, f"no WebRTC leg {command.leg}")
        try:
            return leg.id, await leg.renegotiate(command.sdp)
        except (OfferRejectedError, ValueError) as error:
            raise CommandError(400, f"offer refused: {error}") from None

    def bridge_video(self, leg_a: str, leg_b: str) -> None:
        """Each of two WebRTC legs sends the other's page the video its own page sends."""
        a, b = self.legs[leg_a], self.legs[leg_b]
        a.video_in.target, b.video_in.target = b.video_out, a.video_out

    def has(self, *leg_ids: str) -> bool:
        """True when any of ``leg_ids`` is one of these WebRTC legs."""
        return any(leg_id in self.legs for leg_id in leg_ids)

    async def candidate(self, command: protocol.WebRtcCandidate) -> None:
        """Add a candidate the page trickled."""
        leg = self.legs.get(command.leg)
        if leg is None:
            raise CommandError(404, f"no WebRTC leg {command.leg}")
        try:
            await leg.add_candidate(command.candidate, command.sdp_mid, command.sdp_mline_index)
        except ValueError as error:
            raise CommandError(400, f"bad candidate: {error}") from None

    async def hangup(self, leg_id: str) -> None:
        """End a leg (its ``hangup`` event follows)."""
        leg = self.legs.get(leg_id)
        if leg is None:
            raise CommandError(404, f"no WebRTC leg {leg_id}")
        await leg.close()

    def _ended(self, leg: WebRtcLeg) -> None:
        self.legs.pop(leg.id, None)
        status, reason = END_STATUS[leg.reason or "closed"]
        self._emit(protocol.CallEnded(leg.id, status, reason))
        if leg.reason != "closed":  # closed: whoever closed it is awaiting close()
            _ = self._tasks.spawn(f"webrtc-{leg.id}-close", leg.close())

    async def close_all(self) -> None:
        """At shutdown: end every leg, then the legs' tasks."""
        for leg in list(self.legs.values()):
            await leg.close()
        await self._tasks.close(timeout=5.0)
