"""Card details: brands by IIN, lengths, Luhn, expiry, security codes, and masking."""

from __future__ import annotations

import dataclasses
import datetime

import pytest

from assistline.ivr.card import (
    Brand,
    Card,
    CardError,
    brand_of,
    check_expiry,
    check_number,
    check_security_code,
)

TODAY = datetime.date(2025, 6, 15)


@pytest.mark.parametrize(
    ("digits", "brand"),
    [
        ("", None),
        ("4", Brand.VISA),
        ("3", None),
        ("5", None),
        ("34", Brand.AMEX),
        ("37", Brand.AMEX),
        ("35", None),
        ("3530", None),
        ("50", None),
        ("51", Brand.MASTERCARD),
        ("55", Brand.MASTERCARD),
        ("5600", None),
        ("222", None),
        ("2220", None),
        ("2221", Brand.MASTERCARD),
        ("2720", Brand.MASTERCARD),
        ("2721", None),
        ("65", Brand.DISCOVER),
        ("6011", Brand.DISCOVER),
        ("6012", None),
        ("644", None),
        ("6430", None),
        ("6440", Brand.DISCOVER),
        ("6499", Brand.DISCOVER),
        ("4a", None),
        ("\u0664", None),  # ARABIC-INDIC DIGIT FOUR: a digit, not an ASCII one
        ("-4", None),
    ],
)
def test_brand_of_a_partial_number(digits: str, brand: Brand | None) -> None:
    assert brand_of(digits) is brand


def test_lengths_per_brand() -> None:
    assert {b: (b.number_lengths, b.security_code_length) for b in Brand} == {
        Brand.VISA: ((13, 16, 19), 3),
        Brand.MASTERCARD: ((16,), 3),
        Brand.AMEX: ((15,), 4),
        Brand.DISCOVER: ((16, 19), 3),
    }


@pytest.mark.parametrize(
    ("number", "brand"),
    [
        ("4222222222222", Brand.VISA),
        ("4242424242424242", Brand.VISA),
        ("4242424242424242428", Brand.VISA),
        ("5555555555554444", Brand.MASTERCARD),
        ("2221000000000009", Brand.MASTERCARD),
        ("2720999999999996", Brand.MASTERCARD),
        ("378282246310005", Brand.AMEX),
        ("371449635398431", Brand.AMEX),
        ("6011111111111117", Brand.DISCOVER),
        ("6011111111111111110", Brand.DISCOVER),
        ("6555555555555555", Brand.DISCOVER),
        ("6444444444444443", Brand.DISCOVER),
    ],
)
def test_valid_numbers_give_their_brand(number: str, brand: Brand) -> None:
    assert check_number(number) is brand


@pytest.mark.parametrize(
    ("number", "message"),
    [
        ("", "card number must be digits only"),
        ("4242 4242 4242 4242", "card number must be digits only"),
        ("4242-4242-4242-4242", "card number must be digits only"),
        ("\u0664242424242424242", "card number must be digits only"),
        ("3530111333300000", "card number is not of an accepted brand"),  # JCB
        ("424242424242424", "card number has the wrong length for visa"),
        ("42424242424242424", "card number has the wrong length for visa"),
        ("37828224631000", "card number has the wrong length for amex"),
        ("3782822463100050", "card number has the wrong length for amex"),
        ("555555555555444", "card number has the wrong length for mastercard"),
        ("601111111111111", "card number has the wrong length for discover"),
        ("4242424242424241", "card number fails the Luhn check"),
        ("5555555555554443", "card number fails the Luhn check"),
        ("378282246310006", "card number fails the Luhn check"),
    ],
)
def test_invalid_numbers_name_the_fault_and_no_digit(number: str, message: str) -> None:
    with pytest.raises(CardError) as caught:
        check_number(number)
    assert str(caught.value) == message
    assert not any(char.isdigit() for char in str(caught.value))
    assert isinstance(caught.value, ValueError)


@pytest.mark.parametrize(
    ("month", "year", "today"),
    [
        (6, 2025, TODAY),  # this month is still valid
        (6, 2025, datetime.date(2025, 6, 30)),  # through its last day
        (7, 2025, TODAY),
        (1, 2026, TODAY),
        (12, 2045, TODAY),  # twenty years ahead
        (1, 2026, datetime.date(2026, 1, 1)),
    ],
)
def test_expiry_valid_through_its_month(month: int, year: int, today: datetime.date) -> None:
    check_expiry(month, year, today)


@pytest.mark.parametrize(
    ("month", "year", "today", "message"),
    [
        (5, 2025, TODAY, "card has expired"),  # last month
        (12, 2024, TODAY, "card has expired"),
        (6, 2024, TODAY, "card has expired"),
        (12, 2025, datetime.date(2026, 1, 1), "card has expired"),
        (1, 2046, TODAY, "expiry year is too far ahead"),
        (0, 2026, TODAY, "expiry month must be 01 to 12"),
        (13, 2026, TODAY, "expiry month must be 01 to 12"),
        (-1, 2026, TODAY, "expiry month must be 01 to 12"),
        (0, 2020, TODAY, "expiry month must be 01 to 12"),  # the month is checked first
    ],
)
def test_expiry_faults(month: int, year: int, today: datetime.date, message: str) -> None:
    with pytest.raises(CardError, match=f"^{message}$"):
        check_expiry(month, year, today)


@pytest.mark.parametrize(
    ("code", "brand"),
    [("123", Brand.VISA), ("000", Brand.MASTERCARD), ("999", Brand.DISCOVER), ("1234", Brand.AMEX)],
)
def test_security_code_of_the_brands_length(code: str, brand: Brand) -> None:
    check_security_code(code, brand)


@pytest.mark.parametrize(
    ("code", "brand", "message"),
    [
        ("1234", Brand.VISA, "security code must be 3 digits"),
        ("12", Brand.MASTERCARD, "security code must be 3 digits"),
        ("123", Brand.AMEX, "security code must be 4 digits"),
        ("12345", Brand.AMEX, "security code must be 4 digits"),
        ("", Brand.VISA, "security code must be digits only"),
        ("12a", Brand.VISA, "security code must be digits only"),
        (" 123", Brand.VISA, "security code must be digits only"),
        ("\uff11\uff12\uff13", Brand.VISA, "security code must be digits only"),  # full-width
    ],
)
def test_security_code_faults(code: str, brand: Brand, message: str) -> None:
    with pytest.raises(CardError, match=f"^{message}$"):
        check_security_code(code, brand)


def test_checked_card_keeps_its_fields_and_brand() -> None:
    card = Card.checked("378282246310005", 11, 2031, "9876", "10001", TODAY)
    assert card == Card("378282246310005", 11, 2031, "9876", "10001", Brand.AMEX)
    assert card.last4 == "0005"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("4242424242424241", 11, 2031, "987"), "card number fails the Luhn check"),
        (("4242424242424242", 5, 2025, "987"), "card has expired"),
        (("4242424242424242", 11, 2031, "9876"), "security code must be 3 digits"),
        (("378282246310005", 11, 2031, "987"), "security code must be 4 digits"),
    ],
)
def test_checked_refuses_any_fault(args: tuple[str, int, int, str], message: str) -> None:
    number, month, year, code = args
    with pytest.raises(CardError, match=f"^{message}$"):
        Card.checked(number, month, year, code, "", TODAY)


def test_repr_and_str_show_brand_and_last_four_only() -> None:
    card = Card.checked("4242424242424242", 11, 2031, "987", "SW1A 1AA", TODAY)
    assert repr(card) == "Card(visa …4242)"
    assert str(card) == "Card(visa …4242)"
    assert f"{card}" == "Card(visa …4242)"
    assert repr([card]) == "[Card(visa …4242)]"
    for secret in ("424242424242", "987", "2031", "11"):
        assert secret not in repr(card)


def test_card_is_immutable() -> None:
    card = Card.checked("5555555555554444", 1, 2030, "123", "", TODAY)
    with pytest.raises(dataclasses.FrozenInstanceError):
        card.number = "4242424242424242"  # type: ignore[misc]
    assert repr(card) == "Card(mastercard …4444)"
