"""Contacts: the business backend creates them, the customer's page joins them.

``POST /api/v1/contacts`` stores what the customer was doing (account,
balance, the step they were on, free-form fields, a trail of steps) and
answers with a join link holding a single-use token, valid for
``webrtc.token_ttl`` seconds, that only that contact accepts. The token is
returned once and never stored, logged or shown again: the database holds
its SHA-256 (:mod:`assistline.signalling.tokens`); the WebSocket spends it
with :func:`consume_token`.

The backend authenticates with an API key
(:mod:`assistline.signalling.api_keys`).

``POST /api/v1/demo/contacts`` exists only with ``http.demo`` (``make
run``): it creates a sample contact without a key, so the customer page
can be tried at once, at most 10 a minute per client address. The limit is
counted in the audit trail in PostgreSQL, so it holds across nodes.
"""

from __future__ import annotations

import dataclasses
import datetime
import json
import logging
import re
import uuid
from typing import Any

import asyncpg
from aiohttp import web
from asyncpg.pool import PoolConnectionProxy

from assistline.errors import AssistlineError
from assistline.signalling.api_keys import API_KEY_PROBLEMS, require_api_key
from assistline.signalling.contact_request import (
    CONTACT_FIELDS_SCHEMA,
    MAX_BODY_BYTES,
    NEW_CONTACT_SCHEMA,
    ContactRequestError,
    NewContact,
    decode_body,
    demo_contact,
    encode_json,
    parse_media,
    parse_new_contact,
    refuse_unknown,
)
from assistline.signalling.keys import DATABASE_KEY, SETTINGS_KEY
from assistline.signalling.openapi import API_KEY, Operation, json_content, problem
from assistline.signalling.problems import HttpProblem
from assistline.signalling.request_id import REQUEST_ID_KEY
from assistline.signalling.tokens import (
    ContactRef,
    TokenRefusal,
    looks_like_token,
    new_token,
    token_hash,
)
from assistline.sip.routing import console_base_url
from assistline.store.queries import QUERIES

logger = logging.getLogger(__name__)
Queryable = asyncpg.Pool | asyncpg.Connection | PoolConnectionProxy

#: Demo contacts one client address may create per window.
DEMO_LIMIT = 10
DEMO_WINDOW_SECONDS = 60
_HOST = re.compile(r"(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9.-]+)(:[0-9]{1,5})?")


class DemoLimitError(AssistlineError):
    """This address created too many demo contacts in the last minute; wait and try again."""

    def __init__(self, retry_after: int) -> None:
        super().__init__()
        self.retry_after = max(1, retry_after)


@dataclasses.dataclass(frozen=True, slots=True)
class CreatedContact:
    """A stored contact and its join token (the only time the token is known)."""

    id: uuid.UUID
    token: str
    expires_at: datetime.datetime

    def __repr__(self) -> str:
        # A repr may reach a log or a traceback; the token must not.
        return f"CreatedContact(id={self.id}, token=<hidden>, expires_at={self.expires_at})"


# ------------------------------------------------------------------ store


async def create_contact(
    pool: asyncpg.Pool,
    contact: NewContact,
    token_ttl: int,
    *,
    actor: str,
    request_id: str | None = None,
    demo_client: str | None = None,
) -> CreatedContact:
    """Store ``contact``, its token's hash and an audit row, all or nothing.

    With ``demo_client`` (a client address), first refuse with
    :class:`DemoLimitError` when that address created :data:`DEMO_LIMIT`
    demo contacts within the last minute.
    """
    contact_id = uuid.uuid4()
    token = new_token()
    detail: dict[str, Any] = {"request_id": request_id, "media": contact.media}
    subject = f"contact:{contact_id}"
    async with pool.acquire() as connection, connection.transaction():
        if demo_client is not None:
            # The demo's audit rows are filed under the client, whose index counts them.
            subject = f"demo-client:{demo_client}"
            detail["contact"] = str(contact_id)
            await connection.execute(QUERIES["lock_demo_client"], demo_client)
            recent = await connection.fetchrow(
                QUERIES["recent_demo_contacts"], subject, float(DEMO_WINDOW_SECONDS)
            )
            assert recent is not None
            if recent["created"] >= DEMO_LIMIT:
                raise DemoLimitError(recent["retry_after"] or DEMO_WINDOW_SECONDS)
        await connection.execute(
            QUERIES["insert_contact"],
            contact_id,
            contact.customer_id,
            contact.account,
            contact.balance_cents,
            contact.currency,
            contact.step,
            encode_json(contact.fields),
            encode_json(contact.context_trail),
            contact.media,
        )
        expires_at = await connection.fetchval(
            QUERIES["insert_contact_token"], token_hash(token), contact_id, float(token_ttl)
        )
        await connection.execute(
            QUERIES["insert_audit_event"], actor, "contact.create", subject, json.dumps(detail)
        )
    return CreatedContact(contact_id, token, expires_at)


async def get_contact(pool: Queryable, contact_id: uuid.UUID) -> dict[str, Any] | None:
    """A contact as JSON-ready values (never a token), or None when there is none."""
    row = await pool.fetchrow(QUERIES["get_contact"], contact_id)
    if row is None:
        return None
    body = dict(row)
    body["id"] = str(row["id"])
    body["fields"] = json.loads(row["fields"])
    body["context_trail"] = json.loads(row["context_trail"])
    for name in ("created_at", "ended_at"):
        body[name] = None if row[name] is None else row[name].isoformat()
    return body


async def consume_token(
    pool: Queryable, token: str, now: datetime.datetime | None = None
) -> ContactRef | TokenRefusal:
    """Spend a join token: the contact it admits to, or why it admits nobody.

    The token is marked used in the same statement that checks it, so of two
    pages presenting one token at once exactly one is admitted. Only when
    nothing was admitted does a second query tell expired from used from
    missing. ``now`` is the time to judge by; None: the database's clock,
    which every node shares. A token not shaped like one costs no query.
    """
    if not looks_like_token(token):
        return TokenRefusal.MISSING
    digest = token_hash(token)
    row = await pool.fetchrow(QUERIES["consume_contact_token"], digest, now)
    if row is not None:
        return ContactRef(row["contact_id"], row["media"])
    status = await pool.fetchrow(QUERIES["contact_token_status"], digest, now)
    if status is None:
        return TokenRefusal.MISSING
    return TokenRefusal.USED if status["used"] else TokenRefusal.EXPIRED


# ------------------------------------------------------------------ HTTP


def public_base_url(request: web.Request) -> str:
    """Where customers reach this server: ``http.public_url``, else the request's own origin."""
    http = request.app[SETTINGS_KEY].http
    if not http.public_url and _HOST.fullmatch(request.host):
        return f"{request.scheme}://{request.host}"
    return console_base_url(http)


async def read_json_body(request: web.Request, *, optional: bool = False) -> Any:
    """The request's JSON body: at most MAX_BODY_BYTES (413), JSON typed (415), valid (400)."""
    length = request.content_length
    if length is not None and length > MAX_BODY_BYTES:
        raise ContactRequestError(
            f"the body is {length} bytes; at most {MAX_BODY_BYTES} are accepted",
            status=413,
            kind="payload-too-large",
        )
    body = bytearray()
    # Read one byte past the limit at most: enough to know it is too large.
    while len(body) <= MAX_BODY_BYTES:
        chunk = await request.content.read(MAX_BODY_BYTES + 1 - len(body))
        if not chunk:
            break
        body += chunk
    if optional and not body:
        return {}
    content_type = request.content_type
    if content_type != "application/json" and not content_type.endswith("+json"):
        raise ContactRequestError(
            f"send the body as application/json, not {content_type[:100]}",
            status=415,
            kind="unsupported-media-type",
        )
    return decode_body(bytes(body))


def request_problem(error: ContactRequestError) -> HttpProblem:
    """The problem document for a refused request body, naming its fields."""
    if error.fields:
        return HttpProblem(error.status, error.kind, str(error), fields=list(error.fields))
    return HttpProblem(error.status, error.kind, str(error))


def _created(request: web.Request, created: CreatedContact) -> web.Response:
    base = public_base_url(request)
    body = {
        "contact": str(created.id),
        "join_url": f"{base}/?contact={created.id}&token={created.token}",
        "token": created.token,
        "expires_at": created.expires_at.isoformat(),
    }
    headers = {"Location": f"/api/v1/contacts/{created.id}", "Cache-Control": "no-store"}
    return web.json_response(body, status=201, headers=headers)


async def post_contact(request: web.Request) -> web.StreamResponse:
    """Create a contact for the business backend; answer its join link."""
    require_api_key(request)
    try:
        contact = parse_new_contact(await read_json_body(request))
    except ContactRequestError as error:
        raise request_problem(error) from None
    settings = request.app[SETTINGS_KEY]
    created = await create_contact(
        request.app[DATABASE_KEY].pool,
        contact,
        settings.webrtc.token_ttl,
        actor="api",
        request_id=request.get(REQUEST_ID_KEY),
    )
    logger.info("contact %s created (%s)", created.id, contact.media)
    return _created(request, created)


async def post_demo_contact(request: web.Request) -> web.StreamResponse:
    """Create a sample contact without a key, when the server runs as a demo."""
    settings = request.app[SETTINGS_KEY]
    if not settings.http.demo:
        raise HttpProblem(404, "not-found", f"no resource at {request.path}")
    try:
        data = refuse_unknown(await read_json_body(request, optional=True), frozenset(("media",)))
        contact = demo_contact(parse_media(data))
    except ContactRequestError as error:
        raise request_problem(error) from None
    client = request.remote or "unknown"
    try:
        created = await create_contact(
            request.app[DATABASE_KEY].pool,
            contact,
            settings.webrtc.token_ttl,
            actor="demo",
            request_id=request.get(REQUEST_ID_KEY),
            demo_client=client,
        )
    except DemoLimitError as error:
        raise HttpProblem(
            429,
            "too-many-requests",
            f"at most {DEMO_LIMIT} demo contacts a minute per address; "
            f"try again in {error.retry_after} s",
            headers={"Retry-After": str(error.retry_after)},
        ) from None
    logger.info("demo contact %s created (%s)", created.id, contact.media)
    return _created(request, created)


async def contact_detail(request: web.Request) -> web.StreamResponse:
    """A contact as the backend created it, and its state; never its token."""
    require_api_key(request)
    text = request.match_info["contact_id"]
    try:
        contact_id = uuid.UUID(text)
    except ValueError:
        raise HttpProblem(
            400, "invalid-contact-id", f"{text[:64]!r} is not a contact id (a UUID)"
        ) from None
    body = await get_contact(request.app[DATABASE_KEY].pool, contact_id)
    if body is None:
        raise HttpProblem(404, "contact-not-found", f"no contact has id {text!r}")
    return web.json_response(body, headers={"Cache-Control": "no-store"})


# ------------------------------------------------------------------ document

_CREATED_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["contact", "join_url", "token", "expires_at"],
    "properties": {
        "contact": {"type": "string", "format": "uuid"},
        "join_url": {"type": "string", "description": "the customer page with the token"},
        "token": {
            "type": "string",
            "description": "single-use, for this contact only; shown once, never stored",
        },
        "expires_at": {"type": "string", "format": "date-time"},
    },
}
_CONTACT_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["id", "customer_id", "account", "currency", "media", "state", "created_at"],
    "properties": {
        "id": {"type": "string", "format": "uuid"},
        **CONTACT_FIELDS_SCHEMA,
        "state": {
            "enum": ["created", "joined", "queued", "offered", "connected", "ended", "expired"]
        },
        "created_at": {"type": "string", "format": "date-time"},
        "ended_at": {"type": ["string", "null"], "format": "date-time"},
        "end_reason": {"type": ["string", "null"]},
    },
}
_CREATED = {
    "201": {
        "description": "created; the token is shown this once",
        "content": json_content(_CREATED_SCHEMA),
    }
}

#: The ``{contact_id}`` path parameter, as the OpenAPI document describes it.
CONTACT_ID_PARAMETER: dict[str, Any] = {
    "name": "contact_id",
    "in": "path",
    "required": True,
    "schema": {"type": "string", "format": "uuid"},
}
OPERATIONS: tuple[Operation, ...] = (
    Operation(
        "POST",
        "/api/v1/contacts",
        post_contact,
        "Create a contact and its single-use join link (business backend)",
        {
            **_CREATED,
            "400": problem("the body is not JSON"),
            **API_KEY_PROBLEMS,
            "413": problem("the body is over 64 KB, or fields over 32 KB"),
            "415": problem("the body is not application/json"),
            "422": problem("a field is missing, wrong or unknown; the problem names it"),
        },
        tag="contacts",
        request_body={"required": True, "content": json_content(NEW_CONTACT_SCHEMA)},
        security=API_KEY,
    ),
    Operation(
        "POST",
        "/api/v1/demo/contacts",
        post_demo_contact,
        "Create a sample contact without a key (only with http.demo)",
        {
            **_CREATED,
            "404": problem("the server is not in demo mode"),
            "422": problem("media is not voice or video, or another field was sent"),
            "429": problem(f"over {DEMO_LIMIT} demo contacts a minute from this address"),
        },
        tag="contacts",
        request_body={
            "required": False,
            "content": json_content(
                {
                    "type": "object",
                    "additionalProperties": False,
                    "properties": {"media": NEW_CONTACT_SCHEMA["properties"]["media"]},
                }
            ),
        },
    ),
    Operation(
        "GET",
        "/api/v1/contacts/{contact_id}",
        contact_detail,
        "A contact and its state (never its token)",
        {
            "200": {"description": "the contact", "content": json_content(_CONTACT_SCHEMA)},
            "400": problem("the id is not a UUID"),
            **API_KEY_PROBLEMS,
            "404": problem("no such contact"),
        },
        tag="contacts",
        parameters=(CONTACT_ID_PARAMETER,),
        security=API_KEY,
    ),
)
