from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from assistline.errors import ConfigurationError
from assistline.settings import (
    Settings,
    StoreSettings,
    describe,
    env_name,
    load_settings,
    mask_secret,
)


def test_defaults() -> None:
    settings = load_settings()
    assert settings.http.host == "127.0.0.1"
    assert settings.http.port == 8080
    assert settings.store.database_url == ""
    assert settings.log.format == "text"


def test_settings_are_frozen() -> None:
    settings = load_settings()
    with pytest.raises(dataclasses.FrozenInstanceError):
        settings.http.port = 1  # type: ignore[misc]


def test_precedence_defaults_file_environment_flags(tmp_path: Path) -> None:
    config = tmp_path / "assistline.toml"
    config.write_text('[http]\nport = 9000\nhost = "::1"\n[log]\nformat = "json"\n')
    from_file = load_settings(config)
    assert (from_file.http.port, from_file.http.host, from_file.log.format) == (9000, "::1", "json")
    from_env = load_settings(config, {"ASSISTLINE_HTTP_PORT": "9100"})
    assert (from_env.http.port, from_env.http.host) == (9100, "::1")
    from_flag = load_settings(config, {"ASSISTLINE_HTTP_PORT": "9100"}, {"http.port": 9200})
    assert from_flag.http.port == 9200


def test_database_url_alias_and_path_conversion() -> None:
    settings = load_settings(
        environ={
            "DATABASE_URL": "postgresql://a:b@db/x",
            "ASSISTLINE_STORE_DATA_DIR": "/srv/assistline",
        }
    )
    assert settings.store.database_url == "postgresql://a:b@db/x"
    assert settings.store.data_dir == Path("/srv/assistline")
    both = load_settings(
        environ={
            "DATABASE_URL": "postgresql://alias/x",
            "ASSISTLINE_STORE_DATABASE_URL": "postgresql://own/x",
        }
    )
    assert both.store.database_url == "postgresql://own/x"


@pytest.mark.parametrize(
    ("environ", "message"),
    [
        ({"ASSISTLINE_HTTP_PORT": "eighty"}, "ASSISTLINE_HTTP_PORT must be a number, not 'eighty'"),
        ({"ASSISTLINE_HTTP_PORT": "70000"}, "http.port must be 0..65535, not 70000"),
        (
            {"ASSISTLINE_LOG_FORMAT": "xml"},
            "ASSISTLINE_LOG_FORMAT must be one of 'text', 'json', not 'xml'",
        ),
        ({"DATABASE_URL": "mysql://x"}, "store.database_url must start with postgresql://"),
        (
            {"ASSISTLINE_STORE_POOL_MIN_SIZE": "5", "ASSISTLINE_STORE_POOL_MAX_SIZE": "2"},
            "store.pool_min_size must be at least 1 and at most store.pool_max_size",
        ),
        (
            {"ASSISTLINE_SIP_BRIDGE_RATE": "44100"},
            "sip.bridge_rate must be 8000 or 16000, not 44100",
        ),
        (
            {"ASSISTLINE_SIP_JITTER_DISCARD": "adaptive"},
            "sip.jitter_discard must be none, static or progressive, not adaptive",
        ),
        ({"ASSISTLINE_SIP_JITTER_MAX_MS": "20"}, "sip.jitter_max_ms must be 60..2000, not 20"),
        (
            {"ASSISTLINE_HTTP_API_KEYS": "short"},
            "http.api_keys must each be at least 16 characters long",
        ),
        (
            {"ASSISTLINE_HTTP_ALLOWED_ORIGINS": "https://shop.example/pay"},
            "http.allowed_origins must be scheme://host[:port], not 'https://shop.example/pay'",
        ),
        (
            {"ASSISTLINE_WEBRTC_ICE_SERVERS": "turn:127.0.0.1:3478"},
            "webrtc.ice_servers has a TURN server: set webrtc.turn_secret",
        ),
        (
            {"ASSISTLINE_WEBRTC_ICE_SERVERS": "http://stun.example"},
            "webrtc.ice_servers must be stun:, stuns:, turn: or turns: URLs, not 'http://stun.example'",
        ),
        ({"ASSISTLINE_WEBRTC_TOKEN_TTL": "600"}, "webrtc.token_ttl must be 10..300 s, not 600"),
        (
            {"ASSISTLINE_SIP_QUALITY_INTERVAL": "0.5"},
            "sip.quality_interval must be 0 (at the end) or 1..3600 s",
        ),
    ],
)
def test_bad_values_name_the_setting(environ: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigurationError) as raised:
        load_settings(environ=environ)
    assert str(raised.value) == message


def test_bad_files_are_named(tmp_path: Path) -> None:
    missing = tmp_path / "missing.toml"
    with pytest.raises(ConfigurationError, match="missing.toml does not exist"):
        load_settings(missing)
    unknown_section = tmp_path / "a.toml"
    unknown_section.write_text("[htp]\nport = 1\n")
    with pytest.raises(ConfigurationError, match=r"unknown section \[htp\]"):
        load_settings(unknown_section)
    unknown_key = tmp_path / "b.toml"
    unknown_key.write_text("[http]\nprot = 1\n")
    with pytest.raises(ConfigurationError, match="unknown setting http.prot"):
        load_settings(unknown_key)
    broken = tmp_path / "c.toml"
    broken.write_text("[http\n")
    with pytest.raises(ConfigurationError, match="c.toml"):
        load_settings(broken)
    wrong_type = tmp_path / "d.toml"
    wrong_type.write_text('[http]\nport = "x"\n')
    with pytest.raises(ConfigurationError, match="http.port must be a number"):
        load_settings(wrong_type)


def test_every_setting_has_a_variable_and_help() -> None:
    infos = describe(Settings(store=StoreSettings(data_dir=Path("/d"))))
    assert {info.env for info in infos} >= {
        "ASSISTLINE_HTTP_HOST",
        "ASSISTLINE_HTTP_PORT",
        "ASSISTLINE_STORE_DATABASE_URL",
        "ASSISTLINE_STORE_DATA_DIR",
        "ASSISTLINE_LOG_LEVEL",
        "ASSISTLINE_LOG_FORMAT",
    }
    assert all(info.help for info in infos)
    assert env_name("http", "port") == "ASSISTLINE_HTTP_PORT"
    assert [info.env for info in infos if info.secret] == [
        "ASSISTLINE_HTTP_API_KEYS",
        "ASSISTLINE_STORE_DATABASE_URL",
        "ASSISTLINE_TRUNK_PASSWORD",
        "ASSISTLINE_WEBRTC_TURN_SECRET",
        "ASSISTLINE_IVR_GATEWAY_SECRET_KEY",
    ]


@pytest.mark.parametrize(
    ("value", "shown"),
    [
        ("postgresql://app:hunter2@db:5432/x", "postgresql://app:***@db:5432/x"),
        ("postgresql://app@db/x", "postgresql://app@db/x"),
        ("plain-secret", "***"),
        ("pass:word", "***"),
        ("", ""),
    ],
)
def test_mask_secret(value: str, shown: str) -> None:
    assert mask_secret(value) == shown


def test_ice_host_addresses_must_be_ip_addresses() -> None:
    with pytest.raises(ConfigurationError) as raised:
        load_settings(environ={"ASSISTLINE_WEBRTC_ICE_HOST_ADDRESSES": "127.0.0.1,eth0"})
    assert str(raised.value) == "webrtc.ice_host_addresses must be IP addresses, not 'eth0'"
