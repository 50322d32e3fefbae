"""Collecting keypad digits on a leg: the ``collect_digits`` command, sans-IO.

A :class:`DigitCollector` is fed the leg's digits (whatever their method:
RFC 4733, SIP INFO or in-band) and the time, and says when collection is
over and why (:class:`Outcome`): ``max_digits`` (the most wanted arrived),
``terminator`` (the terminator key, not included in the digits),
``timeout`` (no key within the inter-digit timeout after the first),
``no_input`` (no key within the first timeout) or ``hangup``. ``valid``
says whether the count is within ``min_digits``..``max_digits``: whether to
re-prompt is the IVR flow's decision, not the collector's. Digits typed
before the command are not counted.

:class:`DigitCollections` holds the collectors of a worker's legs and arms
one loop timer per collector; it is the only part that knows asyncio.

The digits may be card data: they live in memory only, reach the control
process in a ``digits`` event whose ``repr`` masks them, and are never
logged.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Callable

from assistline.sip import protocol
from assistline.sip.protocol import CollectOutcome as Outcome

KEYS = frozenset("0123456789*#ABCD")
MAX_DIGITS = 64


class CollectError(ValueError):
    """A ``collect_digits`` command asked for something impossible; the message says what."""


def check(command: protocol.CollectDigits) -> None:
    """Refuse impossible parameters with a message naming the field."""
    if not 1 <= command.min_digits <= command.max_digits <= MAX_DIGITS:
        raise CollectError(f"need 1 <= min_digits <= max_digits <= {MAX_DIGITS}")
    if command.terminator and (len(command.terminator) != 1 or command.terminator not in KEYS):
        raise CollectError("terminator is one key of 0-9, *, #, A-D, or empty")
    if command.first_timeout_ms <= 0 or command.inter_digit_timeout_ms <= 0:
        raise CollectError("first_timeout_ms and inter_digit_timeout_ms must be positive")


@dataclasses.dataclass
class DigitCollector:
    """One collection on one leg; times are seconds on any monotonic clock."""

    min_digits: int
    max_digits: int
    terminator: str
    first_timeout: float
    inter_digit_timeout: float
    started: float
    digits: str = ""
    last_key: float | None = None

    @classmethod
    def from_command(cls, command: protocol.CollectDigits, now: float) -> DigitCollector:
        """A collector for ``command``, which :func:`check` accepted, started at ``now``."""
        return cls(
            command.min_digits,
            command.max_digits,
            command.terminator,
            command.first_timeout_ms / 1000,
            command.inter_digit_timeout_ms / 1000,
            now,
        )

    @property
    def deadline(self) -> float:
        """When collection times out if no key comes."""
        if self.last_key is None:
            return self.started + self.first_timeout
        return self.last_key + self.inter_digit_timeout

    @property
    def valid(self) -> bool:
        """Between min_digits and max_digits collected."""
        return self.min_digits <= len(self.digits) <= self.max_digits

    def feed(self, digit: str, now: float) -> Outcome | None:
        """A key at ``now``: the outcome when it ends collection, else None."""
        self.last_key = now
        if self.terminator and digit == self.terminator:
            return "terminator"
        self.digits += digit
        return "max_digits" if len(self.digits) >= self.max_digits else None

    def expire(self, now: float) -> Outcome | None:
        """The outcome if ``now`` is past the deadline, else None."""
        if now < self.deadline:
            return None
        return "no_input" if self.last_key is None else "timeout"


class DigitCollections:
    """A worker's running collections, with their timers; results go to ``send``."""

    def __init__(self, send: Callable[[protocol.Event], None]) -> None:
        self._send = send
        self._running: dict[str, tuple[DigitCollector, asyncio.TimerHandle]] = {}

    def start(self, command: protocol.CollectDigits) -> None:
        """Start collecting on the command's leg (replacing a collection running there)."""
        check(command)
        self.cancel(command.leg)
        loop = asyncio.get_running_loop()
        collector = DigitCollector.from_command(command, loop.time())
        self._arm(command.leg, collector)

    def digit(self, leg: str, digit: str) -> None:
        """A digit arrived on ``leg``."""
        entry = self._running.get(leg)
        if entry is None:
            return
        collector, timer = entry
        timer.cancel()
        outcome = collector.feed(digit, asyncio.get_running_loop().time())
        if outcome is None:
            self._arm(leg, collector)
        else:
            self._finish(leg, collector, outcome)

    def ended(self, leg: str) -> None:
        """The leg hung up: a running collection ends with what it has."""
        entry = self._running.get(leg)
        if entry is not None:
            entry[1].cancel()
            self._finish(leg, entry[0], "hangup")

    def cancel(self, leg: str) -> None:
        """Drop a running collection without a result."""
        entry = self._running.pop(leg, None)
        if entry is not None:
            entry[1].cancel()

    def _arm(self, leg: str, collector: DigitCollector) -> None:
        loop = asyncio.get_running_loop()
        timer = loop.call_at(collector.deadline, self._expire, leg)
        self._running[leg] = (collector, timer)

    def _expire(self, leg: str) -> None:
        entry = self._running.get(leg)
        if entry is None:
            return
        collector = entry[0]
        outcome = collector.expire(asyncio.get_running_loop().time())
        if outcome is None:  # woken a little early
            self._arm(leg, collector)
        else:
            self._finish(leg, collector, outcome)

    def _finish(self, leg: str, collector: DigitCollector, outcome: Outcome) -> None:
        self._running.pop(leg, None)
        self._send(protocol.DigitsCollected(leg, collector.digits, outcome, collector.valid))
