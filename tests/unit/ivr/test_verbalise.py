"""Verbalising utterances: the exact en-US words for amounts, numbers, digits and dates."""

from __future__ import annotations

import datetime

import pytest

from assistline.ivr.utterance import Amount, Date, Digits, Number, Ordinal, Utterance, Words
from assistline.ivr.verbalise import (
    VerbaliseError,
    amount,
    cardinal,
    date,
    digit_groups,
    digits,
    ordinal,
    verbalise,
    year,
)


@pytest.mark.parametrize(
    ("cents", "words"),
    [
        (0, "zero dollars"),
        (1, "one cent"),
        (10, "ten cents"),
        (99, "ninety-nine cents"),
        (100, "one dollar"),
        (101, "one dollar and one cent"),
        (200, "two dollars"),
        (4210, "forty-two dollars and ten cents"),
        (4201, "forty-two dollars and one cent"),
        (100_000, "one thousand dollars"),
        (123_456, "one thousand two hundred thirty-four dollars and fifty-six cents"),
        (
            123_456_789,
            "one million two hundred thirty-four thousand five hundred sixty-seven dollars "
            "and eighty-nine cents",
        ),
        (100_000_000_000, "one billion dollars"),
    ],
)
def test_amounts_are_dollars_and_cents(cents: int, words: str) -> None:
    assert amount(cents) == words


def test_a_negative_amount_is_refused() -> None:
    with pytest.raises(VerbaliseError, match="^amount is negative; word a credit in the flow"):
        amount(-1)


@pytest.mark.parametrize(
    ("value", "words"),
    [
        (0, "zero"),
        (7, "seven"),
        (13, "thirteen"),
        (19, "nineteen"),
        (20, "twenty"),
        (21, "twenty-one"),
        (99, "ninety-nine"),
        (100, "one hundred"),
        (105, "one hundred five"),
        (110, "one hundred ten"),
        (999, "nine hundred ninety-nine"),
        (1000, "one thousand"),
        (1001, "one thousand one"),
        (2020, "two thousand twenty"),
        (12_345, "twelve thousand three hundred forty-five"),
        (100_000, "one hundred thousand"),
        (1_000_000, "one million"),
        (1_000_002, "one million two"),
        (1_200_000, "one million two hundred thousand"),
        (
            1_234_567_890,
            "one billion two hundred thirty-four million five hundred sixty-seven thousand "
            "eight hundred ninety",
        ),
        (3_000_000_000_000, "three trillion"),
        (-7, "minus seven"),
        (-1_000, "minus one thousand"),
    ],
)
def test_cardinals_in_american_english(value: int, words: str) -> None:
    assert cardinal(value) == words


@pytest.mark.parametrize("value", [10**15, -(10**15)])
def test_a_quadrillion_is_refused(value: int) -> None:
    with pytest.raises(VerbaliseError, match=r"^number is too large to read out"):
        cardinal(value)


def test_the_largest_number_is_read() -> None:
    assert cardinal(10**15 - 1) == (
        "nine hundred ninety-nine trillion nine hundred ninety-nine billion nine hundred "
        "ninety-nine million nine hundred ninety-nine thousand nine hundred ninety-nine"
    )


@pytest.mark.parametrize(
    ("value", "words"),
    [
        (0, "zeroth"),
        (1, "first"),
        (2, "second"),
        (3, "third"),
        (4, "fourth"),
        (5, "fifth"),
        (8, "eighth"),
        (9, "ninth"),
        (11, "eleventh"),
        (12, "twelfth"),
        (13, "thirteenth"),
        (20, "twentieth"),
        (21, "twenty-first"),
        (22, "twenty-second"),
        (23, "twenty-third"),
        (30, "thirtieth"),
        (31, "thirty-first"),
        (40, "fortieth"),
        (99, "ninety-ninth"),
        (100, "one hundredth"),
        (101, "one hundred first"),
        (112, "one hundred twelfth"),
        (1000, "one thousandth"),
        (1234, "one thousand two hundred thirty-fourth"),
        (1_000_000, "one millionth"),
        (1_000_002, "one million second"),
        (2_000_000_000, "two billionth"),
    ],
)
def test_ordinals(value: int, words: str) -> None:
    assert ordinal(value) == words


def test_a_negative_ordinal_is_refused() -> None:
    with pytest.raises(VerbaliseError, match="^ordinal is negative$"):
        ordinal(-1)


@pytest.mark.parametrize(
    ("count", "groups"),
    [
        (0, []),
        (1, [1]),
        (4, [4]),
        (5, [5]),
        (6, [3, 3]),
        (7, [3, 4]),
        (8, [4, 4]),
        (9, [3, 3, 3]),
        (10, [3, 3, 4]),
        (11, [3, 4, 4]),
        (12, [3, 3, 3, 3]),
        (16, [3, 3, 3, 3, 4]),
    ],
)
def test_digit_groups_are_threes_ending_in_fours(count: int, groups: list[int]) -> None:
    assert digit_groups(count) == groups
    assert sum(groups) == count


@pytest.mark.parametrize(
    ("keys", "words"),
    [
        ("0", "zero"),
        ("1005", "one zero zero five"),
        ("90210", "nine zero two one zero"),
        ("123456", "one two three, four five six"),
        ("1234567", "one two three, four five six seven"),
        ("20260101", "two zero two six, zero one zero one"),
        ("8005550100", "eight zero zero, five five five, zero one zero zero"),
        ("01234567890", "zero one two, three four five six, seven eight nine zero"),
        ("*#0", "star pound zero"),
    ],
)
def test_digits_are_read_singly_with_zero_and_grouped(keys: str, words: str) -> None:
    assert digits(keys) == words


@pytest.mark.parametrize("keys", ["", "12a4", "1 2", "١٢", "4111-1111"])
def test_a_digit_string_with_other_characters_is_refused_without_echoing_it(keys: str) -> None:
    with pytest.raises(VerbaliseError) as caught:
        digits(keys)
    assert str(caught.value) == "digit string must be one or more of 0-9, * and #"


@pytest.mark.parametrize(
    ("value", "words"),
    [
        (2026, "twenty twenty-six"),
        (2010, "twenty ten"),
        (2011, "twenty eleven"),
        (2000, "two thousand"),
        (2005, "two thousand five"),
        (2009, "two thousand nine"),
        (1999, "nineteen ninety-nine"),
        (1984, "nineteen eighty-four"),
        (1905, "nineteen oh five"),
        (1900, "nineteen hundred"),
        (2100, "twenty-one hundred"),
        (999, "nine hundred ninety-nine"),
        (10_000, "ten thousand"),
    ],
)
def test_years_as_people_say_them(value: int, words: str) -> None:
    assert year(value) == words


@pytest.mark.parametrize(
    ("day", "words"),
    [
        (datetime.date(2026, 12, 1), "December first, twenty twenty-six"),
        (datetime.date(2027, 1, 31), "January thirty-first, twenty twenty-seven"),
        (datetime.date(2005, 2, 22), "February twenty-second, two thousand five"),
        (datetime.date(1984, 7, 3), "July third, nineteen eighty-four"),
    ],
)
def test_dates_without_the_weekday(day: datetime.date, words: str) -> None:
    assert date(day) == words


@pytest.mark.parametrize(
    ("utterance", "text"),
    [
        ((), ""),
        ((Words("Hello."),), "Hello."),
        (
            (Words("Your balance is"), Amount(4210), Words(".")),
            "Your balance is forty-two dollars and ten cents.",
        ),
        (
            (Words("It is due on"), Date(datetime.date(2026, 12, 1)), Words(".")),
            "It is due on December first, twenty twenty-six.",
        ),
        (
            (Words("Press"), Number(1), Words("to pay, or"), Number(2), Words("for an agent.")),
            "Press one to pay, or two for an agent.",
        ),
        (
            (
                Words("This is your"),
                Ordinal(3),
                Words("attempt; your reference is"),
                Digits("0123456"),
            ),
            "This is your third attempt; your reference is zero one two, three four five six",
        ),
        ((Words("  spaced \n out  "), Words(""), Words("!")), "spaced out!"),
        ((Number(5), Words(", "), Number(6)), "five, six"),
        (
            (Words("Card ending in"), Digits("1234"), Words("?")),
            "Card ending in one two three four?",
        ),
    ],
)
def test_utterances_join_parts_with_single_spaces(utterance: Utterance, text: str) -> None:
    assert verbalise(utterance) == text


def test_a_bad_part_fails_the_whole_utterance() -> None:
    with pytest.raises(VerbaliseError, match="^amount is negative"):
        verbalise((Words("You owe"), Amount(-500)))
