"""bench/ivr.py's payment provider: a PaymentIntents endpoint on 127.0.0.1 that times requests.

The server is started with ``ivr.gateway = http`` pointing here, so every
charge of the payment line arrives as ``POST /v1/payment_intents`` (the
shape of :mod:`assistline.ivr.gateway_http`, form-encoded, card fields in
the body). This endpoint stands where the card data is meant to go: it
keeps, per account (``metadata[account_id]``) and in order, each new
idempotency key's arrival time and the card fields it was sent, for the
bench to compare with what the callers keyed. The fields stay in this
process's memory; nothing here writes or prints them.

Answers follow the provider: ``200`` with ``status: succeeded`` to approve,
``402`` with a ``card_error`` (``card_declined``, ``generic_decline``) to
decline. An account's charges are declined until its planned number of
attempts, whose last is approved (:attr:`FakeGateway.plan`); a retry with a
key already seen gets the first answer again.
"""

from __future__ import annotations

import dataclasses
import time
from typing import Any

from aiohttp import web

SECRET_KEY = "sk_test_assistline_bench"
#: Attempts of an account not in the plan: every charge declined (a caller paying again).
DECLINE_ALWAYS = 1_000_000


@dataclasses.dataclass(frozen=True, slots=True)
class Charge:
    """One charge as the provider received it (the first request of its idempotency key)."""

    arrived: float  # time.monotonic()
    account: str
    number: str
    expiry: str  # MMYY
    security_code: str
    postal_code: str
    amount_cents: int

    def keys(self) -> str:
        """The card fields in the order a caller keys them."""
        return self.number + self.expiry + self.security_code + self.postal_code


@dataclasses.dataclass(eq=False)
class FakeGateway:
    """The endpoint's state: the plan per account and every charge received."""

    plan: dict[str, int] = dataclasses.field(default_factory=dict)
    charges: dict[str, list[Charge]] = dataclasses.field(default_factory=dict)
    answers: dict[str, tuple[int, dict[str, Any]]] = dataclasses.field(default_factory=dict)
    requests: int = 0
    refused: int = 0

    def app(self) -> web.Application:
        """The aiohttp application serving the endpoint."""
        app = web.Application()
        app.router.add_post("/v1/payment_intents", self._payment_intents)
        return app

    def all_charges(self) -> list[Charge]:
        """Every charge, in no particular order across accounts."""
        return [charge for found in self.charges.values() for charge in found]

    async def _payment_intents(self, request: web.Request) -> web.Response:
        arrived = time.monotonic()
        self.requests += 1
        if request.headers.get("Authorization") != f"Bearer {SECRET_KEY}":
            self.refused += 1
            error = {"type": "invalid_request_error", "code": "api_key_invalid"}
            return web.json_response({"error": error}, status=401)
        key = request.headers.get("Idempotency-Key", "")
        if key in self.answers:
            status, body = self.answers[key]
            return web.json_response(body, status=status)
        form = {name: str(value) for name, value in (await request.post()).items()}
        card = "payment_method_data[card]"
        charge = Charge(
            arrived,
            form.get("metadata[account_id]", ""),
            form.get(f"{card}[number]", ""),
            f"{int(form.get(f'{card}[exp_month]', '0')):02d}"
            f"{int(form.get(f'{card}[exp_year]', '0')) % 100:02d}",
            form.get(f"{card}[cvc]", ""),
            form.get("payment_method_data[billing_details][address][postal_code]", ""),
            int(form.get("amount", "0")),
        )
        made = self.charges.setdefault(charge.account, [])
        made.append(charge)
        intent = f"pi_bench_{self.requests}"
        if len(made) >= self.plan.get(charge.account, DECLINE_ALWAYS):
            latest = {"id": f"ch_bench_{self.requests}", "authorization_code": "BENCH1"}
            answer = (
                200,
                {
                    "id": intent,
                    "object": "payment_intent",
                    "status": "succeeded",
                    "amount": charge.amount_cents,
                    "currency": form.get("currency", "usd"),
                    "latest_charge": latest,
                },
            )
        else:
            answer = (
                402,
                {
                    "error": {
                        "type": "card_error",
                        "code": "card_declined",
                        "decline_code": "generic_decline",
                        "message": "Your card was declined.",
                        "payment_intent": {"id": intent, "status": "requires_payment_method"},
                    }
                },
            )
        self.answers[key] = answer
        return web.json_response(answer[1], status=answer[0])
