"""The create-contact body: every rule, with the field it names and the status it gets."""

from __future__ import annotations

import json
from typing import Any

import pytest

from assistline.signalling.contact_request import (
    MAX_BODY_BYTES,
    MAX_FIELDS_BYTES,
    ContactRequestError,
    NewContact,
    decode_body,
    demo_contact,
    encode_json,
    parse_new_contact,
)

MINIMAL = {"customer_id": "c-1", "account": "A-1"}


def _refused(body: dict[str, Any]) -> ContactRequestError:
    with pytest.raises(ContactRequestError) as caught:
        parse_new_contact(body)
    return caught.value


def test_a_minimal_body_gets_the_defaults() -> None:
    assert parse_new_contact(MINIMAL) == NewContact(customer_id="c-1", account="A-1")
    assert parse_new_contact({**MINIMAL, "currency": None, "media": None}).media == "voice"


def test_a_full_body_is_kept_as_sent() -> None:
    trail = [
        {"at": "2025-01-31T14:05:00Z", "step": "login"},
        {"at": "2025-01-31T14:06:00+01:00", "step": "pay", "detail": "card declined"},
    ]
    contact = parse_new_contact(
        {
            **MINIMAL,
            "balance_cents": 0,
            "currency": "EUR",
            "step": "payment failed",
            "fields": {"plan": {"tier": 2}, "tags": ["a"]},
            "context_trail": trail,
            "media": "video",
        }
    )
    assert contact == NewContact(
        "c-1",
        "A-1",
        0,
        "EUR",
        "payment failed",
        {"plan": {"tier": 2}, "tags": ["a"]},
        trail,
        "video",
    )


@pytest.mark.parametrize(
    ("body", "fields", "message"),
    [
        ({"account": "A"}, ("customer_id",), "customer_id is required"),
        ({"customer_id": "c"}, ("account",), "account is required"),
        ({**MINIMAL, "customer_id": ""}, ("customer_id",), "customer_id must not be blank"),
        ({**MINIMAL, "customer_id": 7}, ("customer_id",), "customer_id must be a string"),
        (
            {**MINIMAL, "customer_id": "x" * 129},
            ("customer_id",),
            "customer_id is 129 characters long; at most 128 are accepted",
        ),
        (
            {**MINIMAL, "account": "x" * 65},
            ("account",),
            "account is 65 characters long; at most 64 are accepted",
        ),
        ({**MINIMAL, "account": "a\nb"}, ("account",), "account must not hold control characters"),
        ({**MINIMAL, "account": "a\x00"}, ("account",), "account must not hold control characters"),
        (
            {**MINIMAL, "account": "\ud800"},
            ("account",),
            "account must not hold control characters",
        ),
        (
            {**MINIMAL, "balance_cents": -1},
            ("balance_cents",),
            "balance_cents must be 0..9223372036854775807, not -1",
        ),
        (
            {**MINIMAL, "balance_cents": 2**63},
            ("balance_cents",),
            "balance_cents must be 0..9223372036854775807, not 9223372036854775808",
        ),
        (
            {**MINIMAL, "balance_cents": 1.5},
            ("balance_cents",),
            "balance_cents must be an integer number of cents",
        ),
        (
            {**MINIMAL, "balance_cents": True},
            ("balance_cents",),
            "balance_cents must be an integer number of cents",
        ),
        (
            {**MINIMAL, "currency": "usd"},
            ("currency",),
            "currency must be an ISO 4217 code of 3 capital letters, such as USD",
        ),
        (
            {**MINIMAL, "step": "s" * 201},
            ("step",),
            "step is 201 characters long; at most 200 are accepted",
        ),
        ({**MINIMAL, "fields": []}, ("fields",), "fields must be a JSON object"),
        (
            {**MINIMAL, "fields": {"a": ["\x00"]}},
            ("fields",),
            "fields must not hold NUL characters or unpaired surrogates",
        ),
        (
            {**MINIMAL, "fields": {"\udc00": 1}},
            ("fields",),
            "fields must not hold NUL characters or unpaired surrogates",
        ),
        ({**MINIMAL, "context_trail": {}}, ("context_trail",), "context_trail must be a list"),
        (
            {**MINIMAL, "context_trail": [{"at": "2025-01-31T14:05:00Z", "step": "s"}] * 51},
            ("context_trail",),
            "context_trail has 51 entries; at most 50 are accepted",
        ),
        (
            {**MINIMAL, "context_trail": ["login"]},
            ("context_trail[0]",),
            "context_trail[0] must be an object with at, step and detail",
        ),
        (
            {**MINIMAL, "context_trail": [{"at": "2025-01-31T14:05:00", "step": "s"}]},
            ("context_trail[0].at",),
            "context_trail[0].at must be an ISO 8601 date and time with its offset, "
            "such as 2025-01-31T14:05:00Z",
        ),
        (
            {**MINIMAL, "context_trail": [{"at": "yesterday", "step": "s"}]},
            ("context_trail[0].at",),
            "context_trail[0].at must be an ISO 8601 date and time with its offset, "
            "such as 2025-01-31T14:05:00Z",
        ),
        (
            {**MINIMAL, "context_trail": [{"at": "2025-01-31T14:05:00Z"}]},
            ("context_trail[0].step",),
            "context_trail[0].step is required",
        ),
        (
            {**MINIMAL, "context_trail": [{"at": "2025-01-31T14:05Z", "step": "s", "who": 1}]},
            ("context_trail[0].who",),
            "unknown field: context_trail[0].who",
        ),
        ({**MINIMAL, "media": "audio"}, ("media",), 'media must be "voice" or "video"'),
        (
            {**MINIMAL, "token": "x", "agent": "y"},
            ("agent", "token"),
            "unknown field: agent, token",
        ),
    ],
)
def test_each_wrong_field_is_named(
    body: dict[str, Any], fields: tuple[str, ...], message: str
) -> None:
    error = _refused(body)
    assert (error.status, error.kind, error.fields, str(error)) == (
        422,
        "invalid-field",
        fields,
        message,
    )


def test_a_body_that_is_not_an_object_is_refused() -> None:
    error = _refused([MINIMAL])  # type: ignore[arg-type]
    assert (error.status, error.fields, str(error)) == (422, (), "the body must be a JSON object")


def test_fields_over_32_kb_of_json_are_too_large() -> None:
    fits = {"note": "x" * (MAX_FIELDS_BYTES - len('{"note":""}'))}
    assert len(encode_json(fits).encode()) == MAX_FIELDS_BYTES
    assert parse_new_contact({**MINIMAL, "fields": fits}).fields == fits
    error = _refused({**MINIMAL, "fields": {"note": fits["note"] + "é"}})
    assert (error.status, error.kind, error.fields, str(error)) == (
        413,
        "field-too-large",
        ("fields",),
        "fields is 32770 bytes of JSON; at most 32768 are accepted",
    )


@pytest.mark.parametrize(
    "body",
    [
        b"",
        b"{",
        b'{"a": NaN}',
        b'{"a": Infinity}',
        b'{"a": 1e400}',
        b'{"a": 1, "a": 2}',
        b'{"a": "\xff"}',
        b"[" * 30_000 + b"]" * 30_000,  # deeper than Python recurses
        b'{"a": ' + b"9" * 5000 + b"}",
    ],
)
def test_bodies_that_are_not_strict_json_are_400(body: bytes) -> None:
    with pytest.raises(ContactRequestError) as caught:
        decode_body(body)
    assert (caught.value.status, caught.value.kind) == (400, "invalid-json")
    assert str(caught.value).startswith("the body is not valid JSON: ")


def test_bodies_over_64_kb_are_413() -> None:
    body = json.dumps({**MINIMAL, "step": "x" * MAX_BODY_BYTES}).encode()
    with pytest.raises(ContactRequestError) as caught:
        decode_body(body)
    assert (caught.value.status, caught.value.kind, str(caught.value)) == (
        413,
        "payload-too-large",
        f"the body is {len(body)} bytes; at most 65536 are accepted",
    )


def test_the_demo_contact() -> None:
    contact = demo_contact("video")
    assert (contact.customer_id, contact.account, contact.balance_cents, contact.step) == (
        "demo-customer",
        "DEMO-0001",
        12345,
        "payment failed: card declined",
    )
    assert contact.media == "video"
    assert contact.fields
