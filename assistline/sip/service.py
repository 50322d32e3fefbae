"""The SIP side of ``assistline serve``: media workers, and Kamailio in front.

Started from the aiohttp app's ``cleanup_ctx`` after the database (agents'
credentials come from it) and stopped before it: the worker pool first, so
the edge has somewhere to dispatch to, then Kamailio with the agents' HA1
credentials and every worker address the pool may use (all inactive until
a worker answers the dispatcher's OPTIONS pings there, so a grown pool
needs no reload). Without Kamailio, one worker takes the public SIP address itself
and the log says what is missing.

Calls are routed by :class:`CallRouter`: the workers answer their echo
extension themselves; a call dialled to an agent's SIP username is bridged
to that agent's phone and recorded (:mod:`assistline.sip.routing`; with
Kamailio only, since it is Kamailio that knows where phones are
registered); every other call is answered with 404 rather than left to
ring. Recordings go to ``<data dir>/recordings``, their rows to PostgreSQL
(:mod:`assistline.sip.recordings`). Calls out go through
:class:`~assistline.sip.outbound.OutboundCalls` (``SipService.outbound``),
whose greeting gives every worker the ``[trunk]`` account at its hello.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import time
from collections.abc import AsyncIterator
from pathlib import Path

from assistline.ivr.calls import IvrCalls
from assistline.ivr.line import payment_line
from assistline.queue.agents import AgentDirectory
from assistline.queue.contact_calls import ContactCalls
from assistline.settings import Settings
from assistline.signalling.turn import ice_servers
from assistline.sip import protocol
from assistline.sip.edge import SipEdge, find_kamailio, missing_kamailio_message
from assistline.sip.outbound import OutboundCalls
from assistline.sip.pool import WorkerPool
from assistline.sip.recordings import RecordingStore
from assistline.sip.records import CallRecords
from assistline.sip.routing import (
    AgentCalls,
    DirectoryAgents,
    console_base_url,
    edge_uri_host,
    screen_pop_url,
)
from assistline.sip.sipmsg import ECHO_USER, sip_user
from assistline.store.database import Database
from assistline.store.listener import listening
from assistline.tasks import TaskRegistry

logger = logging.getLogger(__name__)


class CallRouter:
    """Receives every worker event: records it, routes calls, refuses what it cannot route."""

    def __init__(self, tasks: TaskRegistry, records: CallRecords) -> None:
        self._tasks = tasks
        self.records = records
        self.pool: WorkerPool | None = None
        self.calls: AgentCalls | None = None
        self.outbound: OutboundCalls | None = None
        self.contacts: ContactCalls | None = None
        self.ivr: IvrCalls | None = None

    def __call__(self, worker: str, event: protocol.Event) -> None:
        """Handle one event from ``worker`` (on the event loop)."""
        if self.ivr is not None and self.ivr.observe(worker, event):
            return  # a payment line call (assistline.ivr.calls)
        if self.contacts is not None and self.contacts.observe(worker, event):
            return  # a contact's WebRTC or agent leg (assistline.queue.contact_calls)
        self.rest(worker, event)

    def rest(self, worker: str, event: protocol.Event) -> None:
        """Handle an event that is not about a contact's call."""
        if self.outbound is not None:
            self.outbound.observe(worker, event)  # frees a trunk place at hangup
        calls = self.calls
        # An event held back until its leg is claimed reaches the records then.
        if calls is None or not calls.observe(worker, event):
            self.records.observe(worker, event)
        if isinstance(event, protocol.IncomingCall):
            if sip_user(event.to_uri) == ECHO_USER:
                return  # the worker answers its echo extension itself
            logger.info("incoming call %s on %s to %s", event.leg, worker, event.to_uri)
            if self.ivr is not None and self.ivr.take(worker, event):
                return
            if calls is not None and calls.take(worker, event):
                return
            _ = self._tasks.spawn(f"reject {event.leg}", self._reject(worker, event.leg))
        elif isinstance(event, protocol.CallEnded):
            logger.info("call %s ended: %d %s", event.leg, event.status, event.reason)

    async def _reject(self, worker: str, leg: str) -> None:
        assert self.pool is not None
        await self.pool.command(
            worker, lambda request: protocol.Reject(request, leg, 404, "No route")
        )


#: The channel agent credential changes are notified on (migration 0011).
AGENTS_CHANNEL = "assistline_agents"


class CredentialsReload:
    """Reloads the edge's credentials table when agents change; one reload at a time."""

    def __init__(self, edge: SipEdge, agents: AgentDirectory, tasks: TaskRegistry) -> None:
        self._edge, self._agents, self._tasks = edge, agents, tasks
        self._running = False
        self._again = False

    def changed(self, payload: str) -> None:
        """An agent's credentials changed (or the listener reconnected)."""
        if self._running:
            self._again = True
            return
        self._running = True
        _ = self._tasks.spawn("reload agent credentials", self._reload())

    async def _reload(self) -> None:
        try:
            while True:
                self._again = False
                try:
                    await self._edge.set_credentials(await self._agents.credentials())
                    logger.info("agents' SIP credentials reloaded at the edge")
                except Exception as error:  # noqa: BLE001 - the next change tries again
                    logger.error("reloading agents' SIP credentials failed: %s", error)
                if not self._again:
                    return
        finally:
            self._running = False


@dataclasses.dataclass(frozen=True, slots=True)
class SipService:
    """What the SIP side offers the rest of the control process while it runs."""

    pool: WorkerPool
    calls: AgentCalls
    outbound: OutboundCalls
    contacts: ContactCalls
    ivr: IvrCalls


@contextlib.asynccontextmanager
async def sip_service(
    settings: Settings, database: Database, tasks: TaskRegistry
) -> AsyncIterator[SipService]:
    """Run the media workers and the SIP edge for the duration of the context."""
    async with contextlib.AsyncExitStack() as stack:
        async with _sip_service(settings, database, tasks, stack) as service:
            yield service


@contextlib.asynccontextmanager
async def _sip_service(
    settings: Settings, database: Database, tasks: TaskRegistry, stack: contextlib.AsyncExitStack
) -> AsyncIterator[SipService]:
    sip = settings.sip
    kamailio = find_kamailio(settings)
    directory = settings.store.data_dir / "sip"
    directory.mkdir(parents=True, exist_ok=True)
    recordings_dir = settings.store.data_dir / "recordings"
    recordings_dir.mkdir(parents=True, exist_ok=True)
    router = CallRouter(tasks, CallRecords(database.pool, tasks))
    pool = WorkerPool.from_settings(sip, directory / "workers.sock", router, tasks, settings.webrtc)
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
    base_url = console_base_url(settings.http)
    router.calls = calls = AgentCalls(
        pool,
        DirectoryAgents(database.pool),
        tasks,
        router.records,
        RecordingStore(database.pool, tasks),
        edge=None if kamailio is None else edge_uri_host(sip.edge_host, sip.edge_port),
        recordings_dir=recordings_dir,
        console_url=lambda call_id: screen_pop_url(base_url, call_id),
        record=sip.record_calls,
        recording_rate=sip.bridge_rate,
    )
    # Outbound calls (assistline.sip.outbound); every worker gets the trunk account at hello.
    router.outbound = outbound = OutboundCalls(
        pool,
        settings.trunk,
        AgentDirectory(database.pool, sip.realm),
        edge=None if kamailio is None else edge_uri_host(sip.edge_host, sip.edge_port),
        public_edge=_public_edge(settings),
        records=router.records,
    )
    pool.greeting = outbound.greeting
    # Contacts' WebRTC calls, queued for agents (assistline.queue.contact_calls).
    router.contacts = contacts = ContactCalls(
        pool,
        AgentDirectory(database.pool, sip.realm),
        tasks,
        router.records,
        edge=None if kamailio is None else edge_uri_host(sip.edge_host, sip.edge_port),
        ice_servers=lambda contact: ice_servers(settings.webrtc, contact, time.time()),
        console_url=lambda contact: screen_pop_url(base_url, contact),
    )
    contacts.pass_on = router.rest
    await contacts.load_agents()
    line = payment_line(
        settings,
        database.pool,
        pool,
        tasks,
        router.records,
        calls.recordings,
        recordings_dir,
        contacts,
    )
    router.ivr = ivr = await stack.enter_async_context(line)
    service = SipService(pool, calls, outbound, contacts, ivr)
    await pool.start()
    try:
        if kamailio is None:
            yield service
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
        directory_of_agents = AgentDirectory(database.pool, sip.realm)
        await edge.start(await directory_of_agents.credentials())
        reload = CredentialsReload(edge, directory_of_agents, tasks)
        handlers = {AGENTS_CHANNEL: reload.changed}
        await stack.enter_async_context(listening(database.dsn, handlers, tasks))
        try:
            # The dispatcher starts every address inactive until an OPTIONS ping
            # answers (up to a second); the workers already running are known
            # good, so calls arriving in the first second are not refused.
            for worker in pool.workers.values():
                await edge.rpc(
                    "dispatcher.set_state", "ap", "1", f"sip:127.0.0.1:{worker.sip_port}"
                )
            yield service
        finally:
            await edge.stop()
    finally:
        await pool.stop()
        try:
            async with asyncio.timeout(5):  # the pool's last events: legs ended at stop
                await router.records.drain()
                await calls.recordings.drain()
        except TimeoutError:
            logger.error("call records still unwritten 5 s after the workers stopped")


def _public_edge(settings: Settings) -> str | None:
    """``host:port`` of the edge as a trunk reaches it, for the registered Contact."""
    sip = settings.sip
    host = sip.public_address or sip.edge_host
    if host in ("", "0.0.0.0", "::"):
        if settings.trunk.register:
            logger.warning(
                "the trunk will be given the edge's loopback address; set sip.public_address"
            )
        return None
    return edge_uri_host(host, sip.edge_port)


def _path(value: str) -> Path | None:
    return Path(value) if value else None
