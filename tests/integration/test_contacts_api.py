"""The contacts API on the real app and a real PostgreSQL: create, read, join tokens.

Tokens are spent here with :func:`consume_token`, as the WebSocket spends
them, on the app's own pool.
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime
import hashlib
import json
import logging
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any

import asyncpg
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from assistline.settings import HttpSettings, Settings, WebRtcSettings
from assistline.signalling.app import create_app
from assistline.signalling.contacts import consume_token
from assistline.signalling.keys import DATABASE_KEY
from assistline.signalling.problems import PROBLEM_CONTENT_TYPE
from assistline.signalling.tokens import ContactRef, TokenRefusal, new_token

Client = TestClient[web.Request, web.Application]
ClientFactory = Callable[..., AbstractAsyncContextManager[Client]]

KEY = "k-0123456789abcdef-backend"
OTHER_KEY = "k-fedcba9876543210-backend"
AUTH = {"Authorization": f"Bearer {KEY}"}
FULL = {
    "customer_id": "cust-42",
    "account": "AR-2025-0042",
    "balance_cents": 18250,
    "currency": "EUR",
    "step": "payment failed: card declined",
    "fields": {"plan": "monthly", "due": "2025-02-01", "nested": {"tries": [1, 2]}},
    "context_trail": [
        {"at": "2025-01-31T14:05:00Z", "step": "login"},
        {"at": "2025-01-31T14:06:10+01:00", "step": "pay", "detail": "declined"},
    ],
    "media": "video",
}


@pytest.fixture
def make_client(settings: Settings) -> ClientFactory:
    """Start the app with the test's database and HTTP settings of the test's choosing."""

    @asynccontextmanager
    async def make(**http: Any) -> AsyncIterator[Client]:
        http = {"port": 0, "api_keys": (KEY, OTHER_KEY), **http}
        app_settings = dataclasses.replace(
            settings, http=HttpSettings(**http), webrtc=WebRtcSettings(token_ttl=120)
        )
        async with TestClient(TestServer(create_app(app_settings))) as client:
            yield client

    return make


@pytest.fixture
async def client(make_client: ClientFactory) -> AsyncIterator[Client]:
    async with make_client() as client:
        yield client


@pytest.fixture
async def db(database_url: str) -> AsyncIterator[asyncpg.Connection]:
    connection = await asyncpg.connect(database_url)
    try:
        yield connection
    finally:
        await connection.close()


def _pool(client: Client) -> asyncpg.Pool:
    assert client.app is not None
    return client.app[DATABASE_KEY].pool


async def _create(client: Client, body: dict[str, Any] | None = None) -> dict[str, Any]:
    response = await client.post("/api/v1/contacts", json=body or FULL, headers=AUTH)
    assert response.status == 201, await response.text()
    result: dict[str, Any] = await response.json()
    return result


async def _problem(response: Any, status: int, slug: str) -> dict[str, Any]:
    assert response.status == status, await response.text()
    assert response.content_type == PROBLEM_CONTENT_TYPE
    body: dict[str, Any] = await response.json()
    assert body["type"] == f"urn:assistline:problem:{slug}"
    return body


async def test_a_created_contact_is_stored_as_sent(client: Client, db: asyncpg.Connection) -> None:
    response = await client.post("/api/v1/contacts", json=FULL, headers=AUTH)
    assert response.status == 201
    assert response.headers["Cache-Control"] == "no-store"
    body = await response.json()
    assert set(body) == {"contact", "join_url", "token", "expires_at"}
    contact_id = uuid.UUID(body["contact"])
    assert response.headers["Location"] == f"/api/v1/contacts/{contact_id}"
    base = client.make_url("/")
    assert body["join_url"] == f"{base}?contact={body['contact']}&token={body['token']}"

    row = await db.fetchrow("SELECT * FROM contact WHERE id = $1", contact_id)
    assert row is not None
    stored = {name: row[name] for name in ("customer_id", "account", "balance_cents")}
    assert stored == {"customer_id": "cust-42", "account": "AR-2025-0042", "balance_cents": 18250}
    assert (row["currency"], row["step"], row["media"], row["state"]) == (
        "EUR",
        "payment failed: card declined",
        "video",
        "created",
    )
    assert json.loads(row["fields"]) == FULL["fields"]
    assert json.loads(row["context_trail"]) == FULL["context_trail"]
    assert (row["ended_at"], row["end_reason"]) == (None, None)

    token = await db.fetchrow("SELECT * FROM contact_token WHERE contact_id = $1", contact_id)
    assert token is not None
    assert token["token_hash"] == hashlib.sha256(body["token"].encode()).digest()
    assert token["used_at"] is None
    expires_at = datetime.datetime.fromisoformat(body["expires_at"])
    assert expires_at == token["expires_at"]
    assert expires_at - row["created_at"] == datetime.timedelta(seconds=120)  # webrtc.token_ttl

    audit = await db.fetch("SELECT actor, action, subject FROM audit_event")
    assert [tuple(a) for a in audit] == [("api", "contact.create", f"contact:{contact_id}")]


async def test_defaults_and_reading_a_contact_back(client: Client) -> None:
    created = await _create(client, {"customer_id": "c", "account": "a"})
    response = await client.get(f"/api/v1/contacts/{created['contact']}", headers=AUTH)
    assert response.status == 200
    body = await response.json()
    assert body.pop("created_at")
    assert body == {
        "id": created["contact"],
        "customer_id": "c",
        "account": "a",
        "balance_cents": None,
        "currency": "USD",
        "step": None,
        "fields": {},
        "context_trail": [],
        "media": "voice",
        "state": "created",
        "ended_at": None,
        "end_reason": None,
    }
    assert created["token"] not in await response.text()


async def test_public_url_makes_the_join_link(make_client: ClientFactory) -> None:
    async with make_client(public_url="https://help.example.com/") as client:
        created = await _create(client)
    assert created["join_url"] == (
        f"https://help.example.com/?contact={created['contact']}&token={created['token']}"
    )


async def test_a_token_admits_once_and_only_to_its_contact(client: Client) -> None:
    first, second = await _create(client), await _create(client, {**FULL, "media": "voice"})
    pool = _pool(client)
    assert await consume_token(pool, second["token"]) == ContactRef(
        uuid.UUID(second["contact"]), "voice"
    )
    assert await consume_token(pool, first["token"]) == ContactRef(
        uuid.UUID(first["contact"]), "video"
    )
    assert await consume_token(pool, first["token"]) is TokenRefusal.USED
    assert await consume_token(pool, second["token"]) is TokenRefusal.USED


async def test_two_pages_racing_with_one_token_admit_one(client: Client) -> None:
    created = await _create(client)
    pool = _pool(client)
    results = await asyncio.gather(*(consume_token(pool, created["token"]) for _ in range(5)))
    assert results.count(ContactRef(uuid.UUID(created["contact"]), "video")) == 1
    assert results.count(TokenRefusal.USED) == 4


async def test_an_expired_token_says_expired(client: Client, db: asyncpg.Connection) -> None:
    created = await _create(client)
    expires_at = datetime.datetime.fromisoformat(created["expires_at"])
    pool = _pool(client)
    later = expires_at + datetime.timedelta(seconds=1)
    assert await consume_token(pool, created["token"], later) is TokenRefusal.EXPIRED
    await db.execute(
        "UPDATE contact_token SET expires_at = now() - interval '1 second' WHERE contact_id = $1",
        uuid.UUID(created["contact"]),
    )
    assert await consume_token(pool, created["token"]) is TokenRefusal.EXPIRED
    used = await db.fetchval("SELECT used_at FROM contact_token")
    assert used is None


async def test_an_unknown_or_malformed_token_says_missing(client: Client) -> None:
    pool = _pool(client)
    assert await consume_token(pool, new_token()) is TokenRefusal.MISSING
    for garbage in ("", "x", "'; DROP TABLE contact; --", "A" * 4000):
        assert await consume_token(pool, garbage) is TokenRefusal.MISSING


async def test_the_token_is_stored_nowhere_and_logged_nowhere(
    client: Client, database_url: str, db: asyncpg.Connection, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    created = await _create(client)
    token = created["token"]
    assert await consume_token(_pool(client), token) == ContactRef(
        uuid.UUID(created["contact"]), "video"
    )
    await client.get(f"/api/v1/contacts/{created['contact']}", headers=AUTH)
    tables = await db.fetch(
        "SELECT table_name FROM information_schema.tables WHERE table_schema = 'public'"
    )
    assert {"contact", "contact_token", "audit_event"} <= {t["table_name"] for t in tables}
    for table in tables:
        rows = await db.fetch(f'SELECT t::text AS row FROM "{table["table_name"]}" t')
        text = "\n".join(r["row"] for r in rows)
        assert token not in text
        assert token.encode().hex() not in text
    assert created["contact"] in caplog.text  # the log does see the contact
    assert token not in caplog.text


@pytest.mark.parametrize(
    ("headers", "challenge"),
    [
        ({}, 'Bearer realm="assistline"'),
        ({"Authorization": "Bearer "}, 'Bearer realm="assistline"'),
        ({"Authorization": f"Basic {KEY}"}, 'Bearer realm="assistline"'),
        ({"Authorization": f"Bearer {KEY}x"}, 'Bearer realm="assistline", error="invalid_token"'),
        (
            {"Authorization": "Bearer k-0123456789abcdef"},
            'Bearer realm="assistline", error="invalid_token"',
        ),
    ],
)
async def test_without_a_right_key_it_is_401(
    client: Client, db: asyncpg.Connection, headers: dict[str, str], challenge: str
) -> None:
    response = await client.post("/api/v1/contacts", json=FULL, headers=headers)
    await _problem(response, 401, "unauthorized")
    assert response.headers["WWW-Authenticate"] == challenge
    response = await client.get(f"/api/v1/contacts/{uuid.uuid4()}", headers=headers)
    await _problem(response, 401, "unauthorized")
    assert await db.fetchval("SELECT count(*) FROM contact") == 0


async def test_every_configured_key_works(client: Client) -> None:
    response = await client.post(
        "/api/v1/contacts", json=FULL, headers={"Authorization": f"bearer {OTHER_KEY}"}
    )
    assert response.status == 201


async def test_without_configured_keys_the_api_is_403(make_client: ClientFactory) -> None:
    async with make_client(api_keys=()) as client:
        response = await client.post("/api/v1/contacts", json=FULL, headers=AUTH)
        body = await _problem(response, 403, "api-keys-not-configured")
        assert "set http.api_keys" in body["detail"]
        response = await client.get(f"/api/v1/contacts/{uuid.uuid4()}", headers=AUTH)
        await _problem(response, 403, "api-keys-not-configured")


@pytest.mark.parametrize(
    ("body", "fields"),
    [
        ({"account": "A"}, ["customer_id"]),
        ({"customer_id": "c"}, ["account"]),
        ({**FULL, "customer_id": "x" * 129}, ["customer_id"]),
        ({**FULL, "account": ""}, ["account"]),
        ({**FULL, "balance_cents": -5}, ["balance_cents"]),
        ({**FULL, "balance_cents": "18250"}, ["balance_cents"]),
        ({**FULL, "currency": "EURO"}, ["currency"]),
        ({**FULL, "step": "s" * 201}, ["step"]),
        ({**FULL, "fields": "plan=monthly"}, ["fields"]),
        ({**FULL, "fields": {"a": "nul\u0000"}}, ["fields"]),
        (
            {**FULL, "context_trail": [{"at": "2025-01-31T14:05:00Z", "step": "s"}] * 51},
            ["context_trail"],
        ),
        ({**FULL, "context_trail": [{"at": "not a time", "step": "s"}]}, ["context_trail[0].at"]),
        ({**FULL, "media": "chat"}, ["media"]),
        ({**FULL, "token": "mine", "state": "ended"}, ["state", "token"]),
    ],
)
async def test_each_invalid_field_is_named_and_nothing_is_stored(
    client: Client, db: asyncpg.Connection, body: dict[str, Any], fields: list[str]
) -> None:
    response = await client.post("/api/v1/contacts", json=body, headers=AUTH)
    problem = await _problem(response, 422, "invalid-field")
    assert problem["fields"] == fields
    assert all(field in problem["detail"] for field in fields)
    assert await db.fetchval("SELECT count(*) FROM contact") == 0
    assert await db.fetchval("SELECT count(*) FROM contact_token") == 0
    assert await db.fetchval("SELECT count(*) FROM audit_event") == 0


async def test_bodies_that_are_not_json_objects(client: Client, db: asyncpg.Connection) -> None:
    response = await client.post(
        "/api/v1/contacts", data=b"{nope", headers={**AUTH, "Content-Type": "application/json"}
    )
    await _problem(response, 400, "invalid-json")
    response = await client.post("/api/v1/contacts", json=[FULL], headers=AUTH)
    await _problem(response, 422, "invalid-field")
    response = await client.post(
        "/api/v1/contacts",
        data="customer_id=c",
        headers={**AUTH, "Content-Type": "application/x-www-form-urlencoded"},
    )
    await _problem(response, 415, "unsupported-media-type")
    assert await db.fetchval("SELECT count(*) FROM contact") == 0


async def test_large_fields_and_bodies_are_413(client: Client, db: asyncpg.Connection) -> None:
    big = {**FULL, "fields": {"note": "x" * 33_000}}
    response = await client.post("/api/v1/contacts", json=big, headers=AUTH)
    problem = await _problem(response, 413, "field-too-large")
    assert problem["fields"] == ["fields"]
    huge = json.dumps({**FULL, "step": "x" * 70_000}).encode()
    headers = {**AUTH, "Content-Type": "application/json"}
    response = await client.post("/api/v1/contacts", data=huge, headers=headers)
    await _problem(response, 413, "payload-too-large")

    async def chunks() -> AsyncIterator[bytes]:  # no Content-Length: counted as it arrives
        for start in range(0, len(huge), 8192):
            yield huge[start : start + 8192]

    response = await client.post("/api/v1/contacts", data=chunks(), headers=headers)
    await _problem(response, 413, "payload-too-large")
    assert await db.fetchval("SELECT count(*) FROM contact") == 0


async def test_reading_a_contact_needs_a_uuid_it_knows(client: Client) -> None:
    response = await client.get("/api/v1/contacts/not-a-uuid", headers=AUTH)
    await _problem(response, 400, "invalid-contact-id")
    response = await client.get(f"/api/v1/contacts/{uuid.uuid4()}", headers=AUTH)
    await _problem(response, 404, "contact-not-found")


async def test_the_demo_route_is_absent_unless_demo(client: Client, db: asyncpg.Connection) -> None:
    response = await client.post("/api/v1/demo/contacts")
    await _problem(response, 404, "not-found")
    assert await db.fetchval("SELECT count(*) FROM contact") == 0


async def test_the_demo_route_creates_a_sample_contact(
    make_client: ClientFactory, db: asyncpg.Connection
) -> None:
    async with make_client(demo=True, api_keys=()) as client:
        response = await client.post("/api/v1/demo/contacts")
        assert response.status == 201
        created = await response.json()
        base = client.make_url("/")
        joined = f"{base}?contact={created['contact']}&token={created['token']}"
        assert created["join_url"] == joined
        response = await client.post("/api/v1/demo/contacts", json={"media": "video"})
        video = await response.json()
        response = await client.post("/api/v1/demo/contacts", json={"media": "fax"})
        assert (await _problem(response, 422, "invalid-field"))["fields"] == ["media"]
        response = await client.post("/api/v1/demo/contacts", json={"account": "mine"})
        assert (await _problem(response, 422, "invalid-field"))["fields"] == ["account"]
        assert await consume_token(_pool(client), video["token"]) == ContactRef(
            uuid.UUID(video["contact"]), "video"
        )
    row = await db.fetchrow("SELECT * FROM contact WHERE id = $1", uuid.UUID(created["contact"]))
    assert row is not None
    assert (row["customer_id"], row["account"], row["balance_cents"], row["step"]) == (
        "demo-customer",
        "DEMO-0001",
        12345,
        "payment failed: card declined",
    )
    assert row["media"] == "voice"
    assert json.loads(row["fields"])
    assert await db.fetchval("SELECT count(*) FROM contact") == 2


async def test_the_demo_route_is_rate_limited(
    make_client: ClientFactory, db: asyncpg.Connection
) -> None:
    async with make_client(demo=True) as client:
        for _ in range(10):
            assert (await client.post("/api/v1/demo/contacts")).status == 201
        response = await client.post("/api/v1/demo/contacts")
        await _problem(response, 429, "too-many-requests")
        assert 1 <= int(response.headers["Retry-After"]) <= 60
        # A minute later the address may go on.
        await db.execute("UPDATE audit_event SET at = at - interval '61 seconds'")
        assert (await client.post("/api/v1/demo/contacts")).status == 201
    assert await db.fetchval("SELECT count(*) FROM contact") == 11
