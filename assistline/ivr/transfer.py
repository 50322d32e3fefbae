"""Handing a payment line caller to the agents' queue, with what the line learnt.

A flow's ``transfer`` step ends the flow; :class:`QueueTransfer` turns the
caller into a **contact** (the same record a click-for-assistance customer
gets: customer, account, balance, the step they were on, and the flow's
``context`` variables as fields), so the agent who takes the call sees the
screen pop and nobody asks twice. The caller's SIP leg joins the queue
where it is (:meth:`~assistline.queue.contact_calls.ContactCalls.adopt`):
comfort tone, then the longest-idle available agent, bridged in the same
worker; the call's recording goes on.

There is one queue today: a step's ``queue`` name is kept in the contact's
fields, and a step naming an ``agent`` is queued the same way (routing
offers it to whoever is free; a named agent is a field the agent sees).
"""

from __future__ import annotations

import datetime
import logging
from collections.abc import Mapping

import asyncpg

from assistline.ivr.flow import Value
from assistline.queue.contact_calls import ContactCalls
from assistline.signalling import messages
from assistline.signalling.contact_request import NewContact
from assistline.signalling.contacts import create_contact

logger = logging.getLogger(__name__)

#: Seconds the contact's join token lives: nobody joins a phone caller's contact.
TOKEN_TTL = 10


class _PhonePage:
    """A phone caller's "page": nobody to tell (the caller hears tones)."""

    async def send(self, message: messages.ServerMessage) -> None:
        """Nothing to send to."""


def _text(value: Value) -> str:
    return value.isoformat() if isinstance(value, datetime.date) else str(value)


class QueueTransfer:
    """Queues payment line callers for agents as contacts."""

    def __init__(self, pool: asyncpg.Pool, contacts: ContactCalls) -> None:
        self._pool = pool
        self._contacts = contacts

    async def transfer(
        self,
        call_id: str,
        worker: str,
        leg: str,
        step: str,
        target: tuple[str | None, str | None],
        context: Mapping[str, Value],
    ) -> bool:
        """Queue the caller on ``leg``; False when it cannot be done (the line says so)."""
        queue, agent = target
        fields: dict[str, str] = {name: _text(value) for name, value in context.items()}
        fields |= {"channel": "payment line", "call": call_id}
        fields |= {"queue": queue} if queue else {"agent": agent or ""}
        balance = context.get("balance")
        contact = NewContact(
            customer_id=_text(context.get("customer_id") or context.get("caller_number") or "")
            or "unknown caller",
            account=_text(context.get("account") or "") or "unknown",
            balance_cents=balance if type(balance) is int and balance >= 0 else None,
            step=f"payment line: {step}"[:200],
            fields=fields,
            media="voice",
        )
        try:
            created = await create_contact(self._pool, contact, TOKEN_TTL, actor="ivr")
            self._contacts.adopt(str(created.id), worker, leg, _PhonePage())
        except Exception as error:  # noqa: BLE001 - the caller must hear something either way
            logger.error("call %s: queueing the caller failed: %s", call_id, error)
            return False
        logger.info("call %s: caller queued as contact %s", call_id, created.id)
        return True
