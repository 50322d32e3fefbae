"""The flow engine, driven event by event with exact times: prompts, barge-in, menus, collects."""

from __future__ import annotations

import pytest

from assistline.ivr.engine import Engine, Phase
from assistline.ivr.flow_messages import (
    CallerHungUp,
    DigitPressed,
    Ending,
    EngineError,
    Outcome,
    PaymentDone,
    PromptFinished,
    Started,
    StopPrompt,
)
from tests.unit.ivr.engine_helpers import (
    BYE,
    COLLECT,
    FAILED,
    bye,
    finished,
    flow,
    keys,
    say,
    started,
    state,
)


def test_a_prompt_plays_until_finished_then_the_flow_goes_on() -> None:
    engine = Engine(flow('[[step]]\nname = "hi"\ntype = "say"\ntext = "Hello."\n' + BYE))
    assert state(engine) == (Phase.READY, None)
    assert started(engine) == [say("hi", "Hello.")]
    assert state(engine) == (Phase.PROMPT, None)
    assert finished(engine, "other", 1.0) == []  # not the prompt playing
    assert finished(engine, "hi", 1.0) == bye()
    assert engine.outcome == Outcome(Ending.HUNG_UP, "t", "bye", "ok")
    assert engine.handle(CallerHungUp(), 2.0) == []  # after the end, events are ignored


def test_a_collect_takes_digits_and_stores_them_as_text() -> None:
    engine = Engine(flow(COLLECT))
    assert started(engine) == [say("ask", "Code?")]
    assert state(engine) == (Phase.PROMPT, None)  # nothing timed while the prompt plays
    assert finished(engine, "ask", 2.0) == []
    assert state(engine) == (Phase.INPUT, 7.0)
    assert keys(engine, "0", 3.0) == []
    assert state(engine) == (Phase.INPUT, 6.0)  # inter-digit timeout from the key
    assert keys(engine, "42#", 4.0) == bye()
    assert engine.variables["code"] == "042"


def test_max_digits_ends_the_input_without_a_terminator() -> None:
    engine = Engine(flow(COLLECT))
    started(engine)
    finished(engine, "ask", 0.0)
    assert keys(engine, "1234", 1.0) == bye()
    assert engine.variables["code"] == "1234"


def test_no_key_before_the_first_digit_timeout_says_no_input_then_reprompts() -> None:
    engine = Engine(flow(COLLECT))
    started(engine)
    finished(engine, "ask", 2.0)
    assert engine.advance(6.999) == []
    assert engine.advance(7.0) == [say("ask.no_input", "Nothing?")]
    assert finished(engine, "ask.no_input", 8.0) == [say("ask.reprompt", "Code again?")]
    assert finished(engine, "ask.reprompt", 9.0) == []
    assert state(engine) == (Phase.INPUT, 14.0)
    # The last attempt fails too: on_failure, without the failure prompt.
    assert engine.advance(14.0) == bye("failed", "failed")


def test_inter_digit_timeout_accepts_enough_digits() -> None:
    engine = Engine(flow(COLLECT))
    started(engine)
    finished(engine, "ask", 0.0)
    keys(engine, "12", 1.0)
    assert engine.advance(3.999) == []
    assert engine.advance(4.0) == bye()
    assert engine.variables["code"] == "12"


def test_inter_digit_timeout_with_too_few_digits_is_invalid() -> None:
    engine = Engine(flow(COLLECT))
    started(engine)
    finished(engine, "ask", 0.0)
    keys(engine, "1", 1.0)
    assert engine.advance(4.0) == [say("ask.invalid", "Invalid.")]
    assert "code" not in engine.variables


def test_a_terminator_alone_is_invalid_input_not_no_input() -> None:
    engine = Engine(flow(COLLECT))
    started(engine)
    finished(engine, "ask", 0.0)
    assert keys(engine, "#", 1.0) == [say("ask.invalid", "Invalid.")]


def test_the_overall_timeout_ends_slow_typing() -> None:
    engine = Engine(flow(COLLECT.replace('into = "code"', 'into = "code"\noverall_timeout = 5')))
    started(engine)
    finished(engine, "ask", 10.0)
    assert state(engine) == (Phase.INPUT, 15.0)
    keys(engine, "1", 12.0)
    keys(engine, "2", 14.5)
    assert state(engine) == (Phase.INPUT, 15.0)  # the inter-digit one (17.5) comes later
    assert engine.advance(15.0) == bye()
    assert engine.variables["code"] == "12"


def test_a_pattern_makes_other_digits_invalid() -> None:
    engine = Engine(flow(COLLECT.replace('into = "code"', 'into = "code"\npattern = "[0-9]+"')))
    started(engine)
    finished(engine, "ask", 0.0)
    assert keys(engine, "1*#", 1.0) == [say("ask.invalid", "Invalid.")]
    finished(engine, "ask.invalid", 2.0)
    finished(engine, "ask.reprompt", 3.0)
    assert keys(engine, "19#", 4.0) == bye()


def test_a_key_during_a_barge_in_prompt_stops_it_and_is_the_first_digit() -> None:
    engine = Engine(flow(COLLECT))
    started(engine)
    assert keys(engine, "7", 0.5) == [StopPrompt("t.ask")]
    assert state(engine) == (Phase.INPUT, 3.5)
    assert keys(engine, "8#", 1.0) == bye()
    assert engine.variables["code"] == "78"


def test_barging_into_the_failure_prompt_skips_the_reprompt() -> None:
    engine = Engine(flow(COLLECT))
    started(engine)
    finished(engine, "ask", 0.0)
    keys(engine, "#", 1.0)
    assert keys(engine, "5", 1.5) == [StopPrompt("t.ask.invalid")]
    assert keys(engine, "55#", 2.0) == bye()


TYPE_AHEAD = (
    """
    [[step]]
    name = "notice"
    type = "say"
    text = "Calls are recorded."
    barge_in = false

    [[step]]
    name = "intro"
    type = "say"
    text = "Welcome."

    [[step]]
    name = "info"
    type = "say"
    text = "Our hours are nine to five."
    """
    + COLLECT
)


def test_keys_during_a_prompt_without_barge_in_are_dropped() -> None:
    engine = Engine(flow(TYPE_AHEAD))
    assert started(engine) == [say("notice", "Calls are recorded.", barge_in=False)]
    assert keys(engine, "12", 1.0) == []
    assert finished(engine, "notice", 2.0) == [say("intro", "Welcome.")]


def test_keys_typed_ahead_skip_barge_in_prompts_until_a_collect_takes_them() -> None:
    engine = Engine(flow(TYPE_AHEAD))
    started(engine)
    finished(engine, "notice", 2.0)
    # "info" and the collect's prompt are skipped; the collect takes all three keys.
    assert keys(engine, "1", 2.5) == [StopPrompt("t.intro")]
    assert keys(engine, "23#", 3.0) == bye()
    assert engine.variables["code"] == "123"


MENU = (
    """
    [variables]
    vip = false

    [[step]]
    name = "menu"
    type = "menu"
    prompt = "Main menu."
    into = "choice"
    timeout = 4
    retries = 1
    invalid_prompt = "Not a choice."
    no_match = "failed"

    [[step.options]]
    digit = "1"
    prompt = "Press 1 to pay."
    next = "bye"

    [[step.options]]
    digit = "9"
    prompt = "Press 9 for the VIP line."
    when = { variable = "vip", equals = true }
    next = "failed"

    [[step.options]]
    digit = "#"
    next = "bye"
    """
    + BYE
    + FAILED
)


def test_a_menu_says_its_prompt_and_each_offered_option_then_takes_one_key() -> None:
    engine = Engine(flow(MENU))
    assert started(engine) == [say("menu", "Main menu.")]
    assert finished(engine, "menu", 1.0) == [say("menu.1", "Press 1 to pay.")]
    assert finished(engine, "menu.1", 2.0) == []  # option 9 is not offered: vip is false
    assert state(engine) == (Phase.INPUT, 6.0)
    assert keys(engine, "#", 3.0) == bye()
    assert engine.variables["choice"] == "#"


def test_a_menu_refuses_a_key_it_does_not_offer_then_gives_up() -> None:
    engine = Engine(flow(MENU))
    started(engine)
    # 9 is not offered: the invalid prompt, then the whole question again (no reprompt).
    assert keys(engine, "9", 0.5) == [StopPrompt("t.menu"), say("menu.invalid", "Not a choice.")]
    assert engine.handle(PromptFinished("t.menu"), 0.6) == []  # the stopped prompt's late end
    assert finished(engine, "menu.invalid", 1.0) == [say("menu", "Main menu.")]
    assert finished(engine, "menu", 2.0) == [say("menu.1", "Press 1 to pay.")]
    assert finished(engine, "menu.1", 3.0) == []
    assert keys(engine, "5", 4.0) == bye("failed", "failed")
    assert "choice" not in engine.variables


def test_a_menu_offers_an_option_when_its_condition_holds() -> None:
    engine = Engine(flow(MENU), variables={"vip": True})
    started(engine)
    finished(engine, "menu", 1.0)
    assert finished(engine, "menu.1", 2.0) == [say("menu.9", "Press 9 for the VIP line.")]
    assert keys(engine, "9", 2.5) == [StopPrompt("t.menu.9"), *bye("failed", "failed")]


def test_a_menu_without_a_key_says_nothing_new_and_goes_to_no_match() -> None:
    engine = Engine(flow(MENU))
    started(engine)
    finished(engine, "menu", 0.0)
    finished(engine, "menu.1", 0.0)
    # No no_input_prompt: only the question again.
    assert engine.advance(4.0) == [say("menu", "Main menu.")]
    finished(engine, "menu", 5.0)
    finished(engine, "menu.1", 6.0)
    assert engine.advance(10.0) == bye("failed", "failed")
    assert "choice" not in engine.variables


def test_the_caller_hanging_up_mid_prompt_ends_the_flow_there() -> None:
    engine = Engine(flow(COLLECT))
    started(engine)
    assert engine.handle(CallerHungUp(), 1.0) == [Outcome(Ending.CALLER_HUNG_UP, "t", "ask")]
    assert state(engine) == (Phase.ENDED, None)
    assert engine.handle(PromptFinished("t.ask"), 2.0) == []
    assert engine.advance(100.0) == []


def test_the_caller_may_hang_up_before_the_flow_starts() -> None:
    engine = Engine(flow(COLLECT))
    assert engine.handle(CallerHungUp(), 0.0) == [Outcome(Ending.CALLER_HUNG_UP, "t", "ask")]
    assert engine.handle(Started(), 0.0) == []


def test_events_out_of_order_are_the_shells_bug() -> None:
    engine = Engine(flow(COLLECT))
    with pytest.raises(EngineError, match="^the flow has not started: send Started first$"):
        engine.handle(DigitPressed("1"), 0.0)
    started(engine)
    with pytest.raises(EngineError, match="^the flow has already started$"):
        engine.handle(Started(), 0.0)


def test_digit_events_mask_the_key_and_refuse_what_is_not_a_key() -> None:
    assert repr(DigitPressed("7")) == "DigitPressed(digit='*')"
    assert "7" not in str(DigitPressed("7"))
    with pytest.raises(EngineError, match="^DigitPressed takes one key of 0-9, \\*, #, A-D$"):
        DigitPressed("12")
    with pytest.raises(EngineError):
        PaymentDone("maybe")  # type: ignore[arg-type]
