"""TURN REST credentials (coturn use-auth-secret) and ICE servers from settings only."""

from __future__ import annotations

import base64
import hashlib
import hmac

import pytest

from assistline.settings import WebRtcSettings
from assistline.signalling.turn import ice_servers, turn_credentials

# Computed once with `openssl dgst -sha1 -hmac north -binary | base64` over the username.
KNOWN_PASSWORD = "ACX/evCoIh0TNKP1BeTtkYr+FFE="


def test_known_vector() -> None:
    username, password = turn_credentials("north", "contact-1", 1700000000, 3600)
    assert username == "1700003600:contact-1"
    assert password == KNOWN_PASSWORD
    by_hand = hmac.new(b"north", b"1700003600:contact-1", hashlib.sha1).digest()
    assert password == base64.b64encode(by_hand).decode()


def test_fractional_now_is_truncated_and_the_secret_matters() -> None:
    assert turn_credentials("north", "contact-1", 1700000000.99, 3600) == (
        "1700003600:contact-1",
        KNOWN_PASSWORD,
    )
    assert turn_credentials("south", "contact-1", 1700000000, 3600)[1] != KNOWN_PASSWORD


@pytest.mark.parametrize(
    ("secret", "user", "ttl", "error"),
    [
        ("", "contact-1", 60, "the TURN secret is empty"),
        ("s", "", 60, "a TURN user must be non-empty and have no ':'"),
        ("s", "a:b", 60, "a TURN user must be non-empty and have no ':'"),
        ("s", "contact-1", 0, "a TURN credential's ttl must be positive, not 0"),
    ],
)
def test_bad_inputs_are_refused(secret: str, user: str, ttl: int, error: str) -> None:
    with pytest.raises(ValueError) as raised:
        turn_credentials(secret, user, 0, ttl)
    assert str(raised.value) == error


def test_no_ice_servers_configured_means_none_at_all() -> None:
    # Never a public STUN server as a fallback: an empty list, which media workers pass on
    # as iceServers=[] so that aiortc's default Google STUN server is not used either.
    assert ice_servers(WebRtcSettings(), "contact-1", 1700000000) == []


def test_stun_only() -> None:
    settings = WebRtcSettings(ice_servers=("stun:stun.example.net:3478", "stuns:s.example.net"))
    assert ice_servers(settings, "contact-1", 1700000000) == [
        {"urls": ["stun:stun.example.net:3478", "stuns:s.example.net"]}
    ]


def test_stun_and_turn_with_short_lived_credentials() -> None:
    settings = WebRtcSettings(
        ice_servers=(
            "turn:turn.example.net:3478?transport=udp",
            "stun:turn.example.net:3478",
            "turns:turn.example.net:5349?transport=tcp",
        ),
        turn_secret="north",
        turn_ttl=3600,
    )
    assert ice_servers(settings, "contact-1", 1700000000) == [
        {"urls": ["stun:turn.example.net:3478"]},
        {
            "urls": [
                "turn:turn.example.net:3478?transport=udp",
                "turns:turn.example.net:5349?transport=tcp",
            ],
            "username": "1700003600:contact-1",
            "credential": KNOWN_PASSWORD,
        },
    ]


def test_turn_ttl_comes_from_settings() -> None:
    settings = WebRtcSettings(ice_servers=("turn:t:3478",), turn_secret="north", turn_ttl=600)
    (server,) = ice_servers(settings, "c", 100)
    assert server.get("username") == "700:c"
