"""Masking card numbers wherever text might leave the process.

A primary account number is 13 to 19 digits that pass the Luhn check, often
written in groups separated by spaces or dashes. Every log line, and later
every transcript, goes through :func:`mask_card_numbers`; only the last four
digits survive, which PCI DSS allows to be shown.

Digit runs inside a UUID or a long hex identifier are left alone. A contact id
whose first groups happen to be all digits (``75438352-6404-4304-a942-…``)
passes the Luhn check one time in ten; masking it garbled the id in logs, and
the card sweeps reported card data that was never there.
"""

from __future__ import annotations

import re

# A maximal run of digits, single spaces or dashes allowed between digits:
# the look-arounds stop a match from starting or ending inside a longer run.
_DIGIT_RUN = re.compile(r"(?<!\d)(?<!\d[ -])\d(?:[ -]?\d){12,18}(?![ -]?\d)")

# Identifiers that can hold a Luhn-valid digit run by chance: a UUID (a contact
# id, "75438352-6404-4304-a942-…") or a long hex token (a SIP call id). A digit
# run inside one is not a card number; masking it would garble the identifier.
_HEX_IDENTIFIER = re.compile(
    r"(?<![0-9A-Za-z])"
    r"(?:[0-9A-Fa-f]{8}(?:-[0-9A-Fa-f]{4}){3}-[0-9A-Fa-f]{12}|(?=[0-9]*[A-Fa-f])[0-9A-Fa-f]{24,})"
    r"(?![0-9A-Za-z])"
)


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


def _is_card_number(match: re.Match[str]) -> bool:
    if not luhn_valid(re.sub(r"[ -]", "", match.group())):
        return False
    # Only a Luhn-valid run (rare) pays for the identifier search.
    return not any(
        found.start() <= match.start() and match.end() <= found.end()
        for found in _HEX_IDENTIFIER.finditer(match.string)
    )


def _mask(match: re.Match[str]) -> str:
    if not _is_card_number(match):
        return match.group()
    return f"[card …{re.sub(r'[ -]', '', match.group())[-4:]}]"


def mask_card_numbers(text: str) -> str:
    """Replace every Luhn-valid run of 13–19 digits in ``text`` by ``[card …NNNN]``."""
    if len(text) < 13:
        return text
    return _DIGIT_RUN.sub(_mask, text)


def contains_card_number(text: str) -> bool:
    """Whether ``text`` holds a Luhn-valid run of 13–19 digits (for sweeps and tests)."""
    return any(_is_card_number(match) for match in _DIGIT_RUN.finditer(text))
