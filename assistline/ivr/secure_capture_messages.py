"""What goes into secure capture (events), what comes out (actions), and its result.

:class:`~assistline.ivr.secure_capture.SecureCapture` is the state machine;
this module holds the messages it trades with its shell, the prompts it
speaks, the agent's masked view of its progress and the
:class:`CaptureResult` that is all that remains of a payment attempt.

Nothing here holds a card number, expiry or security code except the
:class:`Charge` action's request, whose ``repr`` shows the card as
``Card(visa …4242)``. A :class:`DigitPressed` masks its key in ``repr``;
:class:`ChargeFailed` masks any card number in its reason (the shell should
pass an exception's class name, never its message); prompts speak at most
the last four digits and the amount
(:mod:`~assistline.ivr.secure_capture_fields` holds them).
"""

from __future__ import annotations

import dataclasses
import enum
from typing import Literal

from assistline.errors import AssistlineError
from assistline.ivr.card import Brand
from assistline.ivr.gateway import ChargeRequest, ChargeResult, Outcome
from assistline.ivr.utterance import Utterance
from assistline.redaction import mask_card_numbers

#: Keys a keypad sends (A-D from the few phones that have them; secure capture ignores those).
KEYPAD = "0123456789*#ABCD"

#: How a capture ended, as a payment flow branches on it (the flow engine's payment outcomes).
CaptureOutcome = Literal["approved", "declined", "failed", "abandoned"]


class SecureCaptureError(AssistlineError, ValueError):
    """Secure capture was driven wrongly; the shell driving it has a bug (no card data here)."""


@dataclasses.dataclass(frozen=True, slots=True)
class CaptureConfig:
    """Timeouts (seconds) and tries of one capture.

    ``charge_timeout`` must outlast the gateway adapter's own retries (the
    HTTP gateway's defaults take at most 3 × 10 s plus 1.5 s of back-off).
    """

    first_digit_timeout: float = 10.0
    inter_digit_timeout: float = 5.0
    tries: int = 3
    overall_timeout: float = 180.0
    charge_timeout: float = 45.0

    def __post_init__(self) -> None:
        for name in ("first_digit_timeout", "inter_digit_timeout", "overall_timeout"):
            if not getattr(self, name) > 0:
                raise SecureCaptureError(f"{name} must be positive")
        if not self.charge_timeout > 0:
            raise SecureCaptureError("charge_timeout must be positive")
        if type(self.tries) is not int or self.tries < 1:
            raise SecureCaptureError("tries must be an integer of at least 1")


class Stage(enum.StrEnum):
    """What the capture is doing."""

    READY = "ready"  # not started
    CARD_NUMBER = "card_number"
    EXPIRY = "expiry"
    SECURITY_CODE = "security_code"
    POSTAL_CODE = "postal_code"
    CHARGING = "charging"  # the Charge is out; waiting for the gateway's answer
    DONE = "done"


class Ending(enum.StrEnum):
    """Why a capture ended (or, in :class:`SecureOff`, why secure mode ended)."""

    APPROVED = "approved"
    DECLINED = "declined"
    GATEWAY_ERROR = "gateway_error"  # the gateway said it failed: nothing was charged
    OUTCOME_UNKNOWN = "outcome_unknown"  # no answer: the card may have been charged
    CALLER_HUNG_UP = "caller_hung_up"
    AGENT_HUNG_UP = "agent_hung_up"
    CANCELLED = "cancelled"
    ABORTED = "aborted"  # the shell hit an exception
    TIMED_OUT = "timed_out"  # the overall limit passed before the card was complete
    TOO_MANY_TRIES = "too_many_tries"


# --- events ------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True, slots=True, repr=False)
class DigitPressed:
    """The caller pressed a key (whatever the method: RFC 4733, SIP INFO, in-band); masked."""

    digit: str

    def __post_init__(self) -> None:
        if len(self.digit) != 1 or self.digit not in KEYPAD:
            raise SecureCaptureError("DigitPressed takes one key of 0-9, *, #, A-D")

    def __repr__(self) -> str:
        return "DigitPressed(digit='•')"


@dataclasses.dataclass(frozen=True, slots=True)
class PromptFinished:
    """The prompt ``key`` played to its end: the first-digit timeout runs from now."""

    key: str


@dataclasses.dataclass(frozen=True, slots=True)
class ChargeDone:
    """The gateway answered the :class:`Charge` (any outcome, :attr:`Outcome.UNKNOWN` too)."""

    result: ChargeResult


@dataclasses.dataclass(frozen=True, slots=True)
class ChargeFailed:
    """The gateway call raised; ``reason`` is an exception's class name, never its message.

    ``nothing_charged`` is true only when the error says so (a
    :class:`~assistline.ivr.gateway.GatewayError`); anything else, a timeout
    in the shell included, may have charged the card, so the outcome is unknown.
    """

    reason: str
    nothing_charged: bool = False

    def __post_init__(self) -> None:
        # Belt and braces: a reason is free text from the shell.
        object.__setattr__(self, "reason", mask_card_numbers(self.reason))


@dataclasses.dataclass(frozen=True, slots=True)
class CallerHungUp:
    """The caller's leg ended."""


@dataclasses.dataclass(frozen=True, slots=True)
class AgentHungUp:
    """The agent's leg ended (agent-assisted capture); the caller may still be there."""


@dataclasses.dataclass(frozen=True, slots=True)
class Cancelled:
    """The agent or the IVR flow called the capture off."""


Event = (
    DigitPressed
    | PromptFinished
    | ChargeDone
    | ChargeFailed
    | CallerHungUp
    | AgentHungUp
    | Cancelled
)


# --- the result and the agent's view -----------------------------------------------------


@dataclasses.dataclass(frozen=True, slots=True)
class CaptureResult:
    """All that is kept of a capture: storable, loggable, fit for the agent's screen.

    ``idempotency_key`` is set once a charge was sent: when
    :attr:`outcome_unknown`, ask the gateway again with that key (it answers
    with the first answer) before anyone charges this account again.
    ``brand`` and ``last4`` are set once the number was accepted.
    """

    outcome: CaptureOutcome
    ending: Ending
    amount_cents: int
    currency: str
    brand: Brand | None = None
    last4: str | None = None
    payment_id: str | None = None
    authorisation_code: str | None = None
    decline_code: str | None = None
    gateway_outcome: Outcome | None = None
    idempotency_key: str | None = None
    #: The field that ran out of tries, the exception's class name, the gateway's failure.
    detail: str = ""

    @property
    def outcome_unknown(self) -> bool:
        """A charge went out and no answer came: the card may have been charged."""
        return self.gateway_outcome is Outcome.UNKNOWN

    def fields(self) -> dict[str, str | int | bool]:
        """The values a flow's payment step stores (its ``results``); unknown ones left out."""
        values: dict[str, str | int | bool] = {
            "ending": self.ending.value,
            "amount_cents": self.amount_cents,
            "currency": self.currency,
            "outcome_unknown": self.outcome_unknown,
        }
        optional = {
            "confirmation": self.payment_id,
            "payment_id": self.payment_id,
            "brand": self.brand.value if self.brand else None,
            "last4": self.last4,
            "authorisation_code": self.authorisation_code,
            "decline_code": self.decline_code,
        }
        values.update({name: value for name, value in optional.items() if value is not None})
        return values


def masked_number(length: int, last4: str) -> str:
    """``•••• •••• •••• 4242``: a dot per hidden digit, in fours, then the last four."""
    hidden = "•" * (length - len(last4))
    groups = [hidden[i : i + 4] for i in range(0, len(hidden), 4)]
    return " ".join([*groups, last4])


_LABELS = {
    Stage.CARD_NUMBER: "card number",
    Stage.EXPIRY: "expiry",
    Stage.SECURITY_CODE: "security code",
    Stage.POSTAL_CODE: "postal code",
}


@dataclasses.dataclass(frozen=True, slots=True)
class ProgressView:
    """What the agent's console shows: counts and checks, the last four once accepted.

    A check is ``None`` until the field is first submitted, ``False`` while
    it is being keyed again after failing, ``True`` once accepted.
    """

    stage: Stage
    digits_entered: int = 0  # in the field being keyed
    number: str | None = None  # masked, once the number is accepted
    brand: Brand | None = None
    number_ok: bool | None = None
    expiry_ok: bool | None = None
    security_code_ok: bool | None = None
    postal_code_ok: bool | None = None
    result: CaptureResult | None = None

    @property
    def text(self) -> str:
        """One line: ``•••• •••• •••• 4242, Luhn ✓, expiry ✓, security code: 2 digits``."""
        checks = {
            Stage.CARD_NUMBER: self.number_ok,
            Stage.EXPIRY: self.expiry_ok,
            Stage.SECURITY_CODE: self.security_code_ok,
            Stage.POSTAL_CODE: self.postal_code_ok,
        }
        items = []
        for stage, label in _LABELS.items():
            ok = checks[stage]
            if stage is Stage.CARD_NUMBER and self.number is not None:
                items.append(f"{self.number}, Luhn ✓")
            elif ok:
                items.append(f"{label} ✓")
            elif stage is self.stage:
                plural = "" if self.digits_entered == 1 else "s"
                again = " (again)" if ok is False else ""
                items.append(f"{label}{again}: {self.digits_entered} digit{plural}")
        if self.stage is Stage.CHARGING:
            items.append("charging")
        elif self.result is not None:
            code = f" ({self.result.decline_code})" if self.result.decline_code else ""
            items.append(f"{self.result.outcome}{code}")
        return ", ".join(items)


# --- actions -----------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True, slots=True)
class SecureOn:
    """Enter the secure window.

    The shell pauses the call's recording (timing kept), stops forwarding
    RFC 4733 and SIP INFO keypad events toward the agent and the recorder,
    turns on in-band DTMF suppression toward them, pauses transcription and
    writes an audit entry (no digits).
    """


@dataclasses.dataclass(frozen=True, slots=True)
class SecureOff:
    """Leave the secure window: undo everything :class:`SecureOn` did, and audit ``reason``."""

    reason: Ending


@dataclasses.dataclass(frozen=True, slots=True)
class Say:
    """Speak ``utterance`` (or the recording named ``key``); it replaces any prompt playing."""

    key: str
    utterance: Utterance
    barge_in: bool = True


@dataclasses.dataclass(frozen=True, slots=True)
class StopPrompt:
    """Stop prompt ``key``: the caller started keying."""

    key: str


@dataclasses.dataclass(frozen=True, slots=True)
class Progress:
    """Show the agent how the capture is going."""

    view: ProgressView


@dataclasses.dataclass(frozen=True, slots=True)
class Charge:
    """Send ``request`` to the payment gateway; answer with ChargeDone or ChargeFailed.

    The only action that holds card data: hand it to the gateway and drop it.
    """

    request: ChargeRequest


@dataclasses.dataclass(frozen=True, slots=True)
class Finished:
    """The capture is over; nothing follows. ``result`` may be stored."""

    result: CaptureResult


Action = SecureOn | SecureOff | Say | StopPrompt | Progress | Charge | Finished
