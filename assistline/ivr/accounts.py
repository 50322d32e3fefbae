"""What the payment line asks the application: who the caller is, what they owe, what they may pay.

The flow's ``fetch`` steps name a request; :class:`PaymentLineApplication`
answers them from the ``account`` table (PostgreSQL) and the AR policy
(:mod:`assistline.ivr.policy`):

- ``account.verify`` (account, zip): ``verified``, ``locked``, and for a
  verified caller ``balance``, ``minimum_due`` (cents), ``due_date``. An
  unknown account and a wrong ZIP code answer the same (``verified``
  false), so the line never tells a caller which accounts exist. After
  :data:`MAX_FAILED_CHECKS` wrong answers in a row the account is locked for
  :data:`LOCK_MINUTES` (``locked`` true: the flow hands the caller to an
  agent instead of letting them guess on).
- ``ar.options`` (account): ``full`` (what pays in full today, after any
  late-fee waiver the policy grants), ``has_minimum`` and ``minimum``,
  ``other_min`` and ``other_max`` (the limits of another amount), and
  ``full_fee`` (the IVR's convenience fee on paying in full).
- ``ar.quote`` (account, amount: the cents the caller keyed in):
  ``amount_ok``, and when it is, ``amount``, ``fee`` and ``total``.
- ``receipt.request`` (account, confirmation, by: ``sms`` or ``email``):
  records the wish as an ``audit_event`` and a ``NOTIFY`` on
  :data:`RECEIPT_CHANNEL`; sending it is the business's system's job.

Account numbers and ZIP codes are not card data, but the answers are only
logged by request name and outcome.
"""

from __future__ import annotations

import datetime
import json
import logging
from collections.abc import Mapping

import asyncpg

from assistline.errors import AssistlineError
from assistline.ivr.flow import Value
from assistline.ivr.policy import (
    AccountState,
    NothingToPayError,
    PaymentOptions,
    PolicyError,
    check_amount,
    payment_options,
)
from assistline.ivr.policy_load import Channel, Policy
from assistline.store.queries import QUERIES

logger = logging.getLogger(__name__)

#: Wrong identifications in a row before an account is locked, and for how long.
MAX_FAILED_CHECKS = 3
LOCK_MINUTES = 30
#: The NOTIFY channel receipt requests go out on.
RECEIPT_CHANNEL = "assistline_receipts"


class FetchError(AssistlineError):
    """The application could not answer the flow's request; the flow takes its error path."""


def _text(args: Mapping[str, Value], name: str) -> str:
    value = args.get(name)
    if not isinstance(value, str | int) or isinstance(value, bool):
        raise FetchError(f"{name} is missing")
    return str(value)


class PaymentLineApplication:
    """Answers the payment line's ``fetch`` requests."""

    def __init__(self, pool: asyncpg.Pool, policy: Policy, channel: Channel = Channel.IVR) -> None:
        self._pool = pool
        self._policy = policy
        self._channel = channel

    async def fetch(
        self, request: str, args: Mapping[str, Value], call_id: str
    ) -> dict[str, Value]:
        """The answer to ``request``; :class:`FetchError` when there is none."""
        try:
            match request:
                case "account.verify":
                    return await self._verify(_text(args, "account"), _text(args, "zip"))
                case "ar.options":
                    return _options(await self._options(_text(args, "account")))
                case "ar.quote":
                    return await self._quote(_text(args, "account"), _text(args, "amount"))
                case "receipt.request":
                    return await self._receipt(args, call_id)
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as error:
            raise FetchError(f"{request}: the database failed ({type(error).__name__})") from None
        raise FetchError(f"no application answers {request!r}")

    async def _verify(self, number: str, postal_code: str) -> dict[str, Value]:
        row = await self._pool.fetchrow(QUERIES["account_for_check"], number)
        now = datetime.datetime.now(datetime.UTC)
        if row is not None and row["locked_until"] is not None and row["locked_until"] > now:
            return {"verified": False, "locked": True}
        if row is None or row["postal_code"] != postal_code:
            if row is not None:
                failed = await self._pool.fetchrow(
                    QUERIES["account_check_failed"],
                    number,
                    MAX_FAILED_CHECKS,
                    datetime.timedelta(minutes=LOCK_MINUTES),
                )
                assert failed is not None
                if failed["locked_until"] is not None:
                    logger.warning("account locked after %d failed checks", failed["failed_checks"])
                    return {"verified": False, "locked": True}
            return {"verified": False, "locked": False}
        await self._pool.execute(QUERIES["account_check_passed"], number)
        return {
            "verified": True,
            "locked": False,
            "balance": int(row["balance_cents"]),
            "minimum_due": int(row["minimum_due_cents"]),
            "due_date": row["due_date"],
        }

    async def _options(self, number: str) -> PaymentOptions:
        row = await self._pool.fetchrow(QUERIES["account_for_check"], number)
        if row is None:
            raise FetchError("the account is not known")
        state = AccountState(
            balance=int(row["balance_cents"]),
            minimum_due=min(int(row["minimum_due_cents"]), int(row["balance_cents"])),
            due_date=row["due_date"],
            days_past_due=int(row["days_past_due"]),
        )
        try:
            return payment_options(self._policy, state, self._channel, datetime.date.today())
        except NothingToPayError:
            raise FetchError("nothing is owed on the account") from None
        except PolicyError as error:
            raise FetchError(f"the AR policy refused the account: {error}") from None

    async def _quote(self, number: str, amount: str) -> dict[str, Value]:
        options = await self._options(number)
        if not amount.isdigit() or len(amount) > 10:
            return {"amount_ok": False}
        try:
            quote = check_amount(options, int(amount))
        except PolicyError:
            return {"amount_ok": False}
        return {
            "amount_ok": True,
            "amount": quote.amount.cents,
            "fee": quote.fee.cents,
            "total": quote.total.cents,
        }

    async def _receipt(self, args: Mapping[str, Value], call_id: str) -> dict[str, Value]:
        by = _text(args, "by")
        if by not in ("sms", "email"):
            raise FetchError("by must be sms or email")
        detail = {
            "account": _text(args, "account"),
            "confirmation": _text(args, "confirmation"),
            "by": by,
            "call": call_id,
        }
        async with self._pool.acquire() as connection, connection.transaction():
            await connection.execute(
                QUERIES["insert_audit_event"],
                "ivr",
                "receipt.requested",
                f"account:{detail['account']}",
                json.dumps(detail),
            )
            await connection.execute(
                "SELECT pg_notify($1, $2)", RECEIPT_CHANNEL, json.dumps(detail)
            )
        return {"receipt_requested": True}


def _options(options: PaymentOptions) -> dict[str, Value]:
    answer: dict[str, Value] = {
        "full": options.full.amount.cents,
        "full_fee": options.full.fee.cents,
        "has_minimum": options.minimum is not None,
        "minimum": 0 if options.minimum is None else options.minimum.amount.cents,
        "has_other": options.other is not None,
    }
    if options.other is not None:
        answer["other_min"] = options.other.lowest.cents
        answer["other_max"] = options.other.highest.cents
    return answer
