"""The SIP side of ``assistline serve``: media workers, and Kamailio in front.

Started from the aiohttp app's ``cleanup_ctx`` after the database (agents'
credentials come from it) and stopped before it: the worker pool first, so
the edge has somewhere to dispatch to, then Kamailio with the agents' HA1
credentials and every worker address the pool may use (all inactive until
a worker answers the dispatcher's OPTIONS pings there, so a grown pool
needs no reload). Without Kamailio, one worker takes the public SIP address itself
and the log says what is missing.

Until routing exists (the click-for-assistance and payment-line issues),
the control process answers calls it has no route for with 404, rather than
letting them ring: only the workers' built-in echo extension answers.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from pathlib import Path

from assistline.queue.agents import AgentDirectory
from assistline.settings import Settings
from assistline.sip import protocol
from assistline.sip.edge import SipEdge, find_kamailio, missing_kamailio_message
from assistline.sip.pool import WorkerPool
from assistline.sip.records import CallRecords
from assistline.sip.sipmsg import ECHO_USER, sip_user
from assistline.store.database import Database
from assistline.tasks import TaskRegistry

logger = logging.getLogger(__name__)


class CallRouter:
    """Receives every worker event; for now it refuses calls it cannot route."""

    def __init__(self, tasks: TaskRegistry, records: CallRecords) -> None:
        self._tasks = tasks
        self.records = records
        self.pool: WorkerPool | None = None

    def __call__(self, worker: str, event: protocol.Event) -> None:
        """Handle one event from ``worker`` (on the event loop)."""
        self.records.observe(worker, event)
        if isinstance(event, protocol.IncomingCall):
            if sip_user(event.to_uri) == ECHO_USER:
                return  # the worker answers its echo extension itself
            logger.info("incoming call %s on %s to %s", event.leg, worker, event.to_uri)
            _ = self._tasks.spawn(f"reject {event.leg}", self._reject(worker, event.leg))
        elif isinstance(event, protocol.CallEnded):
            logger.info("call %s ended: %d %s", event.leg, event.status, event.reason)

    async def _reject(self, worker: str, leg: str) -> None:
        assert self.pool is not None
        await self.pool.command(
            worker, lambda request: protocol.Reject(request, leg, 404, "No route to an agent yet")
        )


@contextlib.asynccontextmanager
async def sip_service(
    settings: Settings, database: Database, tasks: TaskRegistry
) -> AsyncIterator[WorkerPool]:
    """Run the media workers and the SIP edge for the duration of the context."""
    sip = settings.sip
    kamailio = find_kamailio(settings)
    directory = settings.store.data_dir / "sip"
    directory.mkdir(parents=True, exist_ok=True)
    router = CallRouter(tasks, CallRecords(database.pool, tasks))
    pool = WorkerPool.from_settings(sip, directory / "workers.sock", router, tasks)
    if kamailio is None:
        logger.warning("%s", missing_kamailio_message(settings))
        pool = WorkerPool(
            directory / "workers.sock",
            router,
            tasks,
            workers=1,
            max_workers=1,
            base_port=sip.edge_port,
            worker_args=[*pool.worker_args, "--bind", sip.edge_host],
            rtp_ports=pool.rtp_ports,
        )
    router.pool = pool
    await pool.start()
    try:
        if kamailio is None:
            yield pool
            return
        addresses = [("127.0.0.1", sip.worker_base_port + i) for i in range(sip.max_workers)]
        edge = SipEdge(
            settings,
            kamailio,
            tasks,
            addresses,
            directory=directory / "edge",
            tls_certificate=_path(sip.tls_certificate),
            tls_private_key=_path(sip.tls_private_key),
            tls_port=sip.tls_port,
        )
        credentials = await AgentDirectory(database.pool, sip.realm).credentials()
        await edge.start(credentials)
        try:
            # The dispatcher starts every address inactive until an OPTIONS ping
            # answers (up to a second); the workers already running are known
            # good, so calls arriving in the first second are not refused.
            for worker in pool.workers.values():
                await edge.rpc(
                    "dispatcher.set_state", "ap", "1", f"sip:127.0.0.1:{worker.sip_port}"
                )
            yield pool
        finally:
            await edge.stop()
    finally:
        await pool.stop()
        try:
            async with asyncio.timeout(5):  # the pool's last events: legs ended at stop
                await router.records.drain()
        except TimeoutError:
            logger.error("call records still unwritten 5 s after the workers stopped")


def _path(value: str) -> Path | None:
    return Path(value) if value else None
