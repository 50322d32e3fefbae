"""IVR flows as data: the validated, immutable model the flow engine runs.

A :class:`Flow` is what :mod:`assistline.ivr.flow_load` makes of a TOML file
once every check has passed: steps in file order (the first is where the flow
starts), every target naming a step that exists, every ``next`` filled in
(a step without one goes on to the step after it in the file), every prompt
given its stable key. Nothing here is checked again at run time except what
only the call can tell: whether a variable is set, and whether it holds the
type a prompt or condition needs (see :mod:`assistline.ivr.engine`).

A variable holds a :data:`Value`: ``str``, ``int``, ``bool`` or
``datetime.date``. Amounts of money are ``int`` cents, never floats;
collected digits are ``str`` (an account number "0042" keeps its zeros).

Prompt keys are ``"<flow>.<step>"`` for a step's main prompt and
``"<flow>.<step>.<role>"`` for the others (``reprompt``, ``invalid``,
``no_input``, and a menu option's key name: ``1`` … ``9``, ``0``, ``star``,
``pound``), unless the file gives one. A recorded WAV named after the key
replaces the text-to-speech rendering later without touching the flow.
"""

from __future__ import annotations

import dataclasses
import datetime
import re
from collections.abc import Mapping
from types import MappingProxyType
from typing import Literal

from assistline.errors import AssistlineError

Value = str | int | bool | datetime.date
#: Keys a menu option or a terminator may name (A-D exist on few phones: not used).
MENU_KEYS = "0123456789*#"
#: What a placeholder's variable is read as (see :mod:`assistline.ivr.utterance`).
Kind = Literal["currency", "number", "ordinal", "digits", "date"]
KINDS: tuple[Kind, ...] = ("currency", "number", "ordinal", "digits", "date")
#: What a condition checks.
Test = Literal["equals", "not_equals", "greater_than", "less_than", "in", "is_set"]
TESTS: tuple[Test, ...] = ("equals", "not_equals", "greater_than", "less_than", "in", "is_set")
PaymentOutcome = Literal["approved", "declined", "failed", "abandoned"]
PAYMENT_OUTCOMES: tuple[PaymentOutcome, ...] = ("approved", "declined", "failed", "abandoned")


class FlowError(AssistlineError, ValueError):
    """An IVR flow is invalid; the message names the file, the step and the field to fix."""


@dataclasses.dataclass(frozen=True, slots=True)
class Placeholder:
    """``{variable:kind}`` in a prompt's text: the variable's value, read as ``kind``."""

    variable: str
    kind: Kind


Template = tuple[str | Placeholder, ...]
"""A prompt's text: literal words (stripped, never empty) and placeholders."""


@dataclasses.dataclass(frozen=True, slots=True)
class Prompt:
    """Something the caller hears: text to say (``text``) or a WAV file to play (``file``)."""

    key: str
    text: Template = ()
    file: str = ""


@dataclasses.dataclass(frozen=True, slots=True)
class Condition:
    """A check on one variable; ``value`` is a tuple for ``in`` and a bool for ``is_set``."""

    variable: str
    test: Test
    value: Value | tuple[Value, ...]


@dataclasses.dataclass(frozen=True, slots=True)
class PromptStep:
    """``say`` or ``play``: one prompt, then ``next``."""

    name: str
    prompt: Prompt
    barge_in: bool
    next: str


@dataclasses.dataclass(frozen=True, slots=True)
class Option:
    """A menu choice: the key, where it goes, what announces it, when it is offered."""

    digit: str
    next: str
    prompt: Prompt | None = None
    when: Condition | None = None


@dataclasses.dataclass(frozen=True, slots=True)
class MenuStep:
    """``menu``: one key picks an option; after ``retries`` failed attempts, ``no_match``.

    The caller hears ``prompt`` and then the prompts of the options offered
    (those whose ``when`` holds); a key of an option not offered is invalid.
    """

    name: str
    prompt: Prompt | None
    options: tuple[Option, ...]
    into: str | None
    timeout: float
    retries: int
    reprompt: Prompt | None
    invalid_prompt: Prompt | None
    no_input_prompt: Prompt | None
    barge_in: bool
    no_match: str


@dataclasses.dataclass(frozen=True, slots=True)
class CollectStep:
    """``collect``: digits into a variable; after ``retries`` failed attempts, ``on_failure``."""

    name: str
    prompt: Prompt
    into: str
    min_digits: int
    max_digits: int
    terminator: str
    first_digit_timeout: float
    inter_digit_timeout: float
    overall_timeout: float | None
    pattern: re.Pattern[str] | None
    retries: int
    reprompt: Prompt | None
    invalid_prompt: Prompt | None
    no_input_prompt: Prompt | None
    barge_in: bool
    next: str
    on_failure: str


@dataclasses.dataclass(frozen=True, slots=True)
class Case:
    """A branch's case: when ``condition`` holds, go to ``next``."""

    condition: Condition
    next: str


@dataclasses.dataclass(frozen=True, slots=True)
class BranchStep:
    """``branch``: the first case that holds picks the next step, else ``otherwise``."""

    name: str
    cases: tuple[Case, ...]
    otherwise: str


@dataclasses.dataclass(frozen=True, slots=True)
class SetStep:
    """``set``: literal ``values``, then ``copy`` (target, source), ``increment``, ``clear``."""

    name: str
    values: tuple[tuple[str, Value], ...]
    copy: tuple[tuple[str, str], ...]
    increment: tuple[str, ...]
    clear: tuple[str, ...]
    next: str


@dataclasses.dataclass(frozen=True, slots=True)
class FetchStep:
    """``fetch``: ask the application ``request`` with ``args``; ``results`` become variables."""

    name: str
    request: str
    args: tuple[str, ...]
    results: tuple[str, ...]
    timeout: float
    next: str
    on_error: str


@dataclasses.dataclass(frozen=True, slots=True)
class PaymentStep:
    """``payment``: secure capture takes ``amount`` (int cents); its outcome picks the next step."""

    name: str
    amount: str
    args: tuple[str, ...]
    results: tuple[str, ...]
    on_approved: str
    on_declined: str
    on_failed: str
    on_abandoned: str

    def target(self, outcome: PaymentOutcome) -> str:
        """The step an outcome goes to."""
        return {
            "approved": self.on_approved,
            "declined": self.on_declined,
            "failed": self.on_failed,
            "abandoned": self.on_abandoned,
        }[outcome]


@dataclasses.dataclass(frozen=True, slots=True)
class TransferStep:
    """``transfer``: an optional prompt, then the call goes to ``queue`` or ``agent``; the end."""

    name: str
    queue: str | None
    agent: str | None
    context: tuple[str, ...]
    prompt: Prompt | None
    barge_in: bool


@dataclasses.dataclass(frozen=True, slots=True)
class HangupStep:
    """``hangup``: an optional goodbye, then the call ends for ``reason``; the end."""

    name: str
    prompt: Prompt | None
    reason: str
    barge_in: bool


@dataclasses.dataclass(frozen=True, slots=True)
class GotoStep:
    """``goto``: go on at the first step of another flow, with the same variables."""

    name: str
    flow: str


Step = (
    PromptStep
    | MenuStep
    | CollectStep
    | BranchStep
    | SetStep
    | FetchStep
    | PaymentStep
    | TransferStep
    | HangupStep
    | GotoStep
)


def targets(step: Step) -> tuple[tuple[str, str], ...]:
    """The steps ``step`` may go to, as (field, step name), in field order."""
    match step:
        case PromptStep() | SetStep() | FetchStep() | CollectStep():
            found = [("next", step.next)]
            if isinstance(step, FetchStep):
                found.append(("on_error", step.on_error))
            if isinstance(step, CollectStep):
                found.append(("on_failure", step.on_failure))
            return tuple(found)
        case MenuStep():
            options = [(f"options[{i}].next", o.next) for i, o in enumerate(step.options)]
            return (*options, ("no_match", step.no_match))
        case BranchStep():
            cases = [(f"cases[{i}].next", c.next) for i, c in enumerate(step.cases)]
            return (*cases, ("else", step.otherwise))
        case PaymentStep():
            return tuple((f"on_{o}", step.target(o)) for o in PAYMENT_OUTCOMES)
        case TransferStep() | HangupStep() | GotoStep():
            return ()


@dataclasses.dataclass(frozen=True, slots=True)
class Flow:
    """A validated flow: its steps in file order, the first being where it starts.

    ``inputs`` are variables the application must give when the flow starts
    (the caller's account, say); ``defaults`` are variables' starting values.
    """

    name: str
    source: str
    steps: tuple[Step, ...]
    inputs: tuple[str, ...] = ()
    defaults: tuple[tuple[str, Value], ...] = ()
    description: str = ""
    _by_name: Mapping[str, Step] = dataclasses.field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not self.steps:
            raise FlowError(f'{self.source}: field "step": a flow needs at least one step')
        by_name = MappingProxyType({step.name: step for step in self.steps})
        object.__setattr__(self, "_by_name", by_name)

    @property
    def first(self) -> Step:
        """Where the flow starts."""
        return self.steps[0]

    def step(self, name: str) -> Step:
        """The step called ``name`` (a flow that loaded names only steps it has)."""
        return self._by_name[name]


def check_gotos(flows: Mapping[str, Flow]) -> None:
    """Refuse a ``goto`` naming a flow that ``flows`` lacks, naming the file and step."""
    for flow in flows.values():
        for step in flow.steps:
            if isinstance(step, GotoStep) and step.flow not in flows:
                raise FlowError(
                    f'{flow.source}: step "{step.name}": field "flow": no flow is named '
                    f'"{step.flow}"'
                )
