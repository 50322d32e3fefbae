"""Typed keys of the aiohttp application's shared state."""

from __future__ import annotations

import asyncio
import uuid
from typing import TYPE_CHECKING, Any

from aiohttp import web

from assistline.ivr.calls import IvrCalls
from assistline.queue.contact_calls import ContactCalls
from assistline.settings import Settings
from assistline.sip.outbound import OutboundCalls
from assistline.sip.pool import WorkerPool
from assistline.sip.routing import AgentCalls
from assistline.store.database import Database
from assistline.tasks import TaskRegistry

if TYPE_CHECKING:  # agent_ws reads these keys: a runtime import would be circular
    from assistline.signalling.agent_ws import AgentConsoles

SETTINGS_KEY = web.AppKey("settings", Settings)
DATABASE_KEY = web.AppKey("database", Database)
TASKS_KEY = web.AppKey("tasks", TaskRegistry)
WORKER_POOL_KEY = web.AppKey("worker_pool", WorkerPool)
OPENAPI_KEY = web.AppKey("openapi", dict[str, Any])
CALLS_KEY = web.AppKey("calls", AgentCalls)
OUTBOUND_CALLS_KEY = web.AppKey("outbound_calls", OutboundCalls)
#: The signalling socket of each contact whose page is joined (assistline.signalling.ws).
CONTACT_CALLS_KEY = web.AppKey("contact_calls", ContactCalls)
#: The payment line's calls (assistline.ivr.calls).
IVR_CALLS_KEY = web.AppKey("ivr_calls", IvrCalls)
CONTACT_SESSIONS_KEY = web.AppKey("contact_sessions", dict[uuid.UUID, web.WebSocketResponse])
#: Scrypt hashes computed at once for console sign-ins (assistline.signalling.agent_auth).
AGENT_KDF_SLOTS_KEY = web.AppKey("agent_kdf_slots", asyncio.Semaphore)
#: The open agent consoles of this node (assistline.signalling.agent_ws).
AGENT_CONSOLES_KEY: web.AppKey[AgentConsoles] = web.AppKey("agent_consoles")
