"""A payment gateway in memory that answers test card numbers as Stripe's test mode does.

For demos, flow tests and a server run without a payment provider. The
numbers in :data:`TEST_CARDS` come from Stripe's published test cards, with
the same error codes, so a flow tested here meets the same answers in the
provider's test mode: ``4242 4242 4242 4242`` is approved,
``4000 0000 0000 0002`` declined, ``…9995`` declined for insufficient funds,
``…0069`` expired, ``…0127`` a wrong security code, ``…0119`` a processing
error. Any other number is declined with ``test_mode_live_card``, as the
provider's test mode declines real cards. Expiry and security code are not
looked at: :meth:`~assistline.ivr.card.Card.checked` has checked them.

Like a real gateway it keeps every idempotency key: the same key and the
same charge answer the first answer again and never charge twice (a
concurrent second request waits out its latency and gets the same answer);
the same key with a different charge raises
:class:`~assistline.ivr.gateway.IdempotencyKeyReused`. Every request gets a
payment id (``pi_sandbox_000001``…), declined ones too, as PaymentIntents do.
:meth:`SandboxGateway.lose_next_answers` makes the next charges happen but
their answers :attr:`~assistline.ivr.gateway.Outcome.UNKNOWN`, as when a
timeout hides an answer, so a flow's "could not confirm" path can be tested;
asking again with the same key then gives the real answer.

Latency goes through an injected ``sleep`` so tests run at full speed. The
sandbox keeps no card data: only brand and last four, in :attr:`charges`.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Awaitable, Callable, Mapping

from assistline.ivr.card import Brand
from assistline.ivr.gateway import (
    ChargeRequest,
    ChargeResult,
    IdempotencyKeyReused,
    Outcome,
    outcome_of_card_error,
)

__all__ = [
    "LIVE_CARD_IN_TEST_MODE",
    "TEST_CARDS",
    "CardBehaviour",
    "SandboxCharge",
    "SandboxGateway",
]

Sleep = Callable[[float], Awaitable[None]]


@dataclasses.dataclass(frozen=True, slots=True)
class CardBehaviour:
    """What a test number does: approve (no codes) or fail with the provider's codes."""

    code: str | None = None
    decline_code: str | None = None

    @property
    def outcome(self) -> Outcome:
        """The outcome a charge on this number has."""
        if self.code is None:
            return Outcome.APPROVED
        return outcome_of_card_error(self.code, self.decline_code)


_APPROVE = CardBehaviour()

#: Stripe's published test numbers and what a charge on each does.
TEST_CARDS: Mapping[str, CardBehaviour] = {
    "4242424242424242": _APPROVE,  # Visa
    "4000056655665556": _APPROVE,  # Visa (debit)
    "5555555555554444": _APPROVE,  # Mastercard
    "2223003122003222": _APPROVE,  # Mastercard (2-series)
    "5200828282828210": _APPROVE,  # Mastercard (debit)
    "5105105105105100": _APPROVE,  # Mastercard (prepaid)
    "378282246310005": _APPROVE,  # American Express
    "371449635398431": _APPROVE,  # American Express
    "6011111111111117": _APPROVE,  # Discover
    "6011000990139424": _APPROVE,  # Discover
    "4000000000000002": CardBehaviour("card_declined", "generic_decline"),
    "4000000000009995": CardBehaviour("card_declined", "insufficient_funds"),
    "4000000000009987": CardBehaviour("card_declined", "lost_card"),
    "4000000000009979": CardBehaviour("card_declined", "stolen_card"),
    "4000000000000069": CardBehaviour("expired_card", "expired_card"),
    "4000000000000127": CardBehaviour("incorrect_cvc", "incorrect_cvc"),
    "4000000000000119": CardBehaviour("processing_error", "processing_error"),
}

#: How the provider's test mode declines a number that is not a test card.
LIVE_CARD_IN_TEST_MODE = CardBehaviour("card_declined", "test_mode_live_card")


@dataclasses.dataclass(frozen=True, slots=True)
class SandboxCharge:
    """A charge the sandbox made: what a provider's dashboard would list (no card data)."""

    payment_id: str
    brand: Brand
    last4: str
    amount_cents: int
    currency: str
    account_id: str
    idempotency_key: str


@dataclasses.dataclass(frozen=True, slots=True)
class _Seen:
    """A key's first request (storable parts only) and the answer it got."""

    fingerprint: tuple[object, ...]
    result: ChargeResult


def _fingerprint(request: ChargeRequest) -> tuple[object, ...]:
    # Brand and last four stand for the card: the sandbox keeps no full number.
    card = request.card
    return (
        card.brand,
        card.last4,
        request.amount_cents,
        request.currency,
        request.account_id,
        request.description,
    )


class SandboxGateway:
    """A :class:`~assistline.ivr.gateway.PaymentGateway` in memory, for tests and demos."""

    def __init__(self, *, latency: float = 0.0, sleep: Sleep = asyncio.sleep) -> None:
        if latency < 0:
            raise ValueError("latency must not be negative")
        self._latency = latency
        self._sleep = sleep
        self._seen: dict[str, _Seen] = {}
        self._charges: list[SandboxCharge] = []
        self._lose_answers = 0
        #: Requests received, replays included.
        self.requests = 0

    def __repr__(self) -> str:
        return (
            f"SandboxGateway(latency={self._latency}, keys={len(self._seen)}, "
            f"charges={len(self._charges)})"
        )

    @property
    def charges(self) -> tuple[SandboxCharge, ...]:
        """The approved charges, once each however often their key was sent."""
        return tuple(self._charges)

    def lose_next_answers(self, count: int) -> None:
        """Make the next ``count`` new charges happen but answer :attr:`Outcome.UNKNOWN`."""
        if count < 0:
            raise ValueError("count must not be negative")
        self._lose_answers = count

    async def charge(self, request: ChargeRequest) -> ChargeResult:
        """Charge a test card, or answer again what its idempotency key was answered."""
        self.requests += 1
        key = request.idempotency_key
        seen = self._seen.get(key)
        if seen is not None:
            if seen.fingerprint != _fingerprint(request):
                raise IdempotencyKeyReused()
            result = seen.result
        else:
            # Decide and record before the latency: a concurrent request with the
            # same key then finds the charge made, as it would at a real gateway.
            result = self._decide(request)
            self._seen[key] = _Seen(_fingerprint(request), result)
            if self._lose_answers:
                self._lose_answers -= 1
                result = ChargeResult.for_request(request, Outcome.UNKNOWN, None)
        if self._latency:
            await self._sleep(self._latency)
        return result

    def _decide(self, request: ChargeRequest) -> ChargeResult:
        sequence = len(self._seen) + 1
        payment_id = f"pi_sandbox_{sequence:06d}"
        test_card = TEST_CARDS.get(request.card.number, LIVE_CARD_IN_TEST_MODE)
        outcome = test_card.outcome
        if outcome is not Outcome.APPROVED:
            reason = test_card.decline_code or test_card.code
            return ChargeResult.for_request(request, outcome, payment_id, decline_code=reason)
        self._charges.append(
            SandboxCharge(
                payment_id,
                request.card.brand,
                request.card.last4,
                request.amount_cents,
                request.currency,
                request.account_id,
                request.idempotency_key,
            )
        )
        return ChargeResult.for_request(
            request, outcome, payment_id, authorisation_code=f"SB{sequence:04d}"
        )
