"""Collecting digits: exact outcomes for keys and clocks, and parameter checks."""

from __future__ import annotations

import asyncio

import pytest

from assistline.sip import protocol
from assistline.sip.digits import CollectError, DigitCollections, DigitCollector, check


def collector(min_digits: int = 1, max_digits: int = 4, terminator: str = "#") -> DigitCollector:
    command = protocol.CollectDigits(1, "l", min_digits, max_digits, terminator, 5000, 3000)
    return DigitCollector.from_command(command, now=100.0)


def test_max_digits_ends_collection_with_every_digit() -> None:
    c = collector(max_digits=3)
    assert [c.feed(d, 101.0 + i) for i, d in enumerate("123")] == [None, None, "max_digits"]
    assert (c.digits, c.valid) == ("123", True)


def test_terminator_ends_collection_and_is_not_kept() -> None:
    c = collector(min_digits=2)
    assert c.feed("5", 101.0) is None
    assert c.feed("#", 102.0) == "terminator"
    assert (c.digits, c.valid) == ("5", False)


def test_no_key_before_the_first_timeout_is_no_input() -> None:
    c = collector()
    assert c.deadline == 105.0
    assert c.expire(104.999) is None
    assert c.expire(105.0) == "no_input"
    assert (c.digits, c.valid) == ("", False)


def test_inter_digit_timeout_runs_from_the_last_key() -> None:
    c = collector()
    c.feed("1", 104.0)
    assert c.deadline == 107.0
    assert c.expire(106.0) is None
    c.feed("2", 106.0)
    assert c.expire(108.5) is None
    assert c.expire(109.0) == "timeout"
    assert (c.digits, c.valid) == ("12", True)


def test_no_terminator_means_hash_is_a_digit() -> None:
    c = collector(terminator="", max_digits=2)
    assert c.feed("#", 101.0) is None
    assert c.feed("*", 101.5) == "max_digits"
    assert c.digits == "#*"


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ((0, 4, "#", 1, 1), "min_digits"),
        ((5, 4, "#", 1, 1), "min_digits"),
        ((1, 65, "#", 1, 1), "max_digits <= 64"),
        ((1, 4, "##", 1, 1), "terminator"),
        ((1, 4, "x", 1, 1), "terminator"),
        ((1, 4, "#", 0, 1), "first_timeout_ms"),
        ((1, 4, "#", 1, -5), "inter_digit_timeout_ms"),
    ],
)
def test_impossible_parameters_are_refused_naming_the_field(
    fields: tuple[int, int, str, int, int], message: str
) -> None:
    with pytest.raises(CollectError, match=message):
        check(protocol.CollectDigits(1, "l", *fields))


async def test_collections_report_each_outcome_once_on_the_loop() -> None:
    sent: list[protocol.Event] = []
    collections = DigitCollections(sent.append)
    collections.start(protocol.CollectDigits(1, "a", 1, 2, "#", 10_000, 50))
    collections.start(protocol.CollectDigits(2, "b", 1, 4, "#", 30, 1000))
    collections.start(protocol.CollectDigits(3, "c", 2, 4, "", 10_000, 10_000))
    collections.digit("a", "9")
    collections.digit("z", "1")  # no collection on that leg: ignored
    collections.digit("c", "1")
    collections.ended("c")
    await asyncio.sleep(0.2)
    assert sorted(sent, key=lambda e: getattr(e, "leg", "")) == [
        protocol.DigitsCollected("a", "9", "timeout", True),
        protocol.DigitsCollected("b", "", "no_input", False),
        protocol.DigitsCollected("c", "1", "hangup", False),
    ]
    collections.ended("a")  # already over: nothing more
    assert len(sent) == 3
