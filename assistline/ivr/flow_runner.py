"""Running a flow without a call: a fake clock, a script, and the transcript it produced.

Shipped in the package (as procrastinate ships its in-memory connector) so
that whoever writes a flow can test it the way assistline tests its own::

    run = run_flow(load_flow("flows/pay.toml"), [
        answer("account.verify", verified=True, balance=4210),
        press("1"),
        wait(5),
        pay("approved", confirmation="A1B2"),
    ])
    assert run.prompts == ["pay.welcome", "pay.menu", "pay.thanks"]
    assert run.outcome == Outcome(Ending.HUNG_UP, "pay", "thanks", "paid")

The runner plays the media worker and the application. Prompts take
``prompt_seconds`` (0 by default, so a flow runs straight to where it waits
for the caller; give a prompt time, per key in ``durations``, to press keys
while it plays and test barge-in). Time moves only in :func:`wait`, firing
prompt ends and the engine's timeouts at their exact times on a
:class:`FakeClock`. :func:`answer`, :func:`fail` and :func:`pay` must come
when the flow waits for them, else :class:`ScriptError` says what it waits
for. After the script, the runner lets time run (up to ``until`` seconds) so
timeouts play out, and stops when the flow ends or nothing is timed.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Iterable, Mapping
from typing import Protocol

from assistline.errors import AssistlineError
from assistline.ivr.engine import Engine, Phase
from assistline.ivr.flow import FetchStep, Flow, PaymentOutcome, Value
from assistline.ivr.flow_messages import (
    Action,
    CallerHungUp,
    DigitPressed,
    Event,
    Fetch,
    FetchDone,
    FetchFailed,
    Hangup,
    Outcome,
    PaymentDone,
    Play,
    PromptFinished,
    Say,
    Started,
    StartPayment,
    StopPrompt,
    Transfer,
)
from assistline.ivr.utterance import Amount, Date, Digits, Number, Ordinal, Utterance, Words

#: Steps of the runner's own loop without time passing: more means a bug.
_MAX_TURNS = 10_000


class ScriptError(AssistlineError, AssertionError):
    """The script does not fit the flow; the message says what the flow was waiting for."""


class Clock(Protocol):
    """A monotonic clock in seconds; ``asyncio``'s loop is one (``loop.time``)."""

    def time(self) -> float:
        """Now."""
        ...


class FakeClock:
    """A clock that moves only when told to."""

    def __init__(self, start: float = 0.0) -> None:
        self._now = start

    def time(self) -> float:
        """Now."""
        return self._now

    def advance(self, seconds: float) -> None:
        """Move ``seconds`` on (never back)."""
        if seconds < 0:
            raise ValueError("a clock never goes back")
        self._now += seconds


@dataclasses.dataclass(frozen=True, slots=True)
class Press:
    """The caller presses ``keys``, one after another at the same moment."""

    keys: str


@dataclasses.dataclass(frozen=True, slots=True)
class Wait:
    """Time passes."""

    seconds: float


@dataclasses.dataclass(frozen=True, slots=True)
class Answer:
    """The application answers the fetch the flow waits for."""

    request: str
    values: Mapping[str, Value]


@dataclasses.dataclass(frozen=True, slots=True)
class Fail:
    """The application fails the fetch the flow waits for."""

    request: str
    reason: str


@dataclasses.dataclass(frozen=True, slots=True)
class Pay:
    """Secure capture reports the payment the flow waits for."""

    outcome: PaymentOutcome
    fields: Mapping[str, Value]


@dataclasses.dataclass(frozen=True, slots=True)
class HangUp:
    """The caller hangs up."""


Item = Press | Wait | Answer | Fail | Pay | HangUp


def press(keys: str) -> Press:
    """The caller presses ``keys`` now."""
    return Press(keys)


def wait(seconds: float) -> Wait:
    """``seconds`` pass."""
    return Wait(seconds)


def answer(request: str, /, **values: Value) -> Answer:
    """The application answers fetch ``request`` with ``values``."""
    return Answer(request, values)


def fail(request: str, reason: str = "failed") -> Fail:
    """The application fails fetch ``request``."""
    return Fail(request, reason)


def pay(outcome: PaymentOutcome, /, **fields: Value) -> Pay:
    """Secure capture ends with ``outcome`` and result ``fields``."""
    return Pay(outcome, fields)


def hang_up() -> HangUp:
    """The caller hangs up now."""
    return HangUp()


def text_of(utterance: Utterance) -> str:
    """An utterance as short text for assertions: "Your balance is $42.10, due 2026-12-01."."""
    words = []
    for part in utterance:
        match part:
            case Words(text):
                words.append(text)
            case Amount(cents):
                sign = "-" if cents < 0 else ""
                words.append(f"{sign}${abs(cents) // 100}.{abs(cents) % 100:02d}")
            case Number(value):
                words.append(str(value))
            case Ordinal(value):
                last = 0 if value % 100 in (11, 12, 13) else value % 10
                words.append(f"{value}{ {1: 'st', 2: 'nd', 3: 'rd'}.get(last, 'th') }")
            case Digits(digits):
                words.append(digits)
            case Date(date):
                words.append(date.isoformat())
    return re.sub(r" ([.,;:?!])", r"\1", " ".join(words))


def describe(action: Action) -> str:
    """One line of a transcript."""
    match action:
        case Say(key, utterance, barge_in):
            return f"say {key}: {text_of(utterance)}" + ("" if barge_in else " (no barge-in)")
        case Play(key, file, barge_in):
            return f"play {key}: {file}" + ("" if barge_in else " (no barge-in)")
        case StopPrompt(key):
            return f"stop {key}"
        case Fetch(request, args):
            return f"fetch {request} {dict(args)}"
        case StartPayment(amount, args):
            return f"payment {amount} {dict(args)}"
        case Transfer(queue, agent, context):
            where = f"queue {queue}" if queue is not None else f"agent {agent}"
            return f"transfer to {where} {dict(context)}"
        case Hangup():
            return "hangup"
        case Outcome(ending, flow, step, reason):
            return f"{ending} at {flow}.{step}" + (f": {reason}" if reason else "")


@dataclasses.dataclass(frozen=True, slots=True)
class Run:
    """What a run did: each action with its time, how it ended, the variables at the end."""

    transcript: tuple[tuple[float, Action], ...]
    outcome: Outcome | None
    variables: Mapping[str, Value]

    @property
    def actions(self) -> list[Action]:
        """The actions, without their times."""
        return [action for _, action in self.transcript]

    @property
    def prompts(self) -> list[str]:
        """The keys of the prompts started, in order (stopped ones too)."""
        return [a.key for a in self.actions if isinstance(a, Say | Play)]

    @property
    def said(self) -> list[str]:
        """What was said, as :func:`text_of` writes it (a played file as its name)."""
        return [
            text_of(a.utterance) if isinstance(a, Say) else a.file
            for a in self.actions
            if isinstance(a, Say | Play)
        ]

    def lines(self) -> list[str]:
        """The transcript as text, one action a line with its time: "5.000 stop pay.menu"."""
        return [f"{at:.3f} {describe(action)}" for at, action in self.transcript]


class FlowRunner:
    """Drives an :class:`~assistline.ivr.engine.Engine` as a call's shell would, on a fake clock."""

    def __init__(
        self,
        flow: Flow,
        *,
        flows: Mapping[str, Flow] | None = None,
        variables: Mapping[str, Value] | None = None,
        prompt_seconds: float = 0.0,
        durations: Mapping[str, float] | None = None,
        clock: FakeClock | None = None,
    ) -> None:
        self.engine = Engine(flow, flows=flows, variables=variables)
        self.clock = clock or FakeClock()
        self._prompt_seconds = prompt_seconds
        self._durations = dict(durations or {})
        self._transcript: list[tuple[float, Action]] = []
        self._playing: tuple[str, float] | None = None  # key, when it ends

    def start(self) -> None:
        """Answer the call: the flow runs to where it first waits."""
        self._send(Started())

    def do(self, item: Item) -> None:
        """One script item."""
        if self.engine.outcome is not None:
            raise ScriptError(f"the script goes on after the flow ended: {item}")
        match item:
            case Press(keys):
                for key in keys:
                    self._send(DigitPressed(key))
            case Wait(seconds):
                self.run_until(self.clock.time() + seconds)
            case Answer(request, values):
                self._expect_fetch(request, item)
                self._send(FetchDone(request, values))
            case Fail(request, reason):
                self._expect_fetch(request, item)
                self._send(FetchFailed(request, reason))
            case Pay(outcome, fields):
                if self.engine.phase is not Phase.PAYMENT:
                    raise ScriptError(
                        f"the script has {item} but the flow waits for {self.waiting_for()}"
                    )
                self._send(PaymentDone(outcome, fields))
            case HangUp():
                self._send(CallerHungUp())

    def run_until(self, when: float, *, jump: bool = True) -> None:
        """Fire prompt ends and timeouts due by ``when``; then the clock reads ``when``."""
        for _ in range(_MAX_TURNS):
            due = self._due()
            if due is None or due > when:
                break
            self.clock.advance(max(0.0, due - self.clock.time()))
            now = self.clock.time()
            if self._playing is not None and self._playing[1] <= now:
                key, self._playing = self._playing[0], None
                self._record(self.engine.handle(PromptFinished(key), now))
            else:
                self._record(self.engine.advance(now))
        else:
            raise ScriptError(f"the flow made {_MAX_TURNS} moves without time passing")
        if jump and when > self.clock.time():
            self.clock.advance(when - self.clock.time())

    def result(self) -> Run:
        """The run so far."""
        return Run(tuple(self._transcript), self.engine.outcome, dict(self.engine.variables))

    def waiting_for(self) -> str:
        """What the flow waits for, in words."""
        step = self.engine.step
        match self.engine.phase:
            case Phase.PROMPT:
                return f'prompt "{self._playing[0]}"' if self._playing else "a prompt"
            case Phase.INPUT:
                return f'keys at step "{step.name}"'
            case Phase.FETCH:
                assert isinstance(step, FetchStep)
                return f'fetch "{step.request}"'
            case Phase.PAYMENT:
                return "a payment"
            case Phase.READY:
                return "the call to start"
            case Phase.ENDED:
                return "nothing: it ended"

    def _expect_fetch(self, request: str, item: Item) -> None:
        step = self.engine.step
        if not (
            self.engine.phase is Phase.FETCH
            and isinstance(step, FetchStep)
            and step.request == request
        ):
            raise ScriptError(f"the script has {item} but the flow waits for {self.waiting_for()}")

    def _send(self, event: Event) -> None:
        now = self.clock.time()
        self._record(self.engine.handle(event, now))
        self.run_until(now)

    def _record(self, actions: Iterable[Action]) -> None:
        now = self.clock.time()
        for action in actions:
            self._transcript.append((now, action))
            if isinstance(action, Say | Play):
                seconds = self._durations.get(action.key, self._prompt_seconds)
                self._playing = (action.key, now + seconds)
            elif isinstance(action, StopPrompt):
                self._playing = None

    def _due(self) -> float | None:
        times = [self._playing[1]] if self._playing is not None else []
        if (deadline := self.engine.next_deadline) is not None:
            times.append(deadline)
        return min(times, default=None)


def run_flow(
    flow: Flow,
    script: Iterable[Item] = (),
    *,
    flows: Mapping[str, Flow] | None = None,
    variables: Mapping[str, Value] | None = None,
    prompt_seconds: float = 0.0,
    durations: Mapping[str, float] | None = None,
    until: float = 3600.0,
) -> Run:
    """Run ``flow`` through ``script``, then let up to ``until`` seconds pass; the run."""
    runner = FlowRunner(
        flow,
        flows=flows,
        variables=variables,
        prompt_seconds=prompt_seconds,
        durations=durations,
    )
    runner.start()
    for item in script:
        runner.do(item)
    runner.run_until(runner.clock.time() + until, jump=False)
    return runner.result()
