"""``/api/v1/accounts/{number}``: the payment line's accounts, put and read by the business."""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from assistline.settings import Settings
from assistline.signalling.app import create_app
from assistline.signalling.problems import PROBLEM_CONTENT_TYPE

Client = TestClient[web.Request, web.Application]
KEY = "accounts-api-key-0123456789"
ACCOUNT: dict[str, Any] = {
    "customer_id": "cust-7",
    "name": "Ann Payer",
    "postal_code": "94105",
    "birth_date": "1980-02-29",
    "balance_cents": 4210,
    "minimum_due_cents": 2500,
    "due_date": "2026-12-01",
    "days_past_due": 12,
}


@pytest.fixture
async def client(settings: Settings) -> AsyncIterator[Client]:
    http = dataclasses.replace(settings.http, api_keys=(KEY,))
    app = create_app(dataclasses.replace(settings, http=http))
    headers = {"Authorization": f"Bearer {KEY}"}
    async with TestClient(TestServer(app), headers=headers) as client:
        yield client


async def test_put_creates_then_replaces_and_get_shows_the_account(
    client: Client, database_url: str
) -> None:
    response = await client.put("/api/v1/accounts/123456", json=ACCOUNT)
    assert response.status == 201, await response.text()
    stored = await response.json()
    assert stored == {"number": "123456", **ACCOUNT, "currency": "USD", "locked_until": None}
    changed = {**ACCOUNT, "balance_cents": 0, "minimum_due_cents": 0}
    response = await client.put("/api/v1/accounts/123456", json=changed)
    assert response.status == 200
    response = await client.get("/api/v1/accounts/123456")
    assert (await response.json())["balance_cents"] == 0
    connection = await asyncpg.connect(database_url)
    try:
        audited = await connection.fetchval(
            "SELECT count(*) FROM audit_event WHERE action = 'account.put'"
            " AND subject = 'account:123456'"
        )
    finally:
        await connection.close()
    assert audited == 2


@pytest.mark.parametrize(
    ("change", "field", "detail"),
    [
        ({"postal_code": "9410"}, "postal_code", "postal_code must be a five-digit ZIP code"),
        ({"balance_cents": 12.5}, "balance_cents", "balance_cents must be a whole number"),
        ({"minimum_due_cents": 5000}, "minimum_due_cents", "must not be more than balance"),
        ({"due_date": "12/01/2026"}, "due_date", "due_date must be a date, YYYY-MM-DD"),
        ({"customer_id": ""}, "customer_id", "customer_id must be 1 to 128 characters"),
        ({"currency": "usd"}, "currency", "currency must be three capital letters"),
        ({"card_number": "4111111111111111"}, "card_number", "is not a field of an account"),
    ],
)
async def test_a_bad_field_is_refused_by_name_and_nothing_is_stored(
    client: Client, change: dict[str, Any], field: str, detail: str
) -> None:
    response = await client.put("/api/v1/accounts/123456", json={**ACCOUNT, **change})
    assert response.status == 422
    assert response.content_type == PROBLEM_CONTENT_TYPE
    body = await response.json()
    assert body["fields"] == [field] and detail in body["detail"]
    assert "4111111111111111" not in await response.text()
    assert (await client.get("/api/v1/accounts/123456")).status == 404


async def test_bad_numbers_unknown_accounts_and_missing_keys(client: Client) -> None:
    assert (await client.put("/api/v1/accounts/12-34", json=ACCOUNT)).status == 400
    response = await client.get("/api/v1/accounts/999999")
    assert response.status == 404
    assert (await response.json())["type"] == "urn:assistline:problem:account-not-found"
    unauthorised = await client.get("/api/v1/accounts/999999", headers={"Authorization": ""})
    assert unauthorised.status == 401
