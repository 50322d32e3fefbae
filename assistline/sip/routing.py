"""The first route: dialling an agent's extension bridges the caller to the agent's phone.

An inbound call whose dialled user (the To user) is an agent's SIP
username is an internal extension, as on a PBX. The caller's leg keeps
ringing while the control process has the **same worker** call the agent
(``place_call`` to ``sip:<username>@<edge>``: Kamailio relays a worker's
INVITE to the phone registered under that name). The agent's INVITE
carries ``X-Assistline-Contact`` (the contact id) and
``X-Assistline-Screen-Pop`` (the agent console's page for this call).
When the agent answers, the caller's leg is answered, the two legs are
bridged, and the caller's leg is recorded (stereo: left what the caller
says, right what the caller hears, i.e. the agent) to a new file under
the recordings directory, one per call. Then:

- the agent busy, not answering within :data:`AGENT_ANSWER_TIMEOUT`, or
  not registered: the caller is refused with 486, 480 or 404
  (:func:`caller_status`);
- either side hanging up hangs up the other;
- the caller's leg ending completes the recording's row (the worker has
  closed the file and its sidecar before it reports the end);
- the recording can be paused and resumed (:meth:`AgentCalls.pause`,
  :meth:`AgentCalls.resume`), idempotently.

Events reach :meth:`AgentCalls.observe` from the worker pool. A placed
leg's first events can arrive before the ``result`` that names it has been
handed to the coroutine waiting for it, so while a ``place_call`` is in
flight on a worker, events of legs nobody knows there are held back and
replayed (to the call records too) once the leg is claimed, or passed on
unclaimed when no ``place_call`` is left in flight.
"""

from __future__ import annotations

import asyncio
import collections
import dataclasses
import datetime
import enum
import logging
import re
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import quote

import asyncpg

from assistline.errors import AssistlineError
from assistline.settings import HttpSettings
from assistline.sip import protocol
from assistline.sip.pool import WorkerCommandError, WorkerDiedError
from assistline.sip.recordings import RecordingStarted, RecordingStore
from assistline.sip.records import CallRecords
from assistline.sip.sipmsg import sip_user
from assistline.store.queries import QUERIES
from assistline.tasks import TaskRegistry

logger = logging.getLogger(__name__)

#: Seconds an agent's phone rings before the caller is refused with 480.
AGENT_ANSWER_TIMEOUT = 30.0
CONTACT_HEADER = "X-Assistline-Contact"
SCREEN_POP_HEADER = "X-Assistline-Screen-Pop"
_USERNAME = re.compile(r"^[A-Za-z0-9._-]{1,64}$")
_CONTACT = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")


class CallNotFoundError(AssistlineError, LookupError):
    """No call with that id is in progress."""


class NotRecordingError(AssistlineError):
    """The call is not being recorded (not yet connected, or its recording has ended)."""


# ------------------------------------------------------------- pure helpers


def caller_status(agent_status: int, timed_out: bool) -> tuple[int, str]:
    """The refusal a caller gets when the agent's leg ended unanswered with ``agent_status``."""
    if timed_out:
        return 480, "Temporarily Unavailable"
    if agent_status in (486, 600, 603):
        return 486, "Agent Busy"  # the edge takes a worker's "Busy Here" as "full"
    if agent_status == 404:
        return 404, "Not Found"
    return 480, "Temporarily Unavailable"


def edge_uri_host(host: str, port: int) -> str:
    """``host:port`` of the SIP edge as a worker reaches it (a wildcard becomes loopback)."""
    if host in ("", "0.0.0.0"):
        host = "127.0.0.1"
    elif host == "::":
        host = "::1"
    if ":" in host:
        host = f"[{host}]"
    return f"{host}:{port}"


def agent_destination(username: str, edge: str) -> str:
    """The SIP URI a worker calls to reach the phone ``username`` registered at ``edge``."""
    if not _USERNAME.match(username):
        raise ValueError(f"not an agent's SIP username: {username!r}")
    return f"sip:{username}@{edge}"


def caller_uri(from_uri: str) -> str:
    """The bare SIP URI of a From value (``"Ann" <sip:ann@host>`` → ``sip:ann@host``)."""
    inner = from_uri.split("<", 1)[1].split(">", 1)[0] if "<" in from_uri else from_uri
    inner = inner.strip()
    return inner if inner.startswith(("sip:", "sips:")) else ""


def contact_id(headers: protocol.Headers, call_id: str) -> str:
    """The contact id for the agent: the caller's plain ``X-Assistline-Contact``, or the call id."""
    for name, value in headers:
        if name.lower() == CONTACT_HEADER.lower() and _CONTACT.match(value):
            return value
    return call_id


def console_base_url(http: HttpSettings) -> str:
    """The URL agents reach the server at, from the HTTP settings."""
    if http.public_url:
        return http.public_url.rstrip("/")
    host = http.host
    if host in ("0.0.0.0", "::", ""):
        host = "127.0.0.1"
    if ":" in host:
        host = f"[{host}]"
    return f"http://{host}:{http.port}"


def screen_pop_url(base_url: str, call_id: str) -> str:
    """The agent console's page for one call."""
    return f"{base_url}/agent?call={quote(call_id, safe='')}"


# ------------------------------------------------------------------ state


class AgentLookup(Protocol):
    """Finds the agent an extension belongs to."""

    async def find(self, sip_username: str) -> RoutedAgent | None:
        """The agent whose SIP username is ``sip_username``, if any."""


class Commands(Protocol):
    """Sends commands to media workers (the worker pool)."""

    async def command(
        self, worker_id: str, make: Callable[[int], protocol.Command], timeout: float = 10.0
    ) -> protocol.Result:
        """Send ``make(request_id)`` to ``worker_id`` and wait for its result."""


@dataclasses.dataclass(frozen=True, slots=True)
class RoutedAgent:
    """The agent a call is routed to."""

    id: str
    sip_username: str


class DirectoryAgents:
    """Agents from the directory in PostgreSQL."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    async def find(self, sip_username: str) -> RoutedAgent | None:
        """The agent whose SIP username is ``sip_username``, if any."""
        row = await self._pool.fetchrow(QUERIES["agent_by_sip_username"], sip_username)
        return None if row is None else RoutedAgent(row["id"], row["sip_username"])


class CallState(enum.StrEnum):
    """Where a routed call is."""

    ROUTING = "routing"
    RINGING = "ringing"
    CONNECTING = "connecting"
    CONNECTED = "connected"


class RecordingState(enum.StrEnum):
    """Where a call's recording is."""

    STARTING = "starting"
    RECORDING = "recording"
    PAUSED = "paused"
    STOPPED = "stopped"
    FAILED = "failed"


@dataclasses.dataclass(eq=False)
class CallRecording:
    """The recording of a bridged call, as the control process knows it."""

    id: uuid.UUID
    path: Path
    state: RecordingState = RecordingState.STARTING
    lock: asyncio.Lock = dataclasses.field(default_factory=asyncio.Lock)


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


@dataclasses.dataclass(eq=False)
class AgentCall:
    """A caller routed to an agent: two legs on one worker, and their recording."""

    id: str
    worker: str
    caller_leg: str
    from_uri: str
    to_uri: str
    contact: str
    started_at: datetime.datetime = dataclasses.field(default_factory=_now)
    state: CallState = CallState.ROUTING
    agent: RoutedAgent | None = None
    agent_leg: str = ""
    connected_at: datetime.datetime | None = None
    recording: CallRecording | None = None
    placing: bool = False
    caller_ended: bool = False
    agent_ended: bool = False
    timed_out: bool = False
    timer: asyncio.TimerHandle | None = None

    def as_json(self) -> dict[str, Any]:
        """The call as the API shows it: legs, agent and recording state, no digits."""
        recording = self.recording
        return {
            "id": self.id,
            "contact": self.contact,
            "state": self.state.value,
            "worker": self.worker,
            "started_at": self.started_at.isoformat(),
            "connected_at": self.connected_at.isoformat() if self.connected_at else None,
            "caller": {"leg": self.caller_leg, "from": self.from_uri, "to": self.to_uri},
            "agent": None
            if self.agent is None
            else {
                "id": self.agent.id,
                "sip_username": self.agent.sip_username,
                "leg": self.agent_leg or None,
            },
            "recording": None
            if recording is None
            else {"id": str(recording.id), "state": recording.state.value},
        }


def _caller_gone(call: AgentCall) -> bool:
    """Whether the caller's leg has ended (read afresh after an ``await``)."""
    return call.caller_ended


_LEG_EVENTS = (protocol.Ringing, protocol.Answered, protocol.Connected, protocol.CallEnded)
_Key = tuple[str, str]


class AgentCalls:
    """Routes calls to agents' extensions and carries them to their end."""

    def __init__(
        self,
        commands: Commands,
        agents: AgentLookup,
        tasks: TaskRegistry,
        records: CallRecords,
        recordings: RecordingStore,
        *,
        edge: str | None,
        recordings_dir: Path,
        console_url: Callable[[str], str],
        answer_timeout: float = AGENT_ANSWER_TIMEOUT,
        record: bool = True,
        recording_rate: int = 16000,
    ) -> None:
        self._record = record
        self._recording_rate = recording_rate  # the workers' bridge rate (sip/conference.py)
        self._commands = commands
        self._agents = agents
        self._tasks = tasks
        self._records = records
        self.recordings = recordings
        self._edge = edge
        self._dir = recordings_dir
        self._console_url = console_url
        self._answer_timeout = answer_timeout
        self.calls: dict[str, AgentCall] = {}
        self._legs: dict[_Key, AgentCall] = {}
        self._placing: collections.Counter[str] = collections.Counter()
        self._held: dict[_Key, list[protocol.Event]] = {}

    # ---------------------------------------------------------- events in

    def take(self, worker: str, event: protocol.IncomingCall) -> bool:
        """Take an incoming call dialled to a possible extension; False leaves it to others."""
        user = sip_user(event.to_uri)
        if self._edge is None or not _USERNAME.match(user):
            return False
        call_id = uuid.uuid4().hex
        call = AgentCall(
            call_id,
            worker,
            event.leg,
            event.from_uri,
            event.to_uri,
            contact_id(event.headers, call_id),
        )
        self.calls[call.id] = call
        self._legs[(worker, event.leg)] = call
        _ = self._tasks.spawn(f"route {event.leg}", self._route(call, user))
        return True

    def observe(self, worker: str, event: protocol.Event) -> bool:
        """Handle a worker event; True when it is held back until its leg is claimed.

        A held event has not been shown to the call records either: it is,
        when it is replayed.
        """
        leg = getattr(event, "leg", "")
        if not leg or not isinstance(event, _LEG_EVENTS):
            return False
        call = self._legs.get((worker, leg))
        if call is not None:
            self._handle(call, leg, event)
            return False
        if self._placing[worker]:
            self._held.setdefault((worker, leg), []).append(event)
            return True
        return False

    def _handle(self, call: AgentCall, leg: str, event: protocol.Event) -> None:
        caller = leg == call.caller_leg
        if isinstance(event, protocol.CallEnded):
            if caller:
                self._caller_ended(call)
            else:
                self._agent_ended(call, event.status)
        elif isinstance(event, protocol.Answered) and not caller:
            if call.state is CallState.RINGING:  # the worker answers the caller and bridges
                self._cancel_timer(call)
                call.state = CallState.CONNECTING
        elif isinstance(event, protocol.Connected) and not caller:
            self._connected(call, event.recording)

    def _caller_ended(self, call: AgentCall) -> None:
        call.caller_ended = True
        self._legs.pop((call.worker, call.caller_leg), None)
        self._cancel_timer(call)
        recording = call.recording
        if recording is not None and recording.state in (
            RecordingState.RECORDING,
            RecordingState.PAUSED,
        ):
            recording.state = RecordingState.STOPPED
            self.recordings.ended(recording.id, recording.path)
        # Its worker hangs up the agent leg with it (place_call's connect_to).
        self._forget_if_done(call)

    def _agent_ended(self, call: AgentCall, status: int) -> None:
        call.agent_ended = True
        self._legs.pop((call.worker, call.agent_leg), None)
        self._cancel_timer(call)
        if not call.caller_ended:
            if call.state is CallState.RINGING:
                code, reason = caller_status(status, call.timed_out)
                logger.info("call %s: agent leg ended %d; caller refused %d", call.id, status, code)
                _ = self._tasks.spawn(f"refuse {call.caller_leg}", self._reject(call, code, reason))
            elif call.state is CallState.CONNECTING:  # answered, ended before the bridge
                self._spawn_hangup(call, call.caller_leg, 480)
            # Connected: its worker hangs up the caller with it.
        self._forget_if_done(call)

    def _forget_if_done(self, call: AgentCall) -> None:
        if call.caller_ended and (call.agent_ended or not (call.agent_leg or call.placing)):
            self.calls.pop(call.id, None)

    # ------------------------------------------------------------- routing

    async def _route(self, call: AgentCall, user: str) -> None:
        try:
            agent = await self._agents.find(user)
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as error:
            logger.error("call %s: agent look-up failed: %s", call.id, error)
            await self._reject(call, 503, "Service Unavailable")
            return
        if call.caller_ended:
            self._forget_if_done(call)
            return
        if agent is None:
            logger.info("call %s: no agent has extension %s", call.id, user)
            await self._reject(call, 404, "Not Found")
            return
        assert self._edge is not None
        call.agent = agent
        call.state = CallState.RINGING
        destination = agent_destination(agent.sip_username, self._edge)
        identity = caller_uri(call.from_uri) or f"sip:assistline@{self._edge}"
        headers = (
            (CONTACT_HEADER, call.contact),
            (SCREEN_POP_HEADER, self._console_url(call.id)),
        )
        worker = call.worker
        # The worker answers the caller, bridges and records when the agent answers.
        path = str(self._dir / f"{call.id}.wav") if self._record else ""
        call.placing = True
        self._placing[worker] += 1
        try:
            result = await self._commands.command(
                worker,
                lambda request: protocol.PlaceCall(
                    request, destination, identity, headers, call.caller_leg, path
                ),
            )
        except (WorkerCommandError, WorkerDiedError, TimeoutError) as error:
            logger.warning("call %s: calling agent %s failed: %s", call.id, agent.id, error)
            call.placing = False
            call.agent_ended = True
            await self._reject(call, 480, "Temporarily Unavailable")
            return
        finally:
            self._placing[worker] -= 1
            if not self._placing[worker]:
                del self._placing[worker]
        call.placing = False
        call.agent_leg = result.leg
        self._legs[(worker, result.leg)] = call
        self._records.placed(worker, result.leg, destination)
        logger.info("call %s: ringing agent %s on leg %s", call.id, agent.id, result.leg)
        # A caller that ended meanwhile has its worker cancel the agent leg.
        if not _caller_gone(call):
            call.timer = asyncio.get_running_loop().call_later(
                self._answer_timeout, self._no_answer, call
            )
        for event in self._held.pop((worker, result.leg), []):
            self._records.observe(worker, event)
            if (worker, result.leg) in self._legs:
                self._handle(call, result.leg, event)
        if worker not in self._placing:
            self._release_held(worker)

    def _release_held(self, worker: str) -> None:
        """Pass on the events held for legs nobody claimed on ``worker``."""
        for key in [key for key in self._held if key[0] == worker]:
            for event in self._held.pop(key):
                self._records.observe(worker, event)

    def _no_answer(self, call: AgentCall) -> None:
        call.timer = None
        if call.state is CallState.RINGING and not call.agent_ended:
            call.timed_out = True
            logger.info("call %s: agent did not answer in %.0f s", call.id, self._answer_timeout)
            self._spawn_hangup(call, call.agent_leg, 480)

    def _cancel_timer(self, call: AgentCall) -> None:
        if call.timer is not None:
            call.timer.cancel()
            call.timer = None

    def _connected(self, call: AgentCall, recording_runs: bool) -> None:
        """The worker answered the caller and bridged the agent leg (and recorded)."""
        call.state = CallState.CONNECTED
        call.connected_at = _now()
        logger.info(
            "call %s: caller %s bridged to agent leg %s", call.id, call.caller_leg, call.agent_leg
        )
        if not self._record:
            return
        recording = CallRecording(uuid.uuid4(), self._dir / f"{call.id}.wav")
        call.recording = recording
        if not recording_runs:
            recording.state = RecordingState.FAILED
            logger.error("call %s is not recorded (the worker logged why)", call.id)
            return
        assert call.agent is not None
        self.recordings.started(
            RecordingStarted(
                recording.id,
                call.id,
                call.worker,
                call.caller_leg,
                call.agent_leg,
                call.agent.id,
                recording.path,
                sample_rate=self._recording_rate,
            )
        )
        recording.state = RecordingState.RECORDING
        if call.caller_ended:  # its hang-up came before the worker said connected
            recording.state = RecordingState.STOPPED
            self.recordings.ended(recording.id, recording.path)

    # ------------------------------------------------------------ commands

    async def _reject(self, call: AgentCall, status: int, reason: str) -> None:
        call.agent_ended = True
        if not call.caller_ended:
            try:
                await self._commands.command(
                    call.worker, lambda r: protocol.Reject(r, call.caller_leg, status, reason)
                )
            except (WorkerCommandError, WorkerDiedError, TimeoutError) as error:
                logger.info("call %s: refusing the caller failed: %s", call.id, error)
        self._forget_if_done(call)

    def _spawn_hangup(self, call: AgentCall, leg: str, cause: int) -> None:
        _ = self._tasks.spawn(f"hang up {leg}", self._hangup(call, leg, cause))

    async def _hangup(self, call: AgentCall, leg: str, cause: int) -> None:
        try:
            await self._commands.command(call.worker, lambda r: protocol.Hangup(r, leg, cause))
        except (WorkerCommandError, WorkerDiedError, TimeoutError) as error:
            logger.info("call %s: hanging up %s failed: %s", call.id, leg, error)

    # ------------------------------------------------------- pause, resume

    async def pause(self, call_id: str) -> tuple[AgentCall, bool]:
        """Pause the call's recording; the flag says whether it was recording until now."""
        return await self._set_paused(call_id, True)

    async def resume(self, call_id: str) -> tuple[AgentCall, bool]:
        """Resume the call's recording; the flag says whether it was paused until now."""
        return await self._set_paused(call_id, False)

    async def _set_paused(self, call_id: str, paused: bool) -> tuple[AgentCall, bool]:
        call = self.calls.get(call_id)
        if call is None:
            raise CallNotFoundError(f"no call {call_id!r} is in progress")
        recording = call.recording
        live = (RecordingState.RECORDING, RecordingState.PAUSED)
        if recording is None or recording.state not in live:
            raise NotRecordingError(f"call {call_id!r} is not being recorded")
        async with recording.lock:
            if recording.state not in live:
                raise NotRecordingError(f"call {call_id!r} is not being recorded")
            changed = (recording.state is RecordingState.RECORDING) == paused
            leg = call.caller_leg
            try:
                await self._commands.command(
                    call.worker,
                    (lambda r: protocol.PauseRecording(r, leg))
                    if paused
                    else (lambda r: protocol.ResumeRecording(r, leg)),
                )
            except WorkerCommandError as error:
                if error.code == 404:
                    raise NotRecordingError(f"call {call_id!r} is not being recorded") from None
                raise
            except WorkerDiedError:
                raise NotRecordingError(f"call {call_id!r} is not being recorded") from None
            if recording.state in live:
                recording.state = RecordingState.PAUSED if paused else RecordingState.RECORDING
        logger.info("call %s: recording %s", call.id, "paused" if paused else "resumed")
        return call, changed
