"""ICE for WebRTC legs: servers from settings only, host candidates on chosen addresses.

Servers. ``aiortc.RTCPeerConnection()`` without a configuration, or with
``iceServers=None``, asks Google's public STUN server
(``stun:stun.l.google.com:19302``) for every peer: aiortc's
``RTCIceGatherer`` falls back to it whenever its list is ``None``.
:func:`rtc_configuration` always builds a *list*, empty when settings name no
server, so a leg only ever talks to the servers the operator configured.
The signalling layer turns settings into ``RTCIceServer``-shaped dicts
(``{"urls": ..., "username": ..., "credential": ...}``, TURN credentials
minted per contact); this module takes those dicts as they are. aiortc 1.16
uses the first ``stun:`` URL and the first ``turn:``/``turns:`` URL it can
use (``turn:`` over UDP or TCP, ``turns:`` over TCP) and ignores the rest.

Host addresses. aioice 0.13 gathers a host candidate on every address of
every interface except 127.0.0.1 and ``::1``, and has no parameter to choose
them (aiortc/aioice#2, open since 2018; a filter callable was suggested
upstream but never added). A multi-homed media server must offer only its
media addresses, and tests must stay on loopback, so :func:`gathering_on`
names the addresses for the gathering that runs inside its ``with`` block.
That needs the one replacement of library code in assistline:
:func:`_install_host_address_hook`, which see.
"""

from __future__ import annotations

import contextlib
import contextvars
import ipaddress
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

import aioice.ice
from aiortc import RTCConfiguration, RTCIceServer
from aiortc.rtcicetransport import parse_stun_turn_uri

#: The addresses the current gathering may use; None: aioice's own choice.
_HOST_ADDRESSES: contextvars.ContextVar[tuple[str, ...] | None] = contextvars.ContextVar(
    "assistline_ice_host_addresses", default=None
)
_hook_installed = False


def rtc_configuration(ice_servers: Sequence[Mapping[str, Any]]) -> RTCConfiguration:
    """An aiortc configuration with exactly ``ice_servers``: an empty list asks no server.

    Each item is ``{"urls": str | list[str], "username": str, "credential": str}``
    (``username`` and ``credential`` only for TURN), as browsers take them.
    Raises :class:`ValueError` naming the first item that is not one.
    """
    servers: list[RTCIceServer] = []
    for index, item in enumerate(ice_servers):
        servers.append(_ice_server(index, item))
    return RTCConfiguration(iceServers=servers)


def _ice_server(index: int, item: Mapping[str, Any]) -> RTCIceServer:
    where = f"ICE server {index}"
    if not isinstance(item, Mapping):
        raise ValueError(f"{where} must be a mapping with 'urls', not {type(item).__name__}")
    unknown = sorted(set(item) - {"urls", "username", "credential"})
    if unknown:
        raise ValueError(f"{where} has unknown keys: {', '.join(unknown)}")
    urls = item.get("urls")
    if not isinstance(urls, str) and not (isinstance(urls, list) and urls):
        raise ValueError(f"{where} needs 'urls', a URL or a non-empty list of URLs")
    for url in [urls] if isinstance(urls, str) else urls:
        if not isinstance(url, str):
            raise ValueError(f"{where} has a URL that is not a string: {url!r}")
        try:
            parsed = parse_stun_turn_uri(url)
        except ValueError:
            raise ValueError(
                f"{where} has {url!r}, not a stun:, stuns:, turn: or turns: URL"
            ) from None
        if parsed["scheme"].startswith("turn") and not (
            item.get("username") and item.get("credential")
        ):
            raise ValueError(f"{where} is a TURN server and needs 'username' and 'credential'")
    username, credential = item.get("username"), item.get("credential")
    for key, value in (("username", username), ("credential", credential)):
        if value is not None and not isinstance(value, str):
            raise ValueError(f"{where} has a {key} that is not a string")
    return RTCIceServer(urls=urls, username=username, credential=credential)


def check_host_addresses(addresses: Sequence[str]) -> tuple[str, ...]:
    """``addresses`` as a tuple, each a literal IPv4 or IPv6 address (else ValueError)."""
    checked = []
    for address in addresses:
        try:
            ipaddress.ip_address(address)
        except ValueError:
            raise ValueError(
                f"ICE host addresses are IP addresses of this machine, not {address!r}"
            ) from None
        checked.append(address)
    return tuple(checked)


@contextlib.contextmanager
def gathering_on(addresses: Sequence[str]) -> Iterator[None]:
    """Inside the block, ICE host candidates are gathered on ``addresses`` only.

    An empty sequence leaves aioice's choice (every interface but loopback).
    aiortc gathers inside ``RTCPeerConnection.setLocalDescription``, in tasks
    created there, which inherit the block's context: await that call inside
    the block. Other peers gathering at the same time in other tasks are not
    affected.
    """
    chosen = check_host_addresses(addresses)
    _install_host_address_hook()
    token = _HOST_ADDRESSES.set(chosen or None)
    try:
        yield
    finally:
        _HOST_ADDRESSES.reset(token)


def _install_host_address_hook() -> None:
    """Make aioice ask :data:`_HOST_ADDRESSES` for host addresses (once per process).

    Why a replacement: ``aioice.ice.Connection.gather_candidates`` calls the
    module function ``aioice.ice.get_host_addresses`` and nothing else decides
    which addresses get a socket; aiortc creates each ``Connection`` itself,
    so no subclass or argument can reach it. The replacement keeps aioice's
    behaviour exactly wherever no :func:`gathering_on` block is active, and
    filters the chosen addresses by the connection's IPv4/IPv6 flags as
    aioice does.
    """
    global _hook_installed
    if _hook_installed:
        return
    original: Callable[[bool, bool], list[str]] = aioice.ice.get_host_addresses

    def get_host_addresses(use_ipv4: bool, use_ipv6: bool) -> list[str]:
        chosen = _HOST_ADDRESSES.get()
        if chosen is None:
            return original(use_ipv4, use_ipv6)
        versions = {4} if use_ipv4 else set()
        if use_ipv6:
            versions.add(6)
        return [a for a in chosen if ipaddress.ip_address(a).version in versions]

    aioice.ice.get_host_addresses = get_host_addresses
    _hook_installed = True


def set_consent_timeout(seconds: float) -> float:
    """Make a lost peer fail within ``seconds``, for every peer of this process.

    aioice checks consent every ``CONSENT_INTERVAL`` × (0.8..1.2) s, gives each
    check 0.5 s, and fails the connection after ``CONSENT_FAILURES`` (6)
    misses in a row; both are module constants, so the setting is per process
    (a media worker). The worst case is 6 × (1.2 × interval + 0.5) s, so the
    interval is chosen to make that ``seconds``. Returns the interval set.
    """
    failures = aioice.ice.CONSENT_FAILURES
    interval = (seconds / failures - 0.5) / 1.2
    if interval <= 0.5:
        raise ValueError(f"a consent timeout of {seconds} s is too short for aioice's checks")
    # aioice declares it an int; it only ever multiplies it by a float.
    aioice.ice.CONSENT_INTERVAL = interval  # type: ignore[assignment]
    return interval
