from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from assistline.redaction import contains_card_number, luhn_valid, mask_card_numbers


@pytest.mark.parametrize(
    ("digits", "valid"),
    [
        ("4111111111111111", True),
        ("4111111111111112", False),
        ("378282246310005", True),
        ("6011111111111117", True),
        ("0", True),
        ("79927398713", True),
        ("79927398710", False),
        ("", False),
        ("12a4", False),
        ("١٢٣", False),  # non-ASCII digits are not card digits
    ],
)
def test_luhn(digits: str, valid: bool) -> None:
    assert luhn_valid(digits) is valid


@pytest.mark.parametrize(
    ("text", "masked"),
    [
        ("paid with 4111111111111111 today", "paid with [card …1111] today"),
        ("4111 1111 1111 1111", "[card …1111]"),
        ("4111-1111-1111-1111.", "[card …1111]."),
        ("amex 3782 822463 10005", "amex [card …0005]"),
        ("13 digits 4222222222222", "13 digits [card …2222]"),
        ("19 digits 4111111111111111110X", "19 digits [card …1110]X"),
        # Luhn-invalid runs and runs of the wrong length stay as they are.
        ("ref 4111111111111112", "ref 4111111111111112"),
        ("12 digits 411111111111", "12 digits 411111111111"),
        ("20 digits 41111111111111111113", "20 digits 41111111111111111113"),
        # Double separators end a run.
        ("4111  1111 1111 1111", "4111  1111 1111 1111"),
        ("two: 4111111111111111,5555555555554444", "two: [card …1111],[card …4444]"),
        ("short", "short"),
        # Identifiers are not card numbers, even where a digit run passes Luhn...
        (
            "contact 75438352-6404-4304-a942-a199493b6f2b ended",
            "contact 75438352-6404-4304-a942-a199493b6f2b ended",
        ),
        ("call c5c994ba7543835264044304deadbeef00", "call c5c994ba7543835264044304deadbeef00"),
        # ...but a card number beside one is still masked.
        (
            "75438352-6404-4304-a942-a199493b6f2b paid 4111111111111111",
            "75438352-6404-4304-a942-a199493b6f2b paid [card …1111]",
        ),
        ("4111111111111111-a942", "[card …1111]-a942"),
    ],
)
def test_mask_card_numbers(text: str, masked: str) -> None:
    assert mask_card_numbers(text) == masked


@given(st.text(alphabet="0123456789 -abc", max_size=60))
def test_masked_text_never_contains_a_card_number(text: str) -> None:
    assert not contains_card_number(mask_card_numbers(text))


def test_contains_card_number() -> None:
    assert contains_card_number("x 4111 1111 1111 1111 y")
    assert not contains_card_number("x 4111 1111 1111 1112 y")
    assert not contains_card_number('{"contact": "75438352-6404-4304-a942-a199493b6f2b"}')
