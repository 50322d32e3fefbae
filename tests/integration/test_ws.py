"""``GET /ws`` on the real app and a real PostgreSQL: who may join, and a session that survives.

Every refusal happens before the upgrade, so no frame (and no SDP) is ever
read from a page that was refused.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import asyncpg
import pytest
from aiohttp import WSMsgType, web
from aiohttp.test_utils import TestClient, TestServer

from assistline.settings import HttpSettings, Settings, WebRtcSettings
from assistline.signalling.app import create_app
from assistline.signalling.keys import CONTACT_SESSIONS_KEY

Client = TestClient[web.Request, web.Application]

KEY = "k-0123456789abcdef-backend"
AUTH = {"Authorization": f"Bearer {KEY}"}
PAGE = "https://pay.example.com"
CONTACT = {"customer_id": "cust-7", "account": "AR-7", "balance_cents": 5000, "media": "voice"}
# What Chromium offers for one audio track, trimmed to what the policy reads.
OFFER = (
    "v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\na=group:BUNDLE 0\r\n"
    "m=audio 9 UDP/TLS/RTP/SAVPF 111\r\nc=IN IP4 0.0.0.0\r\na=mid:0\r\n"
    "a=ice-ufrag:abcd\r\na=ice-pwd:abcdefghijklmnopqrstuvwx\r\n"
    "a=fingerprint:sha-256 " + ":".join(["AB"] * 32) + "\r\n"
    "a=setup:actpass\r\na=rtcp-mux\r\na=sendrecv\r\na=rtpmap:111 opus/48000/2\r\n"
)


@pytest.fixture
async def client(settings: Settings) -> AsyncIterator[Client]:
    app_settings = dataclasses.replace(
        settings,
        http=HttpSettings(port=0, api_keys=(KEY,), allowed_origins=(PAGE,)),
        webrtc=WebRtcSettings(
            ice_servers=("stun:127.0.0.1:3478", "turn:127.0.0.1:3478"), turn_secret="north"
        ),
    )
    async with TestClient(TestServer(create_app(app_settings))) as client:
        yield client


@pytest.fixture
async def db(database_url: str) -> AsyncIterator[asyncpg.Connection]:
    connection = await asyncpg.connect(database_url)
    try:
        yield connection
    finally:
        await connection.close()


async def _contact(client: Client) -> dict[str, Any]:
    response = await client.post("/api/v1/contacts", json=CONTACT, headers=AUTH)
    assert response.status == 201, await response.text()
    created: dict[str, Any] = await response.json()
    return created


def _query(created: dict[str, Any], **overrides: str) -> dict[str, str]:
    return {"contact": created["contact"], "token": created["token"], **overrides}


async def _refused(
    client: Client, params: dict[str, str], status: int, slug: str, origin: str | None = PAGE
) -> str:
    headers = {"Origin": origin} if origin is not None else {}
    headers |= {"Connection": "Upgrade", "Upgrade": "websocket", "Sec-WebSocket-Version": "13"}
    headers["Sec-WebSocket-Key"] = "dGhlIHNhbXBsZSBub25jZQ=="
    response = await client.get("/ws", params=params, headers=headers)
    assert response.status == status, await response.text()
    body = await response.json()
    assert body["type"] == f"urn:assistline:problem:{slug}"
    detail: str = body["detail"]
    return detail


async def _join(client: Client, contact: dict[str, Any]) -> aiohttp.ClientWebSocketResponse:
    socket = await client.ws_connect("/ws", params=_query(contact), headers={"Origin": PAGE})
    hello = await socket.receive_json()
    assert hello["type"] == "hello"
    return socket


async def _ended_contact(db: asyncpg.Connection, contact_id: str) -> asyncpg.Record:
    """The contact's row once it has ended, or as it is after 5 s.

    The server ends the contact in a task of its own after the socket closes.
    """
    deadline = asyncio.get_running_loop().time() + 5
    while True:
        query = "SELECT state, end_reason, ended_at FROM contact WHERE id = $1"
        row = await db.fetchrow(query, contact_id)
        assert row is not None
        if row["ended_at"] is not None or asyncio.get_running_loop().time() > deadline:
            return row
        await asyncio.sleep(0.02)


async def _exchange(socket: aiohttp.ClientWebSocketResponse, frame: str) -> dict[str, Any]:
    await socket.send_str(frame)
    reply: dict[str, Any] = await socket.receive_json()
    return reply


async def test_a_page_joins_once_and_hears_hello_with_ice_servers_from_settings_only(
    client: Client, db: asyncpg.Connection
) -> None:
    contact = await _contact(client)
    socket = await client.ws_connect("/ws", params=_query(contact), headers={"Origin": PAGE})
    hello = await socket.receive_json()
    assert hello["type"] == "hello" and hello["version"] == 1
    assert (hello["contact"], hello["media"]) == (contact["contact"], "audio")
    stun, turn = hello["ice_servers"]
    assert stun == {"urls": ["stun:127.0.0.1:3478"]}
    assert turn["urls"] == ["turn:127.0.0.1:3478"]
    assert turn["username"].endswith(f":{contact['contact']}") and turn["credential"]
    state = await db.fetchval("SELECT state FROM contact WHERE id = $1", contact["contact"])
    assert state == "joined"
    await socket.close()
    # The token is spent: the same link cannot join again.
    detail = await _refused(client, _query(contact), 401, "token-refused")
    assert detail == "the token has been used already; ask for a new link"


@pytest.mark.parametrize(
    ("origin", "detail"),
    [
        (None, "the Origin header is missing; pages may join from http.allowed_origins only"),
        (
            "https://evil.example",
            "the Origin header is 'https://evil.example'; "
            "pages may join from http.allowed_origins only",
        ),
    ],
)
async def test_a_disallowed_origin_is_refused_and_the_token_kept(
    client: Client, origin: str | None, detail: str
) -> None:
    contact = await _contact(client)
    assert await _refused(client, _query(contact), 403, "origin-not-allowed", origin) == detail
    await (await _join(client, contact)).close()  # the token was never looked at


@pytest.mark.parametrize(
    ("token", "detail"),
    [
        ("", "the token is missing or unknown"),
        ("not-a-token", "the token is missing or unknown"),
        ("A" * 43, "the token is missing or unknown"),
    ],
)
async def test_missing_malformed_and_unknown_tokens_are_refused(
    client: Client, token: str, detail: str
) -> None:
    contact = await _contact(client)
    assert await _refused(client, _query(contact, token=token), 401, "token-refused") == detail


async def test_an_expired_token_is_refused(client: Client, db: asyncpg.Connection) -> None:
    contact = await _contact(client)
    await db.execute(
        "UPDATE contact_token SET expires_at = now() - interval '1 second' WHERE contact_id = $1",
        contact["contact"],
    )
    detail = await _refused(client, _query(contact), 401, "token-refused")
    assert detail == "the token has expired; ask for a new link"


async def test_a_foreign_token_is_refused_and_spent(client: Client) -> None:
    mine, other = await _contact(client), await _contact(client)
    foreign = _query(mine, token=other["token"])
    detail = await _refused(client, foreign, 403, "token-foreign")
    assert detail == "the token is not this contact's"
    detail = await _refused(client, _query(other), 401, "token-refused")
    assert detail == "the token has been used already; ask for a new link"


@pytest.mark.parametrize(
    ("contact_id", "detail"), [("", "contact is missing"), ("42", "contact must be a UUID")]
)
async def test_a_missing_or_malformed_contact_is_refused(
    client: Client, contact_id: str, detail: str
) -> None:
    contact = await _contact(client)
    params = _query(contact, contact=contact_id)
    assert await _refused(client, params, 400, "contact-invalid") == detail


@pytest.mark.parametrize(
    ("frame", "code", "message"),
    [
        ("{", "not_json", None),
        ('{"type": "ofer", "sdp": "v=0"}', "unknown_type", "unknown type 'ofer'"),
        ('{"type": "offer"}', "missing_key", "offer.sdp is missing"),
        ('{"type": "chat", "text": ""}', "bad_value", "chat.text must be 1..2000 characters"),
    ],
)
async def test_malformed_frames_get_an_error_naming_the_problem_and_the_session_survives(
    client: Client, frame: str, code: str, message: str | None
) -> None:
    socket = await _join(client, await _contact(client))
    error = await _exchange(socket, frame)
    assert error["type"] == "error" and error["code"] == code
    if message is not None:
        assert error["message"] == message
    assert await _exchange(socket, '{"type": "ping"}') == {"type": "pong"}
    await socket.close()


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        (("a=fingerprint:sha-256 " + ":".join(["AB"] * 32) + "\r\n", ""), "fingerprint"),
        (("UDP/TLS/RTP/SAVPF", "RTP/AVP"), "RTP/AVP"),
    ],
)
async def test_offers_without_dtls_srtp_are_refused(
    client: Client, change: tuple[str, str], reason: str
) -> None:
    socket = await _join(client, await _contact(client))
    offer = OFFER.replace(*change)
    error = await _exchange(socket, json.dumps({"type": "offer", "sdp": offer}))
    assert (error["type"], error["code"]) == ("error", "sdp_refused")
    assert reason in error["message"]
    # A well-formed DTLS-SRTP offer passes the policy; no worker takes it yet.
    accepted = await _exchange(socket, json.dumps({"type": "offer", "sdp": OFFER}))
    assert accepted["code"] == "not_now"
    await socket.close()


async def test_a_frame_too_large_ends_the_session(client: Client) -> None:
    socket = await _join(client, await _contact(client))
    await socket.send_str(json.dumps({"type": "chat", "text": "x" * 70_000}))
    error = await socket.receive_json()
    assert (error["type"], error["code"]) == ("error", "too_large")
    closing = await socket.receive()
    assert closing.type in (WSMsgType.CLOSE, WSMsgType.CLOSED)
    assert socket.close_code == aiohttp.WSCloseCode.MESSAGE_TOO_BIG


async def test_hangup_ends_the_contact_with_its_reason(
    client: Client, db: asyncpg.Connection
) -> None:
    contact = await _contact(client)
    socket = await _join(client, contact)
    reply = await _exchange(socket, '{"type": "hangup"}')
    assert reply == {"type": "state", "state": "ended", "reason": "hangup"}
    assert (await socket.receive()).type in (WSMsgType.CLOSE, WSMsgType.CLOSED)
    row = await _ended_contact(db, contact["contact"])
    assert (row["state"], row["end_reason"]) == ("ended", "hangup")
    assert row["ended_at"] is not None
    app = client.app
    assert app is not None
    assert app[CONTACT_SESSIONS_KEY] == {}
