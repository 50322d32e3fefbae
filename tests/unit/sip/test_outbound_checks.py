"""The pure parts of outbound calls: caller ids, headers, the trunk command, URIs."""

from __future__ import annotations

import pytest

from assistline.settings import TrunkSettings
from assistline.sip import protocol, protocol_wire
from assistline.sip.outbound import (
    MAX_HEADERS,
    CallRequestError,
    caller_uri,
    check_headers,
    trunk_command,
)
from assistline.sip.trunk import aor, uri_target

TRUNK = TrunkSettings(
    address="carrier.example:5080",
    username="acme",
    password="tr7nk-s3cret",
    register=True,
    register_expiry=600,
)


def test_caller_ids_become_from_uris() -> None:
    assert caller_uri("+12025551000", "carrier.example") == "sip:+12025551000@carrier.example"
    assert caller_uri("sip:ar@assistline.example", "carrier.example") == "sip:ar@assistline.example"
    assert caller_uri("", "carrier.example") == ""
    with pytest.raises(CallRequestError, match="caller_id must be an E.164 number"):
        caller_uri("2025551000", "carrier.example")


def test_only_one_line_x_headers_pass() -> None:
    headers = [("X-Assistline-Contact", "contact-42"), ("X-Campaign", "spring 2025")]
    assert check_headers(headers) == tuple(headers)
    assert check_headers([]) == ()
    refused = {
        "headers: 'Via' is not an X- header name": [("Via", "SIP/2.0/UDP x")],
        "headers: 'X-A:B' is not an X- header name": [("X-A:B", "1")],
        "headers: X-A must be printable ASCII on one line, at most 256 characters": [
            ("X-A", "1\r\nVia: x")
        ],
        "headers: X-Long must be printable ASCII on one line, at most 256 characters": [
            ("X-Long", "a" * 257)
        ],
        f"headers: at most {MAX_HEADERS}": [("X-N", "1")] * (MAX_HEADERS + 1),
    }
    for message, bad in refused.items():
        with pytest.raises(CallRequestError) as raised:
            check_headers(bad)
        assert str(raised.value) == message


def test_first_worker_alone_registers_with_the_edge_as_contact() -> None:
    make = trunk_command(TRUNK, "127.0.0.1:5060", "w1", "203.0.113.5:5060")
    assert make is not None
    assert make(7) == protocol.Trunk(
        7,
        "carrier.example:5080",
        "acme",
        "tr7nk-s3cret",
        proxy="sip:127.0.0.1:5060;lr",
        contact="sip:acme@203.0.113.5:5060",
        register_expiry=600,
    )
    other = trunk_command(TRUNK, "127.0.0.1:5060", "w2", "203.0.113.5:5060")
    assert other is not None
    assert (other(8).contact, other(8).register_expiry, other(8).proxy) == (
        "",
        0,
        "sip:127.0.0.1:5060;lr",
    )
    # The Contact is the edge as workers reach it when no public address is known.
    own = trunk_command(TRUNK, "127.0.0.1:5060", "w1")
    assert own is not None and own(1).contact == "sip:acme@127.0.0.1:5060"


def test_without_an_edge_the_worker_faces_the_trunk_itself() -> None:
    make = trunk_command(TRUNK, None, "w1")
    assert make is not None
    assert (make(1).proxy, make(1).contact, make(1).register_expiry) == ("", "", 600)


def test_no_trunk_no_command() -> None:
    assert trunk_command(TrunkSettings(), "127.0.0.1:5060", "w1") is None


def test_unregistered_trunk_never_registers() -> None:
    make = trunk_command(TrunkSettings(address="carrier.example"), "127.0.0.1:5060", "w1")
    assert make is not None and make(1).register_expiry == 0 and make(1).contact == ""


def test_trunk_command_round_trips_and_its_repr_masks_the_password() -> None:
    command = protocol.Trunk(3, "carrier.example:5080", "acme", "tr7nk-s3cret", "sip:e;lr", "", 60)
    line = protocol_wire.encode(command)
    assert protocol_wire.parse(line[:-1], "to_worker") == command
    assert "tr7nk-s3cret" not in repr(command)
    assert "password=<masked>" in repr(command)
    assert protocol_wire.parse(
        b'{"type":"trunk","id":1,"address":"a","username":"u","password":"p"}', "to_worker"
    ) == protocol.Trunk(1, "a", "u", "p")


@pytest.mark.parametrize(
    ("uri", "target"),
    [
        ("sip:+12025550123@carrier.example:5080", ("carrier.example", 5080)),
        ("sip:+12025550123@Carrier.Example", ("carrier.example", 5060)),
        ("<sip:alice@127.0.0.1:5060;transport=udp>", ("127.0.0.1", 5060)),
        ("sip:carrier.example:5080;lr", ("carrier.example", 5080)),
        ("sip:+1@[2001:db8::7]:5070", ("[2001:db8::7]", 5070)),
        ("tel:+12025550123", None),
    ],
)
def test_uri_target(uri: str, target: tuple[str, int] | None) -> None:
    assert uri_target(uri) == target


def test_aor_is_the_username_at_the_trunk_host() -> None:
    assert aor(protocol.Trunk(1, "carrier.example:5080", "acme", "")) == "sip:acme@carrier.example"
    assert aor(protocol.Trunk(1, "carrier.example", "", "")) == "sip:assistline@carrier.example"
