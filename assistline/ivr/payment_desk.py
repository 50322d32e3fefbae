"""Secure capture on a live call: the I/O shell of the secure-capture state machine.

One code path for the IVR's ``payment`` step and for an agent's *take
secure payment*: :meth:`PaymentDesk.pay` runs one capture on a leg to its
end and returns the flow's ``PaymentDone``. It carries out the machine's
actions in order:

- ``SecureOn``: the worker's ``secure_start`` on the leg (its recordings and
  its peer's paused, its keypad tones silenced toward its peer, its digits
  to this process only) and an ``audit_event`` ``secure_capture.start``
  (call, leg, amount: never a digit);
- ``Say``/``StopPrompt``: prompts, as the IVR plays them;
- ``Progress``: handed to ``on_progress`` (the agent's console), which
  sees masked progress only;
- ``Charge``: the payment gateway, in a task of its own; its answer (or its
  exception's class name, never its text) goes back to the machine;
- ``SecureOff``: ``secure_end`` and ``secure_capture.end`` in the audit;
- ``Finished``: a ``payment`` row (the gateway's id, brand, last four,
  amount, result: nothing else of the card), the balance lowered when
  approved, and an eight-digit confirmation number the caller hears.

Every exit resumes the recording: the machine emits ``SecureOff`` on each
of its own ways out; anything raised here is turned into
:meth:`~assistline.ivr.secure_capture.SecureCapture.abort` (whose actions
include ``SecureOff``); and should ``secure_end`` not have been sent when
the run ends anyway (cancelled at shutdown), it is sent then. The worker
ends a window by itself when the leg ends or the worker stops.
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime
import functools
import json
import logging
import secrets
import uuid
from collections.abc import Callable, Mapping
from typing import Protocol

import asyncpg

from assistline.ivr.flow import Value
from assistline.ivr.flow_messages import PaymentDone
from assistline.ivr.gateway import ChargeRequest, GatewayRequestError, PaymentGateway
from assistline.ivr.policy_load import Channel
from assistline.ivr.prompts import Prompts
from assistline.ivr.secure_capture import SecureCapture
from assistline.ivr.secure_capture_messages import (
    Action,
    AgentHungUp,
    CallerHungUp,
    CaptureConfig,
    CaptureResult,
    Charge,
    ChargeDone,
    ChargeFailed,
    DigitPressed,
    Event,
    Finished,
    Progress,
    ProgressView,
    PromptFinished,
    Say,
    SecureOff,
    SecureOn,
    StopPrompt,
)
from assistline.sip import protocol
from assistline.sip.pool import WorkerCommandError, WorkerDiedError
from assistline.sip.routing import Commands
from assistline.store.queries import QUERIES
from assistline.tasks import TaskRegistry

logger = logging.getLogger(__name__)


def _play(request: int, *, leg: str, file: str) -> protocol.Command:
    return protocol.Play(request, leg, file=file)


class CaptureCall(Protocol):
    """The call a capture runs on: its worker and leg, and the prompt it plays."""

    id: str
    worker: str
    leg: str
    prompt: str | None
    quiet: asyncio.Event


@dataclasses.dataclass(frozen=True, slots=True)
class _Tick:
    pass


@dataclasses.dataclass(eq=False)
class _Run:
    call: CaptureCall
    capture: SecureCapture
    amount: int
    inbox: asyncio.Queue[Event | _Tick] = dataclasses.field(default_factory=asyncio.Queue)
    secure: bool = False  # secure_start sent, secure_end not yet
    result: CaptureResult | None = None
    timer: asyncio.TimerHandle | None = None


class PaymentDesk:
    """Runs secure captures on calls; the calls' keys come in through :meth:`digit`."""

    def __init__(
        self,
        commands: Commands,
        gateway: PaymentGateway,
        prompts: Prompts,
        pool: asyncpg.Pool,
        tasks: TaskRegistry,
        *,
        channel: Channel = Channel.IVR,
        config: CaptureConfig | None = None,
        on_progress: Callable[[CaptureCall, ProgressView], None] | None = None,
    ) -> None:
        self._commands = commands
        self._gateway = gateway
        self._prompts = prompts
        self._pool = pool
        self._tasks = tasks
        self._channel = channel
        self._config = config or CaptureConfig()
        self._on_progress = on_progress
        self._runs: dict[str, _Run] = {}

    # ------------------------------------------------------------ events in

    def digit(self, call: CaptureCall, digit: str) -> None:
        """A key of the caller's during the capture: to the machine, nowhere else."""
        run = self._runs.get(call.id)
        if run is not None and len(digit) == 1 and digit in "0123456789*#ABCD":
            run.inbox.put_nowait(DigitPressed(digit))

    def played(self, call: CaptureCall, key: str) -> None:
        """A capture prompt played to its end."""
        run = self._runs.get(call.id)
        if run is not None:
            run.inbox.put_nowait(PromptFinished(key))

    def caller_hung_up(self, call: CaptureCall) -> None:
        """The caller hung up during the capture."""
        run = self._runs.get(call.id)
        if run is not None:
            run.inbox.put_nowait(CallerHungUp())

    def agent_hung_up(self, call: CaptureCall) -> None:
        """The agent who started an assisted capture left the call."""
        run = self._runs.get(call.id)
        if run is not None:
            run.inbox.put_nowait(AgentHungUp())

    def running(self, call_id: str) -> bool:
        """Whether a capture runs on the call."""
        return call_id in self._runs

    # ------------------------------------------------------------- the run

    async def pay(self, call: CaptureCall, amount: int, args: Mapping[str, Value]) -> PaymentDone:
        """One capture on ``call`` for ``amount`` cents; never raises, always resumes."""
        account = str(args.get("account", ""))
        try:
            capture = SecureCapture(
                amount, "usd", account, datetime.date.today(), config=self._config
            )
        except ValueError as error:
            logger.error("call %s: no capture: %s", call.id, error)
            return PaymentDone("failed", {})
        run = _Run(call, capture, amount)
        self._runs[call.id] = run
        loop = asyncio.get_running_loop()
        try:
            actions = capture.start(loop.time())
            while True:
                await self._perform(run, actions)
                if capture.finished:
                    break
                self._schedule(run)
                item = await run.inbox.get()
                now = loop.time()
                actions = (
                    capture.advance(now) if isinstance(item, _Tick) else capture.handle(item, now)
                )
        except asyncio.CancelledError:
            await self._abort(run, "cancelled")
            raise
        except Exception as error:  # noqa: BLE001 - every failure still resumes the recording
            logger.error("call %s: secure capture failed: %s", call.id, type(error).__name__)
            await self._abort(run, error)
        finally:
            if run.timer is not None:
                run.timer.cancel()
            self._runs.pop(call.id, None)
            if run.secure:  # belt and braces: the machine's SecureOff did not get through
                await self._secure_end(run, "forced")
        return await self._record(run, account)

    async def _abort(self, run: _Run, reason: str | BaseException) -> None:
        try:
            await self._perform(run, run.capture.abort(reason))
        except Exception as error:  # noqa: BLE001 - the finally clause still sends secure_end
            logger.error(
                "call %s: aborting the capture failed: %s", run.call.id, type(error).__name__
            )

    def _schedule(self, run: _Run) -> None:
        if run.timer is not None:
            run.timer.cancel()
            run.timer = None
        deadline = run.capture.next_deadline
        if deadline is not None:
            loop = asyncio.get_running_loop()
            run.timer = loop.call_at(deadline, run.inbox.put_nowait, _Tick())

    async def _perform(self, run: _Run, actions: list[Action]) -> None:
        call = run.call
        for action in actions:
            match action:
                case SecureOn():
                    run.secure = True
                    await self._command(call, lambda r: protocol.SecureStart(r, call.leg))
                    await self._audit(call, "secure_capture.start", {"amount_cents": run.amount})
                case Say(key=key, utterance=utterance):
                    path = await self._prompts.path_for(key, utterance)
                    call.prompt = key
                    call.quiet.clear()
                    await self._command(
                        call, functools.partial(_play, leg=call.leg, file=str(path))
                    )
                case StopPrompt():
                    call.prompt = None
                    call.quiet.set()
                    await self._command(call, lambda r: protocol.StopPlay(r, call.leg))
                case Progress(view=view):
                    if self._on_progress is not None:
                        self._on_progress(call, view)
                case Charge(request=request):
                    _ = self._tasks.spawn(f"charge {call.id}", self._charge(run, request))
                case SecureOff(reason=reason):
                    await self._secure_end(run, reason.value)
                case Finished(result=result):
                    run.result = result

    async def _secure_end(self, run: _Run, reason: str) -> None:
        call = run.call
        run.secure = False
        await self._command(call, lambda r: protocol.SecureEnd(r, call.leg))
        await self._audit(call, "secure_capture.end", {"reason": reason})

    async def _charge(self, run: _Run, request: ChargeRequest) -> None:
        try:
            result = await self._gateway.charge(request)
        except Exception as error:  # noqa: BLE001 - the class name only: messages may echo data
            nothing = isinstance(error, GatewayRequestError | ValueError)
            run.inbox.put_nowait(ChargeFailed(type(error).__name__, nothing_charged=nothing))
            return
        run.inbox.put_nowait(ChargeDone(result))

    async def _command(self, call: CaptureCall, make: Callable[[int], protocol.Command]) -> None:
        try:
            await self._commands.command(call.worker, make)
        except (WorkerCommandError, WorkerDiedError, TimeoutError) as error:
            # The leg has gone (it ends its window itself) or the worker died.
            logger.info("call %s: capture command failed: %s", call.id, error)

    async def _audit(self, call: CaptureCall, action: str, detail: dict[str, object]) -> None:
        detail = {"leg": call.leg, "channel": self._channel.value, **detail}
        try:
            await self._pool.execute(
                QUERIES["insert_audit_event"],
                self._channel.value,
                action,
                f"call:{call.id}",
                json.dumps(detail),
            )
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as error:
            logger.error("call %s: audit entry %s not written: %s", call.id, action, error)

    async def _record(self, run: _Run, account: str) -> PaymentDone:
        """The payment row, and what the flow may keep and say."""
        result = run.result
        if result is None:
            return PaymentDone("failed", {})
        fields: dict[str, Value] = {"outcome_unknown": result.outcome_unknown}
        if result.last4 is not None:
            fields["last4"] = result.last4
        if result.brand is not None:
            fields["brand"] = result.brand.value
        confirmation = None
        if result.outcome == "approved":
            confirmation = f"{secrets.randbelow(10**8):08d}"
            fields["confirmation"] = confirmation
        if result.idempotency_key is not None:  # a charge went out: keep what came of it
            try:
                async with self._pool.acquire() as connection, connection.transaction():
                    await connection.execute(
                        QUERIES["insert_payment"],
                        uuid.uuid4(),
                        account,
                        self._channel.value,
                        run.call.id,
                        result.amount_cents,
                        0,
                        result.currency.upper(),
                        result.outcome,
                        result.payment_id,
                        None if result.brand is None else result.brand.value,
                        result.last4,
                        result.decline_code,
                        result.idempotency_key,
                        confirmation,
                    )
                    if result.outcome == "approved":
                        await connection.execute(
                            QUERIES["apply_payment"], account, result.amount_cents
                        )
            except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as error:
                logger.error("call %s: payment not stored: %s", run.call.id, type(error).__name__)
        return PaymentDone(result.outcome, fields)
