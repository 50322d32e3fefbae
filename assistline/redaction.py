"""Masking card numbers wherever text might leave the process.

A primary account number is 13 to 19 digits that pass the Luhn check, often
written in groups separated by spaces or dashes. Every log line, and later
every transcript, goes through :func:`mask_card_numbers`; only the last four
digits survive, which PCI DSS allows to be shown.
"""

from __future__ import annotations

import re

# A maximal run of digits, single spaces or dashes allowed between digits:
# the look-arounds stop a match from starting or ending inside a longer run.
_DIGIT_RUN = re.compile(r"(?<!\d)(?<!\d[ -])\d(?:[ -]?\d){12,18}(?![ -]?\d)")


def luhn_valid(digits: str) -> bool:
    """Whether a string of decimal digits passes the Luhn (mod 10) check."""
    if not digits.isdigit() or not digits.isascii():
        return False
    total = 0
    for position, char in enumerate(reversed(digits)):
        value = ord(char) - 48
        if position % 2 == 1:
            value *= 2
            if value > 9:
                value -= 9
        total += value
    return total % 10 == 0


def _mask(match: re.Match[str]) -> str:
    digits = re.sub(r"[ -]", "", match.group())
    if not luhn_valid(digits):
        return match.group()
    return f"[card …{digits[-4:]}]"


def mask_card_numbers(text: str) -> str:
    """Replace every Luhn-valid run of 13–19 digits in ``text`` by ``[card …NNNN]``."""
    if len(text) < 13:
        return text
    return _DIGIT_RUN.sub(_mask, text)


def contains_card_number(text: str) -> bool:
    """Whether ``text`` holds a Luhn-valid run of 13–19 digits (for sweeps and tests)."""
    return any(luhn_valid(re.sub(r"[ -]", "", m.group())) for m in _DIGIT_RUN.finditer(text))
