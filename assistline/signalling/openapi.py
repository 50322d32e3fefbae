"""The API document: every route the app serves, declared once.

Routes are declared as :class:`Operation` values that carry both what the
router needs (method, path, handler) and what the OpenAPI 3.1 document says
about them; the app registers exactly the declared operations, so the
document cannot drift from the router (a test checks both ways).
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

from aiohttp import web

import assistline
from assistline.signalling.problems import PROBLEM_CONTENT_TYPE

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

PROBLEM_SCHEMA: dict[str, Any] = {
    "type": "object",
    "description": "Problem details (RFC 9457)",
    "required": ["type", "title", "status", "detail"],
    "properties": {
        "type": {"type": "string", "description": "stable URN naming the kind of problem"},
        "title": {"type": "string"},
        "status": {"type": "integer"},
        "detail": {"type": "string", "description": "what was wrong, naming the field"},
        "request_id": {"type": "string"},
        "fields": {
            "type": "array",
            "items": {"type": "string"},
            "description": "the request fields that were wrong, when the problem is about some",
        },
    },
}
#: How the business backend authenticates: ``Authorization: Bearer <one of http.api_keys>``.
SECURITY_SCHEMES: dict[str, Any] = {
    "apiKey": {"type": "http", "scheme": "bearer", "description": "one of http.api_keys"}
}
API_KEY: tuple[dict[str, list[str]], ...] = ({"apiKey": []},)


def json_content(schema: dict[str, Any]) -> dict[str, Any]:
    """A response or request body of JSON with ``schema``."""
    return {"application/json": {"schema": schema}}


def problem(description: str) -> dict[str, Any]:
    """A documented error response."""
    return {
        "description": description,
        "content": {PROBLEM_CONTENT_TYPE: {"schema": {"$ref": "#/components/schemas/Problem"}}},
    }


@dataclasses.dataclass(frozen=True, slots=True)
class Operation:
    """One route: how it is served and how the document describes it."""

    method: str
    path: str
    handler: Handler
    summary: str
    responses: dict[str, dict[str, Any]]
    tag: str = "system"
    parameters: tuple[dict[str, Any], ...] = ()
    request_body: dict[str, Any] | None = None
    #: Security requirements (``API_KEY``); empty: open to anyone.
    security: tuple[dict[str, list[str]], ...] = ()


def add_operations(app: web.Application, operations: Iterable[Operation]) -> None:
    """Register each operation on the app's router."""
    for op in operations:
        app.router.add_route(op.method, op.path, op.handler)


def document_path(path: str) -> str:
    """The OpenAPI form of an aiohttp path: ``/web/{path:.+}`` becomes ``/web/{path}``."""
    return re.sub(r"\{(\w+):[^}]+\}", r"{\1}", path)


def build_document(operations: Iterable[Operation]) -> dict[str, Any]:
    """The OpenAPI 3.1 document of ``operations``."""
    paths: dict[str, dict[str, Any]] = {}
    for op in operations:
        entry: dict[str, Any] = {
            "summary": op.summary,
            "operationId": f"{op.method.lower()}_{op.handler.__name__}",
            "tags": [op.tag],
            "responses": op.responses,
        }
        if op.parameters:
            entry["parameters"] = list(op.parameters)
        if op.request_body is not None:
            entry["requestBody"] = op.request_body
        if op.security:
            entry["security"] = list(op.security)
        paths.setdefault(document_path(op.path), {})[op.method.lower()] = entry
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "assistline",
            "version": assistline.__version__,
            "description": "Telephony and real-time media for contact centres that collect "
            "payments. Errors are problem details (RFC 9457).",
        },
        "paths": paths,
        "components": {
            "schemas": {"Problem": PROBLEM_SCHEMA},
            "securitySchemes": SECURITY_SCHEMES,
        },
    }
