"""What a prompt says, before it becomes words: text and typed values.

The flow engine resolves a prompt's template into an :data:`Utterance`, a
tuple of parts; :mod:`assistline.ivr.verbalise` turns one into the en-US words
the text-to-speech engine reads ("$42.10" → "forty-two dollars and ten
cents"). Keeping the values typed until then means amounts are never
floats, dates never strings in some locale, and an account number is read
digit by digit rather than as "four million …".
"""

from __future__ import annotations

import dataclasses
import datetime


@dataclasses.dataclass(frozen=True, slots=True)
class Words:
    """Literal text, read as written."""

    text: str


@dataclasses.dataclass(frozen=True, slots=True)
class Amount:
    """An amount of money in integer cents (US dollars), e.g. 4210 is $42.10."""

    cents: int


@dataclasses.dataclass(frozen=True, slots=True)
class Number:
    """A cardinal number, e.g. 3 → "three"."""

    value: int


@dataclasses.dataclass(frozen=True, slots=True)
class Ordinal:
    """An ordinal number, e.g. 3 → "third"."""

    value: int


@dataclasses.dataclass(frozen=True, slots=True)
class Digits:
    """A digit string read one key at a time, e.g. an account or confirmation number."""

    digits: str


@dataclasses.dataclass(frozen=True, slots=True)
class Date:
    """A calendar date, e.g. 2026-12-01 → "December first, twenty twenty-six"."""

    date: datetime.date


Part = Words | Amount | Number | Ordinal | Digits | Date
Utterance = tuple[Part, ...]
