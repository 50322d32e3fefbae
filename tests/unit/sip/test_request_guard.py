"""The worker's log line for what its SIP request guard refused (counts only)."""

from __future__ import annotations

from assistline.sip.request_guard import describe_refusals

NOTHING = {
    "truncated": 0,
    "cseq_mismatch": 0,
    "body_short": 0,
    "truncated_responses": 0,
    "unchecked": 0,
}


def test_nothing_new_says_nothing() -> None:
    assert describe_refusals(NOTHING, NOTHING) == ""
    assert describe_refusals({}, {}) == ""  # no guard compiled: stats() is empty


def test_each_reason_is_counted_since_the_last_reading_in_a_fixed_order() -> None:
    before = {**NOTHING, "truncated": 1}
    after = {**NOTHING, "truncated": 3, "cseq_mismatch": 1, "body_short": 4}
    assert describe_refusals(before, after) == (
        "SIP request guard: refused 2 filling the 4,000-byte read buffer (513), "
        "refused 4 shorter than their Content-Length (400), "
        "refused 1 whose CSeq names another method (400)"
    )


def test_requests_left_unchecked_are_said_plainly() -> None:
    assert describe_refusals(NOTHING, {**NOTHING, "unchecked": 2}) == (
        "SIP request guard: passed 2 unchecked (pjsip's fields did not read back as laid out)"
    )


def test_dropped_responses_are_said_apart_from_refused_requests() -> None:
    after = {**NOTHING, "truncated": 1, "truncated_responses": 2}
    assert describe_refusals(NOTHING, after) == (
        "SIP request guard: refused 1 filling the 4,000-byte read buffer (513), "
        "dropped 2 responses filling the 4,000-byte read buffer (as lost)"
    )
