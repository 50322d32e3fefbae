"""Secure card capture: one sans-IO state machine for the IVR and for agent-assisted payments.

:class:`SecureCapture` takes a card over the keypad and charges it. Its
shell (the IVR's payment step, or the agent's "take payment" button) feeds
it :mod:`events <assistline.ivr.secure_capture_messages>` with the time and
carries out the actions it returns, in order. Times are seconds on any
monotonic clock; :attr:`SecureCapture.next_deadline` says when to call
:meth:`SecureCapture.advance`.

**The window.** :meth:`SecureCapture.start` returns :class:`SecureOn`
first, then the first prompt. Every way out emits exactly one
:class:`SecureOff` before the one :class:`Finished`, and nothing after it:
approval, decline, gateway error, no answer, caller or agent hang-up,
cancel, the overall limit, running out of tries, and :meth:`SecureCapture.abort`,
which the shell calls when anything raises (also when this machine raised).
A shell that does ``try: handle() except: abort()`` therefore always
resumes the recording and the agent's audio.

**Fields**, in order: card number, expiry (``MMYY``), security code, postal
code (a US ZIP code); :mod:`~assistline.ivr.secure_capture_fields` has
their lengths, checks and prompts. ``*`` clears the field being keyed and
says so; it is not a failed try, and it never goes back to an earlier
field (the overall limit bounds a caller who keeps clearing). A failed try
(invalid, expired, or no key within the first-digit timeout) says why and
asks again; the ``tries``-th failure ends the capture ``abandoned``
(``too_many_tries``, the field in ``detail``). Keys A-D are ignored. A key
while a prompt plays stops it (barge-in); the first-digit timeout runs
from the prompt's :class:`PromptFinished`, or from the prompt itself when
the shell does not report one.

**The charge.** When the ZIP code is accepted the card is built, put in
one :class:`Charge` action with this capture's idempotency key, and every
buffer is dropped: from then on only the brand and last four remain here
(CPython cannot zero an immutable string; dropping every reference is what
it allows, and nothing here can show the digits later). Gateway outcomes
map as: approved → ``approved``; declined, insufficient funds, expired
card, wrong security code → ``declined`` with the decline code; processing
error or :class:`ChargeFailed` with ``nothing_charged`` → ``failed``
(``gateway_error``); :attr:`~assistline.ivr.gateway.Outcome.UNKNOWN`, a
``ChargeFailed`` that cannot say, the charge timeout, or an abort while
charging → ``failed`` (``outcome_unknown``, or ``aborted``) with the key in
the result, so the same request is asked again, never a new charge made.

**Decisions.**

- *One card per capture.* After a decline the capture ends ``declined``;
  offering another card is the flow's ``on_declined`` (or the agent's),
  which starts a new capture with a new key, as a definite decline allows.
  Re-asking one field after ``incorrect_security_code`` would mean keeping
  the card after the charge.
- *Agent hang-up aborts* collection (``abandoned``, ``agent_hung_up``): the
  agent started an assisted capture and must not leave the caller keying
  into a window nobody oversees; the shell decides where the caller goes.
- *Once the charge is out, only the gateway's answer ends the capture* (or
  the charge timeout, or an abort). A hang-up or cancel then emits
  :class:`SecureOff` at once (there is nothing left to protect) and the
  :class:`Finished` waits for the answer, so an approval is never recorded
  as abandoned. The overall limit covers collection only, for the same reason.
- *Results announce nothing.* The processing prompt says the amount and the
  last four; what to say about the outcome is the flow's (or the agent's).

Each :meth:`~SecureCapture.handle`, :meth:`~SecureCapture.advance` or
:meth:`~SecureCapture.abort` returns prompts first (:class:`StopPrompt`,
:class:`Say`), then at most one :class:`Progress` (when the agent's view
changed), then :class:`Charge`, or :class:`SecureOff` and :class:`Finished`.
"""

from __future__ import annotations

import datetime
from typing import NoReturn, SupportsIndex

from assistline.ivr.card import Brand, Card, brand_of
from assistline.ivr.gateway import ChargeRequest, ChargeResult, Outcome, new_idempotency_key
from assistline.ivr.secure_capture_fields import (
    PROCESSING,
    PROMPTS,
    check,
    expiry_of,
    longest,
    processing_prompt,
    prompt_key,
)
from assistline.ivr.secure_capture_messages import (
    Action,
    AgentHungUp,
    CallerHungUp,
    Cancelled,
    CaptureConfig,
    CaptureOutcome,
    CaptureResult,
    Charge,
    ChargeDone,
    ChargeFailed,
    DigitPressed,
    Ending,
    Event,
    Finished,
    Progress,
    ProgressView,
    PromptFinished,
    Say,
    SecureCaptureError,
    SecureOff,
    SecureOn,
    Stage,
    StopPrompt,
    masked_number,
)

_GATEWAY: dict[Outcome, tuple[CaptureOutcome, Ending]] = {
    Outcome.APPROVED: ("approved", Ending.APPROVED),
    Outcome.DECLINED: ("declined", Ending.DECLINED),
    Outcome.INSUFFICIENT_FUNDS: ("declined", Ending.DECLINED),
    Outcome.EXPIRED_CARD: ("declined", Ending.DECLINED),
    Outcome.INCORRECT_SECURITY_CODE: ("declined", Ending.DECLINED),
    Outcome.PROCESSING_ERROR: ("failed", Ending.GATEWAY_ERROR),
    Outcome.UNKNOWN: ("failed", Ending.OUTCOME_UNKNOWN),
}
_NEXT = {
    Stage.CARD_NUMBER: Stage.EXPIRY,
    Stage.EXPIRY: Stage.SECURITY_CODE,
    Stage.SECURITY_CODE: Stage.POSTAL_CODE,
}
_COLLECTING = (Stage.CARD_NUMBER, Stage.EXPIRY, Stage.SECURITY_CODE, Stage.POSTAL_CODE)
# Built only to let ChargeRequest check the other fields before any digit is keyed.
_NO_CARD = Card("", 1, 2000, "", "", Brand.VISA)


class SecureCapture:
    """One payment attempt: ``amount_cents`` in ``currency`` for ``account_id``.

    The amount, currency, account and description are checked now (as the
    gateway request checks them), so a bad one fails before any card data is
    keyed. ``today`` is the caller's date, for the expiry check.
    ``idempotency_key`` defaults to a new one; tests pass their own.
    """

    def __init__(
        self,
        amount_cents: int,
        currency: str,
        account_id: str,
        today: datetime.date,
        *,
        config: CaptureConfig | None = None,
        description: str = "",
        idempotency_key: str | None = None,
    ) -> None:
        self.idempotency_key = idempotency_key or new_idempotency_key()
        ChargeRequest(
            _NO_CARD, amount_cents, currency, self.idempotency_key, account_id, description
        )
        self.amount_cents = amount_cents
        self.currency = currency
        self.account_id = account_id
        self.description = description
        self.today = today
        self.config = config or CaptureConfig()
        self.stage = Stage.READY
        self.result: CaptureResult | None = None
        self._secure = False  # SecureOn out and SecureOff not yet
        self._started = 0.0
        self._waiting_since = 0.0  # when the first-digit timeout started
        self._last_key: float | None = None
        self._charge_deadline = 0.0
        self._playing: str | None = None
        self._tries = 0
        self._checks: dict[Stage, bool | None] = dict.fromkeys(_COLLECTING)
        self._brand: Brand | None = None
        self._last4: str | None = None
        self._length = 0
        self._detail = ""
        self._out: list[Action] = []
        self._tail: list[Action] = []
        self._view: ProgressView | None = None
        self._wipe()

    def __repr__(self) -> str:
        return (
            f"SecureCapture(stage={self.stage.value}, amount_cents={self.amount_cents}, "
            f"currency={self.currency!r}, account_id={self.account_id!r}, "
            f"idempotency_key={self.idempotency_key!r}, digits_entered={len(self._buffer)})"
        )

    __str__ = __repr__

    def __reduce_ex__(self, protocol: SupportsIndex) -> NoReturn:
        raise SecureCaptureError("secure capture holds card data; it is never pickled or copied")

    # --- the shell's calls -----------------------------------------------------------------

    @property
    def finished(self) -> bool:
        """Whether :class:`Finished` was emitted."""
        return self.result is not None

    @property
    def next_deadline(self) -> float | None:
        """When :meth:`advance` has something to do; ``None`` before start and when done."""
        if self.stage is Stage.CHARGING:
            return self._charge_deadline
        if self.stage not in _COLLECTING:
            return None
        return min(self._field_deadline(), self._started + self.config.overall_timeout)

    def start(self, now: float) -> list[Action]:
        """Enter the secure window and ask for the card number."""
        if self.stage is not Stage.READY:
            raise SecureCaptureError("secure capture was started already")
        self._started = now
        self._secure = True
        self._out.append(SecureOn())
        self._ask(Stage.CARD_NUMBER, "", now)
        return self._flush()

    def handle(self, event: Event, now: float) -> list[Action]:
        """What to do about ``event`` at ``now`` (timeouts due by then fire first)."""
        if self.stage is Stage.READY:
            raise SecureCaptureError("start secure capture before handing it events")
        if self.finished:
            return []
        self._expire(now)
        if not self.finished:
            self._event(event, now)
        return self._flush()

    def advance(self, now: float) -> list[Action]:
        """Fire whatever timeout is due at ``now``."""
        if self.stage is Stage.READY or self.finished:
            return []
        self._expire(now)
        return self._flush()

    def abort(self, reason: str | BaseException) -> list[Action]:
        """End at once because the shell failed; only an exception's class name is kept.

        Safe in any state, even after this machine raised: before :meth:`start`
        it returns just the :class:`Finished` (nothing was turned on).
        """
        # A call that raised returned nothing: drop its prompts and its Charge (never
        # sent, yet counted as unknown below), but deliver an ending it already made.
        self._out = []
        self._tail = [action for action in self._tail if isinstance(action, SecureOff | Finished)]
        if not self.finished:
            detail = type(reason).__name__ if isinstance(reason, BaseException) else reason
            unknown = Outcome.UNKNOWN if self.stage is Stage.CHARGING else None
            self._finish("failed", Ending.ABORTED, detail, unknown)
        return self._flush()

    # --- events ----------------------------------------------------------------------------

    def _event(self, event: Event, now: float) -> None:
        charging = self.stage is Stage.CHARGING
        match event:
            case DigitPressed(digit) if not charging:
                self._key(digit, now)
            case PromptFinished(key) if key == self._playing:
                self._playing = None
                if not self._buffer and self._last_key is None:
                    self._waiting_since = now
            case ChargeDone(result) if charging:
                if result.idempotency_key == self.idempotency_key:
                    self._answer(result)
            case ChargeFailed(reason, nothing_charged) if charging:
                if nothing_charged:
                    self._finish("failed", Ending.GATEWAY_ERROR, reason, Outcome.PROCESSING_ERROR)
                else:
                    self._finish("failed", Ending.OUTCOME_UNKNOWN, reason, Outcome.UNKNOWN)
            case CallerHungUp():
                self._leave(Ending.CALLER_HUNG_UP)
            case AgentHungUp():
                self._leave(Ending.AGENT_HUNG_UP)
            case Cancelled():
                self._leave(Ending.CANCELLED)
            case DigitPressed() | PromptFinished() | ChargeDone() | ChargeFailed():
                pass  # a key while charging, another prompt's end, a stale answer
            case _:
                raise SecureCaptureError(f"secure capture takes no {type(event).__name__} event")

    def _leave(self, ending: Ending) -> None:
        if self.stage is not Stage.CHARGING:
            self._finish("abandoned", ending)
        elif self._secure:
            # The charge is out: secure mode ends now, the result waits for the answer.
            self._secure = False
            self._detail = f"{ending.value} while charging"
            self._tail.append(SecureOff(ending))

    def _key(self, digit: str, now: float) -> None:
        if digit not in "0123456789*#":
            return
        if self._playing is not None:
            self._out.append(StopPrompt(self._playing))
            self._playing = None
        if digit == "*":
            self._ask(self.stage, "cleared", now)
        elif digit == "#":
            self._submit(now)
        else:
            self._buffer += digit
            self._last_key = now
            if len(self._buffer) >= longest(self.stage, self._buffer, self._brand):
                self._submit(now)

    def _expire(self, now: float) -> None:
        if self.stage is Stage.CHARGING:
            if now >= self._charge_deadline:
                self._finish(
                    "failed",
                    Ending.OUTCOME_UNKNOWN,
                    f"no answer from the gateway in {self.config.charge_timeout:g} s",
                    Outcome.UNKNOWN,
                )
        elif self.stage in _COLLECTING:
            if now >= self._started + self.config.overall_timeout:
                self._finish("abandoned", Ending.TIMED_OUT)
            elif now >= self._field_deadline():
                if self._buffer:
                    self._submit(now)
                else:
                    self._fail("no_input", now)

    # --- fields ----------------------------------------------------------------------------

    def _field_deadline(self) -> float:
        if self._last_key is None:
            return self._waiting_since + self.config.first_digit_timeout
        return self._last_key + self.config.inter_digit_timeout

    def _ask(self, stage: Stage, variant: str, now: float) -> None:
        """Say the stage's prompt (``variant``: invalid, …) and wait for its first key."""
        self.stage = stage
        self._buffer = ""
        self._last_key = None
        self._waiting_since = now
        key = prompt_key(stage, self._brand, variant)
        self._playing = key
        self._out.append(Say(key, PROMPTS[key]))

    def _submit(self, now: float) -> None:
        value, self._buffer, self._last_key = self._buffer, "", None
        failure = check(self.stage, value, self._brand, self.today)
        if failure is not None:
            self._fail(failure, now)
            return
        self._checks[self.stage] = True
        self._tries = 0
        match self.stage:
            case Stage.CARD_NUMBER:
                self._number, self._last4, self._length = value, value[-4:], len(value)
                self._brand = brand_of(value)
            case Stage.EXPIRY:
                self._expiry = expiry_of(value)
            case Stage.SECURITY_CODE:
                self._security_code = value
            case _:
                self._postal_code = value
                self._charge(now)
                return
        self._ask(_NEXT[self.stage], "", now)

    def _fail(self, variant: str, now: float) -> None:
        if variant != "no_input":  # no key at all says nothing about the field
            self._checks[self.stage] = False
        self._tries += 1
        if self._tries >= self.config.tries:
            self._finish("abandoned", Ending.TOO_MANY_TRIES, self.stage.value)
        else:
            self._ask(self.stage, variant, now)

    # --- the charge and the end ------------------------------------------------------------

    def _charge(self, now: float) -> None:
        month, year = self._expiry
        card = Card.checked(
            self._number, month, year, self._security_code, self._postal_code, self.today
        )
        request = ChargeRequest(
            card,
            self.amount_cents,
            self.currency,
            self.idempotency_key,
            self.account_id,
            self.description,
        )
        self._wipe()
        self.stage = Stage.CHARGING
        self._charge_deadline = now + self.config.charge_timeout
        self._playing = None
        last4 = self._last4 or ""
        self._out.append(
            Say(PROCESSING, processing_prompt(self.amount_cents, self.currency, last4), False)
        )
        self._tail.append(Charge(request))

    def _answer(self, answer: ChargeResult) -> None:
        outcome, ending = _GATEWAY[answer.outcome]
        self._finish(
            outcome,
            ending,
            self._detail,
            answer.outcome,
            payment_id=answer.payment_id,
            authorisation_code=answer.authorisation_code,
            decline_code=answer.decline_code,
        )

    def _finish(
        self,
        outcome: CaptureOutcome,
        ending: Ending,
        detail: str = "",
        gateway_outcome: Outcome | None = None,
        *,
        payment_id: str | None = None,
        authorisation_code: str | None = None,
        decline_code: str | None = None,
    ) -> None:
        self._wipe()
        self.result = CaptureResult(
            outcome,
            ending,
            self.amount_cents,
            self.currency,
            self._brand,
            self._last4,
            payment_id,
            authorisation_code,
            decline_code,
            gateway_outcome,
            self.idempotency_key if gateway_outcome is not None else None,
            detail,
        )
        self.stage = Stage.DONE
        self._playing = None
        if self._secure:
            self._secure = False
            self._tail.append(SecureOff(ending))
        self._tail.append(Finished(self.result))

    def _wipe(self) -> None:
        """Drop every reference to card data this object holds (brand and last four stay)."""
        self._buffer = ""
        self._number = ""
        self._expiry = (0, 0)
        self._security_code = ""
        self._postal_code = ""

    def _progress(self) -> ProgressView:
        number = None
        if self._last4 is not None:
            number = masked_number(self._length, self._last4)
        return ProgressView(
            self.stage,
            len(self._buffer),
            number,
            self._brand,
            self._checks[Stage.CARD_NUMBER],
            self._checks[Stage.EXPIRY],
            self._checks[Stage.SECURITY_CODE],
            self._checks[Stage.POSTAL_CODE],
            self.result,
        )

    def _flush(self) -> list[Action]:
        out, self._out = self._out, []
        view = self._progress()
        if view != self._view:
            self._view = view
            out.append(Progress(view))
        out.extend(self._tail)
        self._tail = []
        return out
