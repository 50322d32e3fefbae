"""ICE servers for a contact: STUN and TURN from settings, with short-lived TURN credentials.

TURN credentials follow the TURN REST API scheme that coturn implements as
``use-auth-secret``: the username is ``<expiry>:<user>`` (expiry in Unix
seconds) and the password is base64(HMAC-SHA1(shared secret, username)).
The TURN server recomputes the password from the username with the same
secret and refuses it after the expiry, so nothing is stored and a leaked
credential dies by itself.
"""

from __future__ import annotations

import base64
import hashlib
import hmac

from assistline.settings import WebRtcSettings
from assistline.signalling.messages import IceServer


def turn_credentials(secret: str, user: str, now: float, ttl: int) -> tuple[str, str]:
    """(username, password) for ``user``, valid ``ttl`` seconds from ``now`` (Unix time)."""
    if not secret:
        raise ValueError("the TURN secret is empty")
    if not user or ":" in user:
        raise ValueError("a TURN user must be non-empty and have no ':'")
    if ttl <= 0:
        raise ValueError(f"a TURN credential's ttl must be positive, not {ttl}")
    username = f"{int(now) + ttl}:{user}"
    digest = hmac.new(secret.encode(), username.encode(), hashlib.sha1).digest()
    return username, base64.b64encode(digest).decode("ascii")


def ice_servers(settings: WebRtcSettings, user: str, now: float) -> list[IceServer]:
    """The ``RTCIceServer`` dicts for ``user``: STUN URLs, then TURN URLs with credentials.

    Only ``settings.ice_servers`` are ever returned. With none configured the
    list is empty, and it must stay empty all the way down: never fall back
    to a public STUN server. aiortc's default (Google's
    ``stun:stun.l.google.com:19302``, used whenever ``iceServers`` is None)
    is exactly what we must not use, so media workers pass this list, even
    empty, as ``RTCConfiguration(iceServers=[...])``; browsers get it in
    ``hello`` and use no default of their own.
    """
    stun = [url for url in settings.ice_servers if url.startswith(("stun:", "stuns:"))]
    turn = [url for url in settings.ice_servers if url.startswith(("turn:", "turns:"))]
    servers: list[IceServer] = []
    if stun:
        servers.append({"urls": stun})
    if turn:
        username, password = turn_credentials(settings.turn_secret, user, now, settings.turn_ttl)
        servers.append({"urls": turn, "username": username, "credential": password})
    return servers
