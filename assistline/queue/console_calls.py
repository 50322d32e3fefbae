"""Contacts answered in an agent's browser console: the agent's leg is WebRTC too.

Part of :class:`~assistline.queue.contact_calls.ContactCalls`, split out
for size; it works on that object's calls and routing. When the router
offers a contact to an agent who works in the console (``works_in``
"console"), nothing rings a phone: the console shows the offer (the
``offered`` agent event with the screen pop), and the page hears
``ringing``. The console then either

- accepts, sending its own SDP offer (:meth:`ConsoleCalls.accept`): the
  control process asks the **customer's worker** for a second WebRTC leg
  (``webrtc_offer`` with role "agent"), returns its answer to the console,
  and once that leg's media is up bridges the two legs there — audio both
  ways and video when both send it — exactly as an answered phone; or
- declines (:meth:`ConsoleCalls.decline`), or lets :data:`ANSWER_TIMEOUT`
  pass: the offer counts as declined and the contact goes back to its place.

Once connected, :meth:`ConsoleCalls.hangup` ends the call from the console,
:meth:`ConsoleCalls.hold` puts the customer on hold (the hold tone; the
agent hears nothing of the customer) and back,
:meth:`ConsoleCalls.renegotiate` answers a page's or a console's new offer
on its own leg (video added mid-call), and :meth:`ConsoleCalls.escalate`
tells the other side that one side turned video on: a console agent's
console gets an ``escalate_video`` agent event, a customer's page an
``escalate_video`` message; each then adds its camera and renegotiates.
A customer whose agent is on a phone is told video is unavailable.
"""

from __future__ import annotations

import asyncio
import datetime
import logging
from typing import TYPE_CHECKING

from assistline.queue.agents import Agent
from assistline.queue.contact_call import AgentEvent, ContactCall, ContactCallError, Side
from assistline.signalling import messages
from assistline.sip import protocol
from assistline.sip.pool import WorkerCommandError, WorkerDiedError

if TYPE_CHECKING:
    from assistline.queue.contact_calls import ContactCalls

logger = logging.getLogger(__name__)

#: Seconds a console has to accept an offer, and then to bring its media up.
ANSWER_TIMEOUT = 20.0


class ConsoleCalls:
    """The console side of :class:`~assistline.queue.contact_calls.ContactCalls`."""

    def __init__(self, calls: ContactCalls) -> None:
        self._calls = calls

    def ring(self, call: ContactCall, agent: Agent) -> None:
        """Offer ``call`` to a console agent: the console shows it, the page hears ringing."""
        calls = self._calls
        call.agent = agent
        calls._tell(call, messages.State(state="ringing", agent=agent.name[:100]))
        loop = asyncio.get_running_loop()
        call.timer = loop.call_later(ANSWER_TIMEOUT, self._no_answer, call, agent)

    def _no_answer(self, call: ContactCall, agent: Agent) -> None:
        call.timer = None
        if call.agent is agent and not call.agent_answered:
            if call.agent_leg is not None:
                self._calls._hangup(call.worker, call.agent_leg, 480)  # its end declines
            else:
                self._declined(call, agent)

    def _offered(self, agent_id: str, contact: str) -> ContactCall:
        call = self._calls.calls.get(contact)
        if call is None or call.agent is None or call.agent.id != agent_id:
            raise ContactCallError("not_now", "this contact is not offered to you")
        return call

    def _declined(self, call: ContactCall, agent: Agent) -> None:
        calls = self._calls
        calls._cancel_timer(call)
        call.agent = None
        calls._notify(AgentEvent(agent.id, "ended", call.contact))
        calls._apply(calls.router.offer_declined(call.contact, agent.id, _now()))

    async def accept(self, agent_id: str, contact: str, sdp: str) -> str:
        """The console accepts with its offer: the agent leg's answer."""
        calls = self._calls
        call = self._offered(agent_id, contact)
        agent = call.agent
        assert agent is not None
        if call.agent_leg is not None:
            raise ContactCallError("not_now", "you have accepted this contact already")
        servers = calls.ice_servers_of(contact)
        worker = call.worker
        calls._placing[worker] += 1  # the new leg's events may come before its result
        try:
            result = await calls._pool.command(
                worker,
                lambda request: protocol.WebRtcOffer(request, contact, sdp, servers, role="agent"),
            )
        except (WorkerCommandError, WorkerDiedError, TimeoutError) as error:
            calls._placed(worker)
            if isinstance(error, WorkerCommandError) and error.code == 400:
                raise ContactCallError("sdp_refused", str(error)) from None
            logger.warning("contact %s: console leg of %s failed: %s", contact, agent_id, error)
            if call.agent is agent:
                self._declined(call, agent)
            raise ContactCallError("not_now", f"the media worker failed: {error}") from None
        call.agent_leg = result.leg
        calls._legs[(worker, result.leg)] = call
        calls._records.placed(worker, result.leg, f"console:{agent_id}")
        if call.ended or call.agent is not agent:
            calls._hangup(worker, result.leg, 0)
        calls._placed(worker)
        return result.sdp

    async def candidate(self, agent_id: str, contact: str, candidate: messages.Candidate) -> None:
        """Relay a candidate the console trickled to its leg."""
        call = self._offered(agent_id, contact)
        leg = call.agent_leg
        if leg is None:
            raise ContactCallError("not_now", "accept the contact before sending candidates")
        await self._calls.relay_candidate(call.worker, leg, candidate)

    def decline(self, agent_id: str, contact: str) -> None:
        """The console declines the offer (or hangs up before media is up)."""
        call = self._offered(agent_id, contact)
        agent = call.agent
        assert agent is not None
        if call.agent_leg is not None:
            self._calls._hangup(call.worker, call.agent_leg, 603)
        elif not call.agent_answered:
            self._declined(call, agent)

    def hangup(self, agent_id: str, contact: str) -> None:
        """The console ends the call (or, still offered, declines it)."""
        call = self._offered(agent_id, contact)
        if call.agent_leg is not None:
            self._calls._hangup(call.worker, call.agent_leg, 0)  # its end ends the call
        else:
            self.decline(agent_id, contact)

    async def renegotiate(self, contact: str, side: Side, sdp: str, agent_id: str = "") -> str:
        """A new offer from the page (``side`` customer) or the console: its leg's answer."""
        calls = self._calls
        call = calls.calls.get(contact) if side == "customer" else self._offered(agent_id, contact)
        leg = None if call is None else call.leg if side == "customer" else call.agent_leg
        if call is None or not leg:
            raise ContactCallError("not_now", "a new offer needs a call whose media is up")
        try:
            result = await calls._pool.command(
                call.worker, lambda request: protocol.WebRtcRenegotiate(request, leg, sdp)
            )
        except WorkerCommandError as error:
            code: messages.ErrorCode = "sdp_refused" if error.code == 400 else "not_now"
            raise ContactCallError(code, str(error)) from None
        except (WorkerDiedError, TimeoutError) as error:
            raise ContactCallError("not_now", f"the media worker failed: {error}") from None
        return result.sdp

    async def hold(self, agent_id: str, contact: str, on: bool) -> None:
        """The console agent puts the customer on hold (``on``) or takes them off it."""
        calls = self._calls
        call = self._offered(agent_id, contact)
        agent = call.agent
        if not call.agent_answered or agent is None or agent.works_in != "console":
            raise ContactCallError("not_now", "hold a call you answered in the console")
        leg = call.leg
        try:
            await calls._pool.command(
                call.worker, lambda request: protocol.HoldLeg(request, leg, on)
            )
        except (WorkerCommandError, WorkerDiedError, TimeoutError) as error:
            raise ContactCallError("not_now", f"the media worker failed: {error}") from None
        state = (
            messages.State(state="on_hold")
            if on
            else messages.State(state="connected", agent=agent.name[:100])
        )
        calls._tell(call, state)

    def escalate(self, contact: str, side: Side, agent_id: str = "") -> None:
        """One side turned video on: ask the other to add its camera too."""
        calls = self._calls
        call = calls.calls.get(contact) if side == "customer" else self._offered(agent_id, contact)
        if call is None or call.agent is None or not call.agent_answered:
            raise ContactCallError("not_now", "video can be added to a connected call")
        if call.agent.works_in != "console":
            reason = "the agent is on a phone: the call goes on as voice"
            calls._tell(call, messages.VideoUnavailable(reason=reason))
        elif side == "customer":
            calls._notify(AgentEvent(call.agent.id, "escalate_video", contact))
        else:
            calls._tell(call, messages.EscalateVideo())


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)
