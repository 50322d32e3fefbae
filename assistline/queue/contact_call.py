"""One contact's call as the contact-call shell keeps it, and what it tells agents' consoles.

Plain data and small protocols shared by :mod:`assistline.queue.contact_calls`
and the agent console (:mod:`assistline.signalling.agent_ws`).
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Sequence
from typing import Literal, Protocol

from assistline.queue.agents import Agent
from assistline.queue.routing import Effect, Media, Offer, OfferWithdrawn
from assistline.signalling import messages

#: ``escalate_video``: the customer turned video on; a console agent adds its camera.
#: ``payment_progress`` and ``payment_result``: an assisted payment's masked progress
#: and result, in ``text`` (assistline.ivr.assisted).
AgentEventKind = Literal[
    "offered", "connected", "ended", "chat", "escalate_video", "payment_progress", "payment_result"
]
#: Which side of a contact's call: the customer's page or the agent.
Side = Literal["customer", "agent"]
#: What a chat line tells a contact with no agent connected.
CHAT_NOT_NOW = "chat opens when an agent is connected"


@dataclasses.dataclass(frozen=True, slots=True)
class AgentEvent:
    """An agent was offered ``contact``, was connected to it, or that offer or call ended.

    A ``chat`` event carries a chat line of the connected call (``text``, card
    numbers masked, never in ``repr``) and who wrote it (``sender``).
    """

    agent: str
    kind: AgentEventKind
    contact: str
    text: str = dataclasses.field(default="", repr=False)
    sender: messages.Sender | None = None


def agent_events(effects: Sequence[Effect]) -> list[AgentEvent]:
    """The agent events routing effects imply: an offer rings, a withdrawn offer ends."""
    events: list[AgentEvent] = []
    for effect in effects:
        if isinstance(effect, Offer):
            events.append(AgentEvent(effect.agent.id, "offered", effect.contact.id))
        elif isinstance(effect, OfferWithdrawn):
            events.append(AgentEvent(effect.agent.id, "ended", effect.contact.id))
    return events


class SecurePayments(Protocol):
    """Agent-assisted secure capture (assistline.ivr.assisted), as contact calls reach it."""

    async def take(self, agent_id: str, contact: str, amount_cents: object) -> None:
        """Start a secure payment on the contact's call (ContactCallError when it cannot)."""

    def digit(self, contact: str, digit: str) -> bool:
        """A key from the page: True when a capture took it."""

    def played(self, contact: str) -> None:
        """A prompt played to the customer's leg to its end."""

    def ended(self, contact: str, side: Side) -> None:
        """The customer's or the agent's leg ended."""


class Page(Protocol):
    """The contact's page, as the signalling session reaches it."""

    async def send(self, message: messages.ServerMessage) -> None:
        """Send one message; a page that has gone raises ConnectionError."""


class ContactCallError(Exception):
    """The contact's media could not be started; ``code`` is a signalling error code."""

    def __init__(self, code: messages.ErrorCode, text: str) -> None:
        super().__init__(text)
        self.code: messages.ErrorCode = code


@dataclasses.dataclass(slots=True)
class ContactCall:
    """One contact's call on this node."""

    contact: str
    media: Media
    page: Page
    worker: str
    leg: str
    connected: bool = False  # the WebRTC leg's media is up
    agent: Agent | None = None
    agent_leg: str | None = None
    agent_answered: bool = False
    timer: asyncio.TimerHandle | None = None
    ended: bool = False
