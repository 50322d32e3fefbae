"""The aiohttp application: routes, middlewares and the resources it owns.

:func:`create_app` builds the app from the settings; resources open and
close in ``cleanup_ctx`` in a fixed order (database, background tasks, the
SIP side: media workers and Kamailio, then the agent consoles' event pump,
which watches the SIP side's contact calls), so shutdown unhooks the
consoles, stops calls, cancels tasks next, and closes the database they use
last.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

from aiohttp import web

from assistline.settings import Settings
from assistline.signalling import (
    accounts,
    agent_auth,
    agent_ws,
    calls,
    contacts,
    system,
    web_client,
    ws,
)
from assistline.signalling.keys import (
    AGENT_CONSOLES_KEY,
    AGENT_KDF_SLOTS_KEY,
    CALLS_KEY,
    CONTACT_CALLS_KEY,
    CONTACT_SESSIONS_KEY,
    DATABASE_KEY,
    IVR_CALLS_KEY,
    OPENAPI_KEY,
    OUTBOUND_CALLS_KEY,
    SETTINGS_KEY,
    TASKS_KEY,
    WORKER_POOL_KEY,
)
from assistline.signalling.openapi import (
    Operation,
    add_operations,
    build_document,
    json_content,
    problem,
)
from assistline.signalling.problems import problem_middleware
from assistline.signalling.request_id import request_id_middleware
from assistline.sip.service import sip_service
from assistline.store.database import open_store
from assistline.tasks import TaskRegistry

_STATUS_SCHEMA = {
    "type": "object",
    "required": ["status"],
    "properties": {"status": {"type": "string"}},
}
_HTML = {"200": {"description": "an HTML page", "content": {"text/html": {}}}}

OPERATIONS: tuple[Operation, ...] = (
    Operation(
        "GET",
        "/healthz",
        system.healthz,
        "Liveness: the process is up",
        {"200": {"description": "up", "content": json_content(_STATUS_SCHEMA)}},
    ),
    Operation(
        "GET",
        "/readyz",
        system.readyz,
        "Readiness: the database answers",
        {
            "200": {"description": "ready", "content": json_content(_STATUS_SCHEMA)},
            "503": problem("the database is unreachable"),
        },
    ),
    Operation(
        "GET",
        "/api/v1/openapi.json",
        system.openapi_document,
        "This document",
        {"200": {"description": "OpenAPI 3.1", "content": json_content({"type": "object"})}},
    ),
    Operation("GET", "/", web_client.customer_page, "The customer page", _HTML, tag="web"),
    Operation("GET", "/agent", web_client.agent_console, "The agent console", _HTML, tag="web"),
    Operation(
        "GET",
        "/web/{path:.+}",
        web_client.web_asset,
        "A file of the web client",
        {"200": {"description": "the file"}, "404": problem("no such file")},
        tag="web",
        parameters=(
            {"name": "path", "in": "path", "required": True, "schema": {"type": "string"}},
        ),
    ),
    *calls.OPERATIONS,
    *accounts.OPERATIONS,
    *contacts.OPERATIONS,
    *ws.OPERATIONS,
    *agent_auth.OPERATIONS,
    *agent_ws.OPERATIONS,
)


async def _store_ctx(app: web.Application) -> AsyncIterator[None]:
    async with open_store(app[SETTINGS_KEY].store) as database:
        app[DATABASE_KEY] = database
        yield


async def _tasks_ctx(app: web.Application) -> AsyncIterator[None]:
    registry = TaskRegistry()
    app[TASKS_KEY] = registry
    yield
    await registry.close(timeout=app[SETTINGS_KEY].http.shutdown_timeout)


async def _sip_ctx(app: web.Application) -> AsyncIterator[None]:
    settings = app[SETTINGS_KEY]
    if not settings.sip.enabled:
        yield
        return
    async with sip_service(settings, app[DATABASE_KEY], app[TASKS_KEY]) as service:
        app[WORKER_POOL_KEY] = service.pool
        app[CALLS_KEY] = service.calls
        app[OUTBOUND_CALLS_KEY] = service.outbound
        app[CONTACT_CALLS_KEY] = service.contacts
        app[IVR_CALLS_KEY] = service.ivr
        yield


def create_app(settings: Settings) -> web.Application:
    """Build the application; its resources open when it starts."""
    app = web.Application(middlewares=[request_id_middleware, problem_middleware])
    app[SETTINGS_KEY] = settings
    app[OPENAPI_KEY] = build_document(OPERATIONS)
    app[CONTACT_SESSIONS_KEY] = {}
    app[AGENT_CONSOLES_KEY] = agent_ws.AgentConsoles()
    app[AGENT_KDF_SLOTS_KEY] = asyncio.Semaphore(agent_auth.KDF_SLOTS)
    app.on_shutdown.append(ws.close_sessions)
    app.on_shutdown.append(agent_ws.close_consoles)
    app.cleanup_ctx.append(_store_ctx)
    app.cleanup_ctx.append(_tasks_ctx)
    app.cleanup_ctx.append(_sip_ctx)
    app.cleanup_ctx.append(agent_ws.consoles_ctx)
    add_operations(app, OPERATIONS)
    return app
