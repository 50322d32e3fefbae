"""Typed keys of the aiohttp application's shared state."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from assistline.settings import Settings
from assistline.sip.pool import WorkerPool
from assistline.store.database import Database
from assistline.tasks import TaskRegistry

SETTINGS_KEY = web.AppKey("settings", Settings)
DATABASE_KEY = web.AppKey("database", Database)
TASKS_KEY = web.AppKey("tasks", TaskRegistry)
WORKER_POOL_KEY = web.AppKey("worker_pool", WorkerPool)
OPENAPI_KEY = web.AppKey("openapi", dict[str, Any])
