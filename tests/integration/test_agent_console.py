"""The agent console's socket and screen pop on the real app and a real PostgreSQL.

Without SIP (as here) there are no contact calls: call events are pushed
by calling the consoles' watcher the way ``ContactCalls`` does.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import asyncpg
import pytest
from aiohttp import WSMsgType, web
from aiohttp.test_utils import TestClient, TestServer

from assistline.queue.contact_call import AgentEvent
from assistline.settings import HttpSettings, Settings
from assistline.signalling.app import create_app
from assistline.signalling.keys import AGENT_CONSOLES_KEY
from tests.integration.test_agent_sign_in import PASSWORD, SESSION, add_agent, problem

Client = TestClient[web.Request, web.Application]

KEY = "k-0123456789abcdef-backend"
AUTH = {"Authorization": f"Bearer {KEY}"}
CONSOLE = "https://agents.example.com"
CONTACT = {
    "customer_id": "cust-42",
    "account": "AR-2025-0042",
    "balance_cents": 18250,
    "currency": "EUR",
    "step": "payment failed: card declined",
    "fields": {"plan": "monthly", "nested": {"tries": [1, 2]}},
    "context_trail": [
        {"at": "2025-01-31T14:05:00Z", "step": "login"},
        {"at": "2025-01-31T14:06:10+01:00", "step": "pay", "detail": "declined"},
    ],
    "media": "voice",
}
POP = {
    "customer_id": "cust-42",
    "account": "AR-2025-0042",
    "balance_cents": 18250,
    "currency": "EUR",
    "step": "payment failed: card declined",
    "fields": CONTACT["fields"],
    "media": "voice",
    "context_trail": CONTACT["context_trail"],
}


@pytest.fixture
async def client(settings: Settings) -> AsyncIterator[Client]:
    http = HttpSettings(port=0, api_keys=(KEY,), allowed_origins=(CONSOLE,))
    app_settings = dataclasses.replace(settings, http=http)
    async with TestClient(TestServer(create_app(app_settings))) as client:
        await add_agent(client, "ada", "Ada Lovelace")
        yield client


@pytest.fixture
async def db(database_url: str) -> AsyncIterator[asyncpg.Connection]:
    connection = await asyncpg.connect(database_url)
    try:
        yield connection
    finally:
        await connection.close()


async def _sign_in(client: Client, agent_id: str = "ada") -> str:
    response = await client.post(SESSION, json={"agent_id": agent_id, "password": PASSWORD})
    assert response.status == 201, await response.text()
    token: str = (await response.json())["token"]
    return token


async def _contact(client: Client) -> str:
    response = await client.post("/api/v1/contacts", json=CONTACT, headers=AUTH)
    assert response.status == 201, await response.text()
    contact: str = (await response.json())["contact"]
    return contact


async def _open(client: Client) -> tuple[aiohttp.ClientWebSocketResponse, dict[str, Any]]:
    socket = await client.ws_connect("/ws/agent", headers={"Origin": CONSOLE})
    hello: dict[str, Any] = await socket.receive_json(timeout=5)
    return socket, hello


async def _refused(client: Client, status: int, slug: str, origin: str | None = CONSOLE) -> str:
    headers = {"Origin": origin} if origin is not None else {}
    headers |= {"Connection": "Upgrade", "Upgrade": "websocket", "Sec-WebSocket-Version": "13"}
    headers["Sec-WebSocket-Key"] = "dGhlIHNhbXBsZSBub25jZQ=="
    body = await problem(await client.get("/ws/agent", headers=headers), status, slug)
    detail: str = body["detail"]
    return detail


async def _exchange(socket: aiohttp.ClientWebSocketResponse, frame: Any) -> dict[str, Any]:
    await socket.send_json(frame)
    reply: dict[str, Any] = await socket.receive_json(timeout=5)
    return reply


async def test_the_socket_is_refused_before_the_upgrade_without_a_live_session(
    client: Client, db: asyncpg.Connection
) -> None:
    detail = await _refused(client, 401, "session-refused")
    assert detail == "sign in to the agent console first"
    await _sign_in(client)
    await db.execute("UPDATE agent_session SET revoked_at = now()")
    await _refused(client, 401, "session-refused")
    await _sign_in(client)
    await db.execute(
        "UPDATE agent_session SET created_at = now() - interval '9 hours', "
        "expires_at = now() - interval '1 hour' WHERE revoked_at IS NULL"
    )
    detail = await _refused(client, 401, "session-refused")
    assert detail == "the session is unknown, expired or signed out; sign in again"


async def test_the_socket_is_refused_from_an_origin_not_allowed(client: Client) -> None:
    await _sign_in(client)
    detail = await _refused(client, 403, "origin-not-allowed", origin="https://evil.example")
    assert "'https://evil.example'" in detail
    await _refused(client, 403, "origin-not-allowed", origin=None)


async def test_hello_then_set_state_changes_the_agents_row(
    client: Client, db: asyncpg.Connection
) -> None:
    await _sign_in(client)
    socket, hello = await _open(client)
    assert hello == {
        "type": "hello",
        "agent": {"id": "ada", "name": "Ada Lovelace"},
        "state": "offline",
        "calls": False,
        "works_in": "sip",
        "ice_servers": [],
    }
    assert await _exchange(socket, {"type": "set_state", "state": "available"}) == {
        "type": "state",
        "state": "available",
    }
    assert await db.fetchval("SELECT state FROM agent WHERE id = 'ada'") == "available"
    since = await db.fetchval("SELECT state_since FROM agent WHERE id = 'ada'")
    # Available again changes nothing: the agent keeps its place among idle agents.
    again = await _exchange(socket, {"type": "set_state", "state": "available"})
    assert again == {"type": "state", "state": "available"}
    assert await db.fetchval("SELECT state_since FROM agent WHERE id = 'ada'") == since
    assert await _exchange(socket, {"type": "ping"}) == {"type": "state", "state": "available"}
    assert await _exchange(socket, {"type": "set_state", "state": "offline"}) == {
        "type": "state",
        "state": "offline",
    }
    assert await db.fetchval("SELECT state FROM agent WHERE id = 'ada'") == "offline"
    await socket.close()


@pytest.mark.parametrize(
    ("frame", "code", "message"),
    [
        ({"type": "set_state", "state": "busy"}, "bad_value", "state must be available or offline"),
        ({"type": "set_state"}, "bad_message", "set_state has other fields"),
        ({"type": "chat", "text": "hi"}, "bad_message", "chat has other fields"),
        (
            {"type": "chat", "contact": 7, "text": "hi"},
            "bad_value",
            "contact must be the id of the call you are connected to",
        ),
        (
            {"type": "chat", "contact": "c", "text": ""},
            "bad_value",
            "chat.text must be 1..2000 characters",
        ),
        # No SIP here: no call to chat in.
        (
            {"type": "chat", "contact": "c", "text": "hi"},
            "not_now",
            "chat opens when you are connected to the customer",
        ),
        ({"type": "hello"}, "bad_message", "unknown type 'hello'"),
        ([1, 2], "bad_message", "a frame is a JSON object with a type"),
    ],
)
async def test_refused_frames_get_an_error_and_the_session_goes_on(
    client: Client, frame: Any, code: str, message: str
) -> None:
    await _sign_in(client)
    socket, _ = await _open(client)
    assert await _exchange(socket, frame) == {"type": "error", "code": code, "message": message}
    await socket.send_str("not json")
    assert (await socket.receive_json(timeout=5))["code"] == "not_json"
    assert await _exchange(socket, {"type": "ping"}) == {"type": "state", "state": "offline"}
    await socket.close()


async def test_a_busy_agent_cannot_become_available(client: Client, db: asyncpg.Connection) -> None:
    await _sign_in(client)
    await db.execute("UPDATE agent SET state = 'busy' WHERE id = 'ada'")
    socket, hello = await _open(client)
    assert hello["state"] == "busy"
    reply = await _exchange(socket, {"type": "set_state", "state": "available"})
    assert reply == {
        "type": "error",
        "code": "not_now",
        "message": "you are on a call; you can be available once it ends",
    }
    assert await db.fetchval("SELECT state FROM agent WHERE id = 'ada'") == "busy"
    await socket.close()


async def test_the_screen_pop_route_shows_a_contact_to_a_signed_in_agent(
    client: Client, db: asyncpg.Connection
) -> None:
    contact = await _contact(client)
    url = f"/api/v1/agent/contacts/{contact}"
    await problem(await client.get(url), 401, "session-refused")
    await _sign_in(client)
    response = await client.get(url)
    assert response.status == 200, await response.text()
    assert response.headers["Cache-Control"] == "no-store"
    assert await response.json() == {"contact": contact, **POP}
    viewed = await db.fetchrow(
        "SELECT actor, subject FROM audit_event WHERE action = 'contact.view'"
    )
    assert viewed is not None and tuple(viewed) == ("agent:ada", f"contact:{contact}")
    unknown = "00000000-0000-4000-8000-000000000000"
    await problem(await client.get(f"/api/v1/agent/contacts/{unknown}"), 404, "contact-not-found")
    await problem(await client.get("/api/v1/agent/contacts/call-7"), 400, "invalid-contact-id")


async def test_an_offer_and_its_call_states_are_pushed_to_the_agents_consoles_only(
    client: Client,
) -> None:
    assert client.app is not None
    await add_agent(client, "bo", "Bo")
    contact = await _contact(client)
    await _sign_in(client)
    first, _ = await _open(client)
    second, _ = await _open(client)  # a second tab of the same agent
    watch = client.app[AGENT_CONSOLES_KEY].watch
    watch(AgentEvent("bo", "offered", await _contact(client)))  # bo has no console open
    watch(AgentEvent("ada", "offered", contact))
    for socket in (first, second):
        assert await socket.receive_json(timeout=5) == {"type": "offer", "contact": contact, **POP}
        ringing = await socket.receive_json(timeout=5)
        assert ringing == {"type": "call", "contact": contact, "state": "ringing"}
        assert await socket.receive_json(timeout=5) == {"type": "state", "state": "offline"}
    watch(AgentEvent("ada", "connected", contact))
    watch(AgentEvent("ada", "ended", contact))
    for state in ("connected", "ended"):
        call = await first.receive_json(timeout=5)
        assert call == {"type": "call", "contact": contact, "state": state}
        assert (await first.receive_json(timeout=5))["type"] == "state"
    await first.close()
    await second.close()


async def test_a_chat_line_is_pushed_to_the_agents_consoles_only_without_a_state(
    client: Client,
) -> None:
    assert client.app is not None
    await add_agent(client, "bo", "Bo")
    await _sign_in(client)
    first, _ = await _open(client)
    second, _ = await _open(client)
    watch = client.app[AGENT_CONSOLES_KEY].watch
    watch(AgentEvent("bo", "chat", "c1", "not for ada", "customer"))
    watch(AgentEvent("ada", "chat", "c1", "Hi [card …1111]", "customer"))
    watch(AgentEvent("ada", "chat", "c1", "Hello", "agent"))
    for socket in (first, second):
        for text, sender in (("Hi [card …1111]", "customer"), ("Hello", "agent")):
            line = await socket.receive_json(timeout=5)
            assert line == {"type": "chat", "contact": "c1", "text": text, "from": sender}
    assert await _exchange(first, {"type": "ping"}) == {"type": "state", "state": "offline"}
    await first.close()
    await second.close()


async def test_a_call_that_is_not_a_contact_is_pushed_without_a_screen_pop(
    client: Client,
) -> None:
    assert client.app is not None
    await _sign_in(client)
    socket, _ = await _open(client)
    client.app[AGENT_CONSOLES_KEY].watch(AgentEvent("ada", "offered", "call-7"))
    call = await socket.receive_json(timeout=5)
    assert call == {"type": "call", "contact": "call-7", "state": "ringing"}
    await socket.close()


async def test_signing_out_closes_the_sessions_sockets(client: Client) -> None:
    await _sign_in(client)
    socket, _ = await _open(client)
    assert (await client.delete(SESSION)).status == 204
    closed = await socket.receive(timeout=5)
    assert closed.type == WSMsgType.CLOSE and closed.data == 4401


async def test_a_socket_closes_when_its_session_expires(
    client: Client, db: asyncpg.Connection
) -> None:
    await _sign_in(client)
    await db.execute("UPDATE agent_session SET expires_at = now() + interval '1 second'")
    socket, _ = await _open(client)
    closed = await asyncio.wait_for(socket.receive(), timeout=5)
    assert closed.type == WSMsgType.CLOSE and closed.data == 4401
