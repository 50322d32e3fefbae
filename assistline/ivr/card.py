"""Card details taken in secure capture, and the checks made on them (sans-IO).

A :class:`Card` exists only in memory, inside the secure-capture step and in
the request to the payment gateway (DESIGN principle 5). Its ``repr`` and
``str`` show the brand and the last four digits only, so a stray log line or
traceback never carries the number, expiry or security code; and every
:class:`CardError` names the field that failed, never its value.

Brands and lengths follow the issuers' published ranges (ISO/IEC 7812 IINs):
enough to pick the number's length and the security code's length while the
caller keys them in. A number of an unknown brand is refused: a payment line
takes the brands its gateway accepts.
"""

from __future__ import annotations

import dataclasses
import datetime
import enum

from assistline.errors import AssistlineError
from assistline.redaction import luhn_valid


class CardError(AssistlineError, ValueError):
    """The card details are invalid; ask the caller to key them again."""


class Brand(enum.Enum):
    """A card brand: the lengths its numbers and security codes have."""

    VISA = "visa"
    MASTERCARD = "mastercard"
    AMEX = "amex"
    DISCOVER = "discover"

    @property
    def number_lengths(self) -> tuple[int, ...]:
        """The lengths a number of this brand may have."""
        return _NUMBER_LENGTHS[self]

    @property
    def security_code_length(self) -> int:
        """Digits in this brand's security code (CVV2, CVC2, CID)."""
        return 4 if self is Brand.AMEX else 3


_NUMBER_LENGTHS = {
    Brand.VISA: (13, 16, 19),
    Brand.MASTERCARD: (16,),
    Brand.AMEX: (15,),
    Brand.DISCOVER: (16, 19),
}


def brand_of(number: str) -> Brand | None:
    """The brand whose IIN range ``number`` (digits, possibly partial) starts in.

    ``None`` while too few digits are known to tell, or when no brand matches.
    """
    if not number.isdigit() or not number.isascii():
        return None
    if number[0] == "4":
        return Brand.VISA
    if len(number) < 2:
        return None
    two = int(number[:2])
    if two in (34, 37):
        return Brand.AMEX
    if 51 <= two <= 55:
        return Brand.MASTERCARD
    if two == 65:
        return Brand.DISCOVER
    if len(number) < 4:
        return None
    four = int(number[:4])
    if 2221 <= four <= 2720:
        return Brand.MASTERCARD
    if four == 6011:
        return Brand.DISCOVER
    if 644 <= four // 10 <= 649:
        return Brand.DISCOVER
    return None


def check_number(number: str) -> Brand:
    """The brand of a complete card number; :class:`CardError` naming the fault."""
    if not number.isdigit() or not number.isascii():
        raise CardError("card number must be digits only")
    brand = brand_of(number)
    if brand is None:
        raise CardError("card number is not of an accepted brand")
    if len(number) not in brand.number_lengths:
        raise CardError(f"card number has the wrong length for {brand.value}")
    if not luhn_valid(number):
        raise CardError("card number fails the Luhn check")
    return brand


def check_expiry(month: int, year: int, today: datetime.date) -> None:
    """A card is valid through the last day of its expiry month; ``year`` is four digits."""
    if not 1 <= month <= 12:
        raise CardError("expiry month must be 01 to 12")
    if (year, month) < (today.year, today.month):
        raise CardError("card has expired")
    if year > today.year + 20:
        raise CardError("expiry year is too far ahead")


def check_security_code(code: str, brand: Brand) -> None:
    """The security code has the brand's length and only digits."""
    if not code.isdigit() or not code.isascii():
        raise CardError("security code must be digits only")
    if len(code) != brand.security_code_length:
        raise CardError(f"security code must be {brand.security_code_length} digits")


@dataclasses.dataclass(frozen=True, slots=True, repr=False)
class Card:
    """Card details for one payment attempt; build with :meth:`checked`."""

    number: str
    expiry_month: int
    expiry_year: int
    security_code: str
    postal_code: str
    brand: Brand

    @classmethod
    def checked(
        cls,
        number: str,
        expiry_month: int,
        expiry_year: int,
        security_code: str,
        postal_code: str,
        today: datetime.date,
    ) -> Card:
        """A card whose number, expiry and security code pass every check."""
        brand = check_number(number)
        check_expiry(expiry_month, expiry_year, today)
        check_security_code(security_code, brand)
        return cls(number, expiry_month, expiry_year, security_code, postal_code, brand)

    @property
    def last4(self) -> str:
        """The last four digits, which PCI DSS allows to be shown and kept."""
        return self.number[-4:]

    def __repr__(self) -> str:
        return f"Card({self.brand.value} …{self.last4})"

    __str__ = __repr__
