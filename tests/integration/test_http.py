from __future__ import annotations

import io
import json
import logging
from collections.abc import AsyncIterator
from urllib.parse import urlsplit

import asyncpg
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from assistline.logs import configure_logging
from assistline.settings import LogSettings, Settings
from assistline.signalling.app import create_app
from assistline.signalling.problems import PROBLEM_CONTENT_TYPE
from assistline.signalling.request_id import AccessLogger
from assistline.store.embedded import EmbeddedPostgres

Client = TestClient[web.Request, web.Application]


@pytest.fixture
async def client(settings: Settings) -> AsyncIterator[Client]:
    server = TestServer(create_app(settings))
    await server.start_server(access_log_class=AccessLogger)  # as `assistline serve` does
    async with TestClient(server) as client:
        yield client


async def test_healthz_says_ok(client: Client) -> None:
    response = await client.get("/healthz")
    assert response.status == 200
    assert await response.json() == {"status": "ok"}


async def test_readyz_is_ready_while_the_database_answers(client: Client) -> None:
    response = await client.get("/readyz")
    assert response.status == 200
    assert await response.json() == {"status": "ready", "database": "ok"}


async def test_readyz_is_503_problem_when_the_database_is_gone(
    client: Client, database_url: str, pg_server: EmbeddedPostgres
) -> None:
    # Make the test's database refuse connections and cut the pool's ones.
    admin = await asyncpg.connect(pg_server.dsn())
    name = urlsplit(database_url).path.lstrip("/")
    try:
        await admin.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS false')
        await admin.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1", name
        )
        response = await client.get("/readyz")
        assert response.status == 503
        assert response.content_type == PROBLEM_CONTENT_TYPE
        body = await response.json()
        assert body["type"] == "urn:assistline:problem:database-unavailable"
        assert body["status"] == 503
    finally:
        await admin.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS true')
        await admin.close()


async def test_unknown_path_is_a_404_problem(client: Client) -> None:
    response = await client.get("/api/v1/nothing-here")
    assert response.status == 404
    assert response.content_type == PROBLEM_CONTENT_TYPE
    body = await response.json()
    assert body["type"] == "urn:assistline:problem:not-found"
    assert body["detail"] == "no resource at /api/v1/nothing-here"
    assert body["request_id"] == response.headers["X-Request-Id"]


async def test_wrong_method_is_a_405_problem_with_allow(client: Client) -> None:
    response = await client.delete("/healthz")
    assert response.status == 405
    assert response.content_type == PROBLEM_CONTENT_TYPE
    assert (await response.json())["type"] == "urn:assistline:problem:method-not-allowed"
    assert "GET" in response.headers["Allow"]


async def test_path_outside_the_web_client_is_refused(client: Client) -> None:
    response = await client.get("/web/..%2F..%2Fpyproject.toml")
    assert response.status == 404
    assert response.content_type == PROBLEM_CONTENT_TYPE


async def test_pages_are_served(client: Client) -> None:
    for path, marker in (("/", "Get help"), ("/agent", "Agent console")):
        response = await client.get(path)
        assert response.status == 200
        assert response.content_type == "text/html"
        assert marker in await response.text()
    response = await client.get("/web/status.js")
    assert response.status == 200
    assert response.content_type in ("text/javascript", "application/javascript")


async def test_request_id_is_kept_when_plain_and_replaced_when_not(client: Client) -> None:
    kept = await client.get("/healthz", headers={"X-Request-Id": "backend-42.a:b"})
    assert kept.headers["X-Request-Id"] == "backend-42.a:b"
    replaced = await client.get("/healthz", headers={"X-Request-Id": "bad id\twith spaces"})
    assert replaced.headers["X-Request-Id"] != "bad id\twith spaces"
    assert len(replaced.headers["X-Request-Id"]) == 32


async def test_request_id_reaches_the_log_lines_of_the_request(client: Client) -> None:
    stream = io.StringIO()
    handler = configure_logging(LogSettings(level="DEBUG", format="json"), stream)
    try:
        await client.get("/healthz", headers={"X-Request-Id": "trace-me-7"})
    finally:
        logging.getLogger().removeHandler(handler)
    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    access = [line for line in lines if line["logger"] == "aiohttp.access"]
    assert access[-1]["request_id"] == "trace-me-7"
    assert access[-1]["message"].startswith("GET /healthz 200 ")
