"""The flow runner on the example flow: scripted calls and their exact transcripts."""

from __future__ import annotations

import datetime

import pytest

from assistline.ivr.flow import Flow
from assistline.ivr.flow_load import BUNDLED_FLOWS, load_flow
from assistline.ivr.flow_messages import Ending, Outcome, StartPayment
from assistline.ivr.flow_runner import (
    FakeClock,
    FlowRunner,
    Item,
    ScriptError,
    answer,
    fail,
    hang_up,
    pay,
    press,
    run_flow,
    text_of,
    wait,
)
from assistline.ivr.utterance import Amount, Date, Digits, Number, Ordinal, Words

CALLER = {"caller_number": "5551234567"}
VERIFIED = answer("account.verify", verified=True, balance=4210, minimum_due=2500)
WELCOME = "0.000 play example.welcome: welcome.wav (no barge-in)"
ASK_ACCOUNT = "say example.ask_account: Please enter your account number, then press pound."
ASK_ZIP = "say example.ask_zip: Please enter the five digit ZIP code of your billing address."
FETCH = "fetch account.verify {'account': '123456', 'zip': '12345', 'caller_number': '5551234567'}"
ON_HOLD = "say example.to_agent: Please hold for an agent."


@pytest.fixture(scope="module")
def example() -> Flow:
    return load_flow(BUNDLED_FLOWS / "example.toml")


def test_a_caller_pays_the_minimum_and_hears_the_confirmation(example: Flow) -> None:
    script: list[Item] = [
        press("123456#12345"),
        VERIFIED,
        press("2"),
        pay("approved", confirmation="99812", last4="4242"),
    ]
    run = run_flow(example, script, variables=CALLER)
    assert run.prompts == [
        "example.welcome",
        "example.ask_account",
        "example.ask_zip",
        "example.say_balance",
        "example.main_menu.1",
        "example.main_menu.2",
        "example.main_menu.0",
        "example.main_menu.star",
        "example.thanks",
        "common.goodbye",
    ]
    assert run.said[-2:] == [
        "Thank you. Your payment of $25.00 with the card ending in 4242 is approved. "
        "Your confirmation number is 99812.",
        "Thank you for calling. Goodbye.",
    ]
    assert StartPayment(2500, {"account": "123456"}) in run.actions
    assert run.outcome == Outcome(Ending.HUNG_UP, "example", "goodbye", "done")
    assert run.variables["choice"] == "2"


def test_barge_in_timing_and_a_declined_card_on_a_clock(example: Flow) -> None:
    script: list[Item] = [
        press("9"),  # during the notice, which takes no barge-in: dropped
        wait(2),
        press("0042"),  # barges into the account prompt
        wait(1),
        press("17#"),
        press("12345"),
        answer("account.verify", verified=True, balance=4210),
        wait(1.5),
        press("1"),  # barges into the balance: the menu takes it as its answer
        pay("declined"),
        wait(3),
        press("0"),
    ]
    run = run_flow(example, script, variables=CALLER, prompt_seconds=2.0)
    assert run.lines() == [
        WELCOME,
        f"2.000 {ASK_ACCOUNT}",
        "2.000 stop example.ask_account",
        f"3.000 {ASK_ZIP}",
        "3.000 stop example.ask_zip",
        "3.000 " + FETCH.replace("'123456'", "'004217'"),
        "3.000 say example.say_balance: Your balance is $42.10.",
        "4.500 stop example.say_balance",
        "4.500 payment 4210 {'account': '004217'}",
        "4.500 say example.declined: Sorry, that card was declined.",
        # No minimum due: option 2 is not offered.
        "6.500 say example.main_menu.1: To pay the full balance of $42.10, press 1.",
        "7.500 stop example.main_menu.1",
        f"7.500 {ON_HOLD}",
        "9.500 transfer to queue billing {'account': '004217', 'balance': 4210, 'attempts': 0}",
        "9.500 transferred at example.to_agent",
    ]


def test_invalid_input_then_no_input_exhausts_the_retries(example: Flow) -> None:
    script: list[Item] = [press("123456#"), wait(2), press("2"), wait(15)]
    run = run_flow(example, script, variables=CALLER, prompt_seconds=1.0)
    assert run.lines() == [
        WELCOME,  # the keys pressed during it are dropped
        f"1.000 {ASK_ACCOUNT}",
        # "2" at 2.0, then the inter-digit timeout: one digit of at least six.
        "5.000 say example.ask_account.invalid: Sorry, that is not an account number.",
        f"6.000 {ASK_ACCOUNT}",
        # The first-digit timeout, 5 s after the prompt ended.
        "12.000 say example.ask_account.no_input: Sorry, I did not hear anything.",
        f"13.000 {ASK_ACCOUNT}",
        f"19.000 {ON_HOLD}",
        "20.000 transfer to queue billing {'attempts': 0}",  # unset variables left out
        "20.000 transferred at example.to_agent",
    ]


def test_three_unverified_attempts_go_to_an_agent(example: Flow) -> None:
    unverified = answer("account.verify", verified=False)
    script: list[Item] = [press("123456#12345"), unverified] * 3
    run = run_flow(example, script, variables=CALLER)
    assert run.prompts.count("example.not_found") == 2
    assert run.lines()[-3:] == [
        f"0.000 {ON_HOLD}",
        "0.000 transfer to queue billing {'attempts': 3}",
        "0.000 transferred at example.to_agent",
    ]


def test_a_failed_fetch_goes_to_an_agent(example: Flow) -> None:
    run = run_flow(example, [press("123456#12345"), fail("account.verify")], variables=CALLER)
    assert run.lines() == [
        WELCOME,
        f"0.000 {ASK_ACCOUNT}",
        f"0.000 {ASK_ZIP}",
        f"0.000 {FETCH}",
        f"0.000 {ON_HOLD}",
        "0.000 transfer to queue billing {'account': '123456', 'attempts': 0}",
        "0.000 transferred at example.to_agent",
    ]


def test_an_unanswered_fetch_times_out_after_its_timeout(example: Flow) -> None:
    run = run_flow(example, [press("123456#12345")], variables=CALLER)
    assert run.lines()[3:5] == [f"0.000 {FETCH}", f"10.000 {ON_HOLD}"]


def test_star_starts_the_flow_again_with_what_it_knows(example: Flow) -> None:
    script: list[Item] = [press("123456#12345"), VERIFIED, press("*"), hang_up()]
    run = run_flow(example, script, variables=CALLER)
    assert run.prompts[-2:] == ["example.welcome", "example.ask_account"]
    assert run.outcome == Outcome(Ending.CALLER_HUNG_UP, "example", "ask_account")
    assert run.variables["balance"] == 4210


def test_the_caller_hangs_up_during_a_prompt(example: Flow) -> None:
    script: list[Item] = [wait(1), press("5"), wait(0.5), hang_up()]
    run = run_flow(example, script, variables=CALLER, durations={"example.welcome": 3.0})
    assert run.lines() == [WELCOME, "1.500 caller_hung_up at example.welcome"]


def test_a_run_stops_where_the_flow_waits_for_what_has_no_timeout(example: Flow) -> None:
    run = run_flow(example, [press("123456#12345"), VERIFIED, press("2")], variables=CALLER)
    assert run.outcome is None
    assert run.lines()[-1] == "0.000 payment 2500 {'account': '123456'}"


def test_a_script_that_does_not_fit_the_flow_says_what_the_flow_waits_for(example: Flow) -> None:
    with pytest.raises(ScriptError) as early:
        run_flow(example, [VERIFIED], variables=CALLER, prompt_seconds=2.0)
    assert str(early.value) == (
        f'the script has {VERIFIED} but the flow waits for prompt "example.welcome"'
    )
    with pytest.raises(ScriptError) as no_payment:
        run_flow(example, [pay("approved")], variables=CALLER)
    assert str(no_payment.value) == (
        "the script has Pay(outcome='approved', fields={}) but the flow waits for keys at "
        'step "ask_account"'
    )
    with pytest.raises(ScriptError) as late:
        run_flow(example, [hang_up(), press("1")], variables=CALLER)
    assert str(late.value) == "the script goes on after the flow ended: Press(keys='1')"


def test_a_runner_can_be_driven_item_by_item(example: Flow) -> None:
    clock = FakeClock(100.0)
    runner = FlowRunner(example, variables=CALLER, clock=clock, prompt_seconds=1.0)
    assert runner.waiting_for() == "the call to start"
    runner.start()
    assert runner.waiting_for() == 'prompt "example.welcome"'
    runner.do(wait(1))
    runner.do(press("123456#12345"))
    assert (clock.time(), runner.waiting_for()) == (101.0, 'fetch "account.verify"')
    runner.do(hang_up())
    assert runner.waiting_for() == "nothing: it ended"
    assert runner.result().lines()[-1] == "101.000 caller_hung_up at example.verify"


def test_the_fake_clock_moves_only_forward() -> None:
    clock = FakeClock()
    clock.advance(1.5)
    assert clock.time() == 1.5
    with pytest.raises(ValueError, match="^a clock never goes back$"):
        clock.advance(-0.1)


def test_text_of_writes_each_part_briefly() -> None:
    utterance = (
        Words("Pay"), Amount(4210), Words("by the"), Ordinal(1), Words(","), Ordinal(12),
        Ordinal(23), Number(3), Digits("0042"), Date(datetime.date(2026, 12, 1)), Words("."),
        Amount(-5),
    )  # fmt: skip
    assert text_of(utterance) == "Pay $42.10 by the 1st, 12th 23rd 3 0042 2026-12-01. -$0.05"
