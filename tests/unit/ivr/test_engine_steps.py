"""The engine's other steps (fetch, payment, transfer, set, branch, goto) and run-time errors."""

from __future__ import annotations

import datetime

import pytest

from assistline.ivr.engine import MAX_STEPS_WITHOUT_WAITING, Engine, Phase
from assistline.ivr.flow import FlowError, PaymentOutcome, Value
from assistline.ivr.flow_messages import (
    Ending,
    Fetch,
    FetchDone,
    FetchFailed,
    Hangup,
    Outcome,
    PaymentDone,
    Play,
    PromptFinished,
    Say,
    StartPayment,
    StopPrompt,
    Transfer,
)
from assistline.ivr.utterance import Amount, Date, Digits, Number, Ordinal, Words
from tests.unit.ivr.engine_helpers import (
    BYE,
    COLLECT,
    FAILED,
    bye,
    flow,
    keys,
    say,
    started,
    state,
)

FETCH = (
    """
    inputs = ["account"]

    [[step]]
    name = "lookup"
    type = "fetch"
    request = "account.verify"
    args = ["account"]
    results = ["balance", "due"]
    timeout = 8
    on_error = "failed"

    [[step]]
    name = "balance"
    type = "say"
    text = "You owe {balance:currency}."
    next = "bye"
    """
    + BYE
    + FAILED
)


def test_fetch_sends_its_args_and_stores_only_its_declared_results() -> None:
    engine = Engine(flow(FETCH), variables={"account": "0042", "due": 1})
    assert started(engine, 1.0) == [Fetch("account.verify", {"account": "0042"})]
    assert state(engine) == (Phase.FETCH, 9.0)
    assert engine.handle(FetchDone("account.other", {}), 2.0) == []  # not the one asked
    done = FetchDone("account.verify", {"balance": 4210, "secret": "x"})
    said = Say("t.balance", (Words("You owe"), Amount(4210), Words(".")), True)
    assert engine.handle(done, 2.0) == [said]
    # A declared result the answer lacks is cleared; an undeclared value is ignored.
    assert dict(engine.variables) == {"account": "0042", "balance": 4210}


def test_a_failed_fetch_goes_to_on_error() -> None:
    engine = Engine(flow(FETCH), variables={"account": "1"})
    started(engine)
    assert engine.handle(FetchFailed("account.verify", "HTTP 500"), 1.0) == bye("failed", "failed")


def test_an_unanswered_fetch_times_out_to_on_error_and_its_late_answer_is_ignored() -> None:
    engine = Engine(flow(FETCH), variables={"account": "1"})
    started(engine)
    assert engine.advance(7.9) == []
    assert engine.advance(8.0) == bye("failed", "failed")
    assert engine.handle(FetchDone("account.verify", {"balance": 1}), 9.0) == []


def test_keys_pressed_during_a_fetch_are_typed_ahead() -> None:
    text = FETCH.replace('next = "bye"', 'next = "ask"', 1) + COLLECT.replace(BYE + FAILED, "")
    engine = Engine(flow(text), variables={"account": "1"})
    started(engine)
    assert keys(engine, "55", 1.0) == []
    # The barge-in prompt and the collect's prompt are skipped; the collect has "55".
    assert engine.handle(FetchDone("account.verify", {"balance": 5}), 2.0) == []
    assert keys(engine, "#", 3.0) == bye()
    assert engine.variables["code"] == "55"


PAYMENT = """
    [variables]
    amount = 2500
    account = "A-1"

    [[step]]
    name = "pay"
    type = "payment"
    amount = "amount"
    args = ["account"]
    results = ["confirmation", "last4"]
    on_approved = "approved"
    on_declined = "declined"
    on_failed = "failed"
    on_abandoned = "abandoned"
""" + "".join(
    f'\n[[step]]\nname = "{outcome}"\ntype = "hangup"\nreason = "{outcome}"\n'
    for outcome in ("approved", "declined", "failed", "abandoned")
)


@pytest.mark.parametrize("outcome", ["approved", "declined", "failed", "abandoned"])
def test_a_payment_starts_secure_capture_and_its_outcome_picks_the_step(
    outcome: PaymentOutcome,
) -> None:
    engine = Engine(flow(PAYMENT))
    assert started(engine) == [StartPayment(2500, {"account": "A-1"})]
    assert state(engine) == (Phase.PAYMENT, None)
    assert keys(engine, "4111", 1.0) == []  # secure capture owns the keypad
    done = PaymentDone(outcome, {"confirmation": "77", "last4": "1111", "pan": "x"})
    assert engine.handle(done, 2.0) == bye(outcome, outcome)
    assert dict(engine.variables) == {
        "amount": 2500,
        "account": "A-1",
        "confirmation": "77",
        "last4": "1111",
    }


def test_keys_typed_ahead_of_a_payment_are_dropped() -> None:
    text = """
        [variables]
        amount = 100

        [[step]]
        name = "intro"
        type = "say"
        text = "Pay now."

        [[step]]
        name = "pay"
        type = "payment"
        amount = "amount"
        on_approved = "after"
        on_declined = "after"
        on_failed = "after"
        on_abandoned = "after"

        [[step]]
        name = "after"
        type = "collect"
        prompt = "Code?"
        into = "code"
        max_digits = 4
        on_failure = "bye"

        [[step]]
        name = "bye"
        type = "hangup"
    """
    engine = Engine(flow(text))
    started(engine)
    assert keys(engine, "4", 1.0) == [StopPrompt("t.intro"), StartPayment(100, {})]
    assert keys(engine, "111", 2.0) == []
    # The key typed ahead was dropped: the collect asks, and has nothing yet.
    assert engine.handle(PaymentDone("approved"), 3.0) == [say("after", "Code?")]


@pytest.mark.parametrize(
    ("amount", "message"),
    [
        (0, 'variable "amount" must be a positive amount in integer cents'),
        ("25.00", 'variable "amount" must be a positive amount in integer cents'),
    ],
)
def test_a_payment_needs_a_positive_amount_in_cents(amount: Value, message: str) -> None:
    engine = Engine(flow(PAYMENT), variables={"amount": amount})
    reason = f'flow "t": step "pay": {message}'
    assert started(engine) == [Outcome(Ending.ERROR, "t", "pay", reason)]


def test_a_transfer_says_its_prompt_then_hands_over_what_is_known() -> None:
    text = """
        [variables]
        account = "0042"

        [[step]]
        name = "agent"
        type = "transfer"
        queue = "billing"
        context = ["account"]
        prompt = { play = "hold.wav", key = "common.hold" }
    """
    engine = Engine(flow(text))
    assert started(engine) == [Play("common.hold", "hold.wav", True)]
    assert engine.handle(PromptFinished("common.hold"), 1.0) == [
        Transfer("billing", None, {"account": "0042"}),
        Outcome(Ending.TRANSFERRED, "t", "agent"),
    ]


def test_a_transfer_to_an_agent_without_a_prompt_is_immediate() -> None:
    engine = Engine(flow('[[step]]\nname = "x"\ntype = "transfer"\nagent = "a17"\n'))
    assert started(engine) == [Transfer(None, "a17", {}), Outcome(Ending.TRANSFERRED, "t", "x")]


SET = (
    """
    [variables]
    n = 1
    word = "a"

    [[step]]
    name = "change"
    type = "set"
    values = { word = "b", when = 2026-12-01 }
    copy = { copied = "word" }
    increment = ["n", "fresh"]
    clear = ["word"]
"""
    + BYE
)


def test_set_assigns_copies_increments_and_clears_in_that_order() -> None:
    engine = Engine(flow(SET))
    assert started(engine) == bye()
    assert dict(engine.variables) == {
        "n": 2,
        "when": datetime.date(2026, 12, 1),
        "copied": "b",
        "fresh": 1,
    }


@pytest.mark.parametrize(
    ("test", "value", "taken"),
    [
        ('equals = "1"', "1", True),
        ('equals = "1"', "2", False),
        ('not_equals = "1"', "2", True),
        ('in = ["1", "2"]', "2", True),
        ('in = ["1", "2"]', "3", False),
        ("greater_than = 10", 11, True),
        ("greater_than = 10", 10, False),
        ("less_than = 10", 9, True),
        ("less_than = 2026-01-01", datetime.date(2025, 12, 31), True),
        ("is_set = true", 0, True),
        ("is_set = false", 0, False),
    ],
)
def test_a_branch_takes_the_first_case_that_holds(test: str, value: Value, taken: bool) -> None:
    text = f"""
        inputs = ["v"]
        [[step]]
        name = "b"
        type = "branch"
        cases = [
            {{ variable = "v", {test}, next = "bye" }},
            {{ variable = "v", is_set = true, next = "failed" }},
        ]
        else = "failed"
    """
    engine = Engine(flow(text + BYE + FAILED), variables={"v": value})
    assert started(engine) == (bye() if taken else bye("failed", "failed"))


def test_is_set_false_holds_for_an_unset_variable() -> None:
    text = """
        [[step]]
        name = "b"
        type = "branch"
        cases = [{ variable = "v", is_set = false, next = "set_v" }]
        else = "bye"

        [[step]]
        name = "set_v"
        type = "set"
        values = { v = 1 }
        next = "b"
    """
    engine = Engine(flow(text + BYE))
    assert engine.step.name == "b"
    assert started(engine) == bye()
    assert engine.variables["v"] == 1


@pytest.mark.parametrize(
    ("text", "variables", "problem"),
    [
        ("Due {balance:currency}.", {}, 'variable "balance" is not set'),
        (
            "Due {balance:currency}.",
            {"balance": "42"},
            'variable "balance" is a string; {balance:currency} needs integer cents',
        ),
        (
            "Due {balance:currency}.",
            {"balance": True},
            'variable "balance" is a boolean; {balance:currency} needs integer cents',
        ),
        (
            "Key {balance:digits}.",
            {"balance": "12a"},
            'variable "balance" is a string; {balance:digits} needs digits',
        ),
        (
            "On {balance:date}.",
            {"balance": "tomorrow"},
            'variable "balance" is a string; {balance:date} needs a date',
        ),
    ],
)
def test_a_prompt_reading_a_missing_or_mistyped_variable_ends_the_flow_with_an_error(
    text: str, variables: dict[str, Value], problem: str
) -> None:
    # "balance" is set by a step, so the flow loads, but only after "s" reads it.
    source = f"""
        [[step]]
        name = "s"
        type = "say"
        text = "{text}"

        [[step]]
        name = "set_balance"
        type = "set"
        values = {{ balance = 1 }}
        next = "bye"
    """
    engine = Engine(flow(source + BYE), variables=variables)
    assert started(engine) == [Outcome(Ending.ERROR, "t", "s", f'flow "t": step "s": {problem}')]


def test_placeholders_render_as_typed_parts() -> None:
    text = (
        '[[step]]\nname = "s"\ntype = "say"\n'
        'text = "{a:currency} {n:number} {o:ordinal} {d:digits} {i:digits} {day:date} {iso:date}"\n'
    )
    variables: dict[str, Value] = {
        "a": 4210, "n": 3, "o": 2, "d": "0042", "i": 17,
        "day": datetime.date(2026, 12, 1), "iso": "2027-01-02",
    }  # fmt: skip
    source = f"inputs = {list(variables)!r}\n".replace("'", '"') + text + BYE
    engine = Engine(flow(source), variables=variables)
    parts = (
        Amount(4210), Number(3), Ordinal(2), Digits("0042"), Digits("17"),
        Date(datetime.date(2026, 12, 1)), Date(datetime.date(2027, 1, 2)),
    )  # fmt: skip
    assert started(engine) == [Say("t.s", parts, True)]


def test_a_condition_comparing_different_types_ends_the_flow_with_an_error() -> None:
    text = 'inputs = ["v"]\n[[step]]\nname = "b"\ntype = "branch"\n'
    text += 'cases = [{ variable = "v", equals = 1, next = "bye" }]\nelse = "failed"\n'
    engine = Engine(flow(text + BYE + FAILED), variables={"v": "1"})
    problem = 'variable "v" is a string; the condition compares it with an integer'
    assert started(engine) == [Outcome(Ending.ERROR, "t", "b", f'flow "t": step "b": {problem}')]


def test_a_set_and_branch_loop_that_never_waits_ends_with_an_error() -> None:
    text = """
        [[step]]
        name = "a"
        type = "set"
        increment = ["n"]

        [[step]]
        name = "b"
        type = "branch"
        cases = [{ variable = "n", less_than = 0, next = "bye" }]
        else = "a"
    """
    engine = Engine(flow(text + BYE))
    reason = (
        f'flow "t": step "b": {MAX_STEPS_WITHOUT_WAITING} steps ran without waiting for the '
        "caller: a set/branch loop never ends"
    )
    assert started(engine) == [Outcome(Ending.ERROR, "t", "b", reason)]


def test_goto_goes_on_in_another_flow_with_the_same_variables() -> None:
    first = flow('[[step]]\nname = "go"\ntype = "goto"\nflow = "other"\n')
    other = flow(
        'inputs = ["x"]\n[[step]]\nname = "s"\ntype = "say"\ntext = "{x:number}"\n' + BYE,
        name="other",
    )
    engine = Engine(first, flows={"other": other}, variables={"x": 5})
    assert started(engine) == [Say("other.s", (Number(5),), True)]
    assert engine.flow is other
    assert engine.handle(PromptFinished("other.s"), 1.0) == [
        Hangup(),
        Outcome(Ending.HUNG_UP, "other", "bye", "ok"),
    ]
    lacking = Engine(first, flows={"other": other})
    problem = 'flow "t": step "go": flow "other" needs input "x"'
    assert started(lacking) == [Outcome(Ending.ERROR, "t", "go", problem)]


def test_an_engine_refuses_missing_inputs_flows_and_bad_values_at_once() -> None:
    needs = flow('inputs = ["account"]\n' + BYE)
    with pytest.raises(FlowError) as missing:
        Engine(needs)
    assert str(missing.value) == 'flow "t": input "account" was not given'
    with pytest.raises(FlowError) as bad:
        Engine(needs, variables={"account": 1.5})  # type: ignore[dict-item]
    assert str(bad.value) == 'flow "t": variable "account" is a float'
    with pytest.raises(FlowError) as nowhere:
        Engine(flow('[[step]]\nname = "go"\ntype = "goto"\nflow = "gone"\n'))
    assert str(nowhere.value) == 'flows/t.toml: step "go": field "flow": no flow is named "gone"'


def test_a_fetch_answer_of_the_wrong_type_ends_the_flow_with_an_error() -> None:
    engine = Engine(flow(FETCH), variables={"account": "1"})
    started(engine)
    actions = engine.handle(FetchDone("account.verify", {"balance": 42.1}), 1.0)  # type: ignore[dict-item]
    problem = 'flow "t": step "lookup": fetch "account.verify" gave "balance" as a float'
    assert actions == [Outcome(Ending.ERROR, "t", "lookup", problem)]


def test_the_variables_view_is_read_only() -> None:
    engine = Engine(flow(SET))
    with pytest.raises(TypeError):
        engine.variables["n"] = 5  # type: ignore[index]
