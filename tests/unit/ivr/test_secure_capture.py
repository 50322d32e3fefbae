"""Secure capture: exact actions for each field, timeout and gateway answer."""

from __future__ import annotations

import pytest

from assistline.ivr.card import Brand, Card
from assistline.ivr.gateway import ChargeRequest, ChargeResult, Outcome
from assistline.ivr.gateway_sandbox import SandboxGateway
from assistline.ivr.prompts import speaks_card_number
from assistline.ivr.secure_capture_fields import PROCESSING, PROMPTS, processing_prompt
from assistline.ivr.secure_capture_messages import (
    CallerHungUp,
    CaptureConfig,
    CaptureOutcome,
    CaptureResult,
    Charge,
    ChargeDone,
    ChargeFailed,
    DigitPressed,
    Ending,
    Finished,
    Progress,
    ProgressView,
    PromptFinished,
    Say,
    SecureOff,
    SecureOn,
    Stage,
    StopPrompt,
    masked_number,
)
from assistline.ivr.verbalise import verbalise
from tests.unit.ivr.secure_capture_helpers import (
    KEY,
    MASKED,
    TODAY,
    VISA,
    Run,
    approve,
    card_view,
    new,
    say,
    view,
)

# --- the happy path, field by field -------------------------------------------------------


def test_visa_happy_path_exact_actions() -> None:
    run = Run()
    assert run.start() == [SecureOn(), say("secure.card_number"), view(Stage.CARD_NUMBER)]
    assert run.press("4") == [StopPrompt("secure.card_number"), view(Stage.CARD_NUMBER, 1)]
    assert run.press(VISA[1:]) == [view(Stage.CARD_NUMBER, n) for n in range(2, 17)]
    assert run.press("#") == [say("secure.expiry"), card_view(Stage.EXPIRY)]
    assert run.press("1226") == [
        StopPrompt("secure.expiry"),
        card_view(Stage.EXPIRY, 1),
        card_view(Stage.EXPIRY, 2),
        card_view(Stage.EXPIRY, 3),
        say("secure.security_code"),
        card_view(Stage.SECURITY_CODE, expiry_ok=True),
    ]
    assert run.send(PromptFinished("secure.security_code")) == []
    assert run.press("123") == [
        card_view(Stage.SECURITY_CODE, 1, expiry_ok=True),
        card_view(Stage.SECURITY_CODE, 2, expiry_ok=True),
        say("secure.postal_code"),
        card_view(Stage.POSTAL_CODE, expiry_ok=True, security_code_ok=True),
    ]
    checks = {"expiry_ok": True, "security_code_ok": True}
    card = Card.checked(VISA, 12, 2026, "123", "94107", TODAY)
    request = ChargeRequest(card, 4210, "usd", KEY, "acct-1", "")
    assert run.press("94107") == [
        StopPrompt("secure.postal_code"),
        *[card_view(Stage.POSTAL_CODE, n, **checks) for n in range(1, 5)],
        Say(PROCESSING, processing_prompt(4210, "usd", "4242"), barge_in=False),
        card_view(Stage.CHARGING, **checks, postal_code_ok=True),
        Charge(request),
    ]
    result = CaptureResult(
        "approved", Ending.APPROVED, 4210, "usd", Brand.VISA, "4242", "pi_1", "A1", None,
        Outcome.APPROVED, KEY,
    )  # fmt: skip
    answer = ChargeResult.for_request(request, Outcome.APPROVED, "pi_1", authorisation_code="A1")
    assert run.send(ChargeDone(answer), after=1.5) == [
        card_view(Stage.DONE, **checks, postal_code_ok=True, result=result),
        SecureOff(Ending.APPROVED),
        Finished(result),
    ]
    assert run.now == 16.0
    assert run.send(CallerHungUp()) == run.wait(100) == run.abort("late") == []


def test_amex_takes_fifteen_digits_without_a_terminator_and_a_four_digit_code() -> None:
    run = Run()
    request = run.charging("378282246310005", "1226" + "1234" + "94107")
    assert run.says == [
        "secure.card_number",
        "secure.expiry",
        "secure.security_code_amex",
        "secure.postal_code",
        PROCESSING,
    ]
    card = request.card
    assert (card.brand, card.last4, card.security_code) == (Brand.AMEX, "0005", "1234")


@pytest.mark.parametrize(
    ("keys", "stage"),
    [
        (VISA, Stage.CARD_NUMBER),  # a Visa may be 19 long: 16 digits wait for # or the timeout
        ("4242424242424242428", Stage.EXPIRY),  # 19 ends it
        ("5555555555554444", Stage.EXPIRY),  # Mastercard's only length
        ("6011111111111117", Stage.CARD_NUMBER),  # Discover may be 19 long
        ("999999999999999999", Stage.CARD_NUMBER),  # unknown brand: up to 19
        ("9999999999999999999", Stage.CARD_NUMBER),  # … then refused, asked again
    ],
)
def test_card_number_ends_at_the_brand_longest_length(keys: str, stage: Stage) -> None:
    run = Run()
    run.start()
    run.press(keys)
    assert run.capture.stage is stage


def test_card_number_ends_at_the_inter_digit_timeout() -> None:
    run = Run()
    run.start()
    run.press(VISA)
    assert run.capture.next_deadline == 8.0 + 5.0
    assert run.wait(4.5) == []
    assert run.wait(0.5) == [say("secure.expiry"), card_view(Stage.EXPIRY)]


# --- invalid input, retries, timeouts -----------------------------------------------------


@pytest.mark.parametrize(
    "keys",
    ["4242424242424241#", "424242424242#", "9999999999999995#", "9" * 19, "#", "3782822463100#"],
    ids=["luhn", "length", "brand", "brand-19", "empty", "amex-short"],
)
def test_an_invalid_card_number_is_asked_again(keys: str) -> None:
    run = Run()
    run.start()
    assert run.press(keys)[-2:] == [
        say("secure.card_number.invalid"),
        view(Stage.CARD_NUMBER, number_ok=False),
    ]
    run.press(VISA + "#")
    assert run.capture.stage is Stage.EXPIRY


def test_the_third_failure_ends_the_capture_abandoned() -> None:
    run = Run()
    run.start()
    run.press("4242424242424241#" * 2)
    result = CaptureResult("abandoned", Ending.TOO_MANY_TRIES, 4210, "usd", detail="card_number")
    assert run.press("4242424242424241#")[-3:] == [
        view(Stage.DONE, number_ok=False, result=result),
        SecureOff(Ending.TOO_MANY_TRIES),
        Finished(result),
    ]
    assert run.says == ["secure.card_number", *["secure.card_number.invalid"] * 2]


@pytest.mark.parametrize(
    ("keys", "prompt"),
    [
        ("0625", "secure.security_code"),  # this month: valid through its last day
        ("0525", "secure.expiry.expired"),
        ("1224", "secure.expiry.expired"),
        ("0126", "secure.security_code"),
        ("0026", "secure.expiry.invalid"),
        ("1326", "secure.expiry.invalid"),
        ("0545", "secure.security_code"),  # 20 years ahead
        ("0646", "secure.expiry.invalid"),  # further is a keying mistake
        ("126#", "secure.expiry.invalid"),
    ],
)
def test_expiry(keys: str, prompt: str) -> None:
    run = Run()
    run.start()
    run.press(VISA + "#" + keys)
    assert run.says[-1] == prompt
    checks = run.actions[-1]
    assert isinstance(checks, Progress)
    assert checks.view.expiry_ok is (prompt == "secure.security_code")


def test_an_expiry_cut_short_by_the_timeout_is_invalid() -> None:
    run = Run()
    run.start()
    run.press(VISA + "#" + "12")
    assert run.wait(5.0)[0] == say("secure.expiry.invalid")


@pytest.mark.parametrize(
    ("number", "code", "prompt"),
    [
        (VISA + "#", "12#", "secure.security_code.invalid"),
        ("378282246310005", "123#", "secure.security_code_amex.invalid"),
    ],
)
def test_a_short_security_code_is_invalid(number: str, code: str, prompt: str) -> None:
    run = Run()
    run.start()
    run.press(number + "1226" + code)
    assert run.says[-1] == prompt


def test_a_short_zip_code_is_invalid_and_a_terminator_accepted_after_five() -> None:
    run = Run()
    run.start()
    run.press(VISA + "#" + "1226" + "123" + "9410#")
    assert run.says[-1] == "secure.postal_code.invalid"
    assert run.capture.stage is Stage.POSTAL_CODE


def test_no_key_within_the_first_digit_timeout_is_a_failed_try() -> None:
    run = Run()
    assert run.start()[:2] == [SecureOn(), say("secure.card_number")]
    assert run.capture.next_deadline == 10.0
    assert run.wait(9.999) == []
    assert run.wait(0.001) == [say("secure.card_number.no_input")]  # the view is unchanged
    assert run.capture.next_deadline == 20.0
    run.wait(10.0)
    result = CaptureResult("abandoned", Ending.TOO_MANY_TRIES, 4210, "usd", detail="card_number")
    assert run.wait(10.0) == [
        view(Stage.DONE, result=result),
        SecureOff(Ending.TOO_MANY_TRIES),
        Finished(result),
    ]
    assert run.capture.next_deadline is None


def test_the_first_digit_timeout_runs_from_the_end_of_the_prompt() -> None:
    run = Run()
    run.start()
    run.send(PromptFinished("another prompt"), after=2.0)
    assert run.capture.next_deadline == 10.0
    run.send(PromptFinished("secure.card_number"), after=2.0)
    assert run.capture.next_deadline == 14.0
    assert run.press("4") == [view(Stage.CARD_NUMBER, 1)]  # no prompt left to stop


def test_star_clears_the_field_and_is_not_a_failed_try() -> None:
    run = Run(new(config=CaptureConfig(tries=1)))
    run.start()
    assert run.press("4242*") == [
        StopPrompt("secure.card_number"),
        *[view(Stage.CARD_NUMBER, n) for n in range(1, 5)],
        say("secure.card_number.cleared"),
        view(Stage.CARD_NUMBER),
    ]
    run.press(VISA + "#" + "12*")
    assert run.says[-1] == "secure.expiry.cleared"
    assert run.press("1226")[-2] == say("secure.security_code")


def test_keys_a_to_d_are_ignored() -> None:
    run = Run()
    run.start()
    assert run.press("ABCD") == []
    assert run.capture.next_deadline == 10.0


def test_the_overall_limit_ends_collection() -> None:
    run = Run(new(config=CaptureConfig(overall_timeout=12.0)))
    run.start()
    run.press("42", gap=4.0)
    assert run.capture.next_deadline == 12.0
    result = CaptureResult("abandoned", Ending.TIMED_OUT, 4210, "usd")
    assert run.wait(4.0) == [
        view(Stage.DONE, result=result),
        SecureOff(Ending.TIMED_OUT),
        Finished(result),
    ]


def test_the_overall_limit_never_cuts_off_a_charge_in_flight() -> None:
    run = Run(new(config=CaptureConfig(overall_timeout=20.0, charge_timeout=30.0)))
    request = run.charging()
    assert run.now == 14.5
    assert run.capture.next_deadline == 44.5
    assert run.wait(29.0) == []
    assert run.send(approve(request))[-1] == Finished(run.result)
    assert run.result.outcome == "approved"


# --- the gateway's answer -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("outcome", "decline_code", "expected", "ending"),
    [
        (Outcome.APPROVED, None, "approved", Ending.APPROVED),
        (Outcome.DECLINED, "generic_decline", "declined", Ending.DECLINED),
        (Outcome.INSUFFICIENT_FUNDS, "insufficient_funds", "declined", Ending.DECLINED),
        (Outcome.EXPIRED_CARD, "expired_card", "declined", Ending.DECLINED),
        (Outcome.INCORRECT_SECURITY_CODE, "incorrect_cvc", "declined", Ending.DECLINED),
        (Outcome.PROCESSING_ERROR, "processing_error", "failed", Ending.GATEWAY_ERROR),
        (Outcome.UNKNOWN, None, "failed", Ending.OUTCOME_UNKNOWN),
    ],
)
def test_gateway_outcomes(
    outcome: Outcome, decline_code: str | None, expected: CaptureOutcome, ending: Ending
) -> None:
    run = Run()
    request = run.charging()
    payment_id = None if outcome is Outcome.UNKNOWN else "pi_9"
    answer = ChargeResult.for_request(request, outcome, payment_id, decline_code=decline_code)
    assert run.send(ChargeDone(answer))[-2:] == [SecureOff(ending), Finished(run.result)]
    assert run.result == CaptureResult(
        expected, ending, 4210, "usd", Brand.VISA, "4242", payment_id, None, decline_code,
        outcome, KEY,
    )  # fmt: skip
    assert run.result.outcome_unknown is (outcome is Outcome.UNKNOWN)


@pytest.mark.parametrize(
    ("nothing_charged", "ending", "gateway_outcome"),
    [
        (True, Ending.GATEWAY_ERROR, Outcome.PROCESSING_ERROR),
        (False, Ending.OUTCOME_UNKNOWN, Outcome.UNKNOWN),
    ],
)
def test_a_gateway_exception_fails_and_says_whether_anything_was_charged(
    nothing_charged: bool, ending: Ending, gateway_outcome: Outcome
) -> None:
    run = Run()
    run.charging()
    run.send(ChargeFailed("GatewayAuthenticationError", nothing_charged))
    assert (run.result.outcome, run.result.ending) == ("failed", ending)
    assert (run.result.gateway_outcome, run.result.idempotency_key) == (gateway_outcome, KEY)
    assert run.result.detail == "GatewayAuthenticationError"


def test_no_answer_within_the_charge_timeout_is_an_unknown_outcome() -> None:
    run = Run()
    run.charging()
    assert run.capture.next_deadline == 14.5 + 45.0
    assert run.wait(44.999) == []
    assert run.wait(0.001)[-2:] == [SecureOff(Ending.OUTCOME_UNKNOWN), Finished(run.result)]
    assert run.result.detail == "no answer from the gateway in 45 s"
    assert (run.result.outcome_unknown, run.result.idempotency_key) == (True, KEY)


def test_an_answer_for_another_key_is_not_this_capture_s() -> None:
    run = Run()
    request = run.charging()
    other = ChargeRequest(request.card, 4210, "usd", "another-key", "acct-1", "")
    assert run.send(approve(other)) == []
    assert run.send(DigitPressed("1")) == run.send(PromptFinished(PROCESSING)) == []
    assert not run.capture.finished


@pytest.mark.parametrize(
    ("number", "lose", "outcome", "decline_code"),
    [
        (VISA, 0, "approved", None),
        ("4000000000000002", 0, "declined", "generic_decline"),
        ("4000000000009995", 0, "declined", "insufficient_funds"),
        ("4000000000000119", 0, "failed", "processing_error"),
        (VISA, 1, "failed", None),
    ],
)
async def test_with_the_sandbox_gateway(
    number: str, lose: int, outcome: str, decline_code: str | None
) -> None:
    gateway = SandboxGateway()
    gateway.lose_next_answers(lose)
    run = Run()
    request = run.charging(number + "#")
    run.send(ChargeDone(await gateway.charge(request)))
    assert (run.result.outcome, run.result.decline_code) == (outcome, decline_code)
    if lose:  # asking again with the result's key recovers the answer: charged once
        again = await gateway.charge(request)
        assert (again.outcome, again.idempotency_key) == (Outcome.APPROVED, KEY)
        assert len(gateway.charges) == 1


# --- what the agent and the flow see ----------------------------------------------------


def test_masked_numbers_show_the_last_four_only() -> None:
    assert masked_number(16, "4242") == "•••• •••• •••• 4242"
    assert masked_number(15, "0005") == "•••• •••• ••• 0005"
    assert masked_number(13, "2222") == "•••• •••• • 2222"
    assert masked_number(19, "4242") == "•••• •••• •••• ••• 4242"


def test_the_agent_console_line() -> None:
    run = Run()
    run.start()
    texts = [run.press(keys)[-1] for keys in ("4242424", "242424242#", "12", "26", "1")]
    assert [t.view.text for t in texts if isinstance(t, Progress)] == [
        "card number: 7 digits",
        "•••• •••• •••• 4242, Luhn ✓, expiry: 0 digits",
        "•••• •••• •••• 4242, Luhn ✓, expiry: 2 digits",
        "•••• •••• •••• 4242, Luhn ✓, expiry ✓, security code: 0 digits",
        "•••• •••• •••• 4242, Luhn ✓, expiry ✓, security code: 1 digit",
    ]
    run.press("2#")
    last = run.actions[-1]
    assert isinstance(last, Progress)
    assert (
        last.view.text == "•••• •••• •••• 4242, Luhn ✓, expiry ✓, security code (again): 0 digits"
    )
    declined = CaptureResult("declined", Ending.DECLINED, 1, "usd", decline_code="lost_card")
    assert ProgressView(Stage.DONE, number=MASKED, number_ok=True, result=declined).text == (
        "•••• •••• •••• 4242, Luhn ✓, declined (lost_card)"
    )
    assert ProgressView(Stage.CHARGING, number=MASKED, number_ok=True, expiry_ok=True,
                        security_code_ok=True, postal_code_ok=True).text == (
        "•••• •••• •••• 4242, Luhn ✓, expiry ✓, security code ✓, postal code ✓, charging"
    )  # fmt: skip


def test_result_fields_for_the_flow() -> None:
    run = Run()
    run.send(approve(run.charging()))
    assert run.result.fields() == {
        "ending": "approved",
        "amount_cents": 4210,
        "currency": "usd",
        "outcome_unknown": False,
        "confirmation": "pi_1",
        "payment_id": "pi_1",
        "brand": "visa",
        "last4": "4242",
    }
    abandoned = CaptureResult("abandoned", Ending.CANCELLED, 100, "usd")
    assert abandoned.fields() == {
        "ending": "cancelled",
        "amount_cents": 100,
        "currency": "usd",
        "outcome_unknown": False,
    }


def test_prompts_hold_no_digits_but_the_last_four_and_the_amount() -> None:
    fields = ("card_number", "expiry", "security_code", "security_code_amex", "postal_code")
    variants = ("", ".invalid", ".no_input", ".cleared")
    keys = {f"secure.{f}{v}" for f in fields for v in variants} | {"secure.expiry.expired"}
    assert set(PROMPTS) == keys
    assert not any(c.isdigit() for prompt in PROMPTS.values() for c in verbalise(prompt))
    assert verbalise(PROMPTS["secure.security_code_amex.invalid"]) == (
        "That security code is not valid. "
        "Please enter the four-digit security code on the front of the card."
    )
    assert verbalise(processing_prompt(4210, "usd", "4242")) == (
        "Thank you. Charging forty-two dollars and ten cents to the card ending in "
        "four two four two. Please hold."
    )
    assert verbalise(processing_prompt(4210, "eur", "0005")) == (
        "Thank you. Charging the payment to the card ending in zero zero zero five. Please hold."
    )
    assert not speaks_card_number(processing_prompt(4210, "usd", "4242"))
