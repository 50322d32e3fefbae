"""The IVR flow engine: a sans-IO state machine that runs one call through a flow.

The engine runs in the control process. The media worker only plays prompts
and reports keys as they arrive, so the engine collects digits itself from
raw :class:`~assistline.ivr.flow_messages.DigitPressed` events and times
them against the times it is given: :meth:`Engine.handle` takes an event and
the time, :meth:`Engine.advance` fires what is due, and
:attr:`Engine.next_deadline` says when to call it next. Times are seconds on
any monotonic clock (the event loop's; :class:`~assistline.ivr.flow_runner.FakeClock`
in tests). Both return the actions to carry out, in order; the last action of
a call is its :class:`~assistline.ivr.flow_messages.Outcome`.

Rules the flow files rely on:

- **One prompt at a time.** A step's prompts (a menu's, then its options')
  go out one by one, each after the previous one's ``PromptFinished``.
- **Barge-in.** A key during a barge-in prompt stops it (``StopPrompt``),
  drops the prompts queued after it and counts as typed ahead: the next
  menu or collect takes it as its first key, and barge-in prompts before
  that are skipped (the caller already knows what to do). A key during a
  prompt without barge-in is dropped, so a caller pressing through a notice
  never answers the next question by accident. Keys during a ``fetch`` are
  typed ahead too (at most :data:`MAX_TYPE_AHEAD`).
- **Collecting** starts when the prompts end (or at a barge-in key); the
  first-digit timeout runs from then, the inter-digit timeout from each key,
  the overall timeout from the start. Input ends at ``max_digits``, at the
  terminator (not kept), or at a timeout; it is then valid when its length
  is within min..max and it matches ``pattern``. No key at all is "no
  input". A failed attempt says ``no_input_prompt`` or ``invalid_prompt``,
  then ``reprompt`` (or the question again), ``retries`` times (2: three
  attempts in all); when the last attempt fails the flow goes straight to
  ``on_failure`` (a menu's ``no_match``), which says what it needs to.
- **Fetch** waits ``timeout`` for its answer, then goes to ``on_error``.
  Each declared result is set from the answer or, when the answer lacks it,
  cleared, so no stale value survives a repeated fetch; other values in the
  answer are ignored.
- **Payment** drops any keys typed ahead (they may be the start of a card
  number) and ignores keys until secure capture reports; its declared
  result fields are stored as a fetch's are.
- **Errors at run time** (a variable not set, or of the wrong type for its
  placeholder or condition; a set/branch loop running
  :data:`MAX_STEPS_WITHOUT_WAITING` steps) end the flow with an ``error``
  outcome whose reason names the flow, the step and the variable. Events
  after the outcome are ignored: a hang-up racing a transfer is normal.
"""

from __future__ import annotations

import enum
import functools
from collections.abc import Callable, Mapping
from types import MappingProxyType

from assistline.ivr.flow import (
    BranchStep,
    CollectStep,
    Condition,
    FetchStep,
    Flow,
    FlowError,
    GotoStep,
    HangupStep,
    MenuStep,
    PaymentStep,
    Prompt,
    PromptStep,
    SetStep,
    Step,
    TransferStep,
    Value,
    check_gotos,
)
from assistline.ivr.flow_fields import type_name
from assistline.ivr.flow_messages import (
    Action,
    CallerHungUp,
    DigitPressed,
    Ending,
    EngineError,
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
from assistline.ivr.flow_values import holds, is_value, render, value_of

MAX_TYPE_AHEAD = 64
MAX_STEPS_WITHOUT_WAITING = 1000


class Phase(enum.Enum):
    """What the engine waits for."""

    READY = "ready"  # for Started
    PROMPT = "prompt"  # for a prompt to finish (or a barge-in key)
    INPUT = "input"  # for keys or a timeout
    FETCH = "fetch"  # for the application's answer
    PAYMENT = "payment"  # for secure capture's result
    ENDED = "ended"


class Engine:
    """One call's run through ``flow`` (and the ``flows`` its ``goto`` steps name).

    ``variables`` are the call's starting values (the flow's ``inputs`` must
    be among them); a missing input or a ``goto`` to an unknown flow is a
    FlowError here, before the call starts.
    """

    def __init__(
        self,
        flow: Flow,
        *,
        flows: Mapping[str, Flow] | None = None,
        variables: Mapping[str, Value] | None = None,
    ) -> None:
        self._flows = {**(flows or {}), flow.name: flow}
        check_gotos(self._flows)
        given = dict(variables or {})
        for name, value in given.items():
            if not is_value(value):
                raise FlowError(f'flow "{flow.name}": variable "{name}" is {type_name(value)}')
        for name in flow.inputs:
            if name not in given:
                raise FlowError(f'flow "{flow.name}": input "{name}" was not given')
        self._variables: dict[str, Value] = {**dict(flow.defaults), **given}
        self._flow = flow
        self._step: Step = flow.first
        self._phase = Phase.READY
        self._out: list[Action] = []
        self._type_ahead = ""
        # The prompts of the step: the one playing, those queued, and what comes after.
        self._playing: Prompt | None = None
        self._queue: list[Prompt] = []
        self._barge_in = True
        self._then: Callable[[float], None] = self._nothing
        # A menu's or a collect's attempt, and its timers (a fetch's timeout too).
        self._attempt = 0
        self._digits = ""
        self._deadline = 0.0
        self._overall: float | None = None
        self.outcome: Outcome | None = None

    @property
    def phase(self) -> Phase:
        """What the engine waits for."""
        return self._phase

    @property
    def flow(self) -> Flow:
        """The flow running (a ``goto`` changes it)."""
        return self._flow

    @property
    def step(self) -> Step:
        """The step running (or where the flow ended)."""
        return self._step

    @property
    def variables(self) -> Mapping[str, Value]:
        """The call's variables, read-only."""
        return MappingProxyType(self._variables)

    @property
    def next_deadline(self) -> float | None:
        """When :meth:`advance` has something to do, or None while nothing is timed."""
        if self._phase is Phase.INPUT and self._overall is not None:
            return min(self._deadline, self._overall)
        if self._phase in (Phase.INPUT, Phase.FETCH):
            return self._deadline
        return None

    def handle(self, event: Event, now: float) -> list[Action]:
        """What to do about ``event`` at ``now``."""
        if self._phase is Phase.ENDED:
            return []
        if self._phase is Phase.READY and not isinstance(event, Started | CallerHungUp):
            raise EngineError("the flow has not started: send Started first")
        if self._phase is not Phase.READY and isinstance(event, Started):
            raise EngineError("the flow has already started")
        return self._run(functools.partial(self._dispatch, event, now))

    def advance(self, now: float) -> list[Action]:
        """What to do when the time is ``now``: the timeouts due, if any."""
        deadline = self.next_deadline
        if deadline is None or now < deadline:
            return []
        if self._phase is Phase.FETCH:
            return self._run(functools.partial(self._fetch_failed, now))
        return self._run(functools.partial(self._attempt_over, now))

    def _run(self, work: Callable[[], None]) -> list[Action]:
        self._out = []
        try:
            work()
        except FlowError as error:
            if self._playing is not None:
                self._out.append(StopPrompt(self._playing.key))
            self._end(Ending.ERROR, str(error))
        return self._out

    def _dispatch(self, event: Event, now: float) -> None:
        step = self._step
        match event:
            case Started():
                self._go(step.name, now)
            case PromptFinished(key):
                if self._playing is not None and self._playing.key == key:
                    self._playing = None
                    self._next_prompt(now)
            case DigitPressed(digit):
                self._key(digit, now)
            case FetchDone(request, values):
                if self._fetching(request) and isinstance(step, FetchStep):
                    self._store(step.results, values, f'fetch "{request}"')
                    self._go(step.next, now)
            case FetchFailed(request):
                if self._fetching(request):
                    self._fetch_failed(now)
            case PaymentDone(outcome, fields):
                if self._phase is Phase.PAYMENT and isinstance(step, PaymentStep):
                    self._store(step.results, fields, "payment")
                    self._go(step.target(outcome), now)
            case CallerHungUp():
                self._end(Ending.CALLER_HUNG_UP)

    def _fetching(self, request: str) -> bool:
        step = self._step
        return (
            self._phase is Phase.FETCH and isinstance(step, FetchStep) and step.request == request
        )

    def _fetch_failed(self, now: float) -> None:
        assert isinstance(self._step, FetchStep)
        self._go(self._step.on_error, now)

    def _key(self, digit: str, now: float) -> None:
        if self._phase is Phase.INPUT:
            self._feed(digit, now)
        elif self._phase is Phase.FETCH:
            self._type_ahead = (self._type_ahead + digit)[:MAX_TYPE_AHEAD]
        elif self._phase is Phase.PROMPT and self._barge_in and self._playing is not None:
            self._out.append(StopPrompt(self._playing.key))
            self._playing = None
            self._queue = []
            self._type_ahead = (self._type_ahead + digit)[:MAX_TYPE_AHEAD]
            self._after_prompts(now)
        # Otherwise (a prompt without barge-in, a payment running) the key is dropped.

    # Steps.

    def _go(self, name: str, now: float) -> None:
        """Run steps from ``name`` until one waits for the call."""
        for _ in range(MAX_STEPS_WITHOUT_WAITING):
            step = self._step = self._flow.step(name)
            match step:
                case SetStep():
                    self._set(step)
                    name = step.next
                case BranchStep():
                    cases = (case for case in step.cases if self._holds_now(case.condition))
                    name = next((case.next for case in cases), step.otherwise)
                case GotoStep():
                    for variable in self._flows[step.flow].inputs:
                        if variable not in self._variables:
                            raise self._error(f'flow "{step.flow}" needs input "{variable}"')
                    self._flow = self._flows[step.flow]
                    name = self._flow.first.name
                case PromptStep() if step.barge_in and self._type_ahead:
                    name = step.next  # the caller typed ahead: on to what they answer
                case PromptStep():
                    self._prompts(
                        [step.prompt], step.barge_in, functools.partial(self._go, step.next), now
                    )
                    return
                case MenuStep() | CollectStep():
                    self._attempt = 1
                    self._ask(step, None, now)
                    return
                case FetchStep():
                    args = {variable: self._value(variable) for variable in step.args}
                    self._out.append(Fetch(step.request, args))
                    self._phase, self._deadline = Phase.FETCH, now + step.timeout
                    return
                case PaymentStep():
                    self._pay(step)
                    return
                case TransferStep() | HangupStep():
                    prompts = [] if step.prompt is None else [step.prompt]
                    self._prompts(prompts, step.barge_in, self._finish, now)
                    return
        raise self._error(
            f"{MAX_STEPS_WITHOUT_WAITING} steps ran without waiting for the caller: "
            "a set/branch loop never ends"
        )

    def _set(self, step: SetStep) -> None:
        for variable, value in step.values:
            self._variables[variable] = value
        for target, source in step.copy:
            self._variables[target] = self._value(source)
        for variable in step.increment:
            count = self._variables.get(variable, 0)
            if type(count) is not int:
                raise self._error(
                    f'variable "{variable}" is {type_name(count)}; increment needs an integer'
                )
            self._variables[variable] = count + 1
        for variable in step.clear:
            self._variables.pop(variable, None)

    def _pay(self, step: PaymentStep) -> None:
        amount = self._value(step.amount)
        if type(amount) is not int or amount <= 0:
            raise self._error(
                f'variable "{step.amount}" must be a positive amount in integer cents'
            )
        args = {variable: self._value(variable) for variable in step.args}
        self._type_ahead = ""  # keys typed before capture may be the start of a card number
        self._out.append(StartPayment(amount, args))
        self._phase = Phase.PAYMENT

    def _finish(self, now: float) -> None:
        step = self._step
        if isinstance(step, TransferStep):
            # Context is for the agent's screen: what is known so far, unset values left out.
            context = {v: self._variables[v] for v in step.context if v in self._variables}
            self._out.append(Transfer(step.queue, step.agent, context))
            self._end(Ending.TRANSFERRED)
        elif isinstance(step, HangupStep):
            self._out.append(Hangup())
            self._end(Ending.HUNG_UP, step.reason)

    def _end(self, ending: Ending, reason: str = "") -> None:
        self._phase = Phase.ENDED
        self._playing = None
        self._queue = []
        self.outcome = Outcome(ending, self._flow.name, self._step.name, reason)
        self._out.append(self.outcome)

    def _store(self, results: tuple[str, ...], values: Mapping[str, Value], source: str) -> None:
        for variable in results:
            if variable not in values:
                self._variables.pop(variable, None)
                continue
            value: object = values[variable]  # from the application: check, do not trust
            if not is_value(value):
                raise self._error(f'{source} gave "{variable}" as {type_name(value)}')
            self._variables[variable] = values[variable]

    # Prompts.

    def _prompts(
        self, prompts: list[Prompt], barge_in: bool, then: Callable[[float], None], now: float
    ) -> None:
        """Play ``prompts`` one by one, then ``then``; barge-in ones are skipped if typed ahead."""
        self._then = then
        self._barge_in = barge_in
        self._queue = [] if barge_in and self._type_ahead else prompts
        self._phase = Phase.PROMPT
        self._next_prompt(now)

    def _next_prompt(self, now: float) -> None:
        if not self._queue:
            self._after_prompts(now)
            return
        prompt = self._queue.pop(0)
        if prompt.file:
            self._out.append(Play(prompt.key, prompt.file, self._barge_in))
        else:
            utterance = render(prompt.text, self._variables, self._error)
            self._out.append(Say(prompt.key, utterance, self._barge_in))
        self._playing = prompt

    def _after_prompts(self, now: float) -> None:
        then, self._then = self._then, self._nothing
        then(now)

    def _nothing(self, now: float) -> None:
        pass

    # Menus and collects.

    def _ask(self, step: MenuStep | CollectStep, failure: Prompt | None, now: float) -> None:
        """Start attempt ``self._attempt``: the failure's prompt, then the question."""
        question: list[Prompt]
        if self._attempt > 1 and step.reprompt is not None:
            question = [step.reprompt]
        elif isinstance(step, MenuStep):
            offered = [o.prompt for o in step.options if o.prompt and self._offered(o.when)]
            question = [step.prompt, *offered] if step.prompt else offered
        else:
            question = [step.prompt]
        prompts = [failure, *question] if failure is not None else question
        self._prompts(prompts, step.barge_in, self._listen, now)

    def _listen(self, now: float) -> None:
        """The prompts are over (or barged in): collect, taking keys typed ahead first."""
        step = self._step
        assert isinstance(step, MenuStep | CollectStep)
        self._phase = Phase.INPUT
        self._digits = ""
        if isinstance(step, MenuStep):
            self._deadline, self._overall = now + step.timeout, None
        else:
            self._deadline = now + step.first_digit_timeout
            self._overall = None if step.overall_timeout is None else now + step.overall_timeout
        while self._type_ahead:
            digit, self._type_ahead = self._type_ahead[0], self._type_ahead[1:]
            if self._feed(digit, now):
                return

    def _feed(self, digit: str, now: float) -> bool:
        """One key of input; True when it ended the attempt."""
        step = self._step
        if isinstance(step, CollectStep) and digit != step.terminator:
            self._digits += digit
            if len(self._digits) < step.max_digits:
                self._deadline = now + step.inter_digit_timeout
                return False
        elif isinstance(step, MenuStep):
            self._digits = digit
        self._attempt_over(now, keyed=True)
        return True

    def _attempt_over(self, now: float, keyed: bool = False) -> None:
        """Input ended (``keyed``: by a key, else by a timeout): on, or ask again, or give up."""
        step = self._step
        assert isinstance(step, MenuStep | CollectStep)
        self._phase = Phase.PROMPT  # between attempts: _ask or _go says what comes next
        no_input = not (self._digits or keyed)
        target = None if no_input else self._accepted(step)
        if target is not None:
            if step.into is not None:
                self._variables[step.into] = self._digits
            self._go(target, now)
        elif self._attempt > step.retries:
            self._go(step.no_match if isinstance(step, MenuStep) else step.on_failure, now)
        else:
            self._attempt += 1
            self._ask(step, step.no_input_prompt if no_input else step.invalid_prompt, now)

    def _accepted(self, step: MenuStep | CollectStep) -> str | None:
        """Where the input goes, or None when it is invalid."""
        digits = self._digits
        if isinstance(step, MenuStep):
            options = (o for o in step.options if o.digit == digits and self._offered(o.when))
            return next((option.next for option in options), None)
        if not step.min_digits <= len(digits) <= step.max_digits:
            return None
        if step.pattern is not None and not step.pattern.fullmatch(digits):
            return None
        return step.next

    # Variables.

    def _offered(self, when: Condition | None) -> bool:
        return when is None or self._holds_now(when)

    def _holds_now(self, condition: Condition) -> bool:
        return holds(condition, self._variables, self._error)

    def _value(self, variable: str) -> Value:
        return value_of(self._variables, variable, self._error)

    def _error(self, problem: str) -> FlowError:
        return FlowError(f'flow "{self._flow.name}": step "{self._step.name}": {problem}')
