"""The SIP edge's configuration: settings in, Kamailio's files out (pure).

Kamailio (Debian ``kamailio``, 5.6 here) is the edge; this module turns the
``[sip]`` settings and a few facts only known at run time (where the media
workers listen, where the edge's directory is, the TLS certificate) into the
text of its files, without touching the disk: ``edge.py`` writes them.

- ``kamailio.cfg`` comes from the template ``kamailio.cfg.tmpl`` beside this
  module (double-brace placeholders, plus ``#!define`` switches such as
  ``WITH_TLS`` for Kamailio's own preprocessor), so the routing logic stays
  readable as a Kamailio file.
- ``dispatcher.list``: media workers are dispatcher set 1, chosen by call
  load (algorithm 10) with ``maxload`` = the inbound calls one worker takes:
  2 of the 4 calls the pjsua2 wheel holds, because each inbound call keeps
  a slot free for the agent leg bridged to it in the same worker (with 4,
  a worker given four callers had no slot left to reach any agent), pinged
  with OPTIONS. Every address starts inactive
  (flags 9), so one with no worker behind it is never chosen: listed as
  merely probing (flags 8) it was chosen until its first ping timed out
  (3 s), and calls sent there failed.
- ``db/credentials``: agents' credentials as a db_text table of HA1 digests,
  md5("user:realm:password"), the only stored form SIP digest can check;
  Kamailio loads it into a hash table (``htable.reload creds``).
- the SIP trunk: media workers reach it through the edge (their outbound
  proxy). A REGISTER from a worker is relayed to the trunk's registrar in
  its Request-URI, never saved as an agent's; an INVITE from a worker goes
  to a registered agent when it is addressed to the edge, onward otherwise.
- anti-flood: more than ``flood_requests`` requests (16) in two consecutive
  seconds from one source bans it for ``ban_seconds`` (300): counted in an
  htable, not with pike, whose documented limit lies anywhere between x
  and 3x requests. Media workers and trunk networks are never counted.
- ``fail2ban-assistline.conf`` beside this module matches the edge's
  ``assistline-edge: flood from <ip>`` / ``scanner from <ip>`` lines.
"""

from __future__ import annotations

import dataclasses
import hashlib
import ipaddress
import re
from collections.abc import Iterable
from importlib import resources
from pathlib import Path

from assistline.errors import AssistlineError
from assistline.settings import SipSettings

TEMPLATE = "kamailio.cfg.tmpl"
FAIL2BAN_FILTER = "fail2ban-assistline.conf"
DISPATCHER_SET = 1
# Linux's sun_path holds 108 bytes, the last one a NUL.
UNIX_PATH_MAX = 107
_PLACEHOLDER = re.compile(r"\{\{([A-Z_0-9]+)\}\}")
_USERNAME = re.compile(r"[A-Za-z0-9._+\-]{1,64}")
_HA1 = re.compile(r"[0-9a-f]{32}")
_SAFE_TEXT = re.compile(r'[^"\\\n\r\x00]*')


class EdgeConfigError(AssistlineError, ValueError):
    """The SIP edge's configuration cannot be generated; fix the named value."""


@dataclasses.dataclass(frozen=True, slots=True)
class EdgeLimits:
    """Numbers of the edge's protections and timers."""

    flood_requests: int = 16
    """Most requests one source may send in two consecutive seconds."""
    ban_seconds: int = 300
    """How long a flooding source is ignored."""
    max_message_bytes: int = 3800
    """Larger requests get 513 Message Too Large: the workers' pjsip cuts any
    datagram at 4,000 bytes and acts on the rest (tests/integration/sip/
    test_malformed.py), and the edge adds its own Via and Record-Route."""
    ping_interval: int = 1
    """Seconds between OPTIONS pings to each media worker."""
    fr_timer_ms: int = 3000
    """A request with no reply at all in this time has failed (a dead worker)."""
    calls_per_worker: int = 2
    """Inbound calls dispatched to one worker: half the 4 it holds (agent legs)."""
    children: int = 8
    """Kamailio processes per UDP socket and for TCP.

    Eight, not two: the edge shares a core with busy media workers, and each
    process gets its share of it. Measured with ``bench/sip.py`` at 50 set-ups
    a second: with two, the edge fell behind in about one run of three (BYE
    forwarding p50 49 ms, p95 266 ms, worse each second of the run), hung-up
    legs kept their pjsua slots past the workers' wait and calls failed;
    with eight, 10 runs of 10 passed, BYE forwarding p95 0.3–28 ms."""


@dataclasses.dataclass(frozen=True, slots=True)
class EdgeRuntime:
    """What the edge needs beyond the settings: places and workers."""

    directory: Path
    """The edge's own directory in assistline's data directory."""
    workers: tuple[tuple[str, int], ...]
    """Loopback SIP addresses (host, port) of the media workers."""
    auth_secret: str
    """Secret Kamailio signs digest nonces with (random per start)."""
    tls_certificate: Path | None = None
    tls_private_key: Path | None = None
    tls_port: int = 5061
    limits: EdgeLimits = EdgeLimits()

    @property
    def config_file(self) -> Path:
        """The generated kamailio.cfg."""
        return self.directory / "kamailio.cfg"

    @property
    def runtime_dir(self) -> Path:
        """Kamailio's runtime directory (instead of /run/kamailio)."""
        return self.directory / "run"

    @property
    def pid_file(self) -> Path:
        """Kamailio's pid file."""
        return self.runtime_dir / "kamailio.pid"

    @property
    def ctl_socket(self) -> Path:
        """The binrpc control socket kamcmd talks to."""
        return self.runtime_dir / "ctl.sock"

    @property
    def db_dir(self) -> Path:
        """The db_text database directory (the credentials table)."""
        return self.directory / "db"

    @property
    def credentials_file(self) -> Path:
        """The db_text table of agents' HA1 digests."""
        return self.db_dir / "credentials"

    @property
    def dispatcher_file(self) -> Path:
        """The dispatcher list of media workers."""
        return self.directory / "dispatcher.list"

    @property
    def tls_config_file(self) -> Path:
        """The TLS module's configuration."""
        return self.directory / "tls.cfg"

    @property
    def tls(self) -> bool:
        """True when a certificate and key are configured."""
        return self.tls_certificate is not None and self.tls_private_key is not None


def ha1(username: str, realm: str, password: str) -> str:
    """The digest HA1 of a SIP account: md5 of ``username:realm:password``."""
    return hashlib.md5(f"{username}:{realm}:{password}".encode(), usedforsecurity=False).hexdigest()


def _host(host: str) -> str:
    """``host`` as it goes into a SIP URI or Kamailio socket (IPv6 in brackets)."""
    if ":" in host and not host.startswith("["):
        return f"[{host}]"
    return host


def _networks(name: str, networks: Iterable[str]) -> str:
    """The comma list ``is_in_subnet`` takes; an empty list matches nothing."""
    cleaned = []
    for network in networks:
        try:
            cleaned.append(str(ipaddress.ip_network(network.strip(), strict=False)))
        except ValueError:
            raise EdgeConfigError(f"sip.{name} has {network!r}, which is not a network") from None
    # 0.0.0.0 is never a packet's source address.
    return ",".join(cleaned) or "0.0.0.0/32"


def _safe(name: str, value: str) -> str:
    if not _SAFE_TEXT.fullmatch(value):
        raise EdgeConfigError(f"{name} must not hold quotes, backslashes or line breaks")
    return value


def listen_lines(sip: SipSettings, runtime: EdgeRuntime) -> list[str]:
    """Kamailio ``listen`` lines: UDP and TCP on the edge port, TLS when configured."""
    host = _host(sip.edge_host)
    lines = [f"listen=udp:{host}:{sip.edge_port}", f"listen=tcp:{host}:{sip.edge_port}"]
    if runtime.tls:
        lines.append(f"listen=tls:{host}:{runtime.tls_port}")
    return lines


def dispatcher_list(workers: Iterable[tuple[str, int]], calls_per_worker: int = 4) -> str:
    """The dispatcher list: every worker in set 1, inactive until it answers a ping."""
    lines = ["# setid destination flags priority attributes (written by assistline)"]
    for index, (host, port) in enumerate(workers, start=1):
        # flags 9: inactive and probing (OPTIONS pings): an address turns
        # active when a worker answers there, never selected before.
        lines.append(
            f"{DISPATCHER_SET} sip:{_host(host)}:{port} 9 0 "
            f"duid=worker{index};maxload={calls_per_worker}"
        )
    return "\n".join(lines) + "\n"


def credentials_table(entries: Iterable[tuple[str, str]]) -> str:
    """The db_text table of agents' credentials from (username, HA1) pairs."""
    lines = ["username(str) ha1(str)"]
    seen: set[str] = set()
    for username, digest in entries:
        if not _USERNAME.fullmatch(username):
            raise EdgeConfigError(
                f"SIP username {username!r} must be 1-64 letters, digits or . _ + -"
            )
        if not _HA1.fullmatch(digest):
            raise EdgeConfigError(f"HA1 of {username} must be 32 lowercase hex digits")
        if username in seen:
            raise EdgeConfigError(f"SIP username {username} is listed twice")
        seen.add(username)
        lines.append(f"{username}:{digest}")
    return "\n".join(lines) + "\n"


def tls_config(certificate: Path, private_key: Path) -> str:
    """The TLS module's file: TLS 1.2 or later, our certificate, no client certs."""
    cert = _safe("the TLS certificate path", str(certificate))
    key = _safe("the TLS private key path", str(private_key))
    return (
        "[server:default]\n"
        "method = TLSv1.2+\n"
        "verify_certificate = no\n"
        "require_certificate = no\n"
        f"certificate = {cert}\n"
        f"private_key = {key}\n"
        "\n"
        "[client:default]\n"
        "method = TLSv1.2+\n"
        "verify_certificate = no\n"
        "require_certificate = no\n"
    )


def template() -> str:
    """The Kamailio configuration template shipped beside this module."""
    return resources.files(__package__).joinpath(TEMPLATE).read_text(encoding="utf-8")


def fail2ban_filter() -> str:
    """The fail2ban filter shipped beside this module."""
    return resources.files(__package__).joinpath(FAIL2BAN_FILTER).read_text(encoding="utf-8")


def render_config(sip: SipSettings, runtime: EdgeRuntime) -> str:
    """The text of kamailio.cfg for these settings and runtime facts."""
    limits = runtime.limits
    for name in ("flood_requests", "ban_seconds", "max_message_bytes", "ping_interval"):
        if getattr(limits, name) < 1:
            raise EdgeConfigError(f"the edge's {name} must be at least 1")
    _safe("the data directory", str(runtime.directory))
    if len(str(runtime.ctl_socket).encode()) > UNIX_PATH_MAX:
        raise EdgeConfigError(
            f"the data directory path is too long for a control socket: {runtime.ctl_socket}"
        )
    if runtime.tls and runtime.tls_port == sip.edge_port:
        raise EdgeConfigError("the TLS port must differ from sip.edge_port")
    defines = ["#!define WITH_TLS"] if runtime.tls else []
    ping_host = "127.0.0.1" if sip.edge_host in ("0.0.0.0", "", "::") else sip.edge_host
    values = {
        "DEFINES": "\n".join(defines),
        "CHILDREN": str(limits.children),
        "LISTEN": "\n".join(listen_lines(sip, runtime)),
        "CTL_SOCKET": str(runtime.ctl_socket),
        "FR_TIMER": str(limits.fr_timer_ms),
        "DB_DIR": str(runtime.db_dir),
        "BAN_SECONDS": str(limits.ban_seconds),
        "AUTH_SECRET": _safe("the auth secret", runtime.auth_secret),
        "DISPATCHER_LIST": str(runtime.dispatcher_file),
        "PING_HOST": _host(ping_host),
        "PING_INTERVAL": str(limits.ping_interval),
        "TLS_CONFIG": str(runtime.tls_config_file),
        "MAX_MESSAGE_BYTES": str(limits.max_message_bytes),
        "FLOOD_LIMIT": str(limits.flood_requests),
        "TRUNK_NETWORKS": _networks("trunk_networks", sip.trunk_networks),
        "AGENT_NETWORKS": _networks("agent_networks", sip.agent_networks),
        "REALM": _safe("sip.realm", sip.realm),
    }

    def fill(match: re.Match[str]) -> str:
        name = match.group(1)
        if name not in values:
            raise EdgeConfigError(f"the edge template has an unknown placeholder {name}")
        return values[name]

    return _PLACEHOLDER.sub(fill, template())
