"""The en-US words of an utterance, for the text-to-speech engine (sans-IO).

:func:`verbalise` turns an :data:`~assistline.ivr.utterance.Utterance` into
the sentence the engine reads, so that what a caller hears about money,
dates and account numbers is decided here, with tests, and not by the
engine's own guesses (espeak-ng reads "$42.10" as "forty-two dollars ten",
and "0" inside a number as "oh" in some voices). Decisions:

- **Numbers** are American English without "and" ("one hundred five",
  "one thousand two hundred thirty-four"), hyphens between tens and units
  ("forty-two"), scales up to trillions (below 10**15, which covers any
  amount a payment line quotes); negative numbers are "minus …".
- **Amounts** are dollars and cents: "forty-two dollars and ten cents",
  "one dollar", "zero dollars", "ten cents", "one dollar and one cent".
  Negative amounts are refused (:class:`VerbaliseError`): on an
  accounts-receivable line a credit must be worded by the flow ("you have a
  credit of …" with the absolute amount), because "minus forty dollars" is
  easily heard as a debt.
- **Ordinals**: "first", "twenty-second", "one hundredth", "zeroth";
  negative ordinals are refused.
- **Digits** are read one key at a time, 0 as "zero" (never "oh"), ``*``
  as "star" and ``#`` as "pound", the US keypad's names. Up to five keys
  are one group; longer strings are cut into groups of three, the last one
  or two groups four long to use up the remainder (7 → 3-4, 8 → 4-4,
  10 → 3-3-4 like a phone number, 11 → 3-4-4), and groups are joined by
  commas, at which espeak-ng pauses (a comma in six digits made them 0.30 s
  longer at 160 words a minute), so a caller can follow along or write the
  number down. Anything else in a digit string is
  refused; the message never repeats the string, which may be card data.
- **Dates** are "December first, twenty twenty-six", with no weekday: "Tuesday,"
  made that date 0.75 s longer (2.87 s → 3.62 s at 160 words a minute) in
  every due-date prompt, and a caller rarely needs it; a flow that wants it
  says it in words. Years 2000–2009
  are "two thousand five", 2010–2099 "twenty twenty-six"; other four-digit
  years follow the same pattern ("nineteen eighty-four", "nineteen oh
  five", "nineteen hundred"); other years are read as numbers.
- **Joining**: each part's text, stripped, joined by single spaces, except
  that a :class:`~assistline.ivr.utterance.Words` part starting with
  punctuation (``.,;:!?``) follows without a space; empty parts vanish.
"""

from __future__ import annotations

import datetime

from assistline.errors import AssistlineError
from assistline.ivr.utterance import Amount, Date, Digits, Number, Ordinal, Part, Utterance, Words

_ONES = (
    "zero one two three four five six seven eight nine ten eleven twelve thirteen "
    "fourteen fifteen sixteen seventeen eighteen nineteen"
).split()
_TENS = "_ _ twenty thirty forty fifty sixty seventy eighty ninety".split()
_SCALES = ((10**12, "trillion"), (10**9, "billion"), (10**6, "million"), (1000, "thousand"))
LIMIT = 10**15
"""Numbers from here up are refused: no payment line quotes a quadrillion."""

# An ordinal is its cardinal with the last word changed; these are the irregular ones.
_ORDINAL_WORDS = {
    "zero": "zeroth",
    "one": "first",
    "two": "second",
    "three": "third",
    "five": "fifth",
    "eight": "eighth",
    "nine": "ninth",
    "twelve": "twelfth",
}
_KEYS = {str(d): _ONES[d] for d in range(10)} | {"*": "star", "#": "pound"}
_PUNCTUATION = tuple(".,;:!?")
_MONTHS = (
    "January February March April May June July August September October November December"
).split()


class VerbaliseError(AssistlineError, ValueError):
    """A prompt holds a value that cannot be read out; the message says which kind."""


def _below_thousand(value: int) -> list[str]:
    words = []
    hundreds, rest = divmod(value, 100)
    if hundreds:
        words += [_ONES[hundreds], "hundred"]
    if rest >= 20:
        tens, ones = divmod(rest, 10)
        words.append(f"{_TENS[tens]}-{_ONES[ones]}" if ones else _TENS[tens])
    elif rest:
        words.append(_ONES[rest])
    return words


def cardinal(value: int) -> str:
    """A whole number in words: 1234 → "one thousand two hundred thirty-four"."""
    if not -LIMIT < value < LIMIT:
        raise VerbaliseError("number is too large to read out (the limit is below 10**15)")
    if value < 0:
        return "minus " + cardinal(-value)
    if value == 0:
        return "zero"
    words: list[str] = []
    for size, name in _SCALES:
        count, value = divmod(value, size)
        if count:
            words += [*_below_thousand(count), name]
    words += _below_thousand(value)
    return " ".join(words)


def ordinal(value: int) -> str:
    """An ordinal number in words: 21 → "twenty-first", 100 → "one hundredth"."""
    if value < 0:
        raise VerbaliseError("ordinal is negative")
    words = cardinal(value)
    head, _, last = words.rpartition(" ")
    stem, hyphen, unit = last.rpartition("-")
    if unit in _ORDINAL_WORDS:
        unit = _ORDINAL_WORDS[unit]
    elif unit.endswith("y"):
        unit = unit[:-1] + "ieth"
    else:
        unit += "th"
    return f"{head} {stem}{hyphen}{unit}".lstrip()


def amount(cents: int) -> str:
    """US dollars and cents in words: 4210 → "forty-two dollars and ten cents"."""
    if cents < 0:
        raise VerbaliseError(
            "amount is negative; word a credit in the flow and give its absolute value"
        )
    dollars, rest = divmod(cents, 100)
    dollar_words = f"{cardinal(dollars)} dollar{'' if dollars == 1 else 's'}"
    cent_words = f"{cardinal(rest)} cent{'' if rest == 1 else 's'}"
    if not rest:
        return dollar_words
    if not dollars:
        return cent_words
    return f"{dollar_words} and {cent_words}"


def digit_groups(count: int) -> list[int]:
    """How many keys each spoken group of a ``count``-key string holds."""
    if count <= 5:
        return [count] if count else []
    fours = count % 3  # a remainder of 1 takes one group of four, of 2 two groups
    return [3] * ((count - 4 * fours) // 3) + [4] * fours


def digits(keys: str) -> str:
    """Keys read one at a time, grouped by commas: "0123456" → "zero one two, three four …"."""
    if not keys or any(key not in _KEYS for key in keys):
        # Never the string itself: a digit string may be card data.
        raise VerbaliseError("digit string must be one or more of 0-9, * and #")
    groups = []
    start = 0
    for size in digit_groups(len(keys)):
        groups.append(" ".join(_KEYS[key] for key in keys[start : start + size]))
        start += size
    return ", ".join(groups)


def year(value: int) -> str:
    """A year as people say it: 2026 → "twenty twenty-six", 2005 → "two thousand five"."""
    if 2000 <= value <= 2009 or not 1000 <= value <= 9999:
        return cardinal(value)
    century, rest = divmod(value, 100)
    if rest == 0:
        return f"{cardinal(century)} hundred"
    if rest < 10:
        return f"{cardinal(century)} oh {_ONES[rest]}"
    return f"{cardinal(century)} {cardinal(rest)}"


def date(day: datetime.date) -> str:
    """A calendar date: 2026-12-01 → "December first, twenty twenty-six"."""
    return f"{_MONTHS[day.month - 1]} {ordinal(day.day)}, {year(day.year)}"


def part(piece: Part) -> str:
    """One part of an utterance in words."""
    match piece:
        case Words(text):
            return " ".join(text.split())
        case Amount(cents):
            return amount(cents)
        case Number(value):
            return cardinal(value)
        case Ordinal(value):
            return ordinal(value)
        case Digits(keys):
            return digits(keys)
        case Date(day):
            return date(day)


def verbalise(utterance: Utterance) -> str:
    """The words of a whole utterance, as the text-to-speech engine should read them."""
    text = ""
    for piece in utterance:
        words = part(piece)
        if not words:
            continue
        joined_tight = not text or (isinstance(piece, Words) and words.startswith(_PUNCTUATION))
        text += words if joined_tight else " " + words
    return text
