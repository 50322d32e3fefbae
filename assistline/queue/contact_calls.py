"""Contacts' calls: a page's WebRTC leg, the queue, and the agent's phone it is bridged to.

The I/O shell around :class:`~assistline.queue.routing.Router` for one node.
A joined page's offer (already checked by the signalling layer) goes to the
media worker with the most room (``webrtc_offer``); its answer goes back to
the page. When the leg's media connects, the contact starts waiting: the
router offers it to the longest-idle available agent, or the page hears its
queue position. An offer is a SIP call from the **same worker** to the
agent's phone (``sip:<username>@<edge>``, with ``X-Assistline-Contact`` and
``X-Assistline-Screen-Pop``); the page is told ``ringing`` with the agent's
display name. When the agent answers, the two legs are bridged in the
worker (through Python: WebRTC frames never reach pjmedia) and the page is
told ``connected``. Then:

- the agent busy, not answering within :data:`ANSWER_TIMEOUT`, or not
  registered: a declined offer; the contact goes back to its place and the
  next agent is tried (not the same one for the router's exclusion time);
- the page hanging up, closing, or its leg failing ICE consent: the agent's
  leg is hung up and the agent wraps up; the agent hanging up: the page is
  told ``ended`` (``agent_hangup``) and its leg is closed;
- a video contact given an agent on a phone is told video is unavailable
  and the call goes on as voice.

Agents' states live in the router (this node) and are written back to the
agent table; agents who are ``available`` there when the server starts are
offered contacts. Several nodes sharing one queue need the claims of
``store/routing.sql``; they are not wired yet.

Events of a placed agent leg can reach the control process before the
``result`` naming the leg: while a placement is in flight on a worker, its
unknown legs' events are held and replayed once the leg is known, or passed
on to the next handler (:class:`~assistline.sip.service.CallRouter`'s
chain) when nobody claims them.

:attr:`ContactCalls.watchers` (the agent console) are told, as
:class:`AgentEvent`, when an agent is offered a contact, is connected to it,
and when that offer or call ends; they are called synchronously and must
not block. While a contact is connected to its agent, chat lines go both
ways (:meth:`ContactCalls.chat` from the page, :meth:`ContactCalls.agent_chat`
from the console): card numbers masked first, each line shown to both sides
(the page as ``chat``, the agent's consoles as a ``chat`` event), neither
stored nor logged.
"""

from __future__ import annotations

import asyncio
import collections
import dataclasses
import datetime
import logging
from collections.abc import Callable, Coroutine, Sequence
from typing import Any

from assistline.queue.agents import Agent, AgentDirectory, AgentState, WorksIn
from assistline.queue.console_calls import ConsoleCalls
from assistline.queue.contact_call import (
    CHAT_NOT_NOW,
    AgentEvent,
    ContactCall,
    ContactCallError,
    Page,
    SecurePayments,
    agent_events,
)
from assistline.queue.routing import (
    AgentState as RoutedState,
)
from assistline.queue.routing import (
    Contact,
    Effect,
    Media,
    Offer,
    OfferWithdrawn,
    QueueAgent,
    QueuePositions,
    Router,
    VideoUnavailable,
)
from assistline.queue.routing import WorksIn as RoutedWorksIn
from assistline.redaction import mask_card_numbers
from assistline.signalling import messages
from assistline.sip import protocol
from assistline.sip.pool import NoWorkerError, WorkerCommandError, WorkerDiedError, WorkerPool
from assistline.sip.records import CallRecords
from assistline.sip.routing import CONTACT_HEADER, SCREEN_POP_HEADER, agent_destination
from assistline.tasks import TaskRegistry

logger = logging.getLogger(__name__)

#: What a waiting customer hears (assistline.media.tones.CALL_PROGRESS_TONES).
COMFORT_TONE = "us-ringback"
#: Seconds an agent's phone rings before the offer counts as declined.
ANSWER_TIMEOUT = 20.0
Events = Callable[[str, protocol.Event], None]


def _queue_agent(agent: Agent) -> QueueAgent:
    return QueueAgent(agent.id, RoutedWorksIn(agent.works_in))


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


def _abandoned(call: ContactCall, agent: Agent) -> bool:
    """The contact ended, or the offer was withdrawn, while its agent was being called."""
    return call.ended or call.agent is not agent


class ContactCalls:
    """Every contact call of this node, from offer to hang-up."""

    def __init__(
        self,
        pool: WorkerPool,
        agents: AgentDirectory,
        tasks: TaskRegistry,
        records: CallRecords,
        *,
        edge: str | None,
        ice_servers: Callable[[str], Sequence[messages.IceServer]],
        console_url: Callable[[str], str],
        router: Router | None = None,
    ) -> None:
        self._pool = pool
        self._agents = agents
        self._tasks = tasks
        self._records = records
        self._edge = edge
        self._ice_servers = ice_servers
        self._console_url = console_url
        self.router = router or Router()
        self.calls: dict[str, ContactCall] = {}  # by contact id
        self._legs: dict[tuple[str, str], ContactCall] = {}  # (worker, leg) -> call
        self._directory: dict[str, Agent] = {}
        self._placing: collections.Counter[str] = collections.Counter()
        self._held: dict[tuple[str, str], list[protocol.Event]] = collections.defaultdict(list)
        self._tick: asyncio.TimerHandle | None = None
        #: The rest of the event chain, for held events nobody here claimed.
        self.pass_on: Events = lambda worker, event: None
        #: Told of every :class:`AgentEvent` (the agent console).
        self.watchers: list[Callable[[AgentEvent], None]] = []
        #: Contacts answered in agents' browser consoles.
        self.console = ConsoleCalls(self)
        #: Agent-assisted secure payments, when the payment line is set up.
        self.payments: SecurePayments | None = None

    def call_of(self, agent_id: str) -> tuple[str, str] | None:
        """The contact ``agent_id`` is on here and its call state (``ringing``/``connected``)."""
        for call in self.calls.values():
            if call.agent is not None and call.agent.id == agent_id and not call.ended:
                return call.contact, "connected" if call.agent_answered else "ringing"
        return None

    async def load_agents(self) -> None:
        """Tell the router every agent and its state (at start)."""
        for agent in await self._agents.all():
            self._directory[agent.id] = agent
            state = RoutedState(agent.state.value)
            self._apply(self.router.agent_state(_queue_agent(agent), state, agent.state_since))

    async def set_agent_state(
        self, agent_id: str, state: AgentState, works_in: WorksIn | None = None
    ) -> None:
        """An agent signs in or out (console, CLI), on the phone or in the console; routed."""
        agent = await self._agents.set_state(agent_id, state, works_in)
        self._directory[agent.id] = agent
        routed = RoutedState(state.value)
        self._apply(self.router.agent_state(_queue_agent(agent), routed, agent.state_since))

    # ------------------------------------------------------------ the page

    async def start(self, contact: str, media: Media, sdp: str, page: Page) -> str:
        """A WebRTC leg for the contact's offer, in the worker with most room: its answer."""
        if contact in self.calls:
            raise ContactCallError("not_now", "this contact has a call already")
        try:
            worker = self._pool.pick()  # a slot for the agent leg (the WebRTC leg needs none)
        except NoWorkerError:
            raise ContactCallError("not_now", "every media worker is busy; try again") from None
        servers = self.ice_servers_of(contact)
        try:
            result = await self._pool.command(
                worker.id, lambda request: protocol.WebRtcOffer(request, contact, sdp, servers)
            )
        except WorkerCommandError as error:
            code: messages.ErrorCode = "sdp_refused" if error.code == 400 else "not_now"
            raise ContactCallError(code, str(error)) from None
        except (WorkerDiedError, TimeoutError) as error:
            raise ContactCallError("not_now", f"the media worker failed: {error}") from None
        call = ContactCall(contact, media, page, worker.id, result.leg)
        self.calls[contact] = call
        self._legs[(worker.id, result.leg)] = call
        self._records.observe(
            worker.id,
            protocol.IncomingCall(result.leg, f"webrtc:{contact}", f"contact:{contact}", ()),
        )
        for event in self._held.pop((worker.id, result.leg), []):
            self._handle(call, result.leg, event)
        return result.sdp

    def ice_servers_of(self, contact: str) -> protocol.IceServers:
        """The ICE servers a leg of ``contact`` may use, as the worker protocol carries them."""
        return tuple(
            (url, server.get("username", ""), server.get("credential", ""))
            for server in self._ice_servers(contact)
            for url in server["urls"]
        )

    def adopt(self, contact: str, worker: str, leg: str, page: Page) -> None:
        """Queue a caller already on a SIP leg (the payment line handing a caller over).

        The leg is up: the caller hears the comfort tone and waits like any
        contact; ``page`` hears the states (a phone caller has nobody to tell).
        """
        if contact in self.calls:
            raise ContactCallError("not_now", "this contact has a call already")
        call = ContactCall(contact, Media.VOICE, page, worker, leg, connected=True)
        self.calls[contact] = call
        self._legs[(worker, leg)] = call
        self._spawn(f"comfort {contact}", self._comfort(call))
        self._apply(self.router.contact_waiting(Contact(contact, _now(), Media.VOICE)))

    async def candidate(self, contact: str, candidate: messages.Candidate) -> None:
        """Relay a candidate the page trickled to its leg."""
        call = self.calls.get(contact)
        if call is None:
            raise ContactCallError("not_now", "send the offer before candidates")
        await self.relay_candidate(call.worker, call.leg, candidate)

    async def relay_candidate(self, worker: str, leg: str, candidate: messages.Candidate) -> None:
        """Hand a trickled candidate to a WebRTC leg (the page's or a console's)."""
        try:
            await self._pool.command(
                worker,
                lambda request: protocol.WebRtcCandidate(
                    request, leg, candidate.candidate, candidate.sdp_mid, candidate.sdp_mline_index
                ),
            )
        except WorkerCommandError as error:
            raise ContactCallError("bad_value", str(error)) from None

    async def digit(self, contact: str, digit: str) -> None:
        """A keypad digit from the page, to the agent's phone (RFC 4733 by pjsua).

        During an assisted secure payment it goes to the capture, and only there.
        """
        if self.payments is not None and self.payments.digit(contact, digit):
            return
        call = self.calls.get(contact)
        if call is None or call.agent_leg is None or not call.agent_answered:
            raise ContactCallError("not_now", "keypad digits need a connected call")
        if call.agent is not None and call.agent.works_in == "console":
            raise ContactCallError("not_now", "keypad digits reach agents on phones only")
        agent_leg = call.agent_leg
        try:
            await self._pool.command(
                call.worker, lambda request: protocol.SendDtmf(request, agent_leg, digit)
            )
        except (WorkerCommandError, WorkerDiedError, TimeoutError) as error:
            raise ContactCallError("not_now", f"the digit was not sent: {error}") from None

    def chat(self, contact: str, text: str) -> None:
        """A chat line from the page: masked, echoed to it and told to its agent's consoles."""
        call = self.calls.get(contact)
        if call is None or call.agent is None or not call.agent_answered:
            raise ContactCallError("not_now", CHAT_NOT_NOW)
        self._chat(call, call.agent.id, text, "customer")

    def agent_chat(self, agent_id: str, contact: str, text: str) -> None:
        """A chat line from the agent's console to its connected contact's page (and echoed)."""
        call = self.calls.get(contact)
        agent = call.agent if call is not None else None
        if call is None or agent is None or agent.id != agent_id or not call.agent_answered:
            raise ContactCallError("not_now", "chat opens when you are connected to the customer")
        self._chat(call, agent_id, text, "agent")

    def _chat(self, call: ContactCall, agent_id: str, text: str, sender: messages.Sender) -> None:
        """Card numbers never reach the agent, the page or a log; chat is not stored."""
        masked = mask_card_numbers(text)
        self._tell(call, messages.ChatLine(text=masked, sender=sender))
        self._notify(AgentEvent(agent_id, "chat", call.contact, masked, sender))

    def page_left(self, contact: str) -> None:
        """The page hung up or closed: end the contact's legs."""
        call = self.calls.get(contact)
        if call is not None:
            self._end(call, reason=None)

    # ---------------------------------------------------------- the workers

    def observe(self, worker: str, event: protocol.Event) -> bool:
        """Handle ``event`` if it is about a leg here (or held for one); False otherwise."""
        leg = getattr(event, "leg", None)
        if leg is None:
            return False
        call = self._legs.get((worker, leg))
        if call is not None:
            self._records.observe(worker, event)
            self._handle(call, leg, event)
            return True
        if self._placing[worker] and not isinstance(event, protocol.IncomingCall):
            self._held[(worker, leg)].append(event)
            return True
        return False

    def _handle(self, call: ContactCall, leg: str, event: protocol.Event) -> None:
        if leg == call.leg:
            if isinstance(event, protocol.Answered) and not call.connected:
                call.connected = True
                # The customer hears a ringback-like comfort tone until an agent is
                # bridged (the worker stops it then), queued or ringing alike.
                self._spawn(f"comfort {call.contact}", self._comfort(call))
                contact = Contact(call.contact, _now(), call.media)
                self._apply(self.router.contact_waiting(contact))
            elif isinstance(event, protocol.Played) and self.payments is not None:
                self.payments.played(call.contact)
            elif isinstance(event, protocol.CallEnded):
                self._legs.pop((call.worker, leg), None)
                call.leg = ""
                if self.payments is not None:
                    self.payments.ended(call.contact, "customer")
                reason = "media_failed" if event.status == 408 else None
                self._end(call, reason=reason)
            return
        if isinstance(event, protocol.Ringing):
            return
        if isinstance(event, protocol.Hold | protocol.Unhold) and call.agent_answered:
            # The agent's phone put the call on hold (or took it off): the page says so.
            if isinstance(event, protocol.Hold):
                self._tell(call, messages.State(state="on_hold"))
            else:
                name = call.agent.name[:100] if call.agent is not None else "agent"
                self._tell(call, messages.State(state="connected", agent=name))
            return
        if isinstance(event, protocol.Answered) and call.agent is not None:
            self._cancel_timer(call)
            call.agent_answered = True
            self._apply(self.router.offer_answered(call.contact, call.agent.id))
            self._spawn(f"bridge {call.contact}", self._bridge(call))
        elif isinstance(event, protocol.CallEnded):
            self._legs.pop((call.worker, leg), None)
            self._cancel_timer(call)
            if self.payments is not None:
                self.payments.ended(call.contact, "agent")
            agent, answered = call.agent, call.agent_answered
            call.agent, call.agent_leg, call.agent_answered = None, None, False
            if agent is None or call.ended:
                return
            self._notify(AgentEvent(agent.id, "ended", call.contact))
            if answered:
                self._apply(self.router.call_ended(agent.id, _now()))
                self._end(call, reason="agent_hangup")
            else:
                status = event.status
                logger.info("contact %s: agent %s declined (%d)", call.contact, agent.id, status)
                self._apply(self.router.offer_declined(call.contact, agent.id, _now()))

    # ------------------------------------------------------------- effects

    def _apply(self, effects: list[Effect]) -> None:
        for event in agent_events(effects):
            self._notify(event)
        for effect in effects:
            match effect:
                case Offer(contact=contact, agent=agent):
                    call = self.calls.get(contact.id)
                    if call is not None:
                        self._spawn(f"ring {agent.id}", self._ring(call, agent.id))
                case OfferWithdrawn(contact=contact):
                    call = self.calls.get(contact.id)
                    if call is not None:
                        call.agent = None  # the router has let the agent go already
                        if call.agent_leg is not None:
                            self._hangup(call.worker, call.agent_leg, 487)
                case VideoUnavailable(contact=contact):
                    call = self.calls.get(contact.id)
                    if call is not None:
                        reason = "the agent is on a phone: the call goes on as voice"
                        self._tell(call, messages.VideoUnavailable(reason=reason))
                case QueuePositions(positions=positions):
                    for contact_id, position in positions.items():
                        call = self.calls.get(contact_id)
                        if call is not None:
                            self._tell(call, messages.State(state="queued", position=position))
        self._store_states()
        self._schedule_tick()

    def _schedule_tick(self) -> None:
        """Wake the router when its next wrap-up or exclusion ends."""
        if self._tick is not None:
            self._tick.cancel()
            self._tick = None
        deadline = self.router.next_deadline()
        if deadline is not None:
            delay = max(0.0, (deadline - _now()).total_seconds())
            loop = asyncio.get_running_loop()
            self._tick = loop.call_later(delay, lambda: self._apply(self.router.tick(_now())))

    async def _ring(self, call: ContactCall, agent_id: str) -> None:
        agent = self._directory.get(agent_id)
        if agent is not None and agent.works_in == "console" and not call.ended:
            self.console.ring(call, agent)
            return
        if agent is None or self._edge is None or call.ended:
            if not call.ended:
                self._notify(AgentEvent(agent_id, "ended", call.contact))
            self._apply(self.router.offer_declined(call.contact, agent_id, _now()))
            return
        call.agent = agent
        self._tell(call, messages.State(state="ringing", agent=agent.name[:100]))
        destination = agent_destination(agent.sip_username, self._edge)
        headers = (
            (CONTACT_HEADER, call.contact),
            (SCREEN_POP_HEADER, self._console_url(call.contact)),
        )
        identity = f"sip:contact-{call.contact}@{self._edge}"
        worker = call.worker
        self._placing[worker] += 1
        try:
            result = await self._pool.command(
                worker, lambda request: protocol.PlaceCall(request, destination, identity, headers)
            )
        except (WorkerCommandError, WorkerDiedError, TimeoutError) as error:
            logger.warning("contact %s: calling agent %s failed: %s", call.contact, agent_id, error)
            if not _abandoned(call, agent):
                self._notify(AgentEvent(agent_id, "ended", call.contact))
            call.agent = None
            self._placed(worker)
            self._apply(self.router.offer_declined(call.contact, agent_id, _now()))
            return
        call.agent_leg = result.leg
        self._legs[(worker, result.leg)] = call
        self._records.placed(worker, result.leg, destination)
        if _abandoned(call, agent):
            self._hangup(worker, result.leg, 487)
        else:
            loop = asyncio.get_running_loop()
            call.timer = loop.call_later(ANSWER_TIMEOUT, self._no_answer, call, result.leg)
        self._placed(worker)

    def _placed(self, worker: str) -> None:
        """A placement on ``worker`` is over: its held events go where they belong."""
        self._placing[worker] -= 1
        if not self._placing[worker]:
            del self._placing[worker]
        for key in [key for key in self._held if key[0] == worker]:
            call = self._legs.get(key)
            if call is None and self._placing[worker]:
                continue  # another placement there may still claim it
            for event in self._held.pop(key):
                if call is not None:
                    self._records.observe(worker, event)
                    self._handle(call, key[1], event)
                else:
                    self.pass_on(worker, event)

    async def _bridge(self, call: ContactCall) -> None:
        if call.agent_leg is None or call.ended:
            return
        agent_leg, agent = call.agent_leg, call.agent
        try:
            await self._pool.command(
                call.worker, lambda request: protocol.Bridge(request, call.leg, agent_leg)
            )
        except (WorkerCommandError, WorkerDiedError, TimeoutError) as error:
            logger.error("contact %s: bridging failed: %s", call.contact, error)
            self._end(call, reason="media_failed")
            return
        if agent is not None:
            self._notify(AgentEvent(agent.id, "connected", call.contact))
        name = agent.name[:100] if agent is not None else "agent"
        self._tell(call, messages.State(state="connected", agent=name))

    async def _comfort(self, call: ContactCall) -> None:
        leg = call.leg
        try:
            await self._pool.command(
                call.worker, lambda request: protocol.Play(request, leg, tone=COMFORT_TONE)
            )
        except (WorkerCommandError, WorkerDiedError, TimeoutError) as error:
            logger.info("contact %s: no comfort tone: %s", call.contact, error)

    def _no_answer(self, call: ContactCall, leg: str) -> None:
        call.timer = None
        if call.agent_leg == leg and not call.agent_answered:
            self._hangup(call.worker, leg, 480)  # its hangup event declines the offer

    def _end(self, call: ContactCall, *, reason: str | None) -> None:
        """End the contact's call: both legs, the router's view, and (with a reason) the page."""
        if call.ended:
            return
        call.ended = True
        self._cancel_timer(call)
        self.calls.pop(call.contact, None)
        if call.leg:
            self._hangup(call.worker, call.leg, 0)
        if call.agent_leg is not None:
            self._hangup(call.worker, call.agent_leg, 487 if not call.agent_answered else 0)
        if call.agent is not None and call.agent_answered:
            self._notify(AgentEvent(call.agent.id, "ended", call.contact))
            self._apply(self.router.call_ended(call.agent.id, _now()))
        else:
            self._apply(self.router.contact_left(call.contact))
        if reason is not None:
            self._tell(call, messages.State(state="ended", reason=reason))

    # ------------------------------------------------------------- helpers

    def _cancel_timer(self, call: ContactCall) -> None:
        if call.timer is not None:
            call.timer.cancel()
            call.timer = None

    def tell(self, contact: str, message: messages.ServerMessage) -> None:
        """Send the contact's page a message (nothing when the contact has no call)."""
        call = self.calls.get(contact)
        if call is not None:
            self._tell(call, message)

    def notify(self, event: AgentEvent) -> None:
        """Tell the watchers (the agent consoles) of an agent event."""
        self._notify(event)

    def _notify(self, event: AgentEvent) -> None:
        for watcher in list(self.watchers):
            try:
                watcher(event)
            except Exception:  # noqa: BLE001 - a console's failure must not end a call
                logger.exception("an agent event watcher failed on %s", event)

    def _tell(self, call: ContactCall, message: messages.ServerMessage) -> None:
        async def send() -> None:
            try:
                await call.page.send(message)
            except ConnectionError:
                pass  # the page has gone; its session ends the call

        self._spawn(f"page {call.contact}", send())

    def _hangup(self, worker: str, leg: str, cause: int) -> None:
        async def hangup() -> None:
            try:
                await self._pool.command(worker, lambda r: protocol.Hangup(r, leg, cause))
            except (WorkerCommandError, WorkerDiedError, TimeoutError) as error:
                logger.info("hanging up %s on %s: %s", leg, worker, error)

        self._spawn(f"hangup {leg}", hangup())

    def _store_states(self) -> None:
        """Write the router's view of agents' states back to the agent table."""
        for agent_id, agent in list(self._directory.items()):
            state = AgentState(self.router.agent(agent_id).state.value)
            if state != agent.state:
                self._directory[agent_id] = dataclasses.replace(agent, state=state)
                self._spawn(f"agent {agent_id} {state}", self._store_state(agent_id, state))

    async def _store_state(self, agent_id: str, state: AgentState) -> None:
        try:
            await self._agents.set_state(agent_id, state)
        except Exception as error:  # noqa: BLE001 - the router stays right; the row lags
            logger.error("storing agent %s as %s failed: %s", agent_id, state, error)

    def _spawn(self, name: str, work: Coroutine[Any, Any, None]) -> None:
        _ = self._tasks.spawn(name, work)
