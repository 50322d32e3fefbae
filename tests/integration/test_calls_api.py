"""The calls and recordings API without a SIP side: empty lists and problem details.

Calls with SIP (pause, resume, recordings made by real calls) are tested in
tests/integration/sip/test_agent_bridge.py.
"""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import AsyncIterator

import asyncpg
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from assistline.settings import Settings
from assistline.signalling.app import create_app
from assistline.signalling.problems import PROBLEM_CONTENT_TYPE

Client = TestClient[web.Request, web.Application]


KEY = "calls-api-key-0123456789"
AUTH = {"Authorization": f"Bearer {KEY}"}


@pytest.fixture
async def client(settings: Settings) -> AsyncIterator[Client]:
    http = dataclasses.replace(settings.http, api_keys=(KEY,))
    app = create_app(dataclasses.replace(settings, http=http))
    async with TestClient(TestServer(app), headers=AUTH) as client:
        yield client


async def test_no_calls_without_a_sip_side(client: Client) -> None:
    response = await client.get("/api/v1/calls")
    assert response.status == 200
    assert await response.json() == {"calls": []}


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/api/v1/calls"),
        ("POST", "/api/v1/calls/c1/recording/pause"),
        ("POST", "/api/v1/calls/c1/recording/resume"),
        ("GET", f"/api/v1/recordings/{uuid.UUID(int=1)}"),
    ],
)
async def test_every_route_asks_for_an_api_key(client: Client, method: str, path: str) -> None:
    for headers in ({"Authorization": ""}, {"Authorization": "Bearer not-the-key-at-all"}):
        response = await client.request(method, path, headers=headers)
        assert response.status == 401, path
        assert response.content_type == PROBLEM_CONTENT_TYPE


@pytest.mark.parametrize("action", ["pause", "resume"])
async def test_pausing_an_unknown_call_is_a_404_problem(client: Client, action: str) -> None:
    response = await client.post(f"/api/v1/calls/nope/recording/{action}")
    assert response.status == 404
    assert response.content_type == PROBLEM_CONTENT_TYPE
    body = await response.json()
    assert body["type"] == "urn:assistline:problem:call-not-found"
    assert body["detail"] == "no call 'nope' is in progress"


async def test_recording_metadata_and_unknown_recordings(client: Client, database_url: str) -> None:
    for bad in ("not-a-uuid", str(uuid.uuid4())):
        response = await client.get(f"/api/v1/recordings/{bad}")
        assert response.status == 404
        assert (await response.json())["type"] == "urn:assistline:problem:recording-not-found"
    recording_id = uuid.uuid4()
    connection = await asyncpg.connect(database_url)
    try:
        await connection.execute(
            "INSERT INTO recording (id, call_id, worker, caller_leg, agent_leg, path,"
            " ended_at, duration_seconds, pauses, status)"
            " VALUES ($1, 'c1', 'w1', 'w1-1', 'w1-2', '/r/c1.wav', now(), 12.5,"
            ' \'[{"start_sample": 16000, "end_sample": 32000,'
            ' "start_seconds": 1.0, "end_seconds": 2.0}]\', \'complete\')',
            recording_id,
        )
    finally:
        await connection.close()
    response = await client.get(f"/api/v1/recordings/{recording_id}")
    assert response.status == 200
    body = await response.json()
    assert body["id"] == str(recording_id)
    assert (body["call_id"], body["caller_leg"], body["agent_leg"]) == ("c1", "w1-1", "w1-2")
    assert (body["status"], body["duration_seconds"], body["live_state"]) == (
        "complete",
        12.5,
        None,
    )
    assert body["pauses"] == [
        {"start_sample": 16000, "end_sample": 32000, "start_seconds": 1.0, "end_seconds": 2.0}
    ]
    assert (body["channels"], body["sample_rate"]) == (2, 16000)
