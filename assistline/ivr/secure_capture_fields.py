"""The fields secure capture asks for: their prompts, lengths and checks (sans-IO).

Keys in, verdicts out; nothing here keeps a key. Decisions:

- **Card number** ends at ``#``, at the brand's longest length (19 while the
  brand is unknown) or at the inter-digit timeout, and must pass
  :func:`~assistline.ivr.card.check_number` (brand, length by brand, Luhn).
- **Expiry** is ``MMYY``: four digits end it; the year is 20YY; month 00 or
  13, or a year more than 20 ahead, is invalid; a past month says "that
  card has expired"; this month is valid (a card is good through the last
  day of its month).
- **Security code** ends at the brand's length: 3, or 4 for Amex, whose
  prompt says "four-digit … on the front of the card" under its own keys.
- **Postal code** is a five-digit US ZIP code.

A ``#`` or a timeout before a fixed-length field is complete submits what
was keyed, which is then invalid. Prompts are whole sentences, one per key
(``secure.expiry.invalid`` says what was wrong and asks again), so the shell
plays one prompt per :class:`~assistline.ivr.secure_capture_messages.Say`
and a recording can replace any of them. Only
:func:`processing_prompt` holds values: the amount and the last four digits.
"""

from __future__ import annotations

import datetime
from collections.abc import Mapping
from types import MappingProxyType

from assistline.ivr.card import Brand, CardError, brand_of, check_number, check_security_code
from assistline.ivr.secure_capture_messages import Stage
from assistline.ivr.utterance import Amount, Digits, Utterance, Words

LONGEST_NUMBER = 19
EXPIRY_LENGTH = 4
POSTAL_CODE_LENGTH = 5
# An expiry further ahead than this is a keying mistake (card.check_expiry's limit).
YEARS_AHEAD = 20


def longest(stage: Stage, keys: str, brand: Brand | None) -> int:
    """How many digits end ``stage`` without a ``#``; ``brand`` is the accepted number's."""
    match stage:
        case Stage.CARD_NUMBER:
            keyed = brand_of(keys)
            return max(keyed.number_lengths) if keyed else LONGEST_NUMBER
        case Stage.EXPIRY:
            return EXPIRY_LENGTH
        case Stage.SECURITY_CODE:
            return (brand or Brand.VISA).security_code_length
        case _:
            return POSTAL_CODE_LENGTH


def expiry_of(keys: str) -> tuple[int, int]:
    """Month and four-digit year of four keys ``MMYY``."""
    return int(keys[:2]), 2000 + int(keys[2:])


def check(stage: Stage, keys: str, brand: Brand | None, today: datetime.date) -> str | None:
    """``None`` when ``keys`` are a valid ``stage``, else the failure: invalid or expired."""
    try:
        match stage:
            case Stage.CARD_NUMBER:
                check_number(keys)
            case Stage.EXPIRY:
                if len(keys) != EXPIRY_LENGTH or not keys.isdigit():
                    return "invalid"
                month, year = expiry_of(keys)
                if not 1 <= month <= 12 or year > today.year + YEARS_AHEAD:
                    return "invalid"
                if (year, month) < (today.year, today.month):
                    return "expired"
            case Stage.SECURITY_CODE:
                check_security_code(keys, brand or Brand.VISA)
            case _:
                if len(keys) != POSTAL_CODE_LENGTH or not keys.isdigit():
                    return "invalid"
    except CardError:
        return "invalid"
    return None


def prompt_key(stage: Stage, brand: Brand | None, variant: str = "") -> str:
    """``secure.<field>`` or ``secure.<field>.<variant>``: the field is Amex's own for its code."""
    field = stage.value
    if stage is Stage.SECURITY_CODE and brand is Brand.AMEX:
        field = "security_code_amex"
    return f"secure.{field}.{variant}" if variant else f"secure.{field}"


_ENTER = {
    "card_number": "Please enter your card number, followed by the pound key.",
    "expiry": (
        "Please enter the card's expiry date as four digits: "
        "two for the month, then two for the year."
    ),
    "security_code": "Please enter the three-digit security code on the back of the card.",
    "security_code_amex": "Please enter the four-digit security code on the front of the card.",
    "postal_code": "Please enter the five-digit ZIP code of the card's billing address.",
}
_NAMES = {
    "card_number": "card number",
    "expiry": "expiry date",
    "security_code": "security code",
    "security_code_amex": "security code",
    "postal_code": "ZIP code",
}
_FIRST = {
    "card_number": " If you make a mistake, press star to start that entry again.",
}


def _prompts() -> dict[str, Utterance]:
    prompts: dict[str, Utterance] = {}
    for field, enter in _ENTER.items():
        name = _NAMES[field]
        prompts[f"secure.{field}"] = (Words(enter + _FIRST.get(field, "")),)
        prompts[f"secure.{field}.invalid"] = (Words(f"That {name} is not valid. {enter}"),)
        prompts[f"secure.{field}.no_input"] = (Words(f"Sorry, I did not get the {name}. {enter}"),)
        prompts[f"secure.{field}.cleared"] = (Words(f"Cleared. {enter}"),)
    prompts["secure.expiry.expired"] = (Words(f"That card has expired. {_ENTER['expiry']}"),)
    return prompts


#: Every fixed prompt, by key: ``secure.<field>``, ``….invalid``, ``….no_input``,
#: ``….cleared``, and ``secure.expiry.expired``; fields are ``card_number``, ``expiry``,
#: ``security_code`` (three digits), ``security_code_amex`` (four) and ``postal_code``.
PROMPTS: Mapping[str, Utterance] = MappingProxyType(_prompts())

PROCESSING = "secure.processing"


def processing_prompt(amount_cents: int, currency: str, last4: str) -> Utterance:
    """The one prompt with values: the amount (US dollars only) and the last four digits."""
    end = (Words("to the card ending in"), Digits(last4), Words(". Please hold."))
    if currency != "usd":  # an Amount is read as dollars and cents
        return (Words("Thank you. Charging the payment"), *end)
    return (Words("Thank you. Charging"), Amount(amount_cents), *end)
