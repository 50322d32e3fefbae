"""System routes: liveness, readiness and the API document."""

from __future__ import annotations

from aiohttp import web

from assistline.signalling.keys import DATABASE_KEY, OPENAPI_KEY
from assistline.signalling.problems import HttpProblem


async def healthz(request: web.Request) -> web.StreamResponse:
    """The process is up and serving HTTP."""
    return web.json_response({"status": "ok"})


async def readyz(request: web.Request) -> web.StreamResponse:
    """The process can do its work: the database answers."""
    if not await request.app[DATABASE_KEY].ping():
        raise HttpProblem(503, "database-unavailable", "the database did not answer within 2 s")
    return web.json_response({"status": "ready", "database": "ok"})


async def openapi_document(request: web.Request) -> web.StreamResponse:
    """The OpenAPI 3.1 document of every route this server serves."""
    return web.json_response(request.app[OPENAPI_KEY])
