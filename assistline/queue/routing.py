"""Routing contacts to agents, sans-IO: who is offered which contact, and when.

A :class:`Router` is told what happens (a contact starts waiting, an agent
changes state, an offer is declined or answered, a contact hangs up, a call
ends, time passes) and answers with effects for its shell to carry out:
:class:`Offer` (ring this agent for this contact), :class:`OfferWithdrawn`
(stop ringing), :class:`VideoUnavailable` (tell a video contact the call goes
on as voice) and :class:`QueuePositions` (push positions to waiting pages).
Times are timezone-aware datetimes passed in as arguments (events that carry
none use the latest time the router was given); the router never reads a
clock, so tests drive it with exact times. The shell calls :meth:`Router.tick`
at :meth:`Router.next_deadline` to end wrap-ups and exclusions, and stores
agents' states from :meth:`Router.agent`.

The rules:

- **Agents**: a waiting contact goes to the available agent idle longest
  (earliest ``idle_since``; equal times go to the smallest agent id). Offline,
  busy and wrap-up agents are never offered a contact. An agent holding an
  offer is busy until it answers or the offer ends.
- **Contacts**: a free agent goes to the contact waiting longest (FIFO by
  ``queued_at``, equal times in order of arrival); a contact that excludes
  every free agent lets the next contact have one. Positions are 1-based and
  pushed only for contacts whose position changed.
- **Video**: a video contact goes to the longest-idle available agent that
  takes video (console agents); only when none is free does it go to the
  longest-idle agent of all, with :class:`VideoUnavailable`. Voice contacts
  ignore where agents work.
- **Decline or no answer** (:meth:`Router.offer_declined`): the contact goes
  back to its original place in the queue (the front, usually), and that
  agent is excluded for this contact for ``exclusion`` time. The agent did no
  work, so it does not wrap up: it is available again at once, but idle from
  the moment it declined, behind colleagues who waited longer. Whether
  repeated no-answers should sign an agent out is the shell's policy.
- **Caller hangs up while ringing** (:meth:`Router.contact_left`): the offer
  is withdrawn and the agent is available again with the idle time it had.
- **An agent's state changes while it holds an offer** (to anything but
  busy): the offer is withdrawn as if declined, then the new state applies.
- **A call ends** (:meth:`Router.call_ended`): the agent wraps up for
  ``wrap_up`` time, then is available, idle from the end of its wrap-up.

Events about an offer that no longer exists (a decline racing a hang-up) are
ignored: they return no effects.
"""

from __future__ import annotations

import bisect
import dataclasses
import datetime
import enum
import itertools
from collections.abc import Mapping

#: How long an agent wraps up after a call before it is available again.
WRAP_UP_TIME = datetime.timedelta(seconds=30)
#: How long a contact is not offered again to an agent that declined it.
DECLINE_EXCLUSION = datetime.timedelta(seconds=30)

__all__ = [
    "DECLINE_EXCLUSION",
    "WRAP_UP_TIME",
    "AgentState",
    "AgentStatus",
    "Contact",
    "Effect",
    "Media",
    "Offer",
    "OfferWithdrawn",
    "QueueAgent",
    "QueuePositions",
    "Router",
    "VideoUnavailable",
    "WorksIn",
]


class AgentState(enum.StrEnum):
    """Where an agent is, as routing sees it; the values are those stored in ``agent.state``.

    :mod:`assistline.queue.agents` has the same enum; it imports asyncpg, this
    module must not.
    """

    OFFLINE = "offline"
    AVAILABLE = "available"
    BUSY = "busy"
    WRAP_UP = "wrap_up"


class Media(enum.StrEnum):
    """What a contact asked for."""

    VOICE = "voice"
    VIDEO = "video"


class WorksIn(enum.StrEnum):
    """Where an agent takes contacts: a SIP phone or the browser console (WebRTC)."""

    SIP = "sip"
    CONSOLE = "console"


@dataclasses.dataclass(frozen=True, slots=True)
class Contact:
    """A contact waiting for an agent."""

    id: str
    queued_at: datetime.datetime
    media: Media = Media.VOICE


@dataclasses.dataclass(frozen=True, slots=True)
class QueueAgent:
    """An agent as routing sees it: who, and where the agent's leg goes."""

    id: str
    works_in: WorksIn = WorksIn.SIP

    @property
    def takes_video(self) -> bool:
        """Whether the agent can take video: only in the browser console."""
        return self.works_in is WorksIn.CONSOLE


@dataclasses.dataclass(frozen=True, slots=True)
class AgentStatus:
    """An agent's routing state, for the shell to store and show."""

    agent: QueueAgent
    state: AgentState
    idle_since: datetime.datetime
    wrap_up_until: datetime.datetime | None
    offer: str | None


@dataclasses.dataclass(frozen=True, slots=True)
class Offer:
    """Ring ``agent`` for ``contact``; the contact has left the queue."""

    contact: Contact
    agent: QueueAgent


@dataclasses.dataclass(frozen=True, slots=True)
class OfferWithdrawn:
    """Stop ringing ``agent`` for ``contact``: the contact left or the agent went away."""

    contact: Contact
    agent: QueueAgent


@dataclasses.dataclass(frozen=True, slots=True)
class VideoUnavailable:
    """``contact`` asked for video but its agent has a phone: the call goes on as voice."""

    contact: Contact


@dataclasses.dataclass(frozen=True, slots=True)
class QueuePositions:
    """Queue positions (1 is next) of the waiting contacts whose position changed."""

    positions: Mapping[str, int]


Effect = Offer | OfferWithdrawn | VideoUnavailable | QueuePositions


@dataclasses.dataclass(slots=True)
class _Waiting:
    contact: Contact
    arrival: int
    excluded: dict[str, datetime.datetime] = dataclasses.field(default_factory=dict)

    @property
    def key(self) -> tuple[datetime.datetime, int]:
        return (self.contact.queued_at, self.arrival)


@dataclasses.dataclass(slots=True)
class _Agent:
    agent: QueueAgent
    state: AgentState
    idle_since: datetime.datetime
    wrap_up_until: datetime.datetime | None = None
    offer: _Waiting | None = None


def _aware(at: datetime.datetime) -> datetime.datetime:
    if at.tzinfo is None:
        raise ValueError(f"times must be timezone-aware, not {at.isoformat()}")
    return at


class Router:
    """Agents' states and waiting contacts, deciding every offer."""

    def __init__(
        self,
        *,
        wrap_up: datetime.timedelta = WRAP_UP_TIME,
        exclusion: datetime.timedelta = DECLINE_EXCLUSION,
    ) -> None:
        if wrap_up < datetime.timedelta(0) or exclusion < datetime.timedelta(0):
            raise ValueError("wrap_up and exclusion must not be negative")
        self.wrap_up = wrap_up
        self.exclusion = exclusion
        self._agents: dict[str, _Agent] = {}
        self._queue: list[_Waiting] = []
        self._offered: dict[str, _Agent] = {}
        self._shown: dict[str, int] = {}
        self._arrivals = itertools.count()
        self._now: datetime.datetime | None = None

    # ------------------------------------------------------------- views

    @property
    def queue(self) -> list[str]:
        """Ids of the waiting contacts, next first."""
        return [waiting.contact.id for waiting in self._queue]

    @property
    def offers(self) -> dict[str, str]:
        """``{agent id: contact id}`` of the offers ringing now."""
        return {slot.agent.id: w.contact.id for slot in self._agents.values() if (w := slot.offer)}

    def agent(self, agent_id: str) -> AgentStatus:
        """The routing state of one agent the router has been told about."""
        try:
            slot = self._agents[agent_id]
        except KeyError:
            raise LookupError(f"no agent {agent_id!r} is known to routing") from None
        offer = slot.offer.contact.id if slot.offer else None
        return AgentStatus(slot.agent, slot.state, slot.idle_since, slot.wrap_up_until, offer)

    def next_deadline(self) -> datetime.datetime | None:
        """When :meth:`tick` next has something to do: a wrap-up or an exclusion ending."""
        times = [s.wrap_up_until for s in self._agents.values() if s.wrap_up_until is not None]
        times += [until for waiting in self._queue for until in waiting.excluded.values()]
        return min(times, default=None)

    # ----------------------------------------------------------- events in

    def contact_waiting(self, contact: Contact) -> list[Effect]:
        """A contact starts waiting for an agent (at ``contact.queued_at``)."""
        now = self._advance(contact.queued_at)
        if any(w.contact.id == contact.id for w in self._queue) or contact.id in self._offered:
            raise ValueError(f"contact {contact.id!r} is already waiting")
        self._enqueue(_Waiting(contact, next(self._arrivals)))
        return self._dispatch(now, [])

    def agent_state(
        self, agent: QueueAgent, state: AgentState, at: datetime.datetime
    ) -> list[Effect]:
        """An agent signs in or out, or otherwise changes state (the agent's own choice)."""
        now = self._advance(at)
        slot = self._agents.get(agent.id)
        if slot is None:
            slot = self._agents[agent.id] = _Agent(agent, AgentState.OFFLINE, at)
        slot.agent = agent
        effects: list[Effect] = []
        if slot.offer is not None:
            if state is AgentState.BUSY:
                return self._dispatch(now, effects)
            waiting = self._release(slot)
            waiting.excluded[agent.id] = at + self.exclusion
            self._enqueue(waiting)
            effects.append(OfferWithdrawn(waiting.contact, agent))
        if state is AgentState.AVAILABLE and slot.state is not AgentState.AVAILABLE:
            slot.idle_since = at
        if state is AgentState.WRAP_UP:
            if slot.state is not AgentState.WRAP_UP:
                slot.wrap_up_until = at + self.wrap_up
        else:
            slot.wrap_up_until = None
        slot.state = state
        self._end_wrap_ups(now)
        return self._dispatch(now, effects)

    def offer_declined(self, contact_id: str, agent_id: str, at: datetime.datetime) -> list[Effect]:
        """The agent declined the offer, or did not answer it in time."""
        now = self._advance(at)
        slot = self._offered.get(contact_id)
        if slot is None or slot.agent.id != agent_id:
            return self._dispatch(now, [])
        waiting = self._release(slot)
        waiting.excluded[agent_id] = at + self.exclusion
        self._enqueue(waiting)
        slot.state = AgentState.AVAILABLE
        slot.idle_since = at
        return self._dispatch(now, [])

    def offer_answered(self, contact_id: str, agent_id: str) -> list[Effect]:
        """The agent answered: contact and agent are connected; the agent stays busy."""
        slot = self._offered.get(contact_id)
        if slot is not None and slot.agent.id == agent_id:
            self._release(slot)
        return []

    def contact_left(self, contact_id: str) -> list[Effect]:
        """The contact hung up while waiting or while its offer was ringing."""
        effects: list[Effect] = []
        slot = self._offered.get(contact_id)
        if slot is not None:
            waiting = self._release(slot)
            slot.state = AgentState.AVAILABLE  # with the idle time it had before the offer
            effects.append(OfferWithdrawn(waiting.contact, slot.agent))
        else:
            index = next((i for i, w in enumerate(self._queue) if w.contact.id == contact_id), None)
            if index is None:
                return []
            del self._queue[index]
        assert self._now is not None  # the contact arrived at a known time
        return self._dispatch(self._now, effects)

    def call_ended(self, agent_id: str, at: datetime.datetime) -> list[Effect]:
        """A busy agent's call ended: the agent wraps up, or is available with no wrap-up."""
        now = self._advance(at)
        slot = self._agents.get(agent_id)
        if slot is None or slot.state is not AgentState.BUSY or slot.offer is not None:
            return self._dispatch(now, [])
        slot.state = AgentState.WRAP_UP
        slot.wrap_up_until = at + self.wrap_up
        self._end_wrap_ups(now)
        return self._dispatch(now, [])

    def tick(self, now: datetime.datetime) -> list[Effect]:
        """Time passes: wrap-ups and exclusions that are over end."""
        return self._dispatch(self._advance(now), [])

    # ----------------------------------------------------------- internals

    def _advance(self, at: datetime.datetime) -> datetime.datetime:
        """Move the router's time on to ``at`` (never back) and end the wrap-ups due by then."""
        at = _aware(at)
        if self._now is None or at > self._now:
            self._now = at
        self._end_wrap_ups(self._now)
        return self._now

    def _enqueue(self, waiting: _Waiting) -> None:
        bisect.insort(self._queue, waiting, key=lambda w: w.key)

    def _release(self, slot: _Agent) -> _Waiting:
        waiting = slot.offer
        assert waiting is not None
        slot.offer = None
        del self._offered[waiting.contact.id]
        return waiting

    def _end_wrap_ups(self, now: datetime.datetime) -> None:
        for slot in self._agents.values():
            if slot.state is AgentState.WRAP_UP and slot.wrap_up_until is not None:
                if slot.wrap_up_until <= now:
                    slot.state = AgentState.AVAILABLE
                    slot.idle_since = slot.wrap_up_until
                    slot.wrap_up_until = None

    def _dispatch(self, now: datetime.datetime, effects: list[Effect]) -> list[Effect]:
        """Offer free agents to waiting contacts, oldest contact first; push positions."""
        for waiting in self._queue:
            if waiting.excluded:
                waiting.excluded = {a: t for a, t in waiting.excluded.items() if t > now}
        free = [s for s in self._agents.values() if s.state is AgentState.AVAILABLE]
        for waiting in list(self._queue):
            if not free:
                break
            candidates = [s for s in free if s.agent.id not in waiting.excluded]
            if not candidates:
                continue
            if waiting.contact.media is Media.VIDEO:
                candidates = [s for s in candidates if s.agent.takes_video] or candidates
            slot = min(candidates, key=lambda s: (s.idle_since, s.agent.id))
            free.remove(slot)
            self._queue.remove(waiting)
            slot.state = AgentState.BUSY
            slot.offer = waiting
            self._offered[waiting.contact.id] = slot
            effects.append(Offer(waiting.contact, slot.agent))
            if waiting.contact.media is Media.VIDEO and not slot.agent.takes_video:
                effects.append(VideoUnavailable(waiting.contact))
        positions = {w.contact.id: i for i, w in enumerate(self._queue, start=1)}
        changed = {c: p for c, p in positions.items() if self._shown.get(c) != p}
        self._shown = positions
        if changed:
            effects.append(QueuePositions(changed))
        return effects
