"""API keys: how the business backend authenticates to ``/api/v1``.

A request bears ``Authorization: Bearer <key>`` with one of
``http.api_keys``; the comparison takes the same time whichever key
matched, or none. A server with no keys configured refuses every such
request with 403 ``api-keys-not-configured``: that is a configuration
state, not an outage, so a client should not retry (as a 503 would invite)
and an operator should set ``http.api_keys``. Keys are never logged.
"""

from __future__ import annotations

import hashlib
import hmac
from typing import Any

from aiohttp import web

from assistline.signalling.keys import SETTINGS_KEY
from assistline.signalling.openapi import problem
from assistline.signalling.problems import HttpProblem

#: The documented responses of a route that requires an API key.
API_KEY_PROBLEMS: dict[str, dict[str, Any]] = {
    "401": problem("no API key, or not one of http.api_keys"),
    "403": problem("the server has no http.api_keys configured"),
}


def _digest(key: str) -> bytes:
    # Comparing equal-length digests leaks neither a key's bytes nor its length.
    return hashlib.sha256(key.encode("utf-8", "surrogateescape")).digest()


def require_api_key(request: web.Request) -> None:
    """Admit a request bearing one of ``http.api_keys``; a problem otherwise."""
    keys = request.app[SETTINGS_KEY].http.api_keys
    if not keys:
        raise HttpProblem(
            403,
            "api-keys-not-configured",
            "this server has no API keys: set http.api_keys (ASSISTLINE_HTTP_API_KEYS) "
            "to use this route",
        )
    scheme, _, offered = request.headers.get("Authorization", "").partition(" ")
    offered = offered.strip()
    if scheme.lower() != "bearer" or not offered:
        raise HttpProblem(
            401,
            "unauthorized",
            "send an API key as 'Authorization: Bearer <key>'",
            headers={"WWW-Authenticate": 'Bearer realm="assistline"'},
        )
    wanted = _digest(offered)
    matched = False
    for key in keys:  # every key, so the time taken does not say which one matched
        matched |= hmac.compare_digest(wanted, _digest(key))
    if not matched:
        raise HttpProblem(
            401,
            "unauthorized",
            "the API key is not one of this server's",
            headers={"WWW-Authenticate": 'Bearer realm="assistline", error="invalid_token"'},
        )
