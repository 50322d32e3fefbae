"""The gateway protocol's types and the sandbox gateway: test cards, idempotency, latency."""

from __future__ import annotations

import asyncio
import re

import pytest

from assistline.ivr.card import Brand, Card, check_number
from assistline.ivr.gateway import (
    ChargeRequest,
    ChargeRequestError,
    ChargeResult,
    IdempotencyKeyReused,
    Outcome,
    PaymentGateway,
    new_idempotency_key,
    outcome_of_card_error,
)
from assistline.ivr.gateway_sandbox import TEST_CARDS, SandboxCharge, SandboxGateway


def card(number: str = "4242424242424242", brand: Brand = Brand.VISA) -> Card:
    code = "1234" if brand is Brand.AMEX else "123"
    return Card(number, 12, 2030, code, "94107", brand)


def request(
    number: str = "4242424242424242",
    *,
    brand: Brand = Brand.VISA,
    key: str = "attempt-1",
    amount: int = 4210,
    description: str = "Payment on account",
) -> ChargeRequest:
    return ChargeRequest(card(number, brand), amount, "usd", key, "ACME-1001", description)


class Sleeps:
    """An injected sleep that records what it was asked for and returns at once."""

    def __init__(self) -> None:
        self.calls: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.calls.append(seconds)
        await asyncio.sleep(0)


# --- the protocol's types ------------------------------------------------------------


def test_request_repr_masks_the_card() -> None:
    text = repr(request())
    assert text == (
        "ChargeRequest(card=Card(visa …4242), amount_cents=4210, currency='usd', "
        "idempotency_key='attempt-1', account_id='ACME-1001', description='Payment on account')"
    )
    assert str(request()) == text
    assert "424242424242" not in text and "2030" not in text


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"amount_cents": 0}, "amount_cents must be a positive number of minor units"),
        ({"amount_cents": -5}, "amount_cents must be a positive number of minor units"),
        ({"amount_cents": True}, "amount_cents must be a positive number of minor units"),
        ({"currency": "USD"}, "currency must be three lower-case letters (ISO 4217)"),
        ({"currency": "us"}, "currency must be three lower-case letters (ISO 4217)"),
        ({"idempotency_key": ""}, "idempotency_key must be 1 to 255 letters, digits or _.:- "),
        ({"idempotency_key": "a\r\nb"}, "idempotency_key must be 1 to 255 letters, digits or "),
        ({"idempotency_key": "k" * 256}, "idempotency_key must be 1 to 255 letters, digits or "),
        ({"account_id": ""}, "account_id must not be empty"),
        ({"account_id": "4242424242424242"}, "account_id must not contain a card number"),
        ({"description": "card 4242 4242 4242 4242"}, "description must not contain a card number"),
    ],
)
def test_request_checks_its_fields(changes: dict[str, object], message: str) -> None:
    fields: dict[str, object] = {
        "card": card(),
        "amount_cents": 100,
        "currency": "usd",
        "idempotency_key": "k",
        "account_id": "A1",
        "description": "",
    }
    fields.update(changes)
    with pytest.raises(ChargeRequestError) as caught:
        ChargeRequest(**fields)  # type: ignore[arg-type]
    text = str(caught.value)
    assert text.startswith(message)
    assert "4242" not in text
    assert isinstance(caught.value, ValueError)


def test_request_accepts_the_longest_key() -> None:
    assert request(key="k" * 255).idempotency_key == "k" * 255


def test_new_keys_are_fresh_and_valid() -> None:
    keys = {new_idempotency_key() for _ in range(100)}
    assert len(keys) == 100
    assert all(re.fullmatch(r"assistline-[0-9a-f]{32}", key) for key in keys)
    request(key=keys.pop())


@pytest.mark.parametrize(
    ("code", "decline_code", "outcome"),
    [
        ("card_declined", "generic_decline", Outcome.DECLINED),
        ("card_declined", "insufficient_funds", Outcome.INSUFFICIENT_FUNDS),
        ("card_declined", "expired_card", Outcome.EXPIRED_CARD),
        ("card_declined", "incorrect_cvc", Outcome.INCORRECT_SECURITY_CODE),
        ("card_declined", "processing_error", Outcome.PROCESSING_ERROR),
        ("card_declined", "lost_card", Outcome.DECLINED),
        ("card_declined", None, Outcome.DECLINED),
        ("expired_card", None, Outcome.EXPIRED_CARD),
        ("incorrect_cvc", None, Outcome.INCORRECT_SECURITY_CODE),
        ("invalid_cvc", None, Outcome.INCORRECT_SECURITY_CODE),
        ("processing_error", None, Outcome.PROCESSING_ERROR),
        ("incorrect_number", None, Outcome.DECLINED),
        (None, None, Outcome.DECLINED),
    ],
)
def test_outcome_of_card_errors(
    code: str | None, decline_code: str | None, outcome: Outcome
) -> None:
    assert outcome_of_card_error(code, decline_code) is outcome


def test_only_approved_charged_and_only_unknown_unsettled() -> None:
    assert [o for o in Outcome if o.charged] == [Outcome.APPROVED]
    assert [o for o in Outcome if not o.final] == [Outcome.UNKNOWN]


# --- the sandbox -----------------------------------------------------------------------


async def test_sandbox_approves_4242_with_every_storable_field() -> None:
    gateway: PaymentGateway = SandboxGateway()
    result = await gateway.charge(request())
    assert result == ChargeResult(
        outcome=Outcome.APPROVED,
        payment_id="pi_sandbox_000001",
        brand=Brand.VISA,
        last4="4242",
        amount_cents=4210,
        currency="usd",
        idempotency_key="attempt-1",
        authorisation_code="SB0001",
        decline_code=None,
        attempts=1,
    )


@pytest.mark.parametrize(
    ("number", "outcome", "decline_code"),
    [
        ("4000000000000002", Outcome.DECLINED, "generic_decline"),
        ("4000000000009995", Outcome.INSUFFICIENT_FUNDS, "insufficient_funds"),
        ("4000000000009987", Outcome.DECLINED, "lost_card"),
        ("4000000000009979", Outcome.DECLINED, "stolen_card"),
        ("4000000000000069", Outcome.EXPIRED_CARD, "expired_card"),
        ("4000000000000127", Outcome.INCORRECT_SECURITY_CODE, "incorrect_cvc"),
        ("4000000000000119", Outcome.PROCESSING_ERROR, "processing_error"),
        ("4111111111111111", Outcome.DECLINED, "test_mode_live_card"),
    ],
)
async def test_sandbox_fails_the_failing_test_cards(
    number: str, outcome: Outcome, decline_code: str
) -> None:
    gateway = SandboxGateway()
    result = await gateway.charge(request(number))
    assert (result.outcome, result.decline_code) == (outcome, decline_code)
    assert (result.payment_id, result.authorisation_code) == ("pi_sandbox_000001", None)
    assert result.last4 == number[-4:]
    assert gateway.charges == ()


@pytest.mark.parametrize(
    ("number", "brand"),
    [
        ("4000056655665556", Brand.VISA),
        ("5555555555554444", Brand.MASTERCARD),
        ("2223003122003222", Brand.MASTERCARD),
        ("5200828282828210", Brand.MASTERCARD),
        ("5105105105105100", Brand.MASTERCARD),
        ("378282246310005", Brand.AMEX),
        ("371449635398431", Brand.AMEX),
        ("6011111111111117", Brand.DISCOVER),
        ("6011000990139424", Brand.DISCOVER),
    ],
)
async def test_sandbox_approves_each_brands_test_cards(number: str, brand: Brand) -> None:
    gateway = SandboxGateway()
    result = await gateway.charge(request(number, brand=brand))
    assert (result.outcome, result.brand, result.last4) == (Outcome.APPROVED, brand, number[-4:])


def test_every_test_card_passes_the_card_checks() -> None:
    brands = [check_number(number) for number in TEST_CARDS]
    assert {brand: brands.count(brand) for brand in Brand} == {
        Brand.VISA: 9,
        Brand.MASTERCARD: 4,
        Brand.AMEX: 2,
        Brand.DISCOVER: 2,
    }


async def test_same_key_same_answer_and_one_charge() -> None:
    gateway = SandboxGateway()
    first = await gateway.charge(request())
    again = await gateway.charge(request())
    assert again == first
    assert gateway.requests == 2
    assert gateway.charges == (
        SandboxCharge(
            "pi_sandbox_000001", Brand.VISA, "4242", 4210, "usd", "ACME-1001", "attempt-1"
        ),
    )


async def test_a_new_key_charges_again() -> None:
    gateway = SandboxGateway()
    first = await gateway.charge(request(key="attempt-1"))
    second = await gateway.charge(request(key="attempt-2"))
    assert (first.payment_id, second.payment_id) == ("pi_sandbox_000001", "pi_sandbox_000002")
    assert second.authorisation_code == "SB0002"
    assert [c.idempotency_key for c in gateway.charges] == ["attempt-1", "attempt-2"]


async def test_same_key_different_charge_is_refused() -> None:
    gateway = SandboxGateway()
    await gateway.charge(request(amount=4210))
    with pytest.raises(IdempotencyKeyReused) as caught:
        await gateway.charge(request(amount=5000))
    assert str(caught.value) == (
        "An idempotency key was reused for a different charge; make a new key per payment attempt."
    )
    with pytest.raises(IdempotencyKeyReused):
        await gateway.charge(request("5555555555554444", brand=Brand.MASTERCARD))
    assert len(gateway.charges) == 1


async def test_a_declined_key_stays_declined() -> None:
    gateway = SandboxGateway()
    first = await gateway.charge(request("4000000000000002"))
    assert await gateway.charge(request("4000000000000002")) == first
    assert gateway.charges == ()


async def test_latency_goes_through_the_injected_sleep() -> None:
    sleeps = Sleeps()
    gateway = SandboxGateway(latency=0.8, sleep=sleeps)
    await gateway.charge(request())
    await gateway.charge(request())
    assert sleeps.calls == [0.8, 0.8]


async def test_no_latency_no_sleep() -> None:
    sleeps = Sleeps()
    await SandboxGateway(sleep=sleeps).charge(request())
    assert sleeps.calls == []


async def test_concurrent_requests_with_one_key_charge_once() -> None:
    gateway = SandboxGateway(latency=0.01)
    results = await asyncio.gather(*(gateway.charge(request()) for _ in range(5)))
    assert {r.payment_id for r in results} == {"pi_sandbox_000001"}
    assert len(gateway.charges) == 1
    assert gateway.requests == 5


async def test_lost_answers_are_unknown_until_asked_again() -> None:
    gateway = SandboxGateway()
    gateway.lose_next_answers(1)
    lost = await gateway.charge(request())
    assert lost == ChargeResult(
        Outcome.UNKNOWN, None, Brand.VISA, "4242", 4210, "usd", "attempt-1", attempts=1
    )
    assert len(gateway.charges) == 1  # the charge happened; only its answer was lost
    found = await gateway.charge(request())
    assert (found.outcome, found.payment_id) == (Outcome.APPROVED, "pi_sandbox_000001")
    other = await gateway.charge(request(key="attempt-2"))
    assert other.outcome is Outcome.APPROVED
    assert len(gateway.charges) == 2


def test_sandbox_arguments_are_checked() -> None:
    with pytest.raises(ValueError, match="^latency must not be negative$"):
        SandboxGateway(latency=-1)
    with pytest.raises(ValueError, match="^count must not be negative$"):
        SandboxGateway().lose_next_answers(-1)


async def test_sandbox_keeps_no_card_data() -> None:
    gateway = SandboxGateway()
    charged = request(description="")
    await gateway.charge(charged)
    assert repr(gateway) == "SandboxGateway(latency=0.0, keys=1, charges=1)"
    kept = repr(gateway.charges) + repr(gateway._seen)
    assert "424242424242" not in kept
    assert "2030" not in kept
