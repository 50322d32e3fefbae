"""bench/ivr.py's accounting: digits keyed against digits charged, and last key to charge.

Per call, the payment attempts the caller keyed (:class:`~_ivr_caller.Attempt`)
are matched in order with the charges the provider received for the
call's account (:class:`~_ivr_gateway.Charge`): the k-th attempt whose
every field stood ↔ the k-th charge. Digits are the card's 0-9 keys (the
card number's ``#`` is a terminator, not card data: a lost one costs the
5 s inter-digit timeout, not a wrong digit).

- **Digits sent**: every card digit keyed, re-entries included.
- **Wrong digits**, three kinds:

  - a *refused entry* (the line said that field was invalid, not heard or
    expired and asked again) counts as one wrong digit: the fewest that
    explain a refusal, and with errors this rare almost surely the number
    (two wrong keys in one 16-key entry at a 0.1 % key error rate are
    about 100 times less likely than one);
  - in a charged attempt, the edit distance (keys inserted, dropped or
    changed) between what was keyed in the fields that stood and what the
    provider received, all four fields run together, so a key that slipped
    from one field into the next counts once;
  - every digit of an attempt whose fields stood but that no charge
    matched (the call ended, or the charge never came).

- Attempts with a key sent while the callers' own process was late (a
  tick over 20 ms late, so frames more than 40 ms apart: the load
  generator stalled) are left out of all of these and counted apart.
- **Strict** figures count every digit of a refused entry as wrong: a
  bound that cannot be too kind. The 95 % lower bound (Wilson score) says
  what the count can show: with about 1,000 digits and none wrong it is
  99.6 %; ``--attempts 12`` (4,032 digits a method, none wrong) shows 99.9 %.

Latency per charged attempt: from the caller's release (and press) of the
attempt's last key (the ZIP code's fifth digit) to the charge's arrival at
the provider, both on this machine's monotonic clock.
"""

from __future__ import annotations

import collections
import dataclasses
import math
from collections.abc import Sequence
from typing import Any

from _ivr_caller import FIELDS, Attempt, Call
from _ivr_gateway import Charge
from _ivr_media import levenshtein, percentile


@dataclasses.dataclass
class Accuracy:
    """Digit figures of a set of calls (one method at one loss rate)."""

    calls: int = 0
    calls_up: int = 0
    calls_completed: int = 0  # heard the goodbye after paying
    attempts: int = 0
    attempts_charged: int = 0
    digits_sent: int = 0
    refused_entries: int = 0
    refused_entry_digits: int = 0
    charged_digit_errors: int = 0
    unconfirmed_digits: int = 0
    extra_charges: int = 0
    attempts_excluded: int = 0
    latency_left_out: int = 0
    digits_excluded: int = 0
    identification_keys: int = 0
    identification_refusals: int = 0
    menu_refusals: int = 0
    unexpected_prompts: int = 0
    repeats: int = 0
    packets_sent: int = 0
    packets_dropped_to_server: int = 0
    packets_dropped_to_caller: int = 0
    delay_ms: list[float] = dataclasses.field(default_factory=list)
    verdicts: collections.Counter[str] = dataclasses.field(default_factory=collections.Counter)
    endings: collections.Counter[str] = dataclasses.field(default_factory=collections.Counter)
    release_ms: list[float] = dataclasses.field(default_factory=list)
    press_ms: list[float] = dataclasses.field(default_factory=list)

    @property
    def wrong(self) -> int:
        """Wrong digits (a refused entry counting one)."""
        return self.refused_entries + self.charged_digit_errors + self.unconfirmed_digits

    @property
    def wrong_strict(self) -> int:
        """Wrong digits counting every digit of a refused entry."""
        return self.refused_entry_digits + self.charged_digit_errors + self.unconfirmed_digits

    def percent(self, strict: bool = False) -> float | None:
        """Digits correct, in per cent of digits sent."""
        if not self.digits_sent:
            return None
        wrong = self.wrong_strict if strict else self.wrong
        return 100.0 * (self.digits_sent - wrong) / self.digits_sent

    def lower_bound(self) -> float | None:
        """The 95 % Wilson score lower bound of the share of digits correct, in per cent."""
        n = self.digits_sent
        if not n:
            return None
        share, z = (n - self.wrong) / n, 1.96
        centre = share + z * z / (2 * n)
        spread = z * math.sqrt(share * (1 - share) / n + z * z / (4 * n * n))
        return 100.0 * (centre - spread) / (1 + z * z / n)

    def add(
        self, call: Call, charges: Sequence[Charge], stalls: Sequence[tuple[float, float]]
    ) -> None:
        """Count one call against the charges its account received.

        An attempt with a key sent while the callers' process was late
        (``stalls``) is left out and counted apart: the load generator, not
        the line, may have lost those keys.
        """
        script = call.script
        assert script is not None
        self.calls += 1
        self.calls_up += call.up_at is not None
        self.identification_keys += script.identification_keys
        self.identification_refusals += script.identification_refusals
        self.menu_refusals += script.menu_refusals
        self.unexpected_prompts += len(script.unexpected)
        self.repeats += call.repeats
        self.endings[script.ending or "none heard"] += 1
        self.calls_completed += script.ending == "goodbye" and any(
            a.complete() for a in script.attempts
        )
        matched = iter(charges)
        for attempt in script.attempts:
            charge = next(matched, None) if attempt.complete() else None
            if _disturbed(attempt, stalls):
                self.attempts_excluded += 1
                self.digits_excluded += sum(len(entry.keys) for entry in attempt.entries)
                continue
            self.attempts += 1
            self.digits_sent += sum(len(entry.keys) for entry in attempt.entries)
            for entry in attempt.entries:
                if entry.verdict:
                    self.refused_entries += 1
                    self.refused_entry_digits += len(entry.keys)
                    self.verdicts[f"{entry.field}.{entry.verdict}"] += 1
            finals = [attempt.last(field) for field in FIELDS]
            standing = "".join(e.keys for e in finals if e is not None and not e.verdict)
            if charge is None:
                self.unconfirmed_digits += len(standing)
                continue
            self.attempts_charged += 1
            self.charged_digit_errors += levenshtein(standing, charge.keys())
            last = finals[-1]
            if last is None or last.released_at is None or last.pressed_at is None:
                continue
            if any(since < charge.arrived and until > last.pressed_at for since, until in stalls):
                self.latency_left_out += 1  # this process was late: its timestamps are too
                continue
            self.release_ms.append((charge.arrived - last.released_at) * 1000)
            self.press_ms.append((charge.arrived - last.pressed_at) * 1000)
        self.extra_charges += sum(1 for _ in matched)

    def add_path(self, call: Call) -> None:
        """Count the impairment's packets of one call."""
        impair = call.impair
        if impair is None:
            return
        self.packets_sent += impair[0].passed + impair[0].dropped
        self.packets_dropped_to_server += impair[0].dropped
        self.packets_dropped_to_caller += impair[1].dropped
        self.delay_ms.extend(d * 1000 for d in impair[0].delays)

    def as_json(self) -> dict[str, Any]:
        """The figures for the report."""
        exact = self.percent()
        strict = self.percent(strict=True)
        delays = self.delay_ms
        return {
            "calls": self.calls,
            "calls_up": self.calls_up,
            "calls_paid_and_ended": self.calls_completed,
            "attempts": self.attempts,
            "attempts_charged": self.attempts_charged,
            "digits_sent": self.digits_sent,
            "digits_wrong": self.wrong,
            "digits_correct": self.digits_sent - self.wrong,
            "digits_correct_percent": None if exact is None else round(exact, 3),
            "digits_correct_percent_strict": None if strict is None else round(strict, 3),
            "digits_correct_percent_95_lower_bound": None
            if self.lower_bound() is None
            else round(self.lower_bound() or 0.0, 3),
            "refused_entries": self.refused_entries,
            "refusals": dict(self.verdicts),
            "charged_digit_errors": self.charged_digit_errors,
            "unconfirmed_digits": self.unconfirmed_digits,
            "charges_without_attempt": self.extra_charges,
            "attempts_left_out_callers_late": self.attempts_excluded,
            "digits_left_out_callers_late": self.digits_excluded,
            "identification_keys": self.identification_keys,
            "identification_refusals": self.identification_refusals,
            "menu_refusals": self.menu_refusals,
            "unexpected_prompts": self.unexpected_prompts,
            "prompts_heard_twice_ignored": self.repeats,
            "endings": dict(self.endings),
            "packets_to_server": self.packets_sent,
            "packets_dropped_to_server": self.packets_dropped_to_server,
            "packets_dropped_to_caller": self.packets_dropped_to_caller,
            "added_delay_ms_mean": round(sum(delays) / len(delays), 2) if delays else None,
            "added_delay_ms_max": round(max(delays), 2) if delays else None,
        }


def _disturbed(attempt: Attempt, stalls: Sequence[tuple[float, float]]) -> bool:
    """Whether a stall of the callers' process overlapped the keying of any entry."""
    for entry in attempt.entries:
        if entry.started_at is None:
            continue
        end = entry.released_at if entry.released_at is not None else entry.started_at + 5.0
        if any(since < end + 0.1 and until > entry.started_at - 0.1 for since, until in stalls):
            return True
    return False


def latency_json(figures: Accuracy) -> dict[str, Any]:
    """Last key to charge: p50, p95 and max, from the release and from the press."""

    def stats(values: list[float]) -> dict[str, float | None]:
        p50, p95 = percentile(values, 0.5), percentile(values, 0.95)
        return {
            "p50_ms": None if p50 is None else round(p50, 1),
            "p95_ms": None if p95 is None else round(p95, 1),
            "max_ms": round(max(values), 1) if values else None,
        }

    return {
        "samples": len(figures.release_ms),
        "samples_left_out_callers_late": figures.latency_left_out,
        "from_release": stats(figures.release_ms),
        "from_press": stats(figures.press_ms),
    }
