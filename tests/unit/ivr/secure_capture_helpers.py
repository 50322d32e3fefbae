"""Shared by the secure capture tests: a run on a fake clock and shorthands for actions."""

from __future__ import annotations

import datetime
from typing import Any

from assistline.ivr.card import Brand
from assistline.ivr.gateway import ChargeRequest, ChargeResult, Outcome
from assistline.ivr.secure_capture import SecureCapture
from assistline.ivr.secure_capture_fields import PROMPTS
from assistline.ivr.secure_capture_messages import (
    Action,
    CaptureConfig,
    CaptureResult,
    Charge,
    ChargeDone,
    DigitPressed,
    Event,
    Progress,
    ProgressView,
    Say,
    Stage,
)

TODAY = datetime.date(2025, 6, 15)
KEY = "assistline-test-key"
VISA = "4242424242424242"
MASKED = "•••• •••• •••• 4242"
REST = "1226" + "123" + "94107"  # December 2026, security code, ZIP code


def new(amount: int = 4210, config: CaptureConfig | None = None) -> SecureCapture:
    return SecureCapture(amount, "usd", "acct-1", TODAY, config=config, idempotency_key=KEY)


class Run:
    """Drives a capture on a fake clock and keeps every action it emitted."""

    def __init__(self, capture: SecureCapture | None = None) -> None:
        self.capture = capture or new()
        self.now = 0.0
        self.actions: list[Action] = []

    def _keep(self, actions: list[Action]) -> list[Action]:
        self.actions += actions
        return actions

    def start(self) -> list[Action]:
        return self._keep(self.capture.start(self.now))

    def press(self, keys: str, gap: float = 0.5) -> list[Action]:
        out = []
        for key in keys:
            self.now += gap
            out += self._keep(self.capture.handle(DigitPressed(key), self.now))
        return out

    def send(self, event: Event, after: float = 0.0) -> list[Action]:
        self.now += after
        return self._keep(self.capture.handle(event, self.now))

    def wait(self, seconds: float) -> list[Action]:
        self.now += seconds
        return self._keep(self.capture.advance(self.now))

    def abort(self, reason: str | BaseException) -> list[Action]:
        return self._keep(self.capture.abort(reason))

    def charging(self, number: str = VISA + "#", rest: str = REST) -> ChargeRequest:
        self.start()
        self.press(number + rest)
        charges = [a.request for a in self.actions if isinstance(a, Charge)]
        assert len(charges) == 1
        return charges[0]

    @property
    def says(self) -> list[str]:
        return [a.key for a in self.actions if isinstance(a, Say)]

    @property
    def result(self) -> CaptureResult:
        assert self.capture.result is not None
        return self.capture.result


def view(stage: Stage, digits: int = 0, **fields: Any) -> Progress:
    return Progress(ProgressView(stage, digits, **fields))


def say(key: str) -> Say:
    return Say(key, PROMPTS[key])


def card_view(stage: Stage, digits: int = 0, **fields: Any) -> Progress:
    return view(stage, digits, number=MASKED, brand=Brand.VISA, number_ok=True, **fields)


def approve(request: ChargeRequest) -> ChargeDone:
    return ChargeDone(ChargeResult.for_request(request, Outcome.APPROVED, "pi_1"))
