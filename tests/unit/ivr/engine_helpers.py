"""Shared by the engine tests: small flows and shorthands for driving an engine by hand."""

from __future__ import annotations

import textwrap

from assistline.ivr.engine import Engine, Phase
from assistline.ivr.flow import Flow
from assistline.ivr.flow_load import parse_flow
from assistline.ivr.flow_messages import (
    DigitPressed,
    Ending,
    Hangup,
    Outcome,
    PromptFinished,
    Say,
    Started,
)
from assistline.ivr.utterance import Words


def flow(text: str, name: str = "t") -> Flow:
    return parse_flow(textwrap.dedent(text), name=name, source=f"flows/{name}.toml")


def state(engine: Engine) -> tuple[Phase, float | None]:
    """What the engine waits for, and until when (a call, so mypy does not narrow it)."""
    return engine.phase, engine.next_deadline


def say(key: str, text: str, barge_in: bool = True) -> Say:
    return Say(f"t.{key}", (Words(text),), barge_in)


def started(engine: Engine, now: float = 0.0) -> list[object]:
    return list(engine.handle(Started(), now))


def keys(engine: Engine, digits: str, now: float) -> list[object]:
    actions: list[object] = []
    for digit in digits:
        actions += engine.handle(DigitPressed(digit), now)
    return actions


def finished(engine: Engine, key: str, now: float) -> list[object]:
    return list(engine.handle(PromptFinished(f"t.{key}"), now))


BYE = """
    [[step]]
    name = "bye"
    type = "hangup"
    reason = "ok"
"""


FAILED = """
    [[step]]
    name = "failed"
    type = "hangup"
    reason = "failed"
"""


COLLECT = (
    """
    [[step]]
    name = "ask"
    type = "collect"
    prompt = "Code?"
    into = "code"
    min_digits = 2
    max_digits = 4
    retries = 1
    reprompt = "Code again?"
    invalid_prompt = "Invalid."
    no_input_prompt = "Nothing?"
    on_failure = "failed"
    next = "bye"
    """
    + BYE
    + FAILED
)


def bye(reason: str = "ok", step: str = "bye") -> list[object]:
    return [Hangup(), Outcome(Ending.HUNG_UP, "t", step, reason)]
