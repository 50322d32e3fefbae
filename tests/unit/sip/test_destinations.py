from __future__ import annotations

import pytest

from assistline.sip.destinations import (
    Destination,
    DestinationRefusedError,
    DialPolicy,
    TrunkBusyError,
    TrunkGate,
    resolve,
)

POLICY = DialPolicy(home_region="US", trunk_host="trunk.example")
AGENTS = {"a-1": "sip:ada@127.0.0.1:5070"}


@pytest.mark.parametrize(
    ("text", "uri"),
    [
        ("+14155552671", "sip:+14155552671@trunk.example"),
        ("(415) 555-2671", "sip:+14155552671@trunk.example"),
        ("+1 800 555 0199", "sip:+18005550199@trunk.example"),
    ],
)
def test_valid_home_numbers_become_e164_uris(text: str, uri: str) -> None:
    assert resolve(text, POLICY, AGENTS) == Destination(uri=uri, e164=uri[4:].split("@")[0])


def test_agents_resolve_to_their_registered_uri() -> None:
    assert resolve("agent:a-1", POLICY, AGENTS) == Destination(
        uri="sip:ada@127.0.0.1:5070", agent="a-1"
    )


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("+19005551234", "premium-rate destinations are not allowed"),
        ("+442079460000", "international destinations (GB) are not allowed"),
        ("911", "destination is not a valid phone number"),
        ("call me", "destination is neither a phone number nor agent:<id>"),
        ("agent:nobody", "no agent has id 'nobody'"),
        ("+1415555267", "destination is not a valid phone number"),
    ],
)
def test_refused_destinations_say_why(text: str, message: str) -> None:
    with pytest.raises(DestinationRefusedError) as refused:
        resolve(text, POLICY, AGENTS)
    assert str(refused.value) == message


def test_a_policy_can_allow_international_and_premium_rate() -> None:
    open_policy = DialPolicy(allow_international=True, allow_premium_rate=True, trunk_host="t")
    assert resolve("+442079460000", open_policy, {}).uri == "sip:+442079460000@t"
    assert resolve("+19005551234", open_policy, {}).uri == "sip:+19005551234@t"


def test_trunk_gate_caps_calls_in_progress() -> None:
    gate = TrunkGate(2)
    gate.acquire("c1")
    gate.acquire("c2")
    gate.acquire("c2")  # the same call twice holds one place
    with pytest.raises(TrunkBusyError, match="the trunk carries 2 calls already"):
        gate.acquire("c3")
    gate.release("c1")
    gate.acquire("c3")
    assert gate.in_progress == 2
    gate.release("unknown")
    with pytest.raises(ValueError, match="a trunk must allow at least one call, not 0"):
        TrunkGate(0)
