"""``/api/v1/accounts/{number}``: the accounts the payment line identifies callers with.

The business's system keeps the payment line's view of each account current
(``PUT``, an API key as for contacts): customer id, name, billing ZIP code,
birth date, balance, minimum due, due date and days past due, amounts in
integer cents. Every field is checked and a refusal names it (422, with the
field in ``fields``); a ``PUT`` replaces the account whole (201 when it is
new, 200 otherwise) and writes an ``account.put`` audit row; the lock the
line puts on an account after wrong answers stays as it is. ``GET`` shows
the account as stored, with ``locked_until``.
"""

from __future__ import annotations

import dataclasses
import datetime
import json
import re
from typing import Any

from aiohttp import web

from assistline.signalling.api_keys import API_KEY_PROBLEMS, require_api_key
from assistline.signalling.contact_request import ContactRequestError
from assistline.signalling.contacts import read_json_body, request_problem
from assistline.signalling.keys import DATABASE_KEY
from assistline.signalling.openapi import API_KEY, Operation, json_content, problem
from assistline.signalling.problems import HttpProblem
from assistline.signalling.request_id import REQUEST_ID_KEY
from assistline.store.queries import QUERIES

_NUMBER = re.compile(r"[0-9]{4,19}\Z")
_ZIP = re.compile(r"[0-9]{5}\Z")
_CURRENCY = re.compile(r"[A-Z]{3}\Z")
#: The largest amount an account may show, in cents ($1 billion).
MAX_CENTS = 100_000_000_000


@dataclasses.dataclass(frozen=True, slots=True)
class AccountRecord:
    """An account as the business's system describes it, every field checked."""

    number: str
    customer_id: str
    name: str
    postal_code: str
    birth_date: datetime.date | None
    balance_cents: int
    minimum_due_cents: int
    due_date: datetime.date
    days_past_due: int
    currency: str


def _refuse(field: str, rule: str) -> ContactRequestError:
    return ContactRequestError(f"{field} {rule}", (field,))


def _cents(body: dict[str, Any], field: str, default: int | None = None) -> int:
    value = body.get(field, default)
    if type(value) is not int or not 0 <= value <= MAX_CENTS:
        raise _refuse(field, f"must be a whole number of cents from 0 to {MAX_CENTS}")
    return value


def _date(body: dict[str, Any], field: str, required: bool) -> datetime.date | None:
    value = body.get(field)
    if value is None and not required:
        return None
    if not isinstance(value, str):
        raise _refuse(field, "must be a date, YYYY-MM-DD")
    try:
        return datetime.date.fromisoformat(value)
    except ValueError:
        raise _refuse(field, "must be a date, YYYY-MM-DD") from None


def parse_account(number: str, body: object) -> AccountRecord:
    """The account in a ``PUT`` body, or :class:`ContactRequestError` naming the field."""
    if not _NUMBER.match(number):
        raise ContactRequestError("the account number must be 4 to 19 digits", status=400)
    if not isinstance(body, dict):
        raise ContactRequestError("the body must be a JSON object")
    known = {f.name for f in dataclasses.fields(AccountRecord)} - {"number"}
    unknown = sorted(set(body) - known)
    if unknown:
        raise _refuse(unknown[0][:40], "is not a field of an account")
    customer_id = body.get("customer_id")
    if not isinstance(customer_id, str) or not 1 <= len(customer_id) <= 128:
        raise _refuse("customer_id", "must be 1 to 128 characters")
    name = body.get("name", "")
    if not isinstance(name, str) or len(name) > 200:
        raise _refuse("name", "must be at most 200 characters")
    postal_code = body.get("postal_code")
    if not isinstance(postal_code, str) or not _ZIP.match(postal_code):
        raise _refuse("postal_code", "must be a five-digit ZIP code")
    balance = _cents(body, "balance_cents")
    minimum = _cents(body, "minimum_due_cents", 0)
    if minimum > balance:
        raise _refuse("minimum_due_cents", "must not be more than balance_cents")
    due_date = _date(body, "due_date", required=True)
    assert due_date is not None
    days = body.get("days_past_due", 0)
    if type(days) is not int or not 0 <= days <= 10_000:
        raise _refuse("days_past_due", "must be a whole number of days, 0 to 10000")
    currency = body.get("currency", "USD")
    if not isinstance(currency, str) or not _CURRENCY.match(currency):
        raise _refuse("currency", "must be three capital letters (ISO 4217)")
    return AccountRecord(
        number,
        customer_id,
        name,
        postal_code,
        _date(body, "birth_date", required=False),
        balance,
        minimum,
        due_date,
        days,
        currency,
    )


def _as_json(row: Any) -> dict[str, Any]:
    body = dict(row)
    for field in ("birth_date", "due_date", "locked_until"):
        value = body.get(field)
        body[field] = None if value is None else value.isoformat()
    body.pop("failed_checks", None)
    return body


async def put_account(request: web.Request) -> web.StreamResponse:
    """Create or replace an account of the payment line."""
    require_api_key(request)
    number = request.match_info["number"]
    try:
        account = parse_account(number, await read_json_body(request))
    except ContactRequestError as error:
        raise request_problem(error) from None
    pool = request.app[DATABASE_KEY].pool
    detail = {"request_id": request.get(REQUEST_ID_KEY)}
    async with pool.acquire() as connection, connection.transaction():
        existed = await connection.fetchval(QUERIES["account_for_check"], number) is not None
        await connection.execute(QUERIES["upsert_account"], *dataclasses.astuple(account))
        await connection.execute(
            QUERIES["insert_audit_event"],
            "api",
            "account.put",
            f"account:{number}",
            json.dumps(detail),
        )
        row = await connection.fetchrow(QUERIES["account_for_check"], number)
    return web.json_response(_as_json(row), status=200 if existed else 201)


async def get_account(request: web.Request) -> web.StreamResponse:
    """An account of the payment line as stored."""
    require_api_key(request)
    number = request.match_info["number"]
    row = await request.app[DATABASE_KEY].pool.fetchrow(QUERIES["account_for_check"], number)
    if row is None:
        raise HttpProblem(404, "account-not-found", "no account has that number")
    return web.json_response(_as_json(row))


ACCOUNT_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["customer_id", "postal_code", "balance_cents", "due_date"],
    "properties": {
        "customer_id": {"type": "string", "minLength": 1, "maxLength": 128},
        "name": {"type": "string", "maxLength": 200},
        "postal_code": {"type": "string", "pattern": "^[0-9]{5}$"},
        "birth_date": {"type": ["string", "null"], "format": "date"},
        "balance_cents": {"type": "integer", "minimum": 0, "maximum": MAX_CENTS},
        "minimum_due_cents": {"type": "integer", "minimum": 0, "maximum": MAX_CENTS},
        "due_date": {"type": "string", "format": "date"},
        "days_past_due": {"type": "integer", "minimum": 0, "maximum": 10000},
        "currency": {"type": "string", "pattern": "^[A-Z]{3}$"},
    },
    "additionalProperties": False,
}
_NUMBER_PARAMETER = {
    "name": "number",
    "in": "path",
    "required": True,
    "schema": {"type": "string", "pattern": "^[0-9]{4,19}$"},
}

OPERATIONS: tuple[Operation, ...] = (
    Operation(
        "PUT",
        "/api/v1/accounts/{number}",
        put_account,
        "Create or replace an account of the payment line (audited)",
        {
            "200": {"description": "replaced", "content": json_content(ACCOUNT_SCHEMA)},
            "201": {"description": "created", "content": json_content(ACCOUNT_SCHEMA)},
            "400": problem("the account number is not 4 to 19 digits"),
            "422": problem("a field is invalid; fields names it"),
            **API_KEY_PROBLEMS,
        },
        tag="accounts",
        security=API_KEY,
        parameters=(_NUMBER_PARAMETER,),
        request_body={"required": True, "content": json_content(ACCOUNT_SCHEMA)},
    ),
    Operation(
        "GET",
        "/api/v1/accounts/{number}",
        get_account,
        "An account of the payment line as stored",
        {
            "200": {"description": "the account", "content": json_content(ACCOUNT_SCHEMA)},
            "404": problem("no such account"),
            **API_KEY_PROBLEMS,
        },
        tag="accounts",
        security=API_KEY,
        parameters=(_NUMBER_PARAMETER,),
    ),
)
