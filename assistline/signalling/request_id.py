"""Request ids: one per HTTP request, in the response and in every log line.

A caller's ``X-Request-Id`` is kept when it is short and plain (so a
business backend can follow its own id through our logs); otherwise a new
one is made.
"""

from __future__ import annotations

import logging
import re
import uuid

from aiohttp import web
from aiohttp.abc import AbstractAccessLogger

from assistline.logs import request_id_var
from assistline.signalling.problems import Handler

HEADER = "X-Request-Id"
REQUEST_ID_KEY = web.RequestKey("request_id", str)
_ACCEPTABLE = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")


def choose_request_id(offered: str | None) -> str:
    """Keep a well-formed offered id, or make a new one."""
    if offered is not None and _ACCEPTABLE.match(offered):
        return offered
    return uuid.uuid4().hex


@web.middleware
async def request_id_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Tag the request, its logs and its response with a request id."""
    request_id = choose_request_id(request.headers.get(HEADER))
    request[REQUEST_ID_KEY] = request_id
    token = request_id_var.set(request_id)
    try:
        response = await handler(request)
    except web.HTTPException as exc:
        exc.headers[HEADER] = request_id
        raise
    finally:
        request_id_var.reset(token)
    if not response.prepared:
        response.headers[HEADER] = request_id
    return response


class AccessLogger(AbstractAccessLogger):
    """One line per request: method, path, status, duration and request id."""

    def log(self, request: web.BaseRequest, response: web.StreamResponse, time: float) -> None:
        """Log a finished request at INFO on ``aiohttp.access``."""
        self.logger.info(
            "%s %s %d %.1f ms",
            request.method,
            request.path,
            response.status,
            time * 1000,
            extra={"request_id": request.get(REQUEST_ID_KEY)},
        )

    @property
    def enabled(self) -> bool:
        """Skip the work when nobody listens."""
        return self.logger.isEnabledFor(logging.INFO)
