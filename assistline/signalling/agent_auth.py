"""Agents sign in to the console: scrypt password hashes, sessions, and their routes.

An agent's console password (set with ``assistline agent set-console-password``)
is stored only as a self-describing scrypt string,
``scrypt$N$r$p$<salt>$<key>`` (salt and key in base64 without padding):
N = 2**15, r = 8, p = 1, a 16-byte random salt and a 32-byte key. scrypt is
memory-hard: each hash needs 32 MiB, so guessing on GPUs or ASICs costs
memory as well as time. Measured on the development machine (Python 3.11,
OpenSSL 3): 0.13 s per hash, run in a thread, at most :data:`KDF_SLOTS`
at once per server so a flood of sign-ins cannot take all its memory.
Verifying reads the parameters from the string, refuses parameters weaker
or far heavier than these and any other format (:class:`PasswordHashError`),
and compares keys in constant time.

``POST /api/v1/agent/session`` with ``{"agent_id", "password"}`` opens an
8-hour session: the random token goes back once, as the ``assistline_agent``
cookie (``HttpOnly``, ``SameSite=Strict``, ``Path=/``, ``Secure`` when the
server is reached over HTTPS) and in the body for clients without cookies,
which send it back as that cookie or as ``Authorization: Bearer``. Only its
SHA-256 is stored (``agent_session``). A wrong id and a wrong password get
the same 401 after the same work (an unknown id is checked against a dummy
hash). :data:`FAILURE_LIMIT` failures of one agent id from one address
within :data:`FAILURE_WINDOW` seconds (since its last success) get 429
with ``Retry-After`` before any password is checked; failures are counted
in the audit trail in PostgreSQL, so the limit holds across nodes.
``GET /api/v1/agent/session`` says whose the session is (the console
asks before showing its sign-in form); ``DELETE /api/v1/agent/session``
signs out: the session is revoked, the cookie cleared and the session's
console sockets on this node closed. Passwords and tokens are never logged.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import dataclasses
import hashlib
import hmac
import json
import logging
import re
import secrets
from typing import Any

import asyncpg
from aiohttp import web

from assistline.errors import AssistlineError
from assistline.queue.agents import AgentError, AgentNotFoundError
from assistline.signalling.contact_request import ContactRequestError, decode_body
from assistline.signalling.contacts import public_base_url
from assistline.signalling.keys import AGENT_CONSOLES_KEY, AGENT_KDF_SLOTS_KEY, DATABASE_KEY
from assistline.signalling.openapi import Operation, json_content, problem
from assistline.signalling.problems import HttpProblem
from assistline.store.queries import QUERIES

logger = logging.getLogger(__name__)

SCRYPT_N = 2**15
SCRYPT_R = 8
SCRYPT_P = 1
SALT_BYTES = 16
KEY_BYTES = 32
#: Hashes computed at once per server (each holds 32 MiB while it runs).
KDF_SLOTS = 2
#: Seconds a console session lasts.
SESSION_TTL = 8 * 3600
COOKIE = "assistline_agent"
#: Failed sign-ins of one agent id from one address, per window, before 429.
FAILURE_LIMIT = 5
FAILURE_WINDOW = 300
MIN_PASSWORD = 12
MAX_PASSWORD = 1024
_MAX_BODY = 4096
_B64 = re.compile(r"^[A-Za-z0-9+/]+$")
_TOKEN = re.compile(r"^[A-Za-z0-9_-]{43}$")
_REFUSED = "the agent id or the password is wrong"


class PasswordHashError(AssistlineError, ValueError):
    """The stored console password is not a scrypt string this server accepts; set it again."""


@dataclasses.dataclass(frozen=True, slots=True)
class ScryptHash:
    """The parts of a ``scrypt$N$r$p$salt$key`` string."""

    n: int
    r: int
    p: int
    salt: bytes
    key: bytes

    def __repr__(self) -> str:
        return f"ScryptHash(n={self.n}, r={self.r}, p={self.p}, salt=<hidden>, key=<hidden>)"


def _b64encode(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii").rstrip("=")


def _b64decode(text: str, what: str) -> bytes:
    if not _B64.match(text) or len(text) % 4 == 1:
        raise PasswordHashError(f"the {what} is not base64")
    try:
        return base64.b64decode(text + "=" * (-len(text) % 4), validate=True)
    except binascii.Error:
        raise PasswordHashError(f"the {what} is not base64") from None


def _number(text: str, what: str) -> int:
    if not text.isascii() or not text.isdigit() or len(text) > 8:
        raise PasswordHashError(f"{what} is not a number")
    return int(text)


def parse_password_hash(text: str) -> ScryptHash:
    """The parameters of a stored hash; weak, excessive or unknown formats are refused."""
    parts = text.split("$")
    if len(parts) != 6 or parts[0] != "scrypt":
        raise PasswordHashError("not a scrypt$N$r$p$salt$key string")
    n, r, p = (_number(parts[i], name) for i, name in ((1, "N"), (2, "r"), (3, "p")))
    if n & (n - 1) or not SCRYPT_N <= n <= 2**20:
        raise PasswordHashError(f"N must be a power of two from {SCRYPT_N} to {2**20}")
    if not SCRYPT_R <= r <= 32 or not SCRYPT_P <= p <= 16:
        raise PasswordHashError(f"r must be {SCRYPT_R}..32 and p {SCRYPT_P}..16")
    if 128 * n * r > 256 * 2**20:
        raise PasswordHashError("the parameters need more than 256 MiB")
    salt = _b64decode(parts[4], "salt")
    key = _b64decode(parts[5], "key")
    if not SALT_BYTES <= len(salt) <= 64 or not KEY_BYTES <= len(key) <= 64:
        raise PasswordHashError(f"the salt must be {SALT_BYTES}..64 bytes, the key {KEY_BYTES}..64")
    return ScryptHash(n, r, p, salt, key)


def _scrypt(password: str, n: int, r: int, p: int, salt: bytes, length: int) -> bytes:
    # OpenSSL needs 128·r·(N + p + 2) bytes; a little more leaves room for its own.
    maxmem = 128 * r * (n + p + 2) + 2**20
    secret = password.encode("utf-8", "surrogatepass")
    return hashlib.scrypt(secret, salt=salt, n=n, r=r, p=p, maxmem=maxmem, dklen=length)


def hash_password(password: str, *, salt: bytes | None = None) -> str:
    """The scrypt string of ``password`` with a new random salt (``salt`` for tests only)."""
    salt = secrets.token_bytes(SALT_BYTES) if salt is None else salt
    key = _scrypt(password, SCRYPT_N, SCRYPT_R, SCRYPT_P, salt, KEY_BYTES)
    return f"scrypt${SCRYPT_N}${SCRYPT_R}${SCRYPT_P}${_b64encode(salt)}${_b64encode(key)}"


def verify_password(password: str, stored: str) -> bool:
    """Whether ``password`` matches ``stored``; :class:`PasswordHashError` for a refused format."""
    parsed = parse_password_hash(stored)
    key = _scrypt(password, parsed.n, parsed.r, parsed.p, parsed.salt, len(parsed.key))
    return hmac.compare_digest(key, parsed.key)


def check_console_password(password: str) -> None:
    """Refuse a console password that is too short or too long."""
    if not MIN_PASSWORD <= len(password) <= MAX_PASSWORD:
        raise AgentError(f"password must be {MIN_PASSWORD} to {MAX_PASSWORD} characters")


#: Checked when the agent id is unknown, so a wrong id costs what a wrong password does.
_DUMMY_HASH = hash_password("not the password of anyone", salt=bytes(SALT_BYTES))


# ------------------------------------------------------------------ store


async def set_console_password(pool: asyncpg.Pool, agent_id: str, password: str) -> None:
    """Store the scrypt string of an agent's new console password; its sessions end."""
    check_console_password(password)
    stored = await asyncio.to_thread(hash_password, password)
    if await pool.fetchrow(QUERIES["set_agent_console_password"], agent_id, stored) is None:
        raise AgentNotFoundError(f"no agent has id {agent_id!r}")


def session_token_hash(token: str) -> bytes:
    """What ``agent_session`` keeps of a token: its SHA-256."""
    return hashlib.sha256(token.encode("ascii")).digest()


@dataclasses.dataclass(frozen=True, slots=True)
class SignedIn:
    """The agent a request's session belongs to."""

    agent_id: str
    name: str
    state: str
    token_hash: bytes
    #: Seconds until the session expires, by the database's clock (which every node shares).
    seconds_left: float


def _presented_token(request: web.Request) -> str:
    token = request.cookies.get(COOKIE, "")
    if not token:
        scheme, _, offered = request.headers.get("Authorization", "").partition(" ")
        token = offered.strip() if scheme.lower() == "bearer" else ""
    return token


async def require_session(request: web.Request) -> SignedIn:
    """The signed-in agent of ``request``; 401 ``session-refused`` otherwise."""
    token = _presented_token(request)
    if not token:
        raise HttpProblem(401, "session-refused", "sign in to the agent console first")
    row = None
    if _TOKEN.match(token):
        digest = session_token_hash(token)
        row = await request.app[DATABASE_KEY].pool.fetchrow(QUERIES["agent_by_session"], digest)
    if row is None:
        raise HttpProblem(
            401, "session-refused", "the session is unknown, expired or signed out; sign in again"
        )
    return SignedIn(row["id"], row["name"], row["state"], digest, float(row["seconds_left"]))


# ------------------------------------------------------------------ HTTP


async def _credentials(request: web.Request) -> tuple[str, str]:
    if request.content_type != "application/json":
        raise HttpProblem(415, "unsupported-media-type", "send the body as application/json")
    body = bytearray()
    while len(body) <= _MAX_BODY:  # one byte past the limit at most: enough to refuse
        chunk = await request.content.read(_MAX_BODY + 1 - len(body))
        if not chunk:
            break
        body += chunk
    if len(body) > _MAX_BODY:
        raise HttpProblem(413, "payload-too-large", f"at most {_MAX_BODY} bytes are accepted")
    try:
        data: Any = decode_body(bytes(body))
    except ContactRequestError as error:
        raise HttpProblem(error.status, error.kind, str(error)) from None
    if not isinstance(data, dict) or set(data) != {"agent_id", "password"}:
        raise HttpProblem(
            422, "invalid-field", "send exactly agent_id and password", fields=["agent_id"]
        )
    agent_id, password = data["agent_id"], data["password"]
    for name, value, most in (("agent_id", agent_id, 64), ("password", password, MAX_PASSWORD)):
        if not isinstance(value, str) or not 1 <= len(value) <= most:
            raise HttpProblem(
                422, "invalid-field", f"{name} must be a string of 1 to {most}", fields=[name]
            )
    return agent_id, password


async def _check_password(request: web.Request, stored: str | None, password: str) -> bool:
    async with request.app[AGENT_KDF_SLOTS_KEY]:
        try:
            matched = await asyncio.to_thread(verify_password, password, stored or _DUMMY_HASH)
        except PasswordHashError as error:
            logger.error("the stored console password is refused (%s); set it again", error)
            return False
    return matched and stored is not None


def _audit(action: str, subject: str, address: str) -> tuple[str, str, str, str]:
    return ("agent-console", action, subject, json.dumps({"address": address}))


async def post_session(request: web.Request) -> web.StreamResponse:
    """Sign an agent in to the console: a session cookie (and its token)."""
    agent_id, password = await _credentials(request)
    address = request.remote or "unknown"
    subject = f"agent-sign-in:{agent_id}@{address}"
    token = secrets.token_urlsafe(32)
    async with request.app[DATABASE_KEY].pool.acquire() as connection, connection.transaction():
        await connection.execute(QUERIES["lock_agent_sign_in"], subject)
        recent = await connection.fetchrow(
            QUERIES["recent_sign_in_failures"], subject, float(FAILURE_WINDOW)
        )
        assert recent is not None
        if recent["failures"] >= FAILURE_LIMIT:
            retry = max(1, recent["retry_after"] or FAILURE_WINDOW)
            raise HttpProblem(
                429,
                "too-many-requests",
                f"too many failed sign-ins; try again in {retry} s",
                headers={"Retry-After": str(retry)},
            )
        row = await connection.fetchrow(QUERIES["agent_console_password"], agent_id)
        stored = None if row is None else row["console_password"]
        # An unknown id is checked against a dummy hash: the same work, the same answer.
        matched = await _check_password(request, stored, password)
        if not matched:
            await connection.execute(
                QUERIES["insert_audit_event"], *_audit("agent.sign_in_failed", subject, address)
            )
        else:
            await connection.execute(
                QUERIES["insert_audit_event"], *_audit("agent.sign_in", subject, address)
            )
            expires_at = await connection.fetchval(
                QUERIES["insert_agent_session"],
                session_token_hash(token),
                agent_id,
                float(SESSION_TTL),
            )
    if not matched:  # raised after the commit, so the failure counts
        logger.info("agent console sign-in refused for %r from %s", agent_id[:64], address)
        raise HttpProblem(401, "sign-in-refused", _REFUSED)
    assert row is not None
    logger.info("agent %s signed in to the console from %s", agent_id, address)
    response = web.json_response(
        {
            "agent": {"id": row["id"], "name": row["name"]},
            "token": token,
            "expires_at": expires_at.isoformat(),
        },
        status=201,
        headers={"Cache-Control": "no-store"},
    )
    response.set_cookie(
        COOKIE,
        token,
        path="/",
        max_age=SESSION_TTL,
        httponly=True,
        secure=_https(request),
        samesite="Strict",
    )
    return response


def _https(request: web.Request) -> bool:
    return request.secure or public_base_url(request).startswith("https://")


async def get_session(request: web.Request) -> web.StreamResponse:
    """Who the session belongs to: the console asks before showing its sign-in form."""
    signed_in = await require_session(request)
    body = {"agent": {"id": signed_in.agent_id, "name": signed_in.name}, "state": signed_in.state}
    return web.json_response(body, headers={"Cache-Control": "no-store"})


async def delete_session(request: web.Request) -> web.StreamResponse:
    """Sign out: the session is revoked and the cookie cleared."""
    signed_in = await require_session(request)
    await request.app[DATABASE_KEY].pool.execute(
        QUERIES["revoke_agent_session"], signed_in.token_hash
    )
    consoles = request.app.get(AGENT_CONSOLES_KEY)
    if consoles is not None:
        consoles.signed_out(signed_in.token_hash)
    logger.info("agent %s signed out of the console", signed_in.agent_id)
    response = web.Response(status=204, headers={"Cache-Control": "no-store"})
    response.del_cookie(COOKIE, path="/", secure=_https(request), samesite="Strict")
    return response


_SESSION_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["agent", "token", "expires_at"],
    "properties": {
        "agent": {
            "type": "object",
            "properties": {"id": {"type": "string"}, "name": {"type": "string"}},
        },
        "token": {"type": "string", "description": "also set as the assistline_agent cookie"},
        "expires_at": {"type": "string", "format": "date-time"},
    },
}
SESSION_PROBLEMS = {"401": problem("no session, or it is unknown, expired or signed out")}

OPERATIONS: tuple[Operation, ...] = (
    Operation(
        "POST",
        "/api/v1/agent/session",
        post_session,
        "Sign an agent in to the console: sets the assistline_agent session cookie",
        {
            "201": {"description": "signed in", "content": json_content(_SESSION_SCHEMA)},
            "400": problem("the body is not JSON"),
            "401": problem("the agent id or the password is wrong (the same answer for both)"),
            "413": problem("the body is over 4 KB"),
            "415": problem("the body is not application/json"),
            "422": problem("agent_id or password missing or not a string"),
            "429": problem(f"{FAILURE_LIMIT} failures of this agent from this address recently"),
        },
        tag="agent",
        request_body={
            "required": True,
            "content": json_content(
                {
                    "type": "object",
                    "required": ["agent_id", "password"],
                    "additionalProperties": False,
                    "properties": {
                        "agent_id": {"type": "string"},
                        "password": {"type": "string"},
                    },
                }
            ),
        },
    ),
    Operation(
        "GET",
        "/api/v1/agent/session",
        get_session,
        "The signed-in agent of this session, and its state",
        {
            "200": {
                "description": "signed in",
                "content": json_content(
                    {
                        "type": "object",
                        "required": ["agent", "state"],
                        "properties": {
                            "agent": _SESSION_SCHEMA["properties"]["agent"],
                            "state": {"enum": ["offline", "available", "busy", "wrap_up"]},
                        },
                    }
                ),
            },
            **SESSION_PROBLEMS,
        },
        tag="agent",
    ),
    Operation(
        "DELETE",
        "/api/v1/agent/session",
        delete_session,
        "Sign the agent out of the console",
        {"204": {"description": "signed out"}, **SESSION_PROBLEMS},
        tag="agent",
    ),
)
