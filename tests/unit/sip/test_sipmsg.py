"""Pure SIP helpers of the legs: X- headers, URI users, codec priorities."""

from __future__ import annotations

import pytest

from assistline.sip.sipmsg import codec_priorities, sip_user, x_headers

INVITE = (
    "INVITE sip:echo@127.0.0.1:5080 SIP/2.0\r\n"
    "Via: SIP/2.0/UDP 127.0.0.1:5061;branch=z9hG4bK-1\r\n"
    "X-Assistline-Contact: contact-42\r\n"
    "Subject: long\r\n"
    " folded subject\r\n"
    "x-screen-pop: https://crm/1\r\n"
    " ?tab=2\r\n"
    "Content-Length: 0\r\n"
    "\r\n"
    "X-Not-A-Header: body\r\n"
)


def test_x_headers_in_order_with_folding_and_no_body() -> None:
    assert x_headers(INVITE) == (
        ("X-Assistline-Contact", "contact-42"),
        ("x-screen-pop", "https://crm/1 ?tab=2"),
    )


def test_x_headers_of_a_message_without_any() -> None:
    assert x_headers("BYE sip:a@b SIP/2.0\nCall-ID: 1\n\n") == ()


def test_sip_user() -> None:
    assert sip_user('"Echo" <sip:echo@127.0.0.1:5080>;tag=1') == "echo"
    assert sip_user("sip:+15551234567@trunk") == "+15551234567"
    assert sip_user("<sip:127.0.0.1>") == ""


def test_codec_priorities_follow_settings_order_and_disable_the_rest() -> None:
    available = ["speex/16000/1", "PCMU/8000/1", "PCMA/8000/1", "G722/16000/1", "GSM/8000/1"]
    assert codec_priorities(("G722", "PCMA"), available) == {
        "speex/16000/1": 0,
        "PCMU/8000/1": 0,
        "PCMA/8000/1": 254,
        "G722/16000/1": 255,
        "GSM/8000/1": 0,
    }


def test_unknown_codec_is_named() -> None:
    with pytest.raises(ValueError, match="unknown codec 'opus'; use PCMU, PCMA or G722"):
        codec_priorities(("PCMU", "opus"), ["PCMU/8000/1"])
