"""A payment gateway over HTTP, shaped like Stripe's PaymentIntents API.

One charge is one ``POST {base_url}/v1/payment_intents``, form-encoded, with
``confirm=true`` (create and charge in one request), the card as
``payment_method_data[card][…]``, ``error_on_requires_action=true`` (a phone
line cannot show a 3-D Secure page, so such a payment fails rather than
waits) and ``expand[0]=latest_charge`` for the authorisation code. The
secret key goes in an ``Authorization: Bearer`` header; the request's
idempotency key in ``Idempotency-Key``. The card data is in that body and
nowhere else: never logged, never in an exception, never in a ``repr``.

**Answers.** ``200`` with ``status`` ``succeeded`` (or ``requires_capture``)
is approved; ``402`` with a ``card_error`` (or ``200`` with
``requires_payment_method`` and a ``last_payment_error``) maps its ``code`` and
``decline_code`` through :func:`~assistline.ivr.gateway.outcome_of_card_error`.
``401``/``403`` raise :class:`~assistline.ivr.gateway.GatewayAuthenticationError`,
an ``idempotency_error`` raises
:class:`~assistline.ivr.gateway.IdempotencyKeyReused`, other ``4xx`` raise
:class:`~assistline.ivr.gateway.GatewayRequestError` naming only the gateway's
code and field, never its message. None of these is retried: the same
request would get the same answer.

**Retries never charge twice.** Each attempt has its own total timeout.
Connection errors, timeouts, ``5xx``, ``409`` (the key's first request is
still running), ``429`` and an unreadable ``2xx`` body are retried after
``backoff · 2^(n-1)`` seconds (capped; ``Retry-After`` is honoured up to the
cap), always with the **same** idempotency key. A gateway that keeps keys
answers a retry with the first request's result, so a timeout after the
gateway charged comes back as that one charge, not a second. A
``Stripe-Should-Retry`` header overrides the choice either way. When the
attempts run out, the outcome is :attr:`~assistline.ivr.gateway.Outcome.UNKNOWN`
and the error is logged: the charge may have happened, and the flow must send
the same request again later before anyone charges the account with a new
key. Cancelling :meth:`HttpGateway.charge` mid-request leaves the outcome
just as unknown; a shell should let a started charge finish (shield it from a
hang-up) and record its result.

The adapter borrows an ``aiohttp.ClientSession`` its owner opens and closes
(in the app's ``cleanup_ctx``); ``sleep`` is injected so tests skip the
backoff.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import re
from collections.abc import Awaitable, Callable, Mapping
from urllib.parse import urlencode

import aiohttp
from yarl import URL

from assistline.errors import ConfigurationError
from assistline.ivr.gateway import (
    ChargeRequest,
    ChargeResult,
    GatewayAuthenticationError,
    GatewayError,
    GatewayRequestError,
    IdempotencyKeyReused,
    Outcome,
    outcome_of_card_error,
)
from assistline.redaction import contains_card_number

__all__ = ["STRIPE_VERSION", "HttpGateway"]

logger = logging.getLogger(__name__)

Sleep = Callable[[float], Awaitable[None]]

#: The API version the request and response shapes follow (``latest_charge`` needs ≥ 2022-11-15).
STRIPE_VERSION = "2024-06-20"

# Ids, codes and field names the gateway sends back; anything else is dropped
# rather than copied into a result, a log line or an exception.
_IDENTIFIER = re.compile(r"[A-Za-z0-9_.\[\]-]{1,255}")

_Answer = tuple[Outcome, str | None, str | None, str | None]
"""Outcome, payment id, authorisation code, decline code."""


def _identifier(value: object) -> str | None:
    if isinstance(value, str) and _IDENTIFIER.fullmatch(value) and not contains_card_number(value):
        return value
    return None


def _mapping(value: object) -> Mapping[str, object]:
    return value if isinstance(value, dict) else {}


def _card_error(error: Mapping[str, object], payment_id: str | None) -> _Answer:
    code = _identifier(error.get("code"))
    decline_code = _identifier(error.get("decline_code"))
    outcome = outcome_of_card_error(code, decline_code)
    return outcome, payment_id, None, decline_code or code


def _intent_answer(intent: Mapping[str, object]) -> _Answer | None:
    payment_id = _identifier(intent.get("id"))
    status = intent.get("status")
    if status in ("succeeded", "requires_capture"):
        charge = _mapping(intent.get("latest_charge"))
        return Outcome.APPROVED, payment_id, _identifier(charge.get("authorization_code")), None
    if status == "requires_payment_method":
        return _card_error(_mapping(intent.get("last_payment_error")), payment_id)
    if status == "requires_action":
        return Outcome.DECLINED, payment_id, None, "authentication_required"
    if status == "canceled":
        return Outcome.DECLINED, payment_id, None, "canceled"
    # "processing" or a shape we do not know: the charge may yet happen.
    return None


def _answer(status: int, payload: bytes) -> _Answer | None:
    """The definite answer in a response; ``None`` when it holds none (retry)."""
    try:
        document = json.loads(payload)
    except ValueError:  # UnicodeDecodeError is one too
        document = None
    body = _mapping(document)
    error = _mapping(body.get("error"))
    if 200 <= status < 300:
        return _intent_answer(body)
    if status == 402 or error.get("type") == "card_error":
        payment_id = _identifier(_mapping(error.get("payment_intent")).get("id"))
        return _card_error(error, payment_id)
    if status in (401, 403):
        raise GatewayAuthenticationError()
    if status in (409, 429) or status >= 500:
        return None
    if error.get("type") == "idempotency_error":
        raise IdempotencyKeyReused()
    if 400 <= status < 500:
        code = _identifier(error.get("code")) or ""
        param = _identifier(error.get("param")) or ""
        where = f" (field {param})" if param else ""
        raise GatewayRequestError(
            f"the payment gateway rejected the request: {code or 'no code'}{where}",
            code=code,
            param=param,
        )
    raise GatewayError(f"the payment gateway answered HTTP {status}; check its base URL")


def _seconds(value: str | None) -> float | None:
    try:
        seconds = float(value) if value is not None else math.nan
    except ValueError:
        return None
    return seconds if math.isfinite(seconds) and seconds >= 0 else None


class HttpGateway:
    """A :class:`~assistline.ivr.gateway.PaymentGateway` for a PaymentIntents API over HTTP."""

    def __init__(
        self,
        session: aiohttp.ClientSession,
        *,
        base_url: str,
        secret_key: str,
        attempt_timeout: float = 10.0,
        max_attempts: int = 3,
        backoff: float = 0.5,
        max_backoff: float = 8.0,
        moto: bool = False,
        sleep: Sleep = asyncio.sleep,
    ) -> None:
        url = URL(base_url)
        if url.scheme not in ("http", "https") or not url.host:
            raise ConfigurationError("payment gateway base_url must be an http or https URL")
        if not secret_key or not secret_key.isprintable() or " " in secret_key:
            raise ConfigurationError("payment gateway secret_key must be one word, not empty")
        if not attempt_timeout > 0 or max_attempts < 1 or backoff < 0 or max_backoff < 0:
            raise ConfigurationError(
                "payment gateway attempt_timeout must be positive, max_attempts at least 1 "
                "and backoff times not negative"
            )
        self._session = session
        self._base_url = url
        self._url = URL(str(url).rstrip("/") + "/v1/payment_intents")
        self._secret_key = secret_key
        self._timeout = aiohttp.ClientTimeout(total=attempt_timeout)
        self._max_attempts = max_attempts
        self._backoff = backoff
        self._max_backoff = max_backoff
        self._moto = moto
        self._sleep = sleep

    def __repr__(self) -> str:
        return (
            f"HttpGateway(base_url={str(self._base_url.with_user(None))!r}, secret_key=<hidden>, "
            f"max_attempts={self._max_attempts}, attempt_timeout={self._timeout.total})"
        )

    __str__ = __repr__

    def _form(self, request: ChargeRequest) -> bytes:
        card = request.card
        fields = [
            ("amount", str(request.amount_cents)),
            ("currency", request.currency),
            ("confirm", "true"),
            ("error_on_requires_action", "true"),
            ("payment_method_types[0]", "card"),
            ("payment_method_data[type]", "card"),
            ("payment_method_data[card][number]", card.number),
            ("payment_method_data[card][exp_month]", str(card.expiry_month)),
            ("payment_method_data[card][exp_year]", str(card.expiry_year)),
            ("payment_method_data[card][cvc]", card.security_code),
            ("metadata[account_id]", request.account_id),
            ("expand[0]", "latest_charge"),
        ]
        if card.postal_code:
            fields.append(
                ("payment_method_data[billing_details][address][postal_code]", card.postal_code)
            )
        if request.description:
            fields.append(("description", request.description))
        if self._moto:
            # Mail order / telephone order: exempt from strong customer authentication.
            fields.append(("payment_method_options[card][moto]", "true"))
        return urlencode(fields).encode()

    async def _post(self, body: bytes, key: str) -> tuple[int, Mapping[str, str], bytes]:
        headers = {
            "Authorization": f"Bearer {self._secret_key}",
            "Idempotency-Key": key,
            "Stripe-Version": STRIPE_VERSION,
            "Content-Type": "application/x-www-form-urlencoded",
        }
        async with self._session.post(
            self._url,
            data=body,
            headers=headers,
            timeout=self._timeout,
            allow_redirects=False,
            raise_for_status=False,
        ) as response:
            return response.status, response.headers, await response.read()

    async def charge(self, request: ChargeRequest) -> ChargeResult:
        """Charge the card, retrying with the same idempotency key until an answer comes."""
        key = request.idempotency_key
        body = self._form(request)
        problem = ""
        attempt = 0
        while attempt < self._max_attempts:
            attempt += 1
            delay = min(self._max_backoff, self._backoff * 2 ** (attempt - 1))
            try:
                status, headers, payload = await self._post(body, key)
            except (aiohttp.ClientError, TimeoutError) as error:
                # The exception's own text is not logged: only its kind.
                problem = type(error).__name__
            else:
                should_retry = headers.get("Stripe-Should-Retry")
                if should_retry == "true" and not (200 <= status < 300 or status == 402):
                    answer = None
                else:
                    answer = _answer(status, payload)
                if answer is not None:
                    outcome, payment_id, authorisation_code, decline_code = answer
                    logger.info(
                        "charge %s: %s, payment %s, reason %s, after %d attempt(s)",
                        key,
                        outcome,
                        payment_id,
                        decline_code,
                        attempt,
                    )
                    return ChargeResult.for_request(
                        request,
                        outcome,
                        payment_id,
                        authorisation_code=authorisation_code,
                        decline_code=decline_code,
                        attempts=attempt,
                    )
                problem = f"HTTP {status}" if status >= 300 else f"HTTP {status}, no answer in it"
                if should_retry == "false":
                    break
                retry_after = _seconds(headers.get("Retry-After"))
                if retry_after is not None:
                    delay = max(delay, min(retry_after, self._max_backoff))
            if attempt < self._max_attempts:
                logger.warning(
                    "charge %s: attempt %d failed (%s); retrying in %.2f s with the same key",
                    key,
                    attempt,
                    problem,
                    delay,
                )
                await self._sleep(delay)
        logger.error(
            "charge %s: no answer after %d attempt(s) (%s); the outcome is unknown: send the "
            "same idempotency key again before charging this account with a new one",
            key,
            attempt,
            problem,
        )
        return ChargeResult.for_request(request, Outcome.UNKNOWN, None, attempts=attempt)
