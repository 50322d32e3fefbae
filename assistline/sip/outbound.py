"""Outbound calls from the control process: every check first, then one INVITE.

:meth:`OutboundCalls.place_call` takes a destination as text, a phone
number or ``agent:<id>``, and gives the id of the new leg. Before any media
worker hears of the call:

1. the destination is resolved by :func:`assistline.sip.destinations.resolve`
   under the ``[trunk]`` dial policy: a valid E.164 number (phonenumbers,
   in ``trunk.home_region``), premium-rate and international numbers
   refused unless allowed, or an agent of the agent directory, rung at the
   SIP edge where its phone registered. A phone number needs a trunk, an
   agent the edge;
2. the caller id and the extra headers are checked (an E.164 number or a
   SIP URI; ``X-`` headers only, no line breaks), so nothing reaches the
   wire that the far end could read as another header;
3. a call to the trunk takes a place in the trunk's
   :class:`~assistline.sip.destinations.TrunkGate` (``trunk.max_calls``),
   given back when the leg's ``hangup`` event arrives (or at once when the
   worker refused the command).

A refused call raises :class:`~assistline.sip.destinations.DestinationRefusedError`,
:class:`~assistline.sip.destinations.TrunkBusyError` or
:class:`CallRequestError` and sends no INVITE. Then the least loaded
worker gets ``place_call``; a trunk destination is ``sip:<E.164>@<trunk
address>``, which the worker places through its trunk account
(:mod:`assistline.sip.trunk`): out through the edge, with the trunk's
digest credentials.

:meth:`OutboundCalls.greeting` is the worker pool's
:data:`~assistline.sip.pool.Greeting`: every worker gets the ``trunk``
command when it connects, and :data:`REGISTERING_WORKER` alone registers
(see :mod:`assistline.sip.trunk` for why one, and why with the edge's
address as Contact).
"""

from __future__ import annotations

import collections
import itertools
import logging
import re
from collections.abc import Callable, Iterable, Sequence
from typing import Protocol

from assistline.errors import AssistlineError
from assistline.queue.agents import Agent, AgentNotFoundError
from assistline.settings import TrunkSettings, is_caller_id, split_address
from assistline.sip import protocol
from assistline.sip.destinations import (
    Destination,
    DestinationRefusedError,
    DialPolicy,
    TrunkGate,
    resolve,
)
from assistline.sip.routing import agent_destination

logger = logging.getLogger(__name__)

#: The worker that registers at the trunk (the pool restarts it under the same id).
REGISTERING_WORKER = "w1"
#: Most extra headers on one call, and the longest value of one.
MAX_HEADERS = 16
MAX_HEADER_VALUE = 256
_HEADER_NAME = re.compile(r"^X-[A-Za-z0-9-]{1,62}$")
_HEADER_VALUE = re.compile(r"^[\x20-\x7e]*$")
_AGENT = re.compile(r"^agent:([A-Za-z0-9._-]{1,64})$")
_E164 = re.compile(r"^\+[1-9][0-9]{1,14}$")
#: Legs remembered as ended, for a ``hangup`` event overtaking its ``result``.
_ENDED_MEMORY = 256


class CallRequestError(AssistlineError, ValueError):
    """The call request is invalid; the message names the field (caller_id or headers)."""


class PickedWorker(Protocol):
    """What :class:`OutboundCalls` needs of a worker: its id."""

    @property
    def id(self) -> str:
        """The worker's id (``w1``…)."""


class Workers(Protocol):
    """The media workers (:class:`~assistline.sip.pool.WorkerPool`)."""

    def pick(self) -> PickedWorker:
        """The worker to place the next call on."""

    async def command(
        self, worker_id: str, make: Callable[[int], protocol.Command], timeout: float = 10.0
    ) -> protocol.Result:
        """Send a command and wait for its result."""


class AgentsById(Protocol):
    """The agent directory (:class:`~assistline.queue.agents.AgentDirectory`)."""

    async def get(self, agent_id: str) -> Agent:
        """The agent with this id; AgentNotFoundError when there is none."""


class PlacedRecords(Protocol):
    """Where placed legs are recorded (:class:`~assistline.sip.records.CallRecords`)."""

    def placed(self, worker: str, leg: str, destination: str) -> None:
        """Record an outbound leg."""


def caller_uri(caller_id: str, host: str) -> str:
    """The From URI for ``caller_id``: a SIP URI as is, a number at ``host``, "" for none."""
    if not caller_id:
        return ""
    if not is_caller_id(caller_id):
        raise CallRequestError("caller_id must be an E.164 number (+12025550100) or a SIP URI")
    return f"sip:{caller_id}@{host}" if _E164.match(caller_id) else caller_id


def check_headers(headers: Iterable[tuple[str, str]]) -> protocol.Headers:
    """``headers`` when every one is an ``X-`` header with a one-line printable value."""
    checked = tuple((str(name), str(value)) for name, value in headers)
    if len(checked) > MAX_HEADERS:
        raise CallRequestError(f"headers: at most {MAX_HEADERS}")
    for name, value in checked:
        if not _HEADER_NAME.match(name):
            raise CallRequestError(f"headers: {name[:64]!r} is not an X- header name")
        if len(value) > MAX_HEADER_VALUE or not _HEADER_VALUE.match(value):
            raise CallRequestError(
                f"headers: {name} must be printable ASCII on one line, "
                f"at most {MAX_HEADER_VALUE} characters"
            )
    return checked


def trunk_command(
    trunk: TrunkSettings, edge: str | None, worker_id: str, public_edge: str | None = None
) -> Callable[[int], protocol.Trunk] | None:
    """The ``trunk`` command ``worker_id`` gets, or None without a trunk.

    ``edge`` is the edge's ``host:port`` as workers reach it
    (:func:`~assistline.sip.routing.edge_uri_host`), their outbound proxy;
    None when the worker faces the network itself (no Kamailio).
    ``public_edge``, the edge's ``host:port`` as the trunk reaches it,
    goes into the registered Contact (``edge`` when not given).
    """
    if not trunk.address:
        return None
    registers = trunk.register and worker_id == REGISTERING_WORKER
    user = trunk.username or "assistline"
    contact = public_edge or edge

    def make(request: int) -> protocol.Trunk:
        return protocol.Trunk(
            request,
            trunk.address,
            trunk.username,
            trunk.password,
            proxy=f"sip:{edge};lr" if edge else "",
            contact=f"sip:{user}@{contact}" if edge and registers else "",
            register_expiry=trunk.register_expiry if registers else 0,
        )

    return make


class OutboundCalls:
    """The control process's API for placing calls: checks, trunk cap, one worker."""

    def __init__(
        self,
        workers: Workers,
        trunk: TrunkSettings,
        agents: AgentsById,
        *,
        edge: str | None = None,
        public_edge: str | None = None,
        records: PlacedRecords | None = None,
    ) -> None:
        self._workers = workers
        self.trunk = trunk
        self._agents = agents
        self._edge = edge
        self._public_edge = public_edge
        self._records = records
        self._policy = DialPolicy(
            home_region=trunk.home_region,
            allow_international=trunk.allow_international,
            allow_premium_rate=trunk.allow_premium_rate,
            trunk_host=trunk.address or "no-trunk.invalid",
        )
        self.gate = TrunkGate(trunk.max_calls)
        self._tokens = itertools.count(1)
        self._ended: collections.deque[str] = collections.deque(maxlen=_ENDED_MEMORY)

    def greeting(self, worker_id: str) -> Sequence[Callable[[int], protocol.Command]]:
        """The set-up commands of a worker that just connected: the trunk account."""
        make = trunk_command(self.trunk, self._edge, worker_id, self._public_edge)
        return [] if make is None else [make]

    async def place_call(
        self, destination: str, caller_id: str = "", headers: Iterable[tuple[str, str]] = ()
    ) -> str:
        """Check, then place a call to ``destination``; the new leg's id.

        ``caller_id`` (an E.164 number, put at the trunk's or the edge's
        host, or a SIP URI) defaults to ``trunk.caller_id``, and that to
        the calling account's own identity (``sip:<trunk.username>@<trunk
        host>`` at the trunk); ``headers`` are extra ``X-`` headers of the
        INVITE.
        """
        extra = check_headers(headers)
        target = await self._resolve(destination)
        if target.e164 is not None:
            host = split_address(self.trunk.address)[0]
        else:
            assert self._edge is not None  # _resolve refuses agents without an edge
            host = self._edge.rsplit(":", 1)[0]
        from_uri = caller_uri(caller_id or self.trunk.caller_id, host)
        token = ""
        if target.e164 is not None:
            token = f"placing-{next(self._tokens)}"
            self.gate.acquire(token)  # TrunkBusyError: nothing was sent
        try:
            worker = self._workers.pick()
            result = await self._workers.command(
                worker.id,
                lambda request: protocol.PlaceCall(request, target.uri, from_uri, extra),
            )
        finally:
            if token:
                self.gate.release(token)
        leg = result.leg
        if token and leg not in self._ended:
            # Moves the place taken above to the leg; never over the cap.
            self.gate.acquire(leg)
        if self._records is not None:
            self._records.placed(worker.id, leg, target.uri)
        logger.info(
            "outbound call %s on %s to %s",
            leg,
            worker.id,
            f"agent {target.agent}" if target.agent else "the trunk",
        )
        return leg

    def observe(self, worker: str, event: protocol.Event) -> None:
        """Take worker events: a leg's ``hangup`` gives back its place on the trunk."""
        if isinstance(event, protocol.CallEnded):
            self._ended.append(event.leg)
            self.gate.release(event.leg)

    async def _resolve(self, text: str) -> Destination:
        agents: dict[str, str] = {}
        agent = _AGENT.match(text.strip())
        if agent is not None:
            if self._edge is None:
                raise DestinationRefusedError(
                    "agents are called at the SIP edge, which is not running (no Kamailio)"
                )
            try:
                found = await self._agents.get(agent.group(1))
            except AgentNotFoundError:
                pass  # resolve() names the missing agent
            else:
                agents[found.id] = agent_destination(found.sip_username, self._edge)
        target = resolve(text, self._policy, agents)
        if target.e164 is not None and not self.trunk.address:
            raise DestinationRefusedError("phone numbers need a trunk; set trunk.address")
        return target
