"""Agent-assisted payment: the agent hands the connected customer to secure capture.

From the console (``take_payment`` on ``/ws/agent``) an agent connected to a
contact starts :class:`~assistline.ivr.payment_desk.PaymentDesk` — the same
code path as the payment line — on the **customer's** leg. The agent stays
on the line and goes on hearing the customer, but the worker mutes the
customer's keypad tones toward the agent and pauses the recording; the
customer hears the capture's prompts instead of the agent while they play;
the page's keypad digits go to the capture and nowhere else (not to the
agent's phone as RFC 4733, as they do outside the window). The console sees
masked progress only (``•••• •••• •••• 4242, Luhn ✓, expiry ✓``) and the
result (brand, last four, amount, outcome).

The account paid is the contact's (from the business's backend); the
payment row's channel is ``agent``. Either side hanging up ends the capture
through the machine's own exit paths, so the recording resumes on each.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
import uuid
from collections.abc import Callable

import asyncpg

from assistline.ivr.payment_desk import CaptureCall, PaymentDesk
from assistline.ivr.secure_capture_messages import ProgressView
from assistline.queue.contact_call import AgentEvent, ContactCallError, Side
from assistline.queue.contact_calls import ContactCalls
from assistline.signalling import messages
from assistline.signalling.contacts import get_contact
from assistline.tasks import TaskRegistry

logger = logging.getLogger(__name__)

#: The largest amount an agent may take in one payment, in cents ($1 million).
MAX_AMOUNT = 100_000_000


@dataclasses.dataclass(eq=False)
class _Assisted:
    """The customer's leg in secure capture, as the desk sees a call."""

    id: str  # the contact
    worker: str
    leg: str
    agent: str
    prompt: str | None = None
    quiet: asyncio.Event = dataclasses.field(default_factory=asyncio.Event)


class AssistedPayments:
    """Secure payments agents take from their connected customers on this node."""

    def __init__(
        self,
        desk_for: Callable[[Callable[[CaptureCall, ProgressView], None]], PaymentDesk],
        contacts: ContactCalls,
        pool: asyncpg.Pool,
        tasks: TaskRegistry,
    ) -> None:
        self._desk = desk_for(self._progress)
        self._contacts = contacts
        self._pool = pool
        self._tasks = tasks
        self._running: dict[str, _Assisted] = {}
        contacts.payments = self

    async def take(self, agent_id: str, contact: str, amount_cents: object) -> None:
        """Start a secure payment of ``amount_cents`` on ``contact``'s call with ``agent_id``."""
        if type(amount_cents) is not int or not 0 < amount_cents <= MAX_AMOUNT:
            raise ContactCallError("bad_value", f"amount_cents must be 1..{MAX_AMOUNT}")
        call = self._contacts.calls.get(contact)
        agent = None if call is None else call.agent
        if call is None or agent is None or agent.id != agent_id or not call.agent_answered:
            raise ContactCallError("not_now", "take a payment from a customer you are connected to")
        if contact in self._running:
            raise ContactCallError("not_now", "a secure payment is already running on this call")
        row = await get_contact(self._pool, uuid.UUID(contact))
        account = "" if row is None else str(row["account"])
        assisted = _Assisted(contact, call.worker, call.leg, agent_id)
        assisted.quiet.set()
        self._running[contact] = assisted
        self._contacts.tell(contact, messages.Secure(state="on"))
        logger.info("agent %s takes a secure payment on contact %s", agent_id, contact)
        _ = self._tasks.spawn(
            f"assisted payment {contact}", self._run(assisted, amount_cents, account)
        )

    async def _run(self, assisted: _Assisted, amount: int, account: str) -> None:
        try:
            done = await self._desk.pay(assisted, amount, {"account": account})
        finally:
            self._running.pop(assisted.id, None)
            self._contacts.tell(assisted.id, messages.Secure(state="off"))
        result: dict[str, object] = {"outcome": done.outcome, "amount_cents": amount}
        result |= {k: v for k, v in done.fields.items() if k in ("brand", "last4", "confirmation")}
        self._contacts.notify(
            AgentEvent(assisted.agent, "payment_result", assisted.id, json.dumps(result))
        )

    def _progress(self, call: CaptureCall, view: ProgressView) -> None:
        assisted = self._running.get(call.id)
        if assisted is not None:
            event = AgentEvent(assisted.agent, "payment_progress", call.id, view.text)
            self._contacts.notify(event)

    # ------------------------------------------------- hooks of ContactCalls

    def digit(self, contact: str, digit: str) -> bool:
        """A key from the customer's page: True when a capture took it (and nobody else may)."""
        assisted = self._running.get(contact)
        if assisted is None:
            return False
        self._desk.digit(assisted, digit)
        return True

    def played(self, contact: str) -> None:
        """A prompt on the customer's leg played to its end."""
        assisted = self._running.get(contact)
        if assisted is not None and assisted.prompt is not None:
            key, assisted.prompt = assisted.prompt, None
            assisted.quiet.set()
            self._desk.played(assisted, key)

    def ended(self, contact: str, side: Side) -> None:
        """The customer's or the agent's leg ended."""
        assisted = self._running.get(contact)
        if assisted is None:
            return
        if side == "customer":
            self._desk.caller_hung_up(assisted)
        else:
            self._desk.agent_hung_up(assisted)
