"""What goes into the flow engine (events) and what comes out (actions, and the outcome).

The engine (:mod:`assistline.ivr.engine`) is told what happened on the call
and answers with actions for its shell to carry out. The shell turns
:class:`Say` and :class:`Play` into the media worker's ``play`` commands,
reports :class:`PromptFinished` when one played to its end (never for one it
stopped on :class:`StopPrompt`), reports each keypad key as a
:class:`DigitPressed` as the worker's ``digit`` events arrive, answers
:class:`Fetch` with :class:`FetchDone` or :class:`FetchFailed`, hands
:class:`StartPayment` to secure capture and reports its
:class:`PaymentDone`. :class:`Transfer` and :class:`Hangup` end the flow, and
every flow ends with exactly one :class:`Outcome`, the last action it emits.

Card data never enters the engine: secure capture owns the keypad while a
payment runs, and only its result (a confirmation number, the last four
digits) comes back. A :class:`DigitPressed` may still be sensitive (an
account number), so its ``repr`` masks the key, as the worker protocol's
``digit`` event does.
"""

from __future__ import annotations

import dataclasses
import enum
from collections.abc import Mapping

from assistline.errors import AssistlineError
from assistline.ivr.flow import PAYMENT_OUTCOMES, PaymentOutcome, Value
from assistline.ivr.utterance import Utterance

#: Keys a keypad sends (A-D from the few phones that have them).
KEYPAD = "0123456789*#ABCD"


class EngineError(AssistlineError, ValueError):
    """The flow engine was given an event it cannot take; the shell driving it has a bug."""


@dataclasses.dataclass(frozen=True, slots=True)
class Started:
    """The call is answered: the flow starts at its first step."""


@dataclasses.dataclass(frozen=True, slots=True)
class PromptFinished:
    """The prompt with this key played to its end."""

    key: str


@dataclasses.dataclass(frozen=True, slots=True, repr=False)
class DigitPressed:
    """The caller pressed a key; ``repr`` masks it."""

    digit: str

    def __post_init__(self) -> None:
        if len(self.digit) != 1 or self.digit not in KEYPAD:
            raise EngineError("DigitPressed takes one key of 0-9, *, #, A-D")

    def __repr__(self) -> str:
        return "DigitPressed(digit='*')"


@dataclasses.dataclass(frozen=True, slots=True)
class FetchDone:
    """The application answered a :class:`Fetch`; ``values`` set the step's results."""

    request: str
    values: Mapping[str, Value] = dataclasses.field(default_factory=dict)


@dataclasses.dataclass(frozen=True, slots=True)
class FetchFailed:
    """The application could not answer a :class:`Fetch`; the flow goes to ``on_error``."""

    request: str
    reason: str


@dataclasses.dataclass(frozen=True, slots=True)
class PaymentDone:
    """Secure capture ended: how, and its result fields (never card data beyond the last four)."""

    outcome: PaymentOutcome
    fields: Mapping[str, Value] = dataclasses.field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.outcome not in PAYMENT_OUTCOMES:
            raise EngineError("PaymentDone's outcome is approved, declined, failed or abandoned")


@dataclasses.dataclass(frozen=True, slots=True)
class CallerHungUp:
    """The caller hung up: the flow ends wherever it is."""


Event = (
    Started | PromptFinished | DigitPressed | FetchDone | FetchFailed | PaymentDone | CallerHungUp
)


@dataclasses.dataclass(frozen=True, slots=True)
class Say:
    """Speak ``utterance`` (or the recording named ``key``, when one exists)."""

    key: str
    utterance: Utterance
    barge_in: bool


@dataclasses.dataclass(frozen=True, slots=True)
class Play:
    """Play a WAV ``file`` (relative to the prompts directory)."""

    key: str
    file: str
    barge_in: bool


@dataclasses.dataclass(frozen=True, slots=True)
class StopPrompt:
    """Stop the prompt playing (the caller barged in); it gets no :class:`PromptFinished`."""

    key: str


@dataclasses.dataclass(frozen=True, slots=True)
class Fetch:
    """Ask the application ``request`` with ``args``; answer with FetchDone or FetchFailed."""

    request: str
    args: Mapping[str, Value]


@dataclasses.dataclass(frozen=True, slots=True)
class StartPayment:
    """Start secure capture for ``amount`` cents; report its end with :class:`PaymentDone`."""

    amount: int
    args: Mapping[str, Value]


@dataclasses.dataclass(frozen=True, slots=True)
class Transfer:
    """Send the call to ``queue`` or to ``agent`` (one is None), with ``context`` for the agent."""

    queue: str | None
    agent: str | None
    context: Mapping[str, Value]


@dataclasses.dataclass(frozen=True, slots=True)
class Hangup:
    """End the call."""


class Ending(enum.StrEnum):
    """How a flow ended."""

    TRANSFERRED = "transferred"
    HUNG_UP = "hung_up"
    CALLER_HUNG_UP = "caller_hung_up"
    ERROR = "error"


@dataclasses.dataclass(frozen=True, slots=True)
class Outcome:
    """How the flow ended, at which step, and why (a hangup's reason, an error's message).

    After an ``error`` the call is still up and nothing was said: the shell
    decides (an apology and a transfer to the default queue, say).
    """

    ending: Ending
    flow: str
    step: str
    reason: str = ""


Action = Say | Play | StopPrompt | Fetch | StartPayment | Transfer | Hangup | Outcome
