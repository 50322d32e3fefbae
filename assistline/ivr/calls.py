"""The payment line's calls: the flow engine driven by a real call in a media worker.

An inbound call dialled to ``ivr.payment_line`` is taken here (before the
extension routing of :mod:`assistline.sip.routing`): the control process
answers it, starts the flow (:class:`~assistline.ivr.engine.Engine`, the
shipped ``payment_line`` flow unless ``ivr.flows_dir`` has its own) and
carries out what the engine asks:

- ``Say``: the prompt's WAV from :class:`~assistline.ivr.prompts.Prompts`
  (a recording if there is one, else speech from the cache), played with the
  worker's ``play``; the worker's ``played`` event is the engine's
  ``PromptFinished``. ``StopPrompt`` (barge-in) is ``stop_play``.
- the caller's keys come as ``digit`` events (RFC 4733, SIP INFO or in-band
  tones: one stream) and go to the engine as ``DigitPressed`` — or, while a
  payment runs, to secure capture, and nowhere else;
- ``Fetch``: the application (:class:`~assistline.ivr.accounts.PaymentLineApplication`);
- ``StartPayment``: secure capture (:class:`Payments`), whose result comes
  back as ``PaymentDone``;
- ``Transfer``: the caller joins the agents' queue as a contact carrying
  what the flow learnt (:mod:`assistline.ivr.transfer`); should that fail,
  the caller hears that no agent can take the call and the call ends;
- ``Hangup``, the caller hanging up, and an ``error`` outcome end the call.

**Why the decisions run here, in the control process, and not in the
worker.** The flow needs the database (accounts, the AR policy, payments)
and the payment gateway, which live here; the worker only plays, listens
and reports keys, which are a few events per second on the socket. Timers
(the engine's timeouts) run on this process's event loop, off any media
path; a key reaches the engine within a socket hop of the worker's event.

Each call's events and actions go through one queue and one task, in
order, so an ``await`` (speech synthesis, a worker command, a fetch) never
lets a later event overtake an earlier one.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import uuid
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Protocol

from assistline.ivr.engine import Engine
from assistline.ivr.flow import Flow, FlowError, Value
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
from assistline.ivr.prompts import Prompts
from assistline.ivr.utterance import Words
from assistline.sip import protocol
from assistline.sip.pool import WorkerCommandError, WorkerDiedError
from assistline.sip.recordings import RecordingStarted, RecordingStore
from assistline.sip.records import CallRecords
from assistline.sip.routing import Commands
from assistline.sip.sipmsg import sip_user
from assistline.tasks import TaskRegistry

logger = logging.getLogger(__name__)

#: The flow a payment line call runs.
PAYMENT_FLOW = "payment_line"
NO_TRANSFER = "Sorry, no agent can take your call now. Please call again later. Goodbye."


class Application(Protocol):
    """Answers a flow's ``fetch`` requests (raises an AssistlineError when it cannot)."""

    async def fetch(
        self, request: str, args: Mapping[str, Value], call_id: str
    ) -> dict[str, Value]:
        """The values answering ``request``."""


class Handover(Protocol):
    """Hands a caller to the agents' queue (:class:`~assistline.ivr.transfer.QueueTransfer`)."""

    async def transfer(
        self,
        call_id: str,
        worker: str,
        leg: str,
        step: str,
        target: tuple[str | None, str | None],
        context: Mapping[str, Value],
    ) -> bool:
        """Queue the caller; False when it cannot be done."""


class Payments(Protocol):
    """Secure capture on a call's leg: takes its keys while it runs."""

    async def pay(self, call: IvrCall, amount: int, args: Mapping[str, Value]) -> PaymentDone:
        """Run one payment to its end, whatever happens (it never raises)."""

    def digit(self, call: IvrCall, digit: str) -> None:
        """A key of the caller's, while :meth:`pay` runs."""

    def played(self, call: IvrCall, key: str) -> None:
        """A prompt of the payment's played to its end."""

    def caller_hung_up(self, call: IvrCall) -> None:
        """The caller hung up while :meth:`pay` runs."""


@dataclasses.dataclass(frozen=True, slots=True)
class _Tick:
    """The engine's next deadline has come."""


@dataclasses.dataclass(eq=False)
class IvrCall:
    """One call on the payment line."""

    id: str
    worker: str
    leg: str
    engine: Engine
    inbox: asyncio.Queue[Event | _Tick] = dataclasses.field(default_factory=asyncio.Queue)
    prompt: str | None = None  # the key of the prompt playing
    quiet: asyncio.Event = dataclasses.field(default_factory=asyncio.Event)  # nothing playing
    paying: bool = False
    ended: bool = False
    recording: tuple[uuid.UUID, Path] | None = None
    timer: asyncio.TimerHandle | None = None


class IvrCalls:
    """Every payment line call of this node."""

    def __init__(
        self,
        commands: Commands,
        tasks: TaskRegistry,
        records: CallRecords,
        *,
        line: str,
        flows: Mapping[str, Flow],
        prompts: Prompts,
        prompts_dir: Path | None,
        application: Application,
        payments: Payments,
        recordings: RecordingStore | None = None,
        recordings_dir: Path | None = None,
        recording_rate: int = 16000,
        handover: Handover | None = None,
    ) -> None:
        if PAYMENT_FLOW not in flows:
            raise FlowError(f'no flow is named "{PAYMENT_FLOW}"; the payment line needs one')
        self._commands = commands
        self._tasks = tasks
        self._records = records
        self._line = line
        self._flows = flows
        self._prompts = prompts
        self._prompts_dir = prompts_dir
        self._application = application
        self._payments = payments
        self._recordings = recordings
        self._recordings_dir = recordings_dir
        self._recording_rate = recording_rate
        self._handover = handover
        self.calls: dict[tuple[str, str], IvrCall] = {}

    def take(self, worker: str, event: protocol.IncomingCall) -> bool:
        """Take a call dialled to the payment line; False leaves it to others."""
        if sip_user(event.to_uri) != self._line:
            return False
        engine = Engine(
            self._flows[PAYMENT_FLOW],
            flows=self._flows,
            variables={"caller_number": sip_user(event.from_uri)},
        )
        call = IvrCall(uuid.uuid4().hex, worker, event.leg, engine)
        call.quiet.set()
        self.calls[(worker, event.leg)] = call
        _ = self._tasks.spawn(f"ivr {call.id}", self._run(call))
        return True

    def observe(self, worker: str, event: protocol.Event) -> bool:
        """Handle a worker event about a payment line leg; False when it is not one."""
        call = self.calls.get((worker, getattr(event, "leg", "")))
        if call is None:
            return False
        self._records.observe(worker, event)
        match event:
            case protocol.Digit(digit=digit):
                if call.paying:
                    self._payments.digit(call, digit)
                elif digit in "0123456789*#ABCD":
                    call.inbox.put_nowait(DigitPressed(digit))
            case protocol.Played() if call.prompt is not None:
                key, call.prompt = call.prompt, None
                call.quiet.set()
                if call.paying:
                    self._payments.played(call, key)
                else:
                    call.inbox.put_nowait(PromptFinished(key))
            case protocol.CallEnded():
                call.ended = True
                call.quiet.set()
                if call.recording is not None and self._recordings is not None:
                    self._recordings.ended(*call.recording)
                del self.calls[(worker, call.leg)]
                if call.paying:
                    self._payments.caller_hung_up(call)
                call.inbox.put_nowait(CallerHungUp())
        return True

    # ------------------------------------------------------------ the call

    async def _run(self, call: IvrCall) -> None:
        loop = asyncio.get_running_loop()
        try:
            await self._command(call, lambda r: protocol.Answer(r, call.leg))
        except _CommandFailed:
            return
        await self._record(call)
        call.inbox.put_nowait(Started())
        while True:
            item = await call.inbox.get()
            now = loop.time()
            engine = call.engine
            if isinstance(item, _Tick):
                actions = engine.advance(now)
            else:
                actions = engine.handle(item, now)
            for action in actions:
                await self._act(call, action)
            if engine.outcome is not None:
                return
            self._schedule(call)

    async def _record(self, call: IvrCall) -> None:
        """Record the call (stereo: the caller, and what the caller hears)."""
        if self._recordings is None or self._recordings_dir is None:
            return
        recording_id = uuid.uuid4()
        path = self._recordings_dir / f"ivr-{call.id}.wav"
        try:
            await self._command(call, lambda r: protocol.Record(r, call.leg, str(path)))
        except _CommandFailed:
            logger.error("call %s is not recorded", call.id)
            return
        self._recordings.started(
            RecordingStarted(
                recording_id,
                call.id,
                call.worker,
                call.leg,
                "",
                None,
                path,
                sample_rate=self._recording_rate,
            )
        )
        call.recording = (recording_id, path)
        if call.ended:  # it ended while the record command was answered
            self._recordings.ended(recording_id, path)

    def _schedule(self, call: IvrCall) -> None:
        if call.timer is not None:
            call.timer.cancel()
            call.timer = None
        deadline = call.engine.next_deadline
        if deadline is not None:
            loop = asyncio.get_running_loop()
            call.timer = loop.call_at(deadline, call.inbox.put_nowait, _Tick())

    async def _act(self, call: IvrCall, action: Action) -> None:
        if call.ended and not isinstance(action, Outcome):
            return
        match action:
            case Say(key=key, utterance=utterance):
                path = await self._prompts.path_for(key, utterance)
                await self._play(call, key, path)
            case Play(key=key, file=file):
                found = None if self._prompts_dir is None else self._prompts_dir / file
                if found is not None and found.is_file():
                    await self._play(call, key, found)
                else:
                    logger.error("call %s: prompt file %s is missing; skipped", call.id, file)
                    call.inbox.put_nowait(PromptFinished(key))
            case StopPrompt():
                call.prompt = None  # a "played" already on its way is dropped
                call.quiet.set()
                await self._command_quietly(call, lambda r: protocol.StopPlay(r, call.leg))
            case Fetch(request=request, args=args):
                _ = self._tasks.spawn(f"ivr fetch {call.id}", self._fetch(call, request, args))
            case StartPayment(amount=amount, args=args):
                call.paying = True
                _ = self._tasks.spawn(f"ivr pay {call.id}", self._pay(call, amount, args))
            case Transfer(queue=queue, agent=agent, context=context):
                await self._until_played(call)
                step = call.engine.step.name
                transfer = self._handover
                if transfer is not None and await transfer.transfer(
                    call.id, call.worker, call.leg, step, (queue, agent), context
                ):
                    self.calls.pop((call.worker, call.leg), None)  # the queue has the leg now
                    call.ended = True
                    return
                path = await self._prompts.path_for("line.no_transfer", (Words(NO_TRANSFER),))
                await self._play(call, "line.no_transfer", path)
                await self._until_played(call)
                await self._command_quietly(call, lambda r: protocol.Hangup(r, call.leg, 0))
            case Hangup():
                await self._until_played(call)
                await self._command_quietly(call, lambda r: protocol.Hangup(r, call.leg, 0))
            case Outcome(ending=ending, step=step, reason=reason):
                logger.info("call %s: the flow ended (%s) at %s %s", call.id, ending, step, reason)
                if call.timer is not None:
                    call.timer.cancel()
                if ending == "error" and not call.ended:
                    await self._command_quietly(call, lambda r: protocol.Hangup(r, call.leg, 0))

    async def _play(self, call: IvrCall, key: str, path: Path) -> None:
        call.prompt = key
        call.quiet.clear()
        await self._command_quietly(call, lambda r: protocol.Play(r, call.leg, file=str(path)))

    async def _until_played(self, call: IvrCall, timeout: float = 30.0) -> None:
        """Let a goodbye finish before hanging up."""
        try:
            async with asyncio.timeout(timeout):
                await call.quiet.wait()
        except TimeoutError:
            logger.warning("call %s: a goodbye did not finish in %.0f s", call.id, timeout)

    async def _fetch(self, call: IvrCall, request: str, args: Mapping[str, Value]) -> None:
        try:
            values = await self._application.fetch(request, args, call.id)
        except Exception as error:  # noqa: BLE001 - any failure takes the flow's error path
            logger.warning("call %s: %s failed: %s", call.id, request, error)
            call.inbox.put_nowait(FetchFailed(request, str(error)[:200]))
            return
        call.inbox.put_nowait(FetchDone(request, values))

    async def _pay(self, call: IvrCall, amount: int, args: Mapping[str, Value]) -> None:
        try:
            done = await self._payments.pay(call, amount, args)
        finally:
            call.paying = False
        call.inbox.put_nowait(done)

    async def _command(self, call: IvrCall, make: Callable[[int], protocol.Command]) -> None:
        try:
            await self._commands.command(call.worker, make)
        except (WorkerCommandError, WorkerDiedError, TimeoutError) as error:
            logger.warning("call %s: a worker command failed: %s", call.id, error)
            raise _CommandFailed from None

    async def _command_quietly(
        self, call: IvrCall, make: Callable[[int], protocol.Command]
    ) -> None:
        try:
            await self._command(call, make)
        except _CommandFailed:
            pass  # the leg has gone: its hangup event ends the call


class _CommandFailed(Exception):
    pass
