"""Charging a card: the :class:`PaymentGateway` protocol and what crosses it (sans-IO).

A payment line hands a :class:`ChargeRequest` (the :class:`~assistline.ivr.card.Card`,
the amount, an idempotency key) to whichever gateway it was configured with
and gets back a :class:`ChargeResult`. Two gateways ship:
:class:`~assistline.ivr.gateway_sandbox.SandboxGateway`, which answers the
well-known test card numbers the way Stripe's test mode does, and
:class:`~assistline.ivr.gateway_http.HttpGateway`, which speaks a
PaymentIntents API over HTTP.

**Card data.** The request is the only place beside the card itself that
holds the number, expiry and security code; its ``repr`` shows the card as
``Card(visa …4242)``. A result holds only what PCI DSS lets us keep: brand,
last four digits, amounts, the gateway's payment id, authorisation code and
decline code. Results may be stored and logged; requests may not.

**Never charge twice.** One *payment attempt* (the caller confirmed the
amount and keyed a card) gets one idempotency key, made by
:func:`new_idempotency_key` when the attempt starts; every retry of that
attempt, by the gateway adapter or later by the flow, sends the same key, and
a gateway that sees a key again answers with the first answer instead of
charging again. So an answer lost to a timeout is recovered by asking again
with the same key, never by charging with a new one. When a gateway cannot
learn the answer at all, the outcome is :attr:`Outcome.UNKNOWN`: the caller
is told the payment could not be confirmed, and the same request is sent
again later (gateways keep keys for at least 24 hours) before anyone charges
that account again. A new key is right only after a definite answer that
charged nothing (a decline, a processing error).
"""

from __future__ import annotations

import dataclasses
import enum
import re
import uuid
from typing import Protocol

from assistline.errors import AssistlineError
from assistline.ivr.card import Brand, Card
from assistline.redaction import contains_card_number

__all__ = [
    "ChargeRequest",
    "ChargeRequestError",
    "ChargeResult",
    "GatewayAuthenticationError",
    "GatewayError",
    "GatewayRequestError",
    "IdempotencyKeyReused",
    "Outcome",
    "PaymentGateway",
    "new_idempotency_key",
    "outcome_of_card_error",
]

#: Stripe's limit on an idempotency key's length; other gateways allow at least as much.
MAX_IDEMPOTENCY_KEY_LENGTH = 255

_CURRENCY = re.compile(r"[a-z]{3}")
_KEY = re.compile(r"[A-Za-z0-9_.:-]+")


class GatewayError(AssistlineError):
    """The payment gateway failed; nothing was charged. Check the gateway settings."""


class ChargeRequestError(GatewayError, ValueError):
    """The charge request is invalid; fix the named field (nothing was sent)."""


class GatewayAuthenticationError(GatewayError):
    """The payment gateway refused the secret key; check the gateway's secret key setting."""


class GatewayRequestError(GatewayError, ValueError):
    """The payment gateway rejected the request as invalid and charged nothing."""

    def __init__(self, message: str | None = None, *, code: str = "", param: str = "") -> None:
        super().__init__(message)
        #: The gateway's error code (``amount_too_small``), or ``""``.
        self.code = code
        #: The request field the gateway named (``amount``), or ``""``.
        self.param = param


class IdempotencyKeyReused(GatewayError, ValueError):
    """An idempotency key was reused for a different charge; make a new key per payment attempt."""


class Outcome(enum.StrEnum):
    """What became of a charge, as a payment flow acts on it."""

    #: The card was charged (or the amount authorised); tell the caller the confirmation.
    APPROVED = "approved"
    #: The issuer declined; nothing was charged. Offer another card.
    DECLINED = "declined"
    #: Declined for insufficient funds; nothing was charged. Offer a smaller amount or card.
    INSUFFICIENT_FUNDS = "insufficient_funds"
    #: The card has expired; nothing was charged. Ask for the expiry again or another card.
    EXPIRED_CARD = "expired_card"
    #: The security code is wrong; nothing was charged. Ask for it again.
    INCORRECT_SECURITY_CODE = "incorrect_security_code"
    #: The gateway or the network failed and said so; nothing was charged. Try again later.
    PROCESSING_ERROR = "processing_error"
    #: The answer never arrived: the card may have been charged. Do not charge again
    #: with a new key; send the same request again to learn what happened.
    UNKNOWN = "unknown"

    @property
    def charged(self) -> bool:
        """Whether money moved (``False`` for :attr:`UNKNOWN` too: nobody knows yet)."""
        return self is Outcome.APPROVED

    @property
    def final(self) -> bool:
        """Whether the gateway answered; only :attr:`UNKNOWN` is not final."""
        return self is not Outcome.UNKNOWN


# Card error codes (Stripe's, which other gateways' adapters translate into) whose
# outcome is more specific than a plain decline; a decline code wins over its code.
_OUTCOME_OF_CODE = {
    "insufficient_funds": Outcome.INSUFFICIENT_FUNDS,
    "expired_card": Outcome.EXPIRED_CARD,
    "incorrect_cvc": Outcome.INCORRECT_SECURITY_CODE,
    "invalid_cvc": Outcome.INCORRECT_SECURITY_CODE,
    "processing_error": Outcome.PROCESSING_ERROR,
}


def outcome_of_card_error(code: str | None, decline_code: str | None) -> Outcome:
    """The outcome of a card error: ``card_declined`` + ``insufficient_funds`` → insufficient funds.

    Any code not known to mean more is a plain :attr:`Outcome.DECLINED`.
    """
    for reason in (decline_code, code):
        if reason in _OUTCOME_OF_CODE:
            return _OUTCOME_OF_CODE[reason]
    return Outcome.DECLINED


def new_idempotency_key() -> str:
    """A fresh key for one payment attempt: random, so two attempts never share one."""
    return f"assistline-{uuid.uuid4().hex}"


@dataclasses.dataclass(frozen=True, slots=True, repr=False)
class ChargeRequest:
    """One charge to make: card data inside, so it never leaves memory (repr is masked).

    ``amount_cents`` is in the currency's minor unit (cents for ``usd``);
    ``currency`` is an ISO 4217 code in lower case. ``account_id`` and
    ``description`` go to the gateway and onto the customer's statement
    history, so they are checked to hold no card number.
    """

    card: Card
    amount_cents: int
    currency: str
    idempotency_key: str
    account_id: str
    description: str

    def __post_init__(self) -> None:
        if isinstance(self.amount_cents, bool) or self.amount_cents <= 0:
            raise ChargeRequestError("amount_cents must be a positive number of minor units")
        if not _CURRENCY.fullmatch(self.currency):
            raise ChargeRequestError("currency must be three lower-case letters (ISO 4217)")
        if len(self.idempotency_key) > MAX_IDEMPOTENCY_KEY_LENGTH or not _KEY.fullmatch(
            self.idempotency_key
        ):
            raise ChargeRequestError(
                "idempotency_key must be 1 to 255 letters, digits or _.:- characters"
            )
        if not self.account_id:
            raise ChargeRequestError("account_id must not be empty")
        for name in ("account_id", "description"):
            if contains_card_number(getattr(self, name)):
                raise ChargeRequestError(f"{name} must not contain a card number")

    def __repr__(self) -> str:
        return (
            f"ChargeRequest(card={self.card!r}, amount_cents={self.amount_cents}, "
            f"currency={self.currency!r}, idempotency_key={self.idempotency_key!r}, "
            f"account_id={self.account_id!r}, description={self.description!r})"
        )

    __str__ = __repr__


@dataclasses.dataclass(frozen=True, slots=True)
class ChargeResult:
    """What a gateway answered: only what may be stored, logged and shown to an agent."""

    outcome: Outcome
    #: The gateway's id of the payment (``pi_…``); ``None`` when it never answered.
    payment_id: str | None
    brand: Brand
    last4: str
    amount_cents: int
    currency: str
    idempotency_key: str
    #: The issuer's authorisation code, when approved and the gateway reports one.
    authorisation_code: str | None = None
    #: The gateway's most specific reason (``insufficient_funds``, ``generic_decline``).
    decline_code: str | None = None
    #: HTTP requests made for this answer (1 for a gateway that is not remote).
    attempts: int = 1

    @classmethod
    def for_request(
        cls,
        request: ChargeRequest,
        outcome: Outcome,
        payment_id: str | None,
        *,
        authorisation_code: str | None = None,
        decline_code: str | None = None,
        attempts: int = 1,
    ) -> ChargeResult:
        """A result carrying the request's storable parts: brand, last four, amount, key."""
        return cls(
            outcome=outcome,
            payment_id=payment_id,
            brand=request.card.brand,
            last4=request.card.last4,
            amount_cents=request.amount_cents,
            currency=request.currency,
            idempotency_key=request.idempotency_key,
            authorisation_code=authorisation_code,
            decline_code=decline_code,
            attempts=attempts,
        )


class PaymentGateway(Protocol):
    """Charges cards. Same idempotency key, same answer: a gateway never charges twice for one key.

    :meth:`charge` returns a :class:`ChargeResult` for every answer about the
    card, :attr:`Outcome.UNKNOWN` when no answer came, and raises
    :class:`GatewayError` only when the request itself or the gateway's
    configuration is wrong (nothing was charged then).
    """

    async def charge(self, request: ChargeRequest) -> ChargeResult:
        """Charge ``request.card``, or replay the answer already given for its key."""
        ...
