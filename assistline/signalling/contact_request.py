"""The body of a request to create a contact, checked field by field.

Pure code: :func:`decode_body` turns the raw bytes into JSON values and
:func:`parse_new_contact` turns those into a :class:`NewContact`, or raise
:class:`ContactRequestError` naming the field, its limit and the HTTP status
the API answers with. Everything that passes can be stored as it is:
PostgreSQL's ``text`` and ``jsonb`` refuse NUL characters and unpaired
surrogates, so those are refused here, as a 422 rather than a 500.
"""

from __future__ import annotations

import dataclasses
import datetime
import json
import re
from typing import Any

from assistline.errors import AssistlineError

#: Largest request body accepted (bytes).
MAX_BODY_BYTES = 64 * 1024
#: Largest ``fields`` object, measured as compact UTF-8 JSON (bytes).
MAX_FIELDS_BYTES = 32 * 1024
#: Most entries of ``context_trail``.
MAX_TRAIL_ITEMS = 50
MEDIA = ("voice", "video")
KNOWN_FIELDS = frozenset(
    (
        "customer_id",
        "account",
        "balance_cents",
        "currency",
        "step",
        "fields",
        "context_trail",
        "media",
    )
)
_TRAIL_KEYS = frozenset(("at", "step", "detail"))
_BIGINT_MAX = 2**63 - 1
_CURRENCY = re.compile(r"[A-Z]{3}")
# Identifiers and labels end up in logs, SIP headers and the agent's screen:
# no control characters there; no unpaired surrogates anywhere (not UTF-8).
_CONTROL_OR_SURROGATE = re.compile("[\x00-\x1f\x7f-\x9f\ud800-\udfff]")
# Free-form JSON may hold control characters (escaped in jsonb), except NUL.
_JSONB_UNSAFE = re.compile("[\x00\ud800-\udfff]")


class ContactRequestError(AssistlineError, ValueError):
    """The request to create a contact was refused; the message names the field and the rule."""

    def __init__(
        self,
        message: str,
        fields: tuple[str, ...] = (),
        *,
        status: int = 422,
        kind: str = "invalid-field",
    ) -> None:
        super().__init__(message)
        self.fields = fields
        self.status = status
        self.kind = kind


@dataclasses.dataclass(frozen=True, slots=True)
class NewContact:
    """A contact as the business backend described it, every field checked."""

    customer_id: str
    account: str
    balance_cents: int | None = None
    currency: str = "USD"
    step: str | None = None
    fields: dict[str, Any] = dataclasses.field(default_factory=dict)
    context_trail: list[dict[str, Any]] = dataclasses.field(default_factory=list)
    media: str = "voice"


def encode_json(value: Any) -> str:
    """Compact JSON, as stored and as ``fields`` is measured."""
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"), allow_nan=False)


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _finite_float(text: str) -> float:
    number = float(text)
    if number in (float("inf"), float("-inf")):
        raise ValueError(f"the number {text[:20]} is too large")
    return number


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    found: dict[str, Any] = {}
    for key, value in pairs:
        if key in found:
            raise ValueError(f"the key {key[:64]!r} appears twice in one object")
        found[key] = value
    return found


def decode_body(body: bytes) -> Any:
    """The JSON value of a request body; 413 when over 64 KB, 400 when not strict JSON.

    Strict: UTF-8 only, no ``NaN`` or ``Infinity``, no number too large for a
    double, no key twice in one object (which value would count is a guess).
    """
    if len(body) > MAX_BODY_BYTES:
        raise ContactRequestError(
            f"the body is {len(body)} bytes; at most {MAX_BODY_BYTES} are accepted",
            status=413,
            kind="payload-too-large",
        )
    try:
        return json.loads(
            body.decode("utf-8"),
            parse_constant=_refuse_constant,
            parse_float=_finite_float,
            object_pairs_hook=_unique_keys,
        )
    except (ValueError, RecursionError) as error:
        # ValueError covers bad UTF-8, bad JSON and integers of over 4300 digits.
        raise ContactRequestError(
            f"the body is not valid JSON: {str(error)[:200]}", status=400, kind="invalid-json"
        ) from None


def _text(
    data: dict[str, Any], name: str, *, limit: int, required: bool = False, where: str = ""
) -> str | None:
    value = data.get(name)
    label = where or name
    if value is None:
        if required:
            raise ContactRequestError(f"{label} is required", (label,))
        return None
    if not isinstance(value, str):
        raise ContactRequestError(f"{label} must be a string", (label,))
    if required and not value.strip():
        raise ContactRequestError(f"{label} must not be blank", (label,))
    if len(value) > limit:
        raise ContactRequestError(
            f"{label} is {len(value)} characters long; at most {limit} are accepted", (label,)
        )
    if _CONTROL_OR_SURROGATE.search(value):
        raise ContactRequestError(f"{label} must not hold control characters", (label,))
    return value


def _free_json_is_storable(value: Any) -> bool:
    # Iterative: json.loads allows nesting deeper than a recursive walk would.
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            if _JSONB_UNSAFE.search(item):
                return False
        elif isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return True


def _balance(value: Any) -> int | None:
    if value is None:
        return None
    # bool is an int in Python, never in this API.
    if not isinstance(value, int) or isinstance(value, bool):
        raise ContactRequestError(
            "balance_cents must be an integer number of cents", ("balance_cents",)
        )
    if not 0 <= value <= _BIGINT_MAX:
        raise ContactRequestError(
            f"balance_cents must be 0..{_BIGINT_MAX}, not {value}", ("balance_cents",)
        )
    return value


def _fields(value: Any) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise ContactRequestError("fields must be a JSON object", ("fields",))
    if not _free_json_is_storable(value):
        raise ContactRequestError(
            "fields must not hold NUL characters or unpaired surrogates", ("fields",)
        )
    size = len(encode_json(value).encode("utf-8"))
    if size > MAX_FIELDS_BYTES:
        raise ContactRequestError(
            f"fields is {size} bytes of JSON; at most {MAX_FIELDS_BYTES} are accepted",
            ("fields",),
            status=413,
            kind="field-too-large",
        )
    return value


def _trail_entry(index: int, item: Any) -> dict[str, Any]:
    where = f"context_trail[{index}]"
    if not isinstance(item, dict):
        raise ContactRequestError(f"{where} must be an object with at, step and detail", (where,))
    unknown = sorted(set(item) - _TRAIL_KEYS)
    if unknown:
        names = tuple(f"{where}.{key[:64]}" for key in unknown)
        raise ContactRequestError(f"unknown field: {', '.join(names)}", names)
    at = _text(item, "at", limit=64, required=True, where=f"{where}.at")
    assert at is not None
    try:
        moment = datetime.datetime.fromisoformat(at)
    except ValueError:
        moment = None
    if moment is None or moment.tzinfo is None:
        raise ContactRequestError(
            f"{where}.at must be an ISO 8601 date and time with its offset, "
            "such as 2025-01-31T14:05:00Z",
            (f"{where}.at",),
        )
    step = _text(item, "step", limit=200, required=True, where=f"{where}.step")
    entry: dict[str, Any] = {"at": at, "step": step}
    detail = _text(item, "detail", limit=1000, where=f"{where}.detail")
    if detail is not None:
        entry["detail"] = detail
    return entry


def _trail(value: Any) -> list[dict[str, Any]]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise ContactRequestError("context_trail must be a list", ("context_trail",))
    if len(value) > MAX_TRAIL_ITEMS:
        raise ContactRequestError(
            f"context_trail has {len(value)} entries; at most {MAX_TRAIL_ITEMS} are accepted",
            ("context_trail",),
        )
    return [_trail_entry(index, item) for index, item in enumerate(value)]


def parse_media(data: dict[str, Any]) -> str:
    """The ``media`` of a request: ``voice`` (the default) or ``video``."""
    media = data.get("media")
    if media is None:
        return "voice"
    if media not in MEDIA:
        raise ContactRequestError('media must be "voice" or "video"', ("media",))
    assert isinstance(media, str)
    return media


def refuse_unknown(data: Any, known: frozenset[str]) -> dict[str, Any]:
    """``data`` as an object with no key outside ``known``; 422 naming the others."""
    if not isinstance(data, dict):
        raise ContactRequestError("the body must be a JSON object")
    unknown = tuple(sorted(key[:64] for key in set(data) - known))
    if unknown:
        raise ContactRequestError(f"unknown field: {', '.join(unknown)}", unknown)
    return data


def parse_new_contact(data: Any) -> NewContact:
    """A :class:`NewContact` from a decoded body; the first wrong field raises."""
    data = refuse_unknown(data, KNOWN_FIELDS)
    customer_id = _text(data, "customer_id", limit=128, required=True)
    account = _text(data, "account", limit=64, required=True)
    assert customer_id is not None and account is not None
    currency = data.get("currency")
    if currency is None:
        currency = "USD"
    elif not isinstance(currency, str) or not _CURRENCY.fullmatch(currency):
        raise ContactRequestError(
            "currency must be an ISO 4217 code of 3 capital letters, such as USD", ("currency",)
        )
    return NewContact(
        customer_id=customer_id,
        account=account,
        balance_cents=_balance(data.get("balance_cents")),
        currency=currency,
        step=_text(data, "step", limit=200),
        fields=_fields(data.get("fields")),
        context_trail=_trail(data.get("context_trail")),
        media=parse_media(data),
    )


def demo_contact(media: str) -> NewContact:
    """The contact the demo route creates: a card payment that just failed."""
    return NewContact(
        customer_id="demo-customer",
        account="DEMO-0001",
        balance_cents=12345,
        currency="USD",
        step="payment failed: card declined",
        fields={"plan": "monthly", "due_date": "2025-01-31", "attempts_today": 2},
        media=media,
    )


_TRAIL_ENTRY_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["at", "step"],
    "additionalProperties": False,
    "properties": {
        "at": {"type": "string", "format": "date-time", "description": "with its offset"},
        "step": {"type": "string", "minLength": 1, "maxLength": 200},
        "detail": {"type": "string", "maxLength": 1000},
    },
}
#: The fields both the request and the stored contact have, with the rules above.
CONTACT_FIELDS_SCHEMA: dict[str, Any] = {
    "customer_id": {"type": "string", "minLength": 1, "maxLength": 128},
    "account": {"type": "string", "minLength": 1, "maxLength": 64},
    "balance_cents": {"type": ["integer", "null"], "minimum": 0, "maximum": _BIGINT_MAX},
    "currency": {"type": "string", "pattern": "^[A-Z]{3}$", "description": "ISO 4217"},
    "step": {
        "type": ["string", "null"],
        "maxLength": 200,
        "description": "the page or step the customer was on",
    },
    "fields": {
        "type": "object",
        "description": f"free-form context for the agent, at most {MAX_FIELDS_BYTES} bytes "
        "as compact UTF-8 JSON (413 beyond)",
    },
    "context_trail": {
        "type": "array",
        "maxItems": MAX_TRAIL_ITEMS,
        "items": _TRAIL_ENTRY_SCHEMA,
        "description": "what the customer did before asking, oldest first",
    },
    "media": {"enum": list(MEDIA), "description": "what the customer asks for"},
}
NEW_CONTACT_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["customer_id", "account"],
    "additionalProperties": False,
    "description": f"at most {MAX_BODY_BYTES} bytes; unknown fields are refused (422)",
    "properties": {
        **CONTACT_FIELDS_SCHEMA,
        "currency": {**CONTACT_FIELDS_SCHEMA["currency"], "default": "USD"},
        "media": {**CONTACT_FIELDS_SCHEMA["media"], "default": "voice"},
    },
}
