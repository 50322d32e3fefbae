"""HTTP errors as problem details (RFC 9457), with stable types.

Every error response of the API is ``application/problem+json``: a ``type``
that never changes for the same kind of error (``urn:assistline:problem:…``),
a human ``title``, the ``status``, a ``detail`` naming what was wrong (the
field, the limit), and the request id. A stack trace never leaves the server.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable, Mapping
from http import HTTPStatus
from typing import Any

from aiohttp import web

from assistline.errors import AssistlineError
from assistline.logs import request_id_var

logger = logging.getLogger(__name__)
PROBLEM_CONTENT_TYPE = "application/problem+json"
TYPE_PREFIX = "urn:assistline:problem:"
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

# Types for the statuses aiohttp itself raises (routing, body limits).
_STATUS_TYPES = {
    400: "bad-request",
    401: "unauthorized",
    403: "forbidden",
    404: "not-found",
    405: "method-not-allowed",
    406: "not-acceptable",
    409: "conflict",
    413: "payload-too-large",
    415: "unsupported-media-type",
    422: "unprocessable-content",
    429: "too-many-requests",
    500: "internal-error",
    503: "service-unavailable",
}


class HttpProblem(AssistlineError):
    """The request could not be served; the response's detail says why."""

    def __init__(
        self,
        status: int,
        problem_type: str,
        detail: str,
        *,
        headers: Mapping[str, str] | None = None,
        **extensions: Any,
    ) -> None:
        super().__init__(detail)
        self.status = status
        self.problem_type = problem_type
        self.detail = detail
        # Response headers the status calls for (WWW-Authenticate, Retry-After).
        self.headers = dict(headers or {})
        self.extensions = extensions


def problem_type_uri(slug: str) -> str:
    """The stable ``type`` URI of a problem slug."""
    return f"{TYPE_PREFIX}{slug}"


def problem_response(
    status: int, slug: str, detail: str, headers: dict[str, str] | None = None, **extensions: Any
) -> web.Response:
    """A problem-details response."""
    body = {
        "type": problem_type_uri(slug),
        "title": HTTPStatus(status).phrase,
        "status": status,
        "detail": detail,
        **extensions,
    }
    request_id = request_id_var.get()
    if request_id is not None:
        body["request_id"] = request_id
    return web.Response(
        status=status,
        body=json.dumps(body).encode(),
        content_type=PROBLEM_CONTENT_TYPE,
        headers=headers,
    )


@web.middleware
async def problem_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Turn every error into problem details; log unexpected ones without leaking them."""
    try:
        return await handler(request)
    except HttpProblem as problem:
        return problem_response(
            problem.status,
            problem.problem_type,
            problem.detail,
            headers=problem.headers or None,
            **problem.extensions,
        )
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        slug = _STATUS_TYPES.get(exc.status, "client-error" if exc.status < 500 else "server-error")
        detail = exc.reason
        if exc.status == 405:
            detail = f"{request.method} is not allowed on {request.path}"
        elif exc.status == 404:
            detail = f"no resource at {request.path}"
        headers = {k: v for k, v in exc.headers.items() if k.lower() in ("allow", "retry-after")}
        return problem_response(exc.status, slug, detail, headers=headers)
    except Exception:
        logger.exception("unexpected error serving %s %s", request.method, request.path)
        return problem_response(500, "internal-error", "the server failed; the log has details")
