"""The HTTP gateway against a local fake of a PaymentIntents provider on 127.0.0.1.

The fake checks each request's shape, keeps idempotency keys the way the
provider does (same key and body: the stored answer; same key, other body:
``idempotency_error``), answers test cards from the sandbox's table, and can
be told to fail the next requests *before* it processes them (``503``,
``429``, ``409``) or *after* it has charged (``500``, a hang past the
client's timeout, a dropped connection, a garbled body), which is when a
careless retry would charge twice.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import socket
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from assistline.errors import ConfigurationError
from assistline.ivr.card import Brand, Card
from assistline.ivr.gateway import (
    ChargeRequest,
    ChargeResult,
    GatewayAuthenticationError,
    GatewayError,
    GatewayRequestError,
    IdempotencyKeyReused,
    Outcome,
    PaymentGateway,
)
from assistline.ivr.gateway_http import STRIPE_VERSION, HttpGateway
from assistline.ivr.gateway_sandbox import TEST_CARDS
from assistline.redaction import contains_card_number

SECRET = "sk_test_4eC39HqLyjWDarjtT1zdp7dc"
NUMBER = "4242424242424242"
KEY = "attempt-0001"

# Failures the fake can be told to produce, before or after it processes the request.
BEFORE = {"503", "429", "409"}
AFTER = {"500", "500-final", "timeout", "drop", "garbled"}


@dataclasses.dataclass
class FakeProvider:
    """A PaymentIntents endpoint that records what it is sent and charges test cards."""

    failures: list[str] = dataclasses.field(default_factory=list)
    #: Replace the next answer (status, JSON body) to exercise mappings.
    answer_with: tuple[int, dict[str, Any] | str] | None = None
    keys: list[str] = dataclasses.field(default_factory=list)
    forms: list[dict[str, str]] = dataclasses.field(default_factory=list)
    headers: list[dict[str, str]] = dataclasses.field(default_factory=list)
    charges: list[str] = dataclasses.field(default_factory=list)
    stored: dict[str, tuple[dict[str, str], int, dict[str, Any] | str]] = dataclasses.field(
        default_factory=dict
    )
    released: asyncio.Event = dataclasses.field(default_factory=asyncio.Event)
    intents: int = 0

    async def payment_intents(self, request: web.Request) -> web.StreamResponse:
        self.headers.append({k: v for k, v in request.headers.items() if k != "Host"})
        form = {k: str(v) for k, v in (await request.post()).items()}
        key = request.headers.get("Idempotency-Key", "")
        self.keys.append(key)
        self.forms.append(form)
        if request.headers.get("Authorization") != f"Bearer {SECRET}":
            return web.json_response(_error("invalid_request_error", "api_key"), status=401)
        failure = self.failures.pop(0) if self.failures else None
        if failure in BEFORE:
            return self._fail_before(failure)
        if key in self.stored:
            first_form, status, body = self.stored[key]
            if first_form != form:
                return web.json_response(_error("idempotency_error", None), status=400)
        else:
            status, body = self._process(form)
            self.stored[key] = (form, status, body)
        if failure == "500":
            return web.json_response(_error("api_error", None), status=500)
        if failure == "500-final":
            response = web.json_response(_error("api_error", None), status=500)
            response.headers["Stripe-Should-Retry"] = "false"
            return response
        if failure == "timeout":
            await self.released.wait()
        if failure == "drop":
            assert request.transport is not None
            request.transport.abort()
            return web.Response()
        if failure == "garbled":
            return web.Response(text="<html>bad gateway</html>", status=200)
        if isinstance(body, str):
            return web.Response(text=body, status=status)
        return web.json_response(body, status=status)

    def _fail_before(self, failure: str) -> web.Response:
        response = web.json_response(_error("api_error", None), status=int(failure))
        if failure == "429":
            response.headers["Retry-After"] = "0.3"
        return response

    def _process(self, form: dict[str, str]) -> tuple[int, dict[str, Any] | str]:
        if self.answer_with is not None:
            answer, self.answer_with = self.answer_with, None
            return answer
        if int(form["amount"]) < 50:
            return 400, {
                "error": {
                    "type": "invalid_request_error",
                    "code": "amount_too_small",
                    "param": "amount",
                    "message": f"Amount must be at least 50 cents, card {NUMBER}",
                }
            }
        self.intents += 1
        payment_id = f"pi_fake_{self.intents}"
        behaviour = TEST_CARDS[form["payment_method_data[card][number]"]]
        if behaviour.code is None:
            self.charges.append(payment_id)
            return 200, {
                "id": payment_id,
                "object": "payment_intent",
                "status": "succeeded",
                "amount": int(form["amount"]),
                "currency": form["currency"],
                "latest_charge": {"id": f"ch_fake_{self.intents}", "authorization_code": "A1B2C3"},
            }
        return 402, {
            "error": {
                "type": "card_error",
                "code": behaviour.code,
                "decline_code": behaviour.decline_code,
                "message": "Your card was declined.",
                "payment_intent": {"id": payment_id, "status": "requires_payment_method"},
            }
        }


def _error(kind: str, code: str | None) -> dict[str, Any]:
    return {"error": {"type": kind, "code": code, "message": f"failed for {SECRET}"}}


class Sleeps:
    def __init__(self) -> None:
        self.calls: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.calls.append(seconds)
        await asyncio.sleep(0)


@pytest.fixture
async def provider() -> AsyncIterator[tuple[FakeProvider, str]]:
    fake = FakeProvider()
    app = web.Application()
    app.router.add_post("/v1/payment_intents", fake.payment_intents)
    server = TestServer(app, host="127.0.0.1", port=0)
    await server.start_server()
    try:
        yield fake, str(server.make_url(""))
    finally:
        fake.released.set()
        await server.close()


@pytest.fixture
def sleeps() -> Sleeps:
    return Sleeps()


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


@pytest.fixture
def fake(provider: tuple[FakeProvider, str]) -> FakeProvider:
    return provider[0]


@pytest.fixture
def gateway(
    provider: tuple[FakeProvider, str], session: aiohttp.ClientSession, sleeps: Sleeps
) -> HttpGateway:
    return HttpGateway(
        session,
        base_url=provider[1],
        secret_key=SECRET,
        attempt_timeout=0.25,
        max_attempts=3,
        backoff=0.05,
        max_backoff=0.5,
        sleep=sleeps,
    )


def charge_request(number: str = NUMBER, *, key: str = KEY, amount: int = 4210) -> ChargeRequest:
    card = Card(number, 12, 2030, "123", "94107", Brand.VISA)
    return ChargeRequest(card, amount, "usd", key, "ACME-1001", "Payment on account")


def approved(attempts: int) -> ChargeResult:
    return ChargeResult(
        outcome=Outcome.APPROVED,
        payment_id="pi_fake_1",
        brand=Brand.VISA,
        last4="4242",
        amount_cents=4210,
        currency="usd",
        idempotency_key=KEY,
        authorisation_code="A1B2C3",
        decline_code=None,
        attempts=attempts,
    )


async def test_approval_sends_the_provider_shape(gateway: HttpGateway, fake: FakeProvider) -> None:
    protocol: PaymentGateway = gateway
    assert await protocol.charge(charge_request()) == approved(attempts=1)
    assert fake.forms == [
        {
            "amount": "4210",
            "currency": "usd",
            "confirm": "true",
            "error_on_requires_action": "true",
            "payment_method_types[0]": "card",
            "payment_method_data[type]": "card",
            "payment_method_data[card][number]": NUMBER,
            "payment_method_data[card][exp_month]": "12",
            "payment_method_data[card][exp_year]": "2030",
            "payment_method_data[card][cvc]": "123",
            "metadata[account_id]": "ACME-1001",
            "expand[0]": "latest_charge",
            "payment_method_data[billing_details][address][postal_code]": "94107",
            "description": "Payment on account",
        }
    ]
    headers = fake.headers[0]
    assert headers["Authorization"] == f"Bearer {SECRET}"
    assert headers["Idempotency-Key"] == KEY
    assert headers["Stripe-Version"] == STRIPE_VERSION
    assert headers["Content-Type"] == "application/x-www-form-urlencoded"
    assert fake.charges == ["pi_fake_1"]


async def test_moto_is_flagged_when_configured(
    provider: tuple[FakeProvider, str], session: aiohttp.ClientSession
) -> None:
    fake, url = provider
    gateway = HttpGateway(session, base_url=url, secret_key=SECRET, moto=True)
    await gateway.charge(charge_request())
    assert fake.forms[0]["payment_method_options[card][moto]"] == "true"


@pytest.mark.parametrize(
    ("number", "outcome", "decline_code"),
    [
        ("4000000000000002", Outcome.DECLINED, "generic_decline"),
        ("4000000000009995", Outcome.INSUFFICIENT_FUNDS, "insufficient_funds"),
        ("4000000000009987", Outcome.DECLINED, "lost_card"),
        ("4000000000000069", Outcome.EXPIRED_CARD, "expired_card"),
        ("4000000000000127", Outcome.INCORRECT_SECURITY_CODE, "incorrect_cvc"),
        ("4000000000000119", Outcome.PROCESSING_ERROR, "processing_error"),
    ],
)
async def test_card_errors_map_to_outcomes_without_retry(
    gateway: HttpGateway, fake: FakeProvider, number: str, outcome: Outcome, decline_code: str
) -> None:
    result = await gateway.charge(charge_request(number))
    assert (result.outcome, result.decline_code) == (outcome, decline_code)
    assert (result.payment_id, result.authorisation_code) == ("pi_fake_1", None)
    assert (result.last4, result.attempts) == (number[-4:], 1)
    assert fake.keys == [KEY]
    assert fake.charges == []


@pytest.mark.parametrize(
    ("answer", "outcome", "payment_id", "decline_code"),
    [
        ((200, {"id": "pi_x", "status": "requires_capture"}), Outcome.APPROVED, "pi_x", None),
        (
            (200, {"id": "pi_x", "status": "succeeded", "latest_charge": "ch_x"}),
            Outcome.APPROVED,
            "pi_x",
            None,
        ),
        (
            (200, {"id": "pi_x", "status": "requires_action"}),
            Outcome.DECLINED,
            "pi_x",
            "authentication_required",
        ),
        (
            (
                200,
                {
                    "id": "pi_x",
                    "status": "requires_payment_method",
                    "last_payment_error": {
                        "code": "card_declined",
                        "decline_code": "insufficient_funds",
                    },
                },
            ),
            Outcome.INSUFFICIENT_FUNDS,
            "pi_x",
            "insufficient_funds",
        ),
        ((200, {"id": "pi_x", "status": "canceled"}), Outcome.DECLINED, "pi_x", "canceled"),
        # An id or code that is not an identifier (here a card number) is dropped.
        (
            (402, {"error": {"type": "card_error", "code": NUMBER, "payment_intent": {}}}),
            Outcome.DECLINED,
            None,
            None,
        ),
        ((200, {"id": f"pi_{NUMBER}", "status": "succeeded"}), Outcome.APPROVED, None, None),
    ],
)
async def test_payment_intent_states_map_to_outcomes(
    gateway: HttpGateway,
    fake: FakeProvider,
    answer: tuple[int, dict[str, Any]],
    outcome: Outcome,
    payment_id: str | None,
    decline_code: str | None,
) -> None:
    fake.answer_with = answer
    result = await gateway.charge(charge_request())
    assert (result.outcome, result.payment_id, result.decline_code) == (
        outcome,
        payment_id,
        decline_code,
    )
    assert result.authorisation_code is None


@pytest.mark.parametrize("failure", ["timeout", "500", "drop", "garbled"])
async def test_a_lost_answer_after_charging_is_recovered_with_the_same_key(
    gateway: HttpGateway, fake: FakeProvider, sleeps: Sleeps, failure: str
) -> None:
    fake.failures = [failure]
    assert await gateway.charge(charge_request()) == approved(attempts=2)
    assert fake.keys == [KEY, KEY]
    assert fake.charges == ["pi_fake_1"]
    assert sleeps.calls == [0.05]


@pytest.mark.parametrize("failure", ["503", "409"])
async def test_failures_before_processing_are_retried(
    gateway: HttpGateway, fake: FakeProvider, sleeps: Sleeps, failure: str
) -> None:
    fake.failures = [failure, failure]
    assert await gateway.charge(charge_request()) == approved(attempts=3)
    assert fake.keys == [KEY, KEY, KEY]
    assert fake.charges == ["pi_fake_1"]
    assert sleeps.calls == [0.05, 0.1]


async def test_429_waits_as_long_as_retry_after_says(
    gateway: HttpGateway, fake: FakeProvider, sleeps: Sleeps
) -> None:
    fake.failures = ["429"]
    assert await gateway.charge(charge_request()) == approved(attempts=2)
    assert sleeps.calls == [0.3]


async def test_no_answer_is_unknown_and_the_same_key_later_finds_the_charge(
    gateway: HttpGateway, fake: FakeProvider, sleeps: Sleeps
) -> None:
    fake.failures = ["timeout", "500", "drop"]
    lost = await gateway.charge(charge_request())
    assert lost == ChargeResult(
        Outcome.UNKNOWN, None, Brand.VISA, "4242", 4210, "usd", KEY, attempts=3
    )
    assert sleeps.calls == [0.05, 0.1]
    assert fake.charges == ["pi_fake_1"]
    # The flow asks again with the same request, before anyone charges with a new key.
    assert await gateway.charge(charge_request()) == approved(attempts=1)
    assert fake.charges == ["pi_fake_1"]
    assert fake.keys == [KEY] * 4


async def test_should_retry_false_stops_at_once(gateway: HttpGateway, fake: FakeProvider) -> None:
    fake.failures = ["500-final"]
    result = await gateway.charge(charge_request())
    assert (result.outcome, result.attempts) == (Outcome.UNKNOWN, 1)
    assert fake.keys == [KEY]


async def test_connection_refused_is_retried_then_unknown(
    session: aiohttp.ClientSession, sleeps: Sleeps
) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    gateway = HttpGateway(
        session,
        base_url=f"http://127.0.0.1:{port}",
        secret_key=SECRET,
        attempt_timeout=0.25,
        backoff=0.05,
        sleep=sleeps,
    )
    result = await gateway.charge(charge_request())
    assert (result.outcome, result.payment_id, result.attempts) == (Outcome.UNKNOWN, None, 3)
    assert sleeps.calls == [0.05, 0.1]


async def test_invalid_request_is_raised_not_retried(
    gateway: HttpGateway, fake: FakeProvider
) -> None:
    with pytest.raises(GatewayRequestError) as caught:
        await gateway.charge(charge_request(amount=10))
    assert str(caught.value) == (
        "the payment gateway rejected the request: amount_too_small (field amount)"
    )
    assert (caught.value.code, caught.value.param) == ("amount_too_small", "amount")
    assert fake.keys == [KEY]


async def test_a_refused_secret_key_is_raised_not_retried(
    provider: tuple[FakeProvider, str], session: aiohttp.ClientSession
) -> None:
    fake, url = provider
    gateway = HttpGateway(session, base_url=url, secret_key="sk_test_wrong")
    with pytest.raises(GatewayAuthenticationError) as caught:
        await gateway.charge(charge_request())
    assert str(caught.value) == (
        "The payment gateway refused the secret key; check the gateway's secret key setting."
    )
    assert fake.keys == [KEY]


async def test_a_key_reused_for_another_charge_is_refused(
    gateway: HttpGateway, fake: FakeProvider
) -> None:
    await gateway.charge(charge_request(amount=4210))
    with pytest.raises(IdempotencyKeyReused):
        await gateway.charge(charge_request(amount=5000))
    assert fake.charges == ["pi_fake_1"]


@pytest.mark.parametrize(
    ("answer", "error", "message"),
    [
        ((404, "not found"), GatewayRequestError, "the payment gateway rejected the request: "),
        ((302, "moved"), GatewayError, "the payment gateway answered HTTP 302; check its base "),
    ],
)
async def test_unexpected_statuses_raise(
    gateway: HttpGateway,
    fake: FakeProvider,
    answer: tuple[int, str],
    error: type[GatewayError],
    message: str,
) -> None:
    fake.answer_with = answer
    with pytest.raises(error) as caught:
        await gateway.charge(charge_request())
    assert str(caught.value).startswith(message)
    assert fake.keys == [KEY]


async def test_nothing_secret_reaches_logs_errors_or_reprs(
    provider: tuple[FakeProvider, str],
    session: aiohttp.ClientSession,
    gateway: HttpGateway,
    caplog: pytest.LogCaptureFixture,
) -> None:
    fake, url = provider
    caplog.set_level(logging.DEBUG)
    texts = [repr(gateway), str(gateway), repr(charge_request())]
    fake.failures = ["timeout", "500", "drop"]
    texts.append(repr(await gateway.charge(charge_request())))
    texts.append(repr(await gateway.charge(charge_request())))
    texts.append(repr(await gateway.charge(charge_request("4000000000009995", key="k2"))))
    for attempt, amount in (("k3", 10), (KEY, 9999)):
        with pytest.raises(GatewayError) as caught:
            await gateway.charge(charge_request(key=attempt, amount=amount))
        texts += [str(caught.value), repr(caught.value)]
    wrong = HttpGateway(session, base_url=url, secret_key="sk_x")
    with pytest.raises(GatewayAuthenticationError) as refused:
        await wrong.charge(charge_request(key="k4"))
    texts += [str(refused.value), repr(wrong)]
    texts += [record.getMessage() for record in caplog.records]
    texts += [record.exc_text or "" for record in caplog.records]
    texts.append(caplog.text)
    assert len(caplog.records) >= 5  # retries, the unknown outcome and the answers
    everything = "\n".join(texts)
    for secret in (SECRET, "sk_x", NUMBER, "4000000000009995", "2030", "94107"):
        assert secret not in everything
    assert not contains_card_number(everything)
    assert "<hidden>" in repr(gateway)


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"base_url": "ftp://127.0.0.1"}, "payment gateway base_url must be an http or https URL"),
        ({"base_url": "127.0.0.1:80"}, "payment gateway base_url must be an http or https URL"),
        ({"secret_key": ""}, "payment gateway secret_key must be one word, not empty"),
        ({"secret_key": "sk\r\nX-Evil: 1"}, "payment gateway secret_key must be one word, not"),
        ({"max_attempts": 0}, "payment gateway attempt_timeout must be positive, max_attempts"),
        ({"attempt_timeout": 0}, "payment gateway attempt_timeout must be positive, max_attempts"),
    ],
)
async def test_settings_are_checked(
    session: aiohttp.ClientSession, changes: dict[str, Any], message: str
) -> None:
    arguments: dict[str, Any] = {"base_url": "http://127.0.0.1:9", "secret_key": SECRET}
    arguments.update(changes)
    with pytest.raises(ConfigurationError) as caught:
        HttpGateway(session, **arguments)
    assert str(caught.value).startswith(message)
    assert SECRET not in str(caught.value)


async def test_repr_hides_the_secret_key_and_url_credentials(
    session: aiohttp.ClientSession,
) -> None:
    gateway = HttpGateway(session, base_url="http://user:pw@127.0.0.1:9/gw", secret_key=SECRET)
    assert repr(gateway) == (
        "HttpGateway(base_url='http://127.0.0.1:9/gw', secret_key=<hidden>, "
        "max_attempts=3, attempt_timeout=10.0)"
    )
    assert str(gateway) == repr(gateway)
