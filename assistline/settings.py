"""Configuration: one frozen settings object, built once in ``__main__``.

Values come from, in rising precedence: the defaults below, an optional TOML
file (``--config``; one table per section), ``ASSISTLINE_<SECTION>_<NAME>``
environment variables, and command-line flags. Library code receives the
section it needs and never reads the environment itself.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import os
import re
import tomllib
import types
import typing
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any, Literal, TypeVar
from urllib.parse import urlsplit, urlunsplit

import platformdirs

from assistline.errors import ConfigurationError

T = TypeVar("T")
ENV_PREFIX = "ASSISTLINE_"


def setting(
    default: T | None = None,
    help: str = "",
    *,
    factory: typing.Callable[[], T] | None = None,
    secret: bool = False,
    aliases: tuple[str, ...] = (),
) -> T:
    """Declare one setting: its default, its help line, and whether it is secret."""
    metadata = {"help": help, "secret": secret, "aliases": aliases}
    if factory is not None:
        return dataclasses.field(default_factory=factory, metadata=metadata)
    return dataclasses.field(default=default, metadata=metadata)  # type: ignore[return-value]


def default_data_dir() -> Path:
    """Where the embedded database and recordings live unless configured.

    PostgreSQL refuses to run as root, so as root the server runs it as a
    system user; ``/var/lib/assistline`` is a place that user can reach
    without opening up root's home directory.
    """
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        return Path("/var/lib/assistline")
    return Path(platformdirs.user_data_dir("assistline", appauthor=False))


@dataclasses.dataclass(frozen=True, slots=True)
class HttpSettings:
    """The HTTP server: REST API, WebSocket signalling and the web client."""

    host: str = setting("127.0.0.1", "address the HTTP server listens on")
    port: int = setting(8080, "TCP port of the HTTP server (0 picks a free port)")
    public_url: str = setting(
        "", "URL customers and agents reach the server at; empty: derived from host and port"
    )
    shutdown_timeout: float = setting(
        5.0, "seconds open requests get to finish at shutdown before they are cut"
    )
    api_keys: tuple[str, ...] = setting(
        (), "keys the business backend sends as 'Authorization: Bearer <key>'", secret=True
    )
    allowed_origins: tuple[str, ...] = setting(
        (), "origins (scheme://host[:port]) pages may open /ws from; empty: public_url's only"
    )
    demo: bool = setting(
        False, "let the customer page create its own contact, without an API key (make run)"
    )

    def __post_init__(self) -> None:
        if not 0 <= self.port <= 65535:
            raise ConfigurationError(f"http.port must be 0..65535, not {self.port}")
        if self.shutdown_timeout <= 0:
            raise ConfigurationError("http.shutdown_timeout must be positive")
        short = [key for key in self.api_keys if len(key) < 16]
        if short:
            raise ConfigurationError("http.api_keys must each be at least 16 characters long")
        for origin in self.allowed_origins:
            parts = urlsplit(origin)
            if parts.scheme not in ("http", "https") or not parts.netloc or parts.path:
                raise ConfigurationError(
                    f"http.allowed_origins must be scheme://host[:port], not {origin!r}"
                )


@dataclasses.dataclass(frozen=True, slots=True)
class StoreSettings:
    """The system of record: PostgreSQL, embedded unless a URL is given."""

    database_url: str = setting(
        "",
        "PostgreSQL URL (postgresql://user:password@host/db); empty: start the embedded server",
        secret=True,
        aliases=("DATABASE_URL",),
    )
    data_dir: Path = setting(
        help="directory for the embedded database and other state", factory=default_data_dir
    )
    pool_min_size: int = setting(1, "connections the pool keeps open")
    pool_max_size: int = setting(10, "most connections the pool opens")
    connect_timeout: float = setting(10.0, "seconds to wait for the database at start-up")

    def __post_init__(self) -> None:
        if self.database_url and urlsplit(self.database_url).scheme not in (
            "postgres",
            "postgresql",
        ):
            raise ConfigurationError("store.database_url must start with postgresql://")
        if not 1 <= self.pool_min_size <= self.pool_max_size:
            raise ConfigurationError(
                "store.pool_min_size must be at least 1 and at most store.pool_max_size"
            )


@dataclasses.dataclass(frozen=True, slots=True)
class SipSettings:
    """The SIP side: the Kamailio edge in front, media workers behind it."""

    enabled: bool = setting(True, "run media workers and the SIP edge with the server")
    edge_host: str = setting("127.0.0.1", "address the SIP edge listens on for phones and trunks")
    edge_port: int = setting(5060, "UDP and TCP port of the SIP edge")
    tls_port: int = setting(5061, "TLS port of the SIP edge (used when a certificate is set)")
    tls_certificate: str = setting(
        "", "path of the PEM certificate for SIP over TLS at the edge; empty: no TLS"
    )
    tls_private_key: str = setting("", "path of the PEM private key of sip.tls_certificate")
    realm: str = setting("assistline", "digest authentication realm of agents' phones")
    kamailio: str = setting(
        "kamailio", "Kamailio executable; when missing, one worker takes the edge port itself"
    )
    workers: int = setting(2, "media workers started with the server")
    max_workers: int = setting(8, "most media workers started when load needs them")
    worker_base_port: int = setting(
        5080, "loopback SIP port of the first media worker; the next ones count up"
    )
    rtp_port_min: int = setting(20000, "lowest RTP port media workers use")
    rtp_port_max: int = setting(30000, "highest RTP port media workers use")
    public_address: str = setting(
        "", "address put in SDP for RTP when behind NAT; empty: the local address"
    )
    codecs: tuple[str, ...] = setting(
        ("PCMU", "PCMA", "G722"), "audio codecs offered to SIP peers, in order of preference"
    )
    record_calls: bool = setting(
        True, "record every call bridged to an agent (stereo WAV under the data directory)"
    )
    bridge_rate: int = setting(
        8000,
        "rate pjmedia's bridge mixes at: 8000 (G.711 calls are never resampled) "
        "or 16000 (G.722 keeps its 7 kHz band end to end)",
    )
    jitter_discard: str = setting(
        "none",
        "how jitter buffers shed delay after a burst: none (never drop a frame; the "
        "delay stays, up to sip.jitter_max_ms), static (drop one now and then when "
        "twice the burst is held) or progressive (pjmedia's default, follows the burst)",
    )
    jitter_max_ms: int = setting(
        200, "most audio a call's jitter buffer holds (ms); beyond it the oldest is dropped"
    )
    quality_interval: float = setting(
        10.0, "seconds between live receive-quality reports of each call; 0: only at its end"
    )
    media_timeout: float = setting(
        60.0, "seconds a call may receive no RTP (not on hold) before it is hung up; 0: never"
    )
    agent_networks: tuple[str, ...] = setting(
        ("127.0.0.0/8", "::1/128"), "networks agents' phones may register and call from"
    )
    trunk_networks: tuple[str, ...] = setting(
        ("127.0.0.0/8", "::1/128"), "networks SIP trunks may send calls from"
    )

    def __post_init__(self) -> None:
        for name in ("edge_port", "tls_port", "worker_base_port", "rtp_port_min", "rtp_port_max"):
            value = getattr(self, name)
            if not 1 <= value <= 65535:
                raise ConfigurationError(f"sip.{name} must be 1..65535, not {value}")
        if bool(self.tls_certificate) != bool(self.tls_private_key):
            raise ConfigurationError(
                "sip.tls_certificate and sip.tls_private_key must be set together"
            )
        if self.rtp_port_min >= self.rtp_port_max:
            raise ConfigurationError("sip.rtp_port_min must be below sip.rtp_port_max")
        if not 1 <= self.workers <= self.max_workers:
            raise ConfigurationError("sip.workers must be at least 1 and at most sip.max_workers")
        if self.bridge_rate not in (8000, 16000):
            raise ConfigurationError(
                f"sip.bridge_rate must be 8000 or 16000, not {self.bridge_rate}"
            )
        if self.jitter_discard not in ("none", "static", "progressive"):
            raise ConfigurationError(
                f"sip.jitter_discard must be none, static or progressive, not {self.jitter_discard}"
            )
        if not 60 <= self.jitter_max_ms <= 2000:
            raise ConfigurationError(
                f"sip.jitter_max_ms must be 60..2000, not {self.jitter_max_ms}"
            )
        if self.quality_interval != 0 and not 1 <= self.quality_interval <= 3600:
            raise ConfigurationError("sip.quality_interval must be 0 (at the end) or 1..3600 s")
        if self.media_timeout != 0 and not 5 <= self.media_timeout <= 3600:
            raise ConfigurationError("sip.media_timeout must be 0 (never) or 5..3600 seconds")
        unknown = [c for c in self.codecs if c not in ("PCMU", "PCMA", "G722")]
        if unknown or not self.codecs:
            raise ConfigurationError(
                f"sip.codecs must list PCMU, PCMA or G722, not {', '.join(unknown) or 'nothing'}"
            )


_TRUNK_ADDRESS = re.compile(r"^(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9.-]+)(:([0-9]{1,5}))?$")
_SIP_USER = re.compile(r"^[A-Za-z0-9._~+!$&'()*,;=%-]{1,64}$")
_E164 = re.compile(r"^\+[1-9][0-9]{1,14}$")
_SIP_URI = re.compile(r"^sips?:[A-Za-z0-9._~+!$&'()*,;=%:@\[\]-]{1,200}$")


def split_address(address: str, default_port: int = 5060) -> tuple[str, int]:
    """``host`` or ``host:port`` (IPv6 in brackets) as (host, port); ValueError if not."""
    match = _TRUNK_ADDRESS.match(address)
    port = int(match.group(3)) if match and match.group(3) else default_port
    if match is None or not 1 <= port <= 65535:
        raise ValueError(f"{address!r} is not host or host:port")
    return match.group(1), port


def is_caller_id(text: str) -> bool:
    """True for an E.164 number (``+12025550100``) or a plain SIP URI."""
    return bool(_E164.match(text) or _SIP_URI.match(text))


@dataclasses.dataclass(frozen=True, slots=True)
class TrunkSettings:
    """One SIP trunk for outbound calls: where it is, how to sign in, what it may dial."""

    address: str = setting(
        "", "the trunk's SIP address, host or host:port (UDP); empty: no trunk, no phone numbers"
    )
    username: str = setting("", "digest username at the trunk; also the user part of our AOR")
    password: str = setting("", "digest password at the trunk (REGISTER and INVITE)", secret=True)
    register: bool = setting(False, "register at the trunk, so it can send calls to the edge")
    register_expiry: int = setting(300, "seconds a registration at the trunk lasts (60..86400)")
    max_calls: int = setting(10, "most calls in progress on the trunk at once")
    caller_id: str = setting(
        "", "number (E.164) or SIP URI presented as the caller; empty: the trunk username"
    )
    home_region: str = setting(
        "US", "region numbers are dialled from (ISO 3166 code); others are international"
    )
    allow_international: bool = setting(False, "allow numbers outside trunk.home_region")
    allow_premium_rate: bool = setting(False, "allow premium-rate numbers")

    def __post_init__(self) -> None:
        if self.address:
            try:
                split_address(self.address)
            except ValueError:
                raise ConfigurationError(
                    f"trunk.address must be host or host:port, not {self.address!r}"
                ) from None
        if self.username and not _SIP_USER.match(self.username):
            raise ConfigurationError(
                "trunk.username must be 1-64 letters, digits or SIP user characters"
            )
        if self.password and not self.username:
            raise ConfigurationError("trunk.password needs trunk.username")
        if self.register and not self.address:
            raise ConfigurationError("trunk.register needs trunk.address")
        if not 60 <= self.register_expiry <= 86400:
            raise ConfigurationError(
                f"trunk.register_expiry must be 60..86400 seconds, not {self.register_expiry}"
            )
        if self.max_calls < 1:
            raise ConfigurationError(f"trunk.max_calls must be at least 1, not {self.max_calls}")
        if self.caller_id and not is_caller_id(self.caller_id):
            raise ConfigurationError(
                f"trunk.caller_id must be an E.164 number (+12025550100) or a SIP URI, "
                f"not {self.caller_id!r}"
            )
        # Imported here: phonenumbers' metadata is only needed to check this one value.
        import phonenumbers

        if self.home_region not in phonenumbers.SUPPORTED_REGIONS:
            raise ConfigurationError(
                f"trunk.home_region must be a region code such as US or GB, "
                f"not {self.home_region!r}"
            )


@dataclasses.dataclass(frozen=True, slots=True)
class WebRtcSettings:
    """WebRTC legs and contacts: ICE servers (nothing else is ever asked), tokens."""

    ice_servers: tuple[str, ...] = setting(
        (),
        "STUN/TURN URLs given to browsers and media workers (stun:host:port, "
        "turn:host:port?transport=udp); empty: host candidates only, nothing leaves the machine",
    )
    turn_secret: str = setting(
        "", "shared secret of the TURN server's use-auth-secret (coturn REST) scheme", secret=True
    )
    turn_ttl: int = setting(3600, "seconds a TURN credential handed to a browser stays valid")
    token_ttl: int = setting(300, "seconds a contact's join token stays valid (at most 300)")
    consent_timeout: float = setting(
        30.0, "seconds without ICE consent before a WebRTC leg and its agent leg are ended"
    )
    ice_host_addresses: tuple[str, ...] = setting(
        (), "this machine's IP addresses WebRTC host candidates use; empty: all but loopback"
    )

    def __post_init__(self) -> None:
        for url in self.ice_servers:
            if not re.match(r"^(stun|stuns|turn|turns):[^\s]+$", url):
                raise ConfigurationError(
                    f"webrtc.ice_servers must be stun:, stuns:, turn: or turns: URLs, not {url!r}"
                )
        turn = [u for u in self.ice_servers if u.startswith(("turn:", "turns:"))]
        if turn and not self.turn_secret:
            raise ConfigurationError("webrtc.ice_servers has a TURN server: set webrtc.turn_secret")
        if not 60 <= self.turn_ttl <= 86400:
            raise ConfigurationError(f"webrtc.turn_ttl must be 60..86400 s, not {self.turn_ttl}")
        if not 10 <= self.token_ttl <= 300:
            raise ConfigurationError(f"webrtc.token_ttl must be 10..300 s, not {self.token_ttl}")
        for address in self.ice_host_addresses:
            try:
                ipaddress.ip_address(address)
            except ValueError:
                raise ConfigurationError(
                    f"webrtc.ice_host_addresses must be IP addresses, not {address!r}"
                ) from None
        if not 5 <= self.consent_timeout <= 40:
            raise ConfigurationError(
                f"webrtc.consent_timeout must be 5..40 s, not {self.consent_timeout}"
            )


@dataclasses.dataclass(frozen=True, slots=True)
class IvrSettings:
    """The payment line: its number, flows, prompts, AR policy and payment gateway."""

    payment_line: str = setting("pay", "dialled user (a number or a name) of the IVR payment line")
    flows_dir: Path | None = setting(None, "directory of IVR flow files; none: the shipped flows")
    prompts_dir: Path | None = setting(None, "recorded prompts (<key>.wav) that replace speech")
    prompt_cache_dir: Path | None = setting(None, "spoken-prompt cache; none: data_dir/prompts")
    tts_voice: str = setting("en-us", "eSpeak NG voice of spoken prompts")
    tts_words_per_minute: int = setting(160, "speed of spoken prompts, 80..450 words a minute")
    ar_policy_file: Path | None = setting(None, "AR payment policy (TOML); none: the shipped one")
    gateway: Literal["sandbox", "http"] = setting(
        "sandbox", "payment gateway: sandbox (test cards only) or http (PaymentIntents API)"
    )
    gateway_url: str = setting("", "base URL of the http payment gateway")
    gateway_secret_key: str = setting("", "secret key of the http payment gateway", secret=True)
    gateway_attempt_timeout: float = setting(10.0, "seconds one gateway request may take")
    gateway_max_attempts: int = setting(3, "gateway requests per charge (one idempotency key)")

    def __post_init__(self) -> None:
        if not re.match(r"^[A-Za-z0-9+._-]{1,64}$", self.payment_line):
            raise ConfigurationError(
                "ivr.payment_line must be a dialled user (digits, +, letters), "
                f"not {self.payment_line!r}"
            )
        if not 80 <= self.tts_words_per_minute <= 450:
            raise ConfigurationError(
                f"ivr.tts_words_per_minute must be 80..450, not {self.tts_words_per_minute}"
            )
        if self.gateway == "http" and not (self.gateway_url and self.gateway_secret_key):
            raise ConfigurationError(
                "ivr.gateway http needs ivr.gateway_url and ivr.gateway_secret_key"
            )
        if not 1 <= self.gateway_max_attempts <= 10:
            raise ConfigurationError(
                f"ivr.gateway_max_attempts must be 1..10, not {self.gateway_max_attempts}"
            )
        if not 1 <= self.gateway_attempt_timeout <= 60:
            raise ConfigurationError(
                f"ivr.gateway_attempt_timeout must be 1..60 s, not {self.gateway_attempt_timeout}"
            )


@dataclasses.dataclass(frozen=True, slots=True)
class LogSettings:
    """Logging: level and line format; card numbers are always masked."""

    level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = setting("INFO", "lowest level logged")
    format: Literal["text", "json"] = setting(
        "text", "text for people, json for one JSON object per line"
    )


@dataclasses.dataclass(frozen=True, slots=True)
class Settings:
    """Every section of assistline's configuration."""

    http: HttpSettings = dataclasses.field(default_factory=HttpSettings)
    store: StoreSettings = dataclasses.field(default_factory=StoreSettings)
    sip: SipSettings = dataclasses.field(default_factory=SipSettings)
    trunk: TrunkSettings = dataclasses.field(default_factory=TrunkSettings)
    webrtc: WebRtcSettings = dataclasses.field(default_factory=WebRtcSettings)
    ivr: IvrSettings = dataclasses.field(default_factory=IvrSettings)
    log: LogSettings = dataclasses.field(default_factory=LogSettings)


@dataclasses.dataclass(frozen=True, slots=True)
class SettingInfo:
    """One setting as ``--help`` and ``assistline config`` show it."""

    section: str
    name: str
    env: str
    aliases: tuple[str, ...]
    help: str
    secret: bool
    value: Any


def _sections() -> Iterator[tuple[str, type[Any]]]:
    hints = typing.get_type_hints(Settings)
    for field in dataclasses.fields(Settings):
        yield field.name, hints[field.name]


def env_name(section: str, name: str) -> str:
    """The environment variable of one setting, e.g. ``ASSISTLINE_HTTP_PORT``."""
    return f"{ENV_PREFIX}{section}_{name}".upper()


def describe(settings: Settings) -> list[SettingInfo]:
    """List every setting with its variable, help and value in ``settings``."""
    infos = []
    for section, cls in _sections():
        values = getattr(settings, section)
        for field in dataclasses.fields(cls):
            infos.append(
                SettingInfo(
                    section=section,
                    name=field.name,
                    env=env_name(section, field.name),
                    aliases=field.metadata["aliases"],
                    help=field.metadata["help"],
                    secret=field.metadata["secret"],
                    value=getattr(values, field.name),
                )
            )
    return infos


def mask_secret(value: Any) -> str:
    """Show a secret without revealing it: a PostgreSQL URL keeps all but its password.

    Any other secret (a trunk password) is masked whole, even when it looks
    like a URL: ``x://y@z`` is a valid password.
    """
    text = str(value)
    if not text:
        return ""
    parts = urlsplit(text)
    if parts.scheme not in ("postgres", "postgresql") or "://" not in text:
        return "***"
    if parts.password is not None:
        netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
        return urlunsplit(parts._replace(netloc=netloc))
    return text


def _convert(raw: Any, target: Any, where: str) -> Any:
    """Turn a TOML value or an environment string into the field's type."""
    origin = typing.get_origin(target)
    if origin is Literal:
        choices = typing.get_args(target)
        if raw not in choices:
            allowed = ", ".join(repr(c) for c in choices)
            raise ConfigurationError(f"{where} must be one of {allowed}, not {raw!r}")
        return raw
    if origin in (typing.Union, types.UnionType):
        return _convert(raw, next(a for a in typing.get_args(target) if a is not type(None)), where)
    if target is bool:
        if isinstance(raw, bool):
            return raw
        text = str(raw).strip().lower()
        if text in ("1", "true", "yes", "on"):
            return True
        if text in ("0", "false", "no", "off"):
            return False
        raise ConfigurationError(f"{where} must be true or false, not {raw!r}")
    if target in (int, float):
        if isinstance(raw, bool):
            raise ConfigurationError(f"{where} must be a number, not {raw!r}")
        try:
            return target(raw)
        except (TypeError, ValueError):
            raise ConfigurationError(f"{where} must be a number, not {raw!r}") from None
    if target is Path:
        return Path(str(raw)).expanduser()
    if origin is tuple:
        items = raw if isinstance(raw, list) else [s for s in str(raw).split(",") if s.strip()]
        return tuple(str(item).strip() for item in items)
    if target is str:
        if not isinstance(raw, str | int | float):
            raise ConfigurationError(f"{where} must be a string, not {raw!r}")
        return str(raw)
    raise ConfigurationError(f"{where} has an unsupported type {target!r}")  # pragma: no cover


def load_settings(
    config_file: Path | None = None,
    environ: Mapping[str, str] | None = None,
    overrides: Mapping[str, Any] | None = None,
) -> Settings:
    """Build the settings from defaults, a TOML file, the environment and overrides.

    ``overrides`` maps ``"section.name"`` to values already of the right
    kind (command-line flags); ``None`` values are ignored.
    """
    environ = environ or {}
    overrides = {key: value for key, value in (overrides or {}).items() if value is not None}
    from_file: dict[str, Any] = {}
    if config_file is not None:
        try:
            from_file = tomllib.loads(config_file.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise ConfigurationError(f"configuration file {config_file} does not exist") from None
        except tomllib.TOMLDecodeError as error:
            raise ConfigurationError(f"configuration file {config_file}: {error}") from None
    known_sections = dict(_sections())
    for section, table in from_file.items():
        if section not in known_sections:
            raise ConfigurationError(f"{config_file}: unknown section [{section}]")
        if not isinstance(table, dict):
            raise ConfigurationError(f"{config_file}: [{section}] must be a table")
    for key in overrides:
        section, _, name = key.partition(".")
        if section not in known_sections:
            raise ConfigurationError(f"unknown setting {key}")

    built: dict[str, Any] = {}
    for section, cls in known_sections.items():
        hints = typing.get_type_hints(cls)
        names = {f.name: f for f in dataclasses.fields(cls)}
        table = from_file.get(section, {})
        for name in table:
            if name not in names:
                raise ConfigurationError(f"{config_file}: unknown setting {section}.{name}")
        values: dict[str, Any] = {}
        for name, field in names.items():
            variables = (env_name(section, name), *field.metadata["aliases"])
            if f"{section}.{name}" in overrides:
                values[name] = overrides[f"{section}.{name}"]
            elif any(var in environ for var in variables):
                var = next(var for var in variables if var in environ)
                values[name] = _convert(environ[var], hints[name], var)
            elif name in table:
                values[name] = _convert(table[name], hints[name], f"{section}.{name}")
        built[section] = cls(**values)
    return Settings(**built)
