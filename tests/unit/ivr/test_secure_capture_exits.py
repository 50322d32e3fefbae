"""Secure capture: every way out closes the window once, misuse is refused, no trace is left."""

from __future__ import annotations

import copy
import pickle
from collections.abc import Callable

import pytest

from assistline.errors import AssistlineError
from assistline.ivr.gateway import ChargeRequest, ChargeRequestError, ChargeResult, Outcome
from assistline.ivr.secure_capture import SecureCapture
from assistline.ivr.secure_capture_messages import (
    AgentHungUp,
    CallerHungUp,
    Cancelled,
    CaptureConfig,
    CaptureResult,
    Charge,
    ChargeDone,
    ChargeFailed,
    DigitPressed,
    Ending,
    Event,
    Finished,
    Progress,
    Say,
    SecureCaptureError,
    SecureOff,
    Stage,
)
from assistline.ivr.verbalise import verbalise
from tests.unit.ivr.secure_capture_helpers import (
    TODAY,
    VISA,
    Run,
    approve,
    new,
    view,
)

# --- every way out: one SecureOff, before the one Finished, nothing after ------------------

Scenario = Callable[[Run], object]


def _to(stage: Stage) -> Scenario:
    keys = {
        Stage.CARD_NUMBER: "4242",
        Stage.EXPIRY: VISA + "#1",
        Stage.SECURITY_CODE: VISA + "#1226",
        Stage.POSTAL_CODE: VISA + "#1226123",
    }[stage]
    return lambda run: (run.start(), run.press(keys))


def _charged(then: Callable[[Run, ChargeRequest], object]) -> Scenario:
    return lambda run: then(run, run.charging())


def _answered(outcome: Outcome) -> Scenario:
    return _charged(lambda run, r: run.send(ChargeDone(ChargeResult.for_request(r, outcome, None))))


def _then(first: Scenario, event: Event) -> Scenario:
    return lambda run: (first(run), run.send(event))


def _leave_then_answer(event: Event) -> Scenario:
    return _charged(lambda run, r: (run.send(event), run.send(approve(r))))


COLLECTING = (Stage.CARD_NUMBER, Stage.EXPIRY, Stage.SECURITY_CODE, Stage.POSTAL_CODE)
ABANDONED, FAILED = "abandoned", "failed"
EXITS = [
    pytest.param(_answered(Outcome.APPROVED), "approved", Ending.APPROVED, None, id="approval"),
    pytest.param(_answered(Outcome.DECLINED), "declined", Ending.DECLINED, None, id="decline"),
    pytest.param(
        _answered(Outcome.PROCESSING_ERROR), FAILED, Ending.GATEWAY_ERROR, None, id="gateway error"
    ),
    pytest.param(
        _charged(lambda run, r: run.send(ChargeFailed("OSError", nothing_charged=True))),
        FAILED,
        Ending.GATEWAY_ERROR,
        None,
        id="gateway exception",
    ),
    pytest.param(
        _answered(Outcome.UNKNOWN), FAILED, Ending.OUTCOME_UNKNOWN, None, id="gateway unknown"
    ),
    pytest.param(
        _charged(lambda run, r: run.wait(60)),
        FAILED,
        Ending.OUTCOME_UNKNOWN,
        None,
        id="gateway timeout",
    ),
    *[
        pytest.param(
            _then(_to(stage), CallerHungUp()),
            ABANDONED,
            Ending.CALLER_HUNG_UP,
            None,
            id=f"caller hang-up at {stage}",
        )
        for stage in COLLECTING
    ],
    pytest.param(
        _leave_then_answer(CallerHungUp()),
        "approved",
        Ending.APPROVED,
        Ending.CALLER_HUNG_UP,
        id="caller hang-up while charging",
    ),
    pytest.param(
        _then(_to(Stage.EXPIRY), AgentHungUp()),
        ABANDONED,
        Ending.AGENT_HUNG_UP,
        None,
        id="agent hang-up",
    ),
    pytest.param(
        _leave_then_answer(AgentHungUp()),
        "approved",
        Ending.APPROVED,
        Ending.AGENT_HUNG_UP,
        id="agent hang-up while charging",
    ),
    pytest.param(
        _then(_to(Stage.SECURITY_CODE), Cancelled()), ABANDONED, Ending.CANCELLED, None, id="cancel"
    ),
    *[
        pytest.param(
            lambda run, stage=stage: (_to(stage)(run), run.abort(KeyError())),
            FAILED,
            Ending.ABORTED,
            None,
            id=f"abort at {stage}",
        )
        for stage in COLLECTING
    ],
    pytest.param(
        _charged(lambda run, r: run.abort(RuntimeError())),
        FAILED,
        Ending.ABORTED,
        None,
        id="abort while charging",
    ),
    pytest.param(
        lambda run: (run.start(), run.press("*" * 50, gap=4.0)),
        ABANDONED,
        Ending.TIMED_OUT,
        None,
        id="overall timeout",
    ),
    pytest.param(
        lambda run: (run.start(), run.wait(10), run.wait(10), run.wait(10)),
        ABANDONED,
        Ending.TOO_MANY_TRIES,
        None,
        id="too many tries",
    ),
]


@pytest.mark.parametrize(("scenario", "outcome", "ending", "off"), EXITS)
def test_every_way_out_turns_secure_mode_off_once_before_finishing(
    scenario: Scenario, outcome: str, ending: Ending, off: Ending | None
) -> None:
    run = Run()
    scenario(run)
    kinds = [type(a).__name__ for a in run.actions]
    assert kinds.count("SecureOn") == kinds.count("SecureOff") == kinds.count("Finished") == 1
    assert kinds[0] == "SecureOn"
    assert kinds.index("SecureOff") < kinds.index("Finished") == len(kinds) - 1
    assert SecureOff(off or ending) in run.actions
    assert (run.result.outcome, run.result.ending) == (outcome, ending)
    for event in (DigitPressed("1"), CallerHungUp(), AgentHungUp(), Cancelled()):
        assert run.send(event, after=1.0) == []
    assert run.wait(1000) == run.abort("again") == []


@pytest.mark.parametrize(
    ("event", "ending"),
    [
        (CallerHungUp(), Ending.CALLER_HUNG_UP),
        (AgentHungUp(), Ending.AGENT_HUNG_UP),
        (Cancelled(), Ending.CANCELLED),
    ],
)
def test_leaving_while_charging_ends_secure_mode_now_and_the_result_waits(
    event: Event, ending: Ending
) -> None:
    run = Run()
    request = run.charging()
    assert run.send(event) == [SecureOff(ending)]
    assert run.send(CallerHungUp()) == []
    actions = run.send(approve(request))
    assert [type(a) for a in actions] == [Progress, Finished]
    assert (run.result.outcome, run.result.detail) == ("approved", f"{ending} while charging")


def test_abort_before_start_finishes_without_a_window() -> None:
    capture = new()
    result = CaptureResult("failed", Ending.ABORTED, 4210, "usd", detail="ValueError")
    assert capture.abort(ValueError("4242424242424242")) == [
        view(Stage.DONE, result=result),
        Finished(result),
    ]


def test_abort_after_the_machine_raised() -> None:
    run = Run()
    run.start()
    with pytest.raises(SecureCaptureError) as raised:
        run.send(object())  # type: ignore[arg-type]
    assert str(raised.value) == "secure capture takes no object event"
    assert run.abort(raised.value)[-2:] == [SecureOff(Ending.ABORTED), Finished(run.result)]
    assert run.result.detail == "SecureCaptureError"


# --- checks on the shell and on the values -------------------------------------------------


def test_misuse_is_refused_with_exact_messages() -> None:
    capture = new()
    with pytest.raises(SecureCaptureError, match="^start secure capture before handing it"):
        capture.handle(CallerHungUp(), 0.0)
    capture.start(0.0)
    with pytest.raises(SecureCaptureError, match="^secure capture was started already$"):
        capture.start(1.0)
    with pytest.raises(SecureCaptureError, match=r"^DigitPressed takes one key of 0-9, \*, #"):
        DigitPressed("12")


@pytest.mark.parametrize(
    ("amount", "currency", "account", "message"),
    [
        (0, "usd", "a", "amount_cents must be a positive number of minor units"),
        (1, "USD", "a", "currency must be three lower-case letters (ISO 4217)"),
        (1, "usd", "", "account_id must not be empty"),
        (1, "usd", "acct 4242424242424242", "account_id must not contain a card number"),
    ],
)
def test_the_request_fields_are_checked_before_any_key(
    amount: int, currency: str, account: str, message: str
) -> None:
    with pytest.raises(ChargeRequestError) as raised:
        SecureCapture(amount, currency, account, TODAY)
    assert str(raised.value) == message


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"first_digit_timeout": 0}, "first_digit_timeout must be positive"),
        ({"inter_digit_timeout": -1}, "inter_digit_timeout must be positive"),
        ({"overall_timeout": 0}, "overall_timeout must be positive"),
        ({"charge_timeout": 0}, "charge_timeout must be positive"),
        ({"tries": 0}, "tries must be an integer of at least 1"),
    ],
)
def test_config_is_checked(fields: dict[str, float], message: str) -> None:
    with pytest.raises(SecureCaptureError) as raised:
        CaptureConfig(**fields)  # type: ignore[arg-type]
    assert str(raised.value) == message


# --- no trace -----------------------------------------------------------------------------

CANARY = "4000056655665556"  # a Visa debit test number, Luhn-valid
CANARY_CODE = "973"
CANARY_EXPIRY = "0839"
CANARY_ZIP = "60614"


def test_canary_card_data_appears_in_no_repr_result_or_message(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level("DEBUG")
    run = Run()
    events: list[object] = []
    texts: list[str] = []
    run.start()
    for key in CANARY + "#" + "1" + "*" + CANARY_EXPIRY + CANARY_CODE + CANARY_ZIP[:4]:
        event = DigitPressed(key)
        events.append(event)
        run.send(event, after=0.5)
        texts.append(repr(run.capture))
    assert run.capture.stage is Stage.POSTAL_CODE
    assert repr(run.capture) == (
        "SecureCapture(stage=postal_code, amount_cents=4210, currency='usd', "
        "account_id='acct-1', idempotency_key='assistline-test-key', digits_entered=4)"
    )
    for attempt in (pickle.dumps, copy.copy, copy.deepcopy):
        with pytest.raises(SecureCaptureError) as raised:
            attempt(run.capture)
        texts.append(str(raised.value))
    run.send(DigitPressed(CANARY_ZIP[4]), after=0.5)
    charge = run.actions[-1]
    assert isinstance(charge, Charge)
    assert charge.request.card.number == CANARY  # the one place it is
    assert repr(charge) == (
        "Charge(request=ChargeRequest(card=Card(visa …5556), amount_cents=4210, "
        "currency='usd', idempotency_key='assistline-test-key', account_id='acct-1', "
        "description=''))"
    )
    # Wiped once the Charge is out: no attribute of the machine holds a digit of it.
    state = repr(vars(run.capture))
    assert not [s for s in (CANARY[:12], CANARY_CODE, CANARY_EXPIRY, CANARY_ZIP) if s in state]
    assert run.capture._expiry == (0, 0)
    failed = ChargeFailed(f"timeout charging {CANARY}")
    events += [failed, CallerHungUp()]
    run.send(failed)
    for error_call in (lambda: DigitPressed("x"), lambda: new().handle(CallerHungUp(), 0.0)):
        with pytest.raises(AssistlineError) as error:
            error_call()
        texts.append(str(error.value))
    texts += [repr(a) for a in run.actions] + [str(a) for a in run.actions]
    texts += [repr(e) for e in events] + [str(e) for e in events]
    texts += [repr(run.result), str(run.result.fields()), run.result.detail]
    texts += [a.view.text for a in run.actions if isinstance(a, Progress)]
    texts += [verbalise(a.utterance) for a in run.actions if isinstance(a, Say)]
    texts += [r.getMessage() for r in caplog.records]
    everything = "\n".join(texts)
    for secret in (CANARY, CANARY[:12], CANARY_CODE, CANARY_EXPIRY, CANARY_ZIP):
        assert secret not in everything
    assert run.result.detail == "timeout charging [card …5556]"
    assert "5556" in everything  # the last four, which may be shown
