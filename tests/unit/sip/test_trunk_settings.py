"""The [trunk] settings: variables, validation naming the setting, the masked password."""

from __future__ import annotations

import pytest

from assistline.__main__ import main
from assistline.errors import ConfigurationError
from assistline.settings import TrunkSettings, is_caller_id, load_settings, split_address


def test_defaults_mean_no_trunk_and_a_closed_dial_policy() -> None:
    trunk = load_settings().trunk
    assert (trunk.address, trunk.register, trunk.max_calls, trunk.home_region) == (
        "",
        False,
        10,
        "US",
    )
    assert not trunk.allow_international and not trunk.allow_premium_rate


def test_every_setting_comes_from_its_variable() -> None:
    trunk = load_settings(
        environ={
            "ASSISTLINE_TRUNK_ADDRESS": "sip.carrier.example:5080",
            "ASSISTLINE_TRUNK_USERNAME": "acme",
            "ASSISTLINE_TRUNK_PASSWORD": "tr7nk-s3cret",
            "ASSISTLINE_TRUNK_REGISTER": "yes",
            "ASSISTLINE_TRUNK_REGISTER_EXPIRY": "600",
            "ASSISTLINE_TRUNK_MAX_CALLS": "3",
            "ASSISTLINE_TRUNK_CALLER_ID": "+12025551000",
            "ASSISTLINE_TRUNK_HOME_REGION": "GB",
            "ASSISTLINE_TRUNK_ALLOW_INTERNATIONAL": "true",
            "ASSISTLINE_TRUNK_ALLOW_PREMIUM_RATE": "on",
        }
    ).trunk
    assert trunk == TrunkSettings(
        address="sip.carrier.example:5080",
        username="acme",
        password="tr7nk-s3cret",
        register=True,
        register_expiry=600,
        max_calls=3,
        caller_id="+12025551000",
        home_region="GB",
        allow_international=True,
        allow_premium_rate=True,
    )


@pytest.mark.parametrize(
    ("environ", "message"),
    [
        ({"ASSISTLINE_TRUNK_ADDRESS": "a b"}, "trunk.address must be host or host:port, not 'a b'"),
        (
            {"ASSISTLINE_TRUNK_ADDRESS": "carrier:70000"},
            "trunk.address must be host or host:port, not 'carrier:70000'",
        ),
        (
            {"ASSISTLINE_TRUNK_USERNAME": "a b"},
            "trunk.username must be 1-64 letters, digits or SIP user characters",
        ),
        ({"ASSISTLINE_TRUNK_PASSWORD": "x"}, "trunk.password needs trunk.username"),
        ({"ASSISTLINE_TRUNK_REGISTER": "1"}, "trunk.register needs trunk.address"),
        (
            {"ASSISTLINE_TRUNK_REGISTER_EXPIRY": "10"},
            "trunk.register_expiry must be 60..86400 seconds, not 10",
        ),
        ({"ASSISTLINE_TRUNK_MAX_CALLS": "0"}, "trunk.max_calls must be at least 1, not 0"),
        (
            {"ASSISTLINE_TRUNK_MAX_CALLS": "many"},
            "ASSISTLINE_TRUNK_MAX_CALLS must be a number, not 'many'",
        ),
        (
            {"ASSISTLINE_TRUNK_CALLER_ID": "bob"},
            "trunk.caller_id must be an E.164 number (+12025550100) or a SIP URI, not 'bob'",
        ),
        (
            {"ASSISTLINE_TRUNK_HOME_REGION": "XX"},
            "trunk.home_region must be a region code such as US or GB, not 'XX'",
        ),
    ],
)
def test_bad_values_name_the_setting(environ: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigurationError) as raised:
        load_settings(environ=environ)
    assert str(raised.value) == message


@pytest.mark.parametrize("password", ["tr7nk-s3cret", "pass:word", "x://y@z"])
def test_config_masks_the_trunk_password(capsys: pytest.CaptureFixture[str], password: str) -> None:
    environ = {"ASSISTLINE_TRUNK_USERNAME": "acme", "ASSISTLINE_TRUNK_PASSWORD": password}
    assert main(["config"], environ) == 0
    out = capsys.readouterr().out
    assert password not in out
    assert "\n[trunk]\n" in out
    assert 'username = "acme"  # ASSISTLINE_TRUNK_USERNAME' in out


def test_serve_help_never_shows_a_password(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["serve", "--help"], {"ASSISTLINE_TRUNK_PASSWORD": "tr7nk-s3cret"})
    out = capsys.readouterr().out
    assert "ASSISTLINE_TRUNK_PASSWORD" in out and "tr7nk-s3cret" not in out


@pytest.mark.parametrize(
    ("address", "parsed"),
    [
        ("carrier.example", ("carrier.example", 5060)),
        ("carrier.example:5080", ("carrier.example", 5080)),
        ("192.0.2.7:5070", ("192.0.2.7", 5070)),
        ("[2001:db8::7]:5070", ("[2001:db8::7]", 5070)),
    ],
)
def test_split_address(address: str, parsed: tuple[str, int]) -> None:
    assert split_address(address) == parsed


@pytest.mark.parametrize("address", ["", "a b", "host:0", "host:", "2001:db8::7", "sip:host"])
def test_split_address_refuses(address: str) -> None:
    with pytest.raises(ValueError, match="is not host or host:port"):
        split_address(address)


@pytest.mark.parametrize(
    ("text", "ok"),
    [
        ("+12025551000", True),
        ("sip:collections@assistline.example", True),
        ("sips:+12025551000@carrier.example:5061", True),
        ("12025551000", False),
        ("+0123", False),
        ("<sip:a@b>", False),
        ("sip:a@b\r\nVia: x", False),
        ('"Acme" <sip:a@b>', False),
    ],
)
def test_caller_ids(text: str, ok: bool) -> None:
    assert is_caller_id(text) is ok
