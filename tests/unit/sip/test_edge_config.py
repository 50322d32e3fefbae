"""The generated Kamailio configuration, exactly, and the fail2ban filter."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from assistline.settings import SipSettings
from assistline.sip import edge_config
from assistline.sip.edge_config import EdgeConfigError, EdgeLimits, EdgeRuntime

EDGE = Path("/var/lib/assistline/edge")


def runtime(**overrides: object) -> EdgeRuntime:
    values: dict[str, object] = {
        "directory": EDGE,
        "workers": (("127.0.0.1", 5080), ("127.0.0.1", 5081)),
        "auth_secret": "0123abcd",
    }
    values.update(overrides)
    return EdgeRuntime(**values)  # type: ignore[arg-type]


def test_ha1_is_md5_of_user_realm_password() -> None:
    # RFC 2617's example account, md5("Mufasa:testrealm@host.com:Circle Of Life").
    assert edge_config.ha1("Mufasa", "testrealm@host.com", "Circle Of Life") == (
        "939e7578ed9e3c518a452acee763bce9"
    )


def test_defaults_give_the_documented_protections() -> None:
    text = edge_config.render_config(SipSettings(), runtime())
    assert "listen=udp:127.0.0.1:5060\nlisten=tcp:127.0.0.1:5060\n" in text
    assert "listen=tls" not in text and "#!define WITH_TLS" not in text
    assert "children=8\ntcp_children=8\n" in text
    assert "$shtinc(flood=>$var(k0)) > 16 || $shtinc(flood=>$var(k1)) > 16" in text
    assert '"ban=>size=8;autoexpire=300"' in text
    assert "if ($ml > 3800) {" in text
    assert 'modparam("ctl", "binrpc", "unix:/var/lib/assistline/edge/run/ctl.sock")' in text
    assert 'modparam("htable", "db_url", "text:///var/lib/assistline/edge/db")' in text
    assert 'modparam("dispatcher", "list_file", "/var/lib/assistline/edge/dispatcher.list")' in text
    assert 'modparam("dispatcher", "ds_ping_interval", 1)' in text
    assert 'modparam("tm", "fr_timer", 3000)' in text
    assert 'modparam("auth", "secret", "0123abcd")' in text
    assert 'ds_select_dst("1", "10", "10")' in text
    assert 'pv_auth_check("assistline", "$var(ha1)", "1", "1")' in text
    assert '"friendly-scanner|sipvicious|sipcli|vaxsipuseragent"' in text
    assert "{{" not in text


def test_networks_become_acl_lists() -> None:
    sip = SipSettings(
        agent_networks=("192.168.1.7/24", "2001:db8::/32"), trunk_networks=("203.0.113.5",)
    )
    text = edge_config.render_config(sip, runtime())
    assert text.count('is_in_subnet("$si", "192.168.1.0/24,2001:db8::/32")') == 2
    assert text.count('is_in_subnet("$si", "203.0.113.5/32")') == 2


def test_no_networks_match_nothing() -> None:
    text = edge_config.render_config(SipSettings(trunk_networks=()), runtime())
    assert text.count('is_in_subnet("$si", "0.0.0.0/32")') == 2


def test_a_bad_network_is_named() -> None:
    with pytest.raises(EdgeConfigError, match="sip.agent_networks has 'lan'"):
        edge_config.render_config(SipSettings(agent_networks=("lan",)), runtime())


def test_limits_fill_the_template() -> None:
    limits = EdgeLimits(flood_requests=5, ban_seconds=60, max_message_bytes=4000, children=1)
    text = edge_config.render_config(SipSettings(), runtime(limits=limits))
    assert "> 5 || $shtinc(flood=>$var(k1)) > 5" in text
    assert "autoexpire=60" in text and "if ($ml > 4000)" in text
    assert "children=1\ntcp_children=1\n" in text


def test_ipv6_edge_and_tls() -> None:
    sip = SipSettings(edge_host="::1", edge_port=5070)
    rt = runtime(tls_certificate=Path("/c.pem"), tls_private_key=Path("/k.pem"), tls_port=5071)
    text = edge_config.render_config(sip, rt)
    assert "listen=udp:[::1]:5070\nlisten=tcp:[::1]:5070\nlisten=tls:[::1]:5071\n" in text
    assert "#!define WITH_TLS\n" in text
    assert 'modparam("tls", "config", "/var/lib/assistline/edge/tls.cfg")' in text
    assert 'modparam("dispatcher", "ds_ping_from", "sip:edge@[::1]")' in text
    assert edge_config.tls_config(Path("/c.pem"), Path("/k.pem")) == (
        "[server:default]\nmethod = TLSv1.2+\nverify_certificate = no\n"
        "require_certificate = no\ncertificate = /c.pem\nprivate_key = /k.pem\n\n"
        "[client:default]\nmethod = TLSv1.2+\nverify_certificate = no\n"
        "require_certificate = no\n"
    )


def test_tls_port_must_differ() -> None:
    rt = runtime(tls_certificate=Path("/c"), tls_private_key=Path("/k"), tls_port=5060)
    with pytest.raises(EdgeConfigError, match="TLS port"):
        edge_config.render_config(SipSettings(), rt)


def test_long_data_directory_refused() -> None:
    with pytest.raises(EdgeConfigError, match="too long for a control socket"):
        edge_config.render_config(SipSettings(), runtime(directory=Path("/" + "d" * 100)))


def test_realm_with_quote_refused() -> None:
    with pytest.raises(EdgeConfigError, match="sip.realm must not hold quotes"):
        edge_config.render_config(SipSettings(realm='a"b'), runtime())


def test_dispatcher_list() -> None:
    text = edge_config.dispatcher_list([("127.0.0.1", 5080), ("::1", 5081)], calls_per_worker=4)
    assert text == (
        "# setid destination flags priority attributes (written by assistline)\n"
        "1 sip:127.0.0.1:5080 9 0 duid=worker1;maxload=4\n"
        "1 sip:[::1]:5081 9 0 duid=worker2;maxload=4\n"
    )


def test_credentials_table() -> None:
    digest = edge_config.ha1("alice", "assistline", "pw")
    assert edge_config.credentials_table([("alice", digest), ("bob.2", "f" * 32)]) == (
        f"username(str) ha1(str)\nalice:{digest}\nbob.2:{'f' * 32}\n"
    )
    assert edge_config.credentials_table([]) == "username(str) ha1(str)\n"


@pytest.mark.parametrize(
    ("entries", "message"),
    [
        ([("al:ice", "f" * 32)], "SIP username 'al:ice' must be"),
        ([("alice", "F" * 32)], "HA1 of alice must be 32 lowercase hex"),
        ([("alice", "f" * 31)], "HA1 of alice must be 32 lowercase hex"),
        ([("alice", "f" * 32), ("alice", "e" * 32)], "alice is listed twice"),
    ],
)
def test_credentials_refused(entries: list[tuple[str, str]], message: str) -> None:
    with pytest.raises(EdgeConfigError, match=message):
        edge_config.credentials_table(entries)


def fail2ban_regex() -> re.Pattern[str]:
    """The filter's failregex as Python ``re``, with fail2ban's ``<HOST>`` expanded."""
    lines = edge_config.fail2ban_filter().splitlines()
    (line,) = [line for line in lines if line.startswith("failregex")]
    regex = line.split("=", 1)[1].strip()
    return re.compile(regex.replace("<HOST>", r"(?P<host>[0-9A-Fa-f.:]+)"))


@pytest.mark.parametrize(
    ("line", "host"),
    [
        (
            "2026-11-22T20:47:39 1(25907) ALERT: <script>: assistline-edge: flood from 203.0.113.9",
            "203.0.113.9",
        ),
        (
            "2026-11-22T20:47:39 2(25908) WARNING: <script>: "
            "assistline-edge: scanner from 2001:db8::7",
            "2001:db8::7",
        ),
        (
            "2026-11-22T20:47:39 1(25907) NOTICE: <script>: "
            "assistline-edge: authentication failed from 198.51.100.1",
            "198.51.100.1",
        ),
    ],
)
def test_fail2ban_filter_matches_the_edge_lines(line: str, host: str) -> None:
    match = fail2ban_regex().search(line)
    assert match is not None and match.group("host") == host


@pytest.mark.parametrize(
    "line",
    [
        "assistline-edge: call refused from 203.0.113.9",
        "assistline-edge: no media worker free for a call from 127.0.0.1",
        "flood from 203.0.113.9",
    ],
)
def test_fail2ban_filter_ignores_other_lines(line: str) -> None:
    assert fail2ban_regex().search(line) is None


def test_the_template_uses_only_known_placeholders() -> None:
    names = set(re.findall(r"\{\{([A-Z_0-9]+)\}\}", edge_config.template()))
    assert "DEFINES" in names and "FLOOD_LIMIT" in names
    edge_config.render_config(SipSettings(), runtime())  # raises on an unknown one
