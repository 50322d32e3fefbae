"""Console sign-in on the real app and a real PostgreSQL: sessions, the cookie, the rate limit.

Also ``assistline agent set-console-password``, which sets what sign-in checks.
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime
import hashlib
import io
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any

import asyncpg
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from assistline.__main__ import main
from assistline.queue.agents import AgentDirectory
from assistline.settings import HttpSettings, Settings
from assistline.signalling.agent_auth import (
    FAILURE_LIMIT,
    FAILURE_WINDOW,
    parse_password_hash,
    set_console_password,
    verify_password,
)
from assistline.signalling.app import create_app
from assistline.signalling.keys import DATABASE_KEY
from assistline.signalling.problems import PROBLEM_CONTENT_TYPE

Client = TestClient[web.Request, web.Application]
ClientFactory = Callable[..., AbstractAsyncContextManager[Client]]

PASSWORD = "console-secret-1234"
SESSION = "/api/v1/agent/session"


@pytest.fixture
def make_client(settings: Settings) -> ClientFactory:
    @asynccontextmanager
    async def make(**http: Any) -> AsyncIterator[Client]:
        app_settings = dataclasses.replace(settings, http=HttpSettings(port=0, **http))
        async with TestClient(TestServer(create_app(app_settings))) as client:
            await add_agent(client, "ada", "Ada Lovelace")
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


async def add_agent(client: Client, agent_id: str, name: str) -> None:
    """An agent with a phone and the console password :data:`PASSWORD`."""
    assert client.app is not None
    pool = client.app[DATABASE_KEY].pool
    await AgentDirectory(pool, "assistline").create(agent_id, name, agent_id, "phone-secret-1234")
    await set_console_password(pool, agent_id, PASSWORD)


async def problem(response: Any, status: int, slug: str) -> dict[str, Any]:
    assert response.status == status, await response.text()
    assert response.content_type == PROBLEM_CONTENT_TYPE
    body: dict[str, Any] = await response.json()
    assert body["type"] == f"urn:assistline:problem:{slug}"
    return body


def _cookie(response: Any) -> dict[str, str]:
    """The attributes of the one ``Set-Cookie`` (lower-case names; flags map to "")."""
    headers = response.headers.getall("Set-Cookie")
    assert len(headers) == 1
    parts = [part.strip() for part in headers[0].split(";")]
    name, _, value = parts[0].partition("=")
    attributes = {"name": name, "value": value}
    for part in parts[1:]:
        key, _, val = part.partition("=")
        attributes[key.lower()] = val
    return attributes


async def test_signing_in_sets_a_strict_http_only_cookie_and_stores_only_the_tokens_hash(
    client: Client, db: asyncpg.Connection
) -> None:
    response = await client.post(SESSION, json={"agent_id": "ada", "password": PASSWORD})
    assert response.status == 201, await response.text()
    assert response.headers["Cache-Control"] == "no-store"
    body = await response.json()
    assert set(body) == {"agent", "token", "expires_at"}
    assert body["agent"] == {"id": "ada", "name": "Ada Lovelace"}
    token = body["token"]
    cookie = _cookie(response)
    assert cookie == {
        "name": "assistline_agent",
        "value": token,
        "httponly": "",
        "max-age": "28800",
        "path": "/",
        "samesite": "Strict",
    }
    row = await db.fetchrow("SELECT * FROM agent_session")
    assert row is not None
    assert row["token_hash"] == hashlib.sha256(token.encode()).digest()
    assert (row["agent_id"], row["revoked_at"]) == ("ada", None)
    assert row["expires_at"] - row["created_at"] == datetime.timedelta(hours=8)
    assert datetime.datetime.fromisoformat(body["expires_at"]) == row["expires_at"]
    # Neither the token nor the password is stored anywhere.
    dump = repr([dict(r) for r in await db.fetch("SELECT * FROM audit_event")])
    dump += repr([dict(r) for r in await db.fetch("SELECT * FROM agent")])
    assert token not in dump and PASSWORD not in dump
    stored = await db.fetchval("SELECT console_password FROM agent WHERE id = 'ada'")
    assert verify_password(PASSWORD, stored) and parse_password_hash(stored).n == 2**15

    whoami = await client.get(SESSION)
    assert whoami.status == 200
    assert await whoami.json() == {
        "agent": {"id": "ada", "name": "Ada Lovelace"},
        "state": "offline",
    }


async def test_the_cookie_is_secure_when_the_server_is_reached_over_https(
    make_client: ClientFactory,
) -> None:
    async with make_client(public_url="https://agents.example.com") as client:
        response = await client.post(SESSION, json={"agent_id": "ada", "password": PASSWORD})
        assert response.status == 201
        cookie = _cookie(response)
        assert "secure" in cookie and cookie["samesite"] == "Strict" and "httponly" in cookie


async def test_a_wrong_password_and_an_unknown_agent_get_the_same_answer(
    client: Client, db: asyncpg.Connection
) -> None:
    wrong = await client.post(SESSION, json={"agent_id": "ada", "password": PASSWORD + "x"})
    unknown = await client.post(SESSION, json={"agent_id": "nobody", "password": PASSWORD})
    first = await problem(wrong, 401, "sign-in-refused")
    second = await problem(unknown, 401, "sign-in-refused")
    assert first["detail"] == second["detail"] == "the agent id or the password is wrong"
    assert "Set-Cookie" not in wrong.headers and "Set-Cookie" not in unknown.headers
    assert await db.fetchval("SELECT count(*) FROM agent_session") == 0
    actions = await db.fetch("SELECT action, subject FROM audit_event ORDER BY id")
    assert [tuple(a) for a in actions] == [
        ("agent.sign_in_failed", "agent-sign-in:ada@127.0.0.1"),
        ("agent.sign_in_failed", "agent-sign-in:nobody@127.0.0.1"),
    ]
    no_session = await client.get(SESSION)
    await problem(no_session, 401, "session-refused")


async def test_five_failures_lock_that_agent_out_from_that_address_for_a_while(
    client: Client,
) -> None:
    await add_agent(client, "bo", "Bo")
    for _ in range(FAILURE_LIMIT):
        response = await client.post(SESSION, json={"agent_id": "ada", "password": "wrong" * 3})
        await problem(response, 401, "sign-in-refused")
    # Even the right password is refused now, before it is checked.
    locked = await client.post(SESSION, json={"agent_id": "ada", "password": PASSWORD})
    body = await problem(locked, 429, "too-many-requests")
    retry_after = int(locked.headers["Retry-After"])
    assert 0 < retry_after <= FAILURE_WINDOW
    assert body["detail"] == f"too many failed sign-ins; try again in {retry_after} s"
    # Another agent at the same address is not locked out.
    other = await client.post(SESSION, json={"agent_id": "bo", "password": PASSWORD})
    assert other.status == 201


async def test_a_success_resets_the_count_of_failures(client: Client) -> None:
    for _ in range(FAILURE_LIMIT - 1):
        response = await client.post(SESSION, json={"agent_id": "ada", "password": "wrong" * 3})
        assert response.status == 401
    assert (
        await client.post(SESSION, json={"agent_id": "ada", "password": PASSWORD})
    ).status == 201
    for _ in range(FAILURE_LIMIT - 1):
        response = await client.post(SESSION, json={"agent_id": "ada", "password": "wrong" * 3})
        assert response.status == 401


@pytest.mark.parametrize(
    ("body", "status", "slug"),
    [
        (b"{", 400, "invalid-json"),
        (b'{"agent_id": "ada"}', 422, "invalid-field"),
        (b'{"agent_id": "ada", "password": 12345678901234}', 422, "invalid-field"),
        (b'{"agent_id": "ada", "password": "x", "remember": true}', 422, "invalid-field"),
        (b'{"agent_id": "' + b"a" * 5000 + b'", "password": "x"}', 413, "payload-too-large"),
    ],
)
async def test_malformed_sign_ins_are_refused_naming_the_problem(
    client: Client, body: bytes, status: int, slug: str
) -> None:
    headers = {"Content-Type": "application/json"}
    await problem(await client.post(SESSION, data=body, headers=headers), status, slug)


async def test_sign_in_needs_json(client: Client) -> None:
    response = await client.post(SESSION, data={"agent_id": "ada", "password": PASSWORD})
    await problem(response, 415, "unsupported-media-type")


async def test_signing_out_revokes_the_session_and_clears_the_cookie(
    client: Client, db: asyncpg.Connection
) -> None:
    signed_in = await client.post(SESSION, json={"agent_id": "ada", "password": PASSWORD})
    token = (await signed_in.json())["token"]
    response = await client.delete(SESSION)
    assert response.status == 204
    cleared = _cookie(response)
    assert (cleared["name"], cleared["value"], cleared["max-age"]) == (
        "assistline_agent",
        '""',
        "0",
    )
    assert await db.fetchval("SELECT revoked_at IS NOT NULL FROM agent_session") is True
    # The token no longer opens anything, as a cookie or as a bearer token.
    bearer = {"Authorization": f"Bearer {token}"}
    await problem(await client.get(SESSION, headers=bearer), 401, "session-refused")
    await problem(await client.delete(SESSION, headers=bearer), 401, "session-refused")


async def test_a_token_in_the_body_works_as_a_bearer_token_for_non_browser_clients(
    client: Client,
) -> None:
    signed_in = await client.post(SESSION, json={"agent_id": "ada", "password": PASSWORD})
    token = (await signed_in.json())["token"]
    client.session.cookie_jar.clear()
    await problem(await client.get(SESSION), 401, "session-refused")
    response = await client.get(SESSION, headers={"Authorization": f"Bearer {token}"})
    assert response.status == 200


# ------------------------------------------------------------------ the command


def _set_console_password(
    monkeypatch: pytest.MonkeyPatch, database_url: str, agent_id: str, password: str
) -> int:
    monkeypatch.setattr("sys.stdin", io.StringIO(password + "\n"))
    return main(["agent", "set-console-password", agent_id], {"DATABASE_URL": database_url})


def test_set_console_password_stores_a_scrypt_hash_and_signs_out_open_sessions(
    database_url: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    async def prepare() -> None:
        connection = await asyncpg.connect(database_url)
        try:
            await connection.execute(
                "INSERT INTO agent (id, name, sip_username, sip_realm, sip_ha1) "
                "VALUES ('cy', 'Cy', 'cy', 'assistline', repeat('0', 32))"
            )
            await connection.execute(
                "INSERT INTO agent_session (token_hash, agent_id, expires_at) "
                "VALUES (sha256('t'), 'cy', now() + interval '1 hour')"
            )
        finally:
            await connection.close()

    async def stored() -> tuple[str, bool]:
        connection = await asyncpg.connect(database_url)
        try:
            row = await connection.fetchrow(
                "SELECT a.console_password, s.revoked_at IS NOT NULL AS revoked "
                "FROM agent a JOIN agent_session s ON s.agent_id = a.id"
            )
            assert row is not None
            return row["console_password"], row["revoked"]
        finally:
            await connection.close()

    asyncio.run(prepare())
    new_password = "a new console password"
    assert _set_console_password(monkeypatch, database_url, "cy", new_password) == 0
    out = capsys.readouterr().out
    assert out == "console password of agent cy set; its console sessions are signed out\n"
    text, revoked = asyncio.run(stored())
    assert verify_password(new_password, text) and revoked
    assert new_password not in out

    assert _set_console_password(monkeypatch, database_url, "nobody", new_password) == 1
    assert _set_console_password(monkeypatch, database_url, "cy", "short") == 1
    assert asyncio.run(stored())[0] == text
