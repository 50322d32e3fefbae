"""``GET /ws/agent``: the agent console's live socket; and the screen pop of one contact.

The console opens ``/ws/agent`` with its session cookie
(:mod:`.agent_auth`). The socket is refused *before the upgrade* with a
problem document: 403 ``origin-not-allowed`` when the ``Origin`` header is
missing or not allowed (the same check as the customer's ``/ws``), 401
``session-refused`` without a session that is known, unexpired and not
signed out. A session that expires or signs out while its socket is open
closes it with code 4401.

Frames are JSON objects with a ``type`` (at most 16 KB, room for a chat
line of 2,000 characters; more closes the socket, 1009). Server → console:

- ``hello`` ``{agent: {id, name}, state, calls, works_in, ice_servers}``: first,
  followed, when the agent is on a call here (a console reloaded mid-call),
  by that call's ``offer`` and its ``call`` state;
  ``state`` is the agent's (``offline``, ``available``, ``busy``,
  ``wrap_up``); ``calls`` is false when this server takes no calls
  (``sip.enabled = false``); ``works_in`` where contacts reach the agent
  (``sip`` or ``console``); ``ice_servers`` are for calls taken in the
  console (``RTCIceServer`` dicts, TURN credentials short-lived);
- ``state`` ``{state}``: after a ``set_state``, a ``ping``, or a call event;
- ``offer`` ``{contact, customer_id, account, balance_cents, currency, step,
  fields, media, context_trail}``: routing offers this contact to the agent, whose
  phone rings now (the screen pop; the same shape as
  ``GET /api/v1/agent/contacts/{id}``);
- ``call`` ``{contact, state}``: ``ringing`` (with an offer), ``connected``
  (answered and bridged), ``ended`` (declined, unanswered, withdrawn, or
  hung up by either side);
- ``chat`` ``{contact, text, from}``: a chat line of the connected call,
  ``from`` ``customer`` (the page's) or ``agent`` (the console's own line,
  echoed to every console of the agent), card numbers already masked
  (``[card …1111]``);
- ``error`` ``{code, message}``: a frame was refused (``not_json``,
  ``bad_message``, ``bad_value``, ``not_now``); the session goes on.

Console → server:

- ``set_state`` ``{state, works_in?}``: ``available`` or ``offline`` (through
  :meth:`~assistline.queue.contact_calls.ContactCalls.set_agent_state`, so
  routing sees it at once; without calls, in the agent table only).
  ``available`` is refused (``not_now``) while the agent is ``busy``.
  ``works_in`` ``sip`` (contacts ring the agent's phone) or ``console``
  (contacts are taken in this browser, voice and video: the frames of
  :mod:`.agent_media`); left out, it stays as it was;
- ``ping``: answered with ``state`` (a console can poll with it, e.g. to see
  a wrap-up end);
- ``chat`` ``{contact, text}``: a line (1..2,000 characters) to the page of
  ``contact``, the call the agent is connected to (naming it keeps a line
  typed during one call from reaching the next customer). Its card numbers
  are masked (:func:`~assistline.redaction.mask_card_numbers`), then it is
  sent to the page and echoed back as ``chat`` from ``agent``; no reply
  otherwise. Refused with ``not_now`` unless the agent is connected to that
  contact, ``bad_value`` for a text out of bounds. Chat text is neither
  stored nor logged.

Call events come from :attr:`ContactCalls.watchers` of this node, queued
and pushed in order to every console of the agent on this node; consoles
on other nodes hear nothing of them yet.
"""

from __future__ import annotations

import asyncio
import collections
import dataclasses
import json
import logging
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

from aiohttp import WSCloseCode, WSMsgType, web

from assistline.queue.agents import AgentDirectory, AgentNotFoundError, AgentState, WorksIn
from assistline.queue.contact_call import AgentEvent, ContactCallError
from assistline.signalling import agent_media, messages
from assistline.signalling.agent_auth import SESSION_PROBLEMS, SignedIn, require_session
from assistline.signalling.contacts import CONTACT_ID_PARAMETER, get_contact
from assistline.signalling.keys import (
    AGENT_CONSOLES_KEY,
    CONTACT_CALLS_KEY,
    DATABASE_KEY,
    SETTINGS_KEY,
    TASKS_KEY,
)
from assistline.signalling.openapi import Operation, json_content, problem
from assistline.signalling.problems import HttpProblem
from assistline.signalling.turn import ice_servers
from assistline.signalling.ws import HEARTBEAT, refuse_origin
from assistline.store.queries import QUERIES
from assistline.tasks import TaskRegistry

logger = logging.getLogger(__name__)

MAX_FRAME = 16_384
#: Close code of a socket whose session expired or signed out.
SESSION_ENDED = 4401
_SETTABLE = ("available", "offline")
_POP_FIELDS = ("customer_id", "account", "balance_cents", "currency", "step", "fields", "media")


def screen_pop(contact: dict[str, Any]) -> dict[str, Any]:
    """What the agent is shown of a contact (from :func:`.contacts.get_contact`)."""
    return {
        "contact": contact["id"],
        **{name: contact[name] for name in _POP_FIELDS},
        "context_trail": contact["context_trail"],
    }


@dataclasses.dataclass(eq=False, slots=True)
class _Console:
    socket: web.WebSocketResponse
    agent: str
    token_hash: bytes
    lock: asyncio.Lock = dataclasses.field(default_factory=asyncio.Lock)
    expiry: asyncio.TimerHandle | None = None


class _Refused(Exception):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


class AgentConsoles:
    """The open consoles of this node, by agent, and the call events pushed to them."""

    def __init__(self) -> None:
        self.consoles: dict[str, set[_Console]] = collections.defaultdict(set)
        self._events: asyncio.Queue[AgentEvent] = asyncio.Queue()
        self._tasks: TaskRegistry | None = None

    def watch(self, event: AgentEvent) -> None:
        """A :attr:`ContactCalls.watchers` callback: push ``event`` to the agent's consoles."""
        if self.consoles.get(event.agent):
            self._events.put_nowait(event)

    def signed_out(self, token_hash: bytes) -> None:
        """The session was revoked: close its sockets on this node."""
        for consoles in self.consoles.values():
            for console in [c for c in consoles if c.token_hash == token_hash]:
                self._close_soon(console)

    def start(self, app: web.Application) -> asyncio.Task[None]:
        """Start pushing events, with the app's task registry."""
        self._tasks = app[TASKS_KEY]
        return self._tasks.spawn("agent console events", self._pump(app))

    def add(self, console: _Console, seconds_left: float) -> None:
        """A console opened; its socket closes when its session expires."""
        self.consoles[console.agent].add(console)
        loop = asyncio.get_running_loop()
        console.expiry = loop.call_later(max(0.0, seconds_left), self._close_soon, console)

    def remove(self, console: _Console) -> None:
        """A console closed."""
        if console.expiry is not None:
            console.expiry.cancel()
        consoles = self.consoles.get(console.agent)
        if consoles is not None:
            consoles.discard(console)
            if not consoles:
                del self.consoles[console.agent]

    def _close_soon(self, console: _Console) -> None:
        if self._tasks is not None and not console.socket.closed:
            close = console.socket.close(code=SESSION_ENDED, message=b"session ended")
            _ = self._tasks.spawn(f"close console of {console.agent}", close)

    async def _pump(self, app: web.Application) -> None:
        """Push queued events in order; one that fails is logged and the next goes on."""
        while True:
            event = await self._events.get()
            try:
                await self._push(app, event)
            except Exception:  # noqa: BLE001 - one event's failure must not stop the others
                logger.exception("pushing %s to agent consoles failed", event)

    async def _push(self, app: web.Application, event: AgentEvent) -> None:
        if event.kind == "chat":
            line = {"type": "chat", "contact": event.contact, "text": event.text}
            for console in list(self.consoles.get(event.agent, ())):
                await _send(console, line | {"from": event.sender})
            return
        if event.kind in ("escalate_video", "payment_progress", "payment_result"):
            frame: dict[str, Any] = {"type": event.kind, "contact": event.contact}
            if event.kind == "payment_progress":
                frame = {"type": "payment", "contact": event.contact, "progress": event.text}
            elif event.kind == "payment_result":
                frame = {"type": "payment", "contact": event.contact}
                frame["result"] = json.loads(event.text)
            for console in list(self.consoles.get(event.agent, ())):
                await _send(console, frame)
            return
        frames: list[dict[str, Any]] = []
        if event.kind == "offered":
            contact = await _contact(app, event.contact)
            if contact is not None:
                frames.append({"type": "offer", **screen_pop(contact)})
        kind = "ringing" if event.kind == "offered" else event.kind
        frames.append({"type": "call", "contact": event.contact, "state": kind})
        frames.append({"type": "state", "state": await current_state(app, event.agent)})
        for console in list(self.consoles.get(event.agent, ())):
            for frame in frames:
                await _send(console, frame)


async def _contact(app: web.Application, contact_id: str) -> dict[str, Any] | None:
    try:
        parsed = uuid.UUID(contact_id)
    except ValueError:
        return None
    return await get_contact(app[DATABASE_KEY].pool, parsed)


async def current_state(app: web.Application, agent_id: str) -> str:
    """The agent's state: routing's on this node, else the agent table's."""
    calls = app.get(CONTACT_CALLS_KEY)
    if calls is not None:
        try:
            return calls.router.agent(agent_id).state.value
        except LookupError:
            pass  # an agent added since start: routing has not heard of it yet
    row = await app[DATABASE_KEY].pool.fetchrow(QUERIES["get_agent"], agent_id)
    return "offline" if row is None else str(row["state"])


async def _send(console: _Console, frame: dict[str, Any]) -> None:
    async with console.lock:
        if console.socket.closed:
            return
        try:
            await console.socket.send_str(json.dumps(frame))
        except ConnectionError:
            pass  # the console has gone; its handler cleans up


# ------------------------------------------------------------------ the socket


async def agent_socket(request: web.Request) -> web.StreamResponse:
    """The console's socket: the agent's state, offers and call states, live."""
    refuse_origin(request, request.app[SETTINGS_KEY])
    signed_in = await require_session(request)
    socket = web.WebSocketResponse(heartbeat=HEARTBEAT, max_msg_size=MAX_FRAME)
    await socket.prepare(request)
    consoles = request.app[AGENT_CONSOLES_KEY]
    console = _Console(socket, signed_in.agent_id, signed_in.token_hash)
    consoles.add(console, signed_in.seconds_left)
    try:
        await _send(
            console,
            {
                "type": "hello",
                "agent": {"id": signed_in.agent_id, "name": signed_in.name},
                "state": await current_state(request.app, signed_in.agent_id),
                "calls": CONTACT_CALLS_KEY in request.app,
                "works_in": await _works_in(request.app, signed_in.agent_id),
                "ice_servers": ice_servers(
                    request.app[SETTINGS_KEY].webrtc, f"agent-{signed_in.agent_id}", time.time()
                ),
            },
        )
        for frame in await _call_now(request.app, signed_in.agent_id):
            await _send(console, frame)
        await _converse(request.app, console, signed_in)
    finally:
        consoles.remove(console)
        await socket.close()
    return socket


async def _call_now(app: web.Application, agent_id: str) -> list[dict[str, Any]]:
    """The agent's call in progress, as the frames that announced it (a console reloaded)."""
    calls = app.get(CONTACT_CALLS_KEY)
    now = None if calls is None else calls.call_of(agent_id)
    if now is None:
        return []
    contact_id, state = now
    frames: list[dict[str, Any]] = []
    contact = await _contact(app, contact_id)
    if contact is not None:
        frames.append({"type": "offer", **screen_pop(contact)})
    frames.append({"type": "call", "contact": contact_id, "state": state})
    return frames


async def _converse(app: web.Application, console: _Console, signed_in: SignedIn) -> None:
    async for frame in console.socket:
        if frame.type != WSMsgType.TEXT:
            if frame.type == WSMsgType.BINARY:
                await _error(console, "not_json", "frames must be text")
            continue
        try:
            reply = await _answer(app, console, frame.data)
        except _Refused as refused:
            await _error(console, refused.code, str(refused))
            continue
        except AgentNotFoundError:
            await console.socket.close(code=SESSION_ENDED, message=b"agent removed")
            return
        if reply is not None:
            await _send(console, reply)


async def _answer(app: web.Application, console: _Console, text: str) -> dict[str, Any] | None:
    try:
        message = json.loads(text)
    except ValueError:
        raise _Refused("not_json", "the frame is not JSON") from None
    if not isinstance(message, dict) or not isinstance(message.get("type"), str):
        raise _Refused("bad_message", "a frame is a JSON object with a type")
    match message["type"]:
        case "ping" if set(message) == {"type"}:
            return {"type": "state", "state": await current_state(app, console.agent)}
        case "set_state" if set(message) == {"type", "state"}:
            wanted = message["state"]
            if wanted not in _SETTABLE:
                raise _Refused("bad_value", "state must be available or offline")
            state = await _set_state(app, console.agent, AgentState(wanted))
            for other in list(app[AGENT_CONSOLES_KEY].consoles.get(console.agent, ())):
                if other is not console:
                    await _send(other, {"type": "state", "state": state})
            return {"type": "state", "state": state}
        case "set_state" if set(message) == {"type", "state", "works_in"}:
            if message["works_in"] not in ("sip", "console"):
                raise _Refused("bad_value", "works_in must be sip or console")
            wanted = message["state"]
            if wanted not in _SETTABLE:
                raise _Refused("bad_value", "state must be available or offline")
            state = await _set_state(app, console.agent, AgentState(wanted), message["works_in"])
            return {"type": "state", "state": state}
        case "chat" if set(message) == {"type", "contact", "text"}:
            _chat(app, console.agent, message["contact"], message["text"])
            return None  # the line comes back as a chat event, after the page's
        case kind if kind in agent_media.FRAMES:
            try:
                return await agent_media.handle(app, console.agent, message)
            except agent_media.MediaFrameRefused as refused:
                raise _Refused(refused.code, str(refused)) from None
        case "ping" | "set_state" | "chat":
            raise _Refused("bad_message", f"{message['type']} has other fields")
        case _:
            raise _Refused("bad_message", f"unknown type {str(message['type'])[:40]!r}")


def _chat(app: web.Application, agent_id: str, contact: Any, text: Any) -> None:
    """Send the agent's chat line to its connected contact (masked there); never logged."""
    if not isinstance(contact, str) or not contact:
        raise _Refused("bad_value", "contact must be the id of the call you are connected to")
    try:
        messages.Chat(text=text)  # the page's bounds: 1..MAX_CHAT characters, valid Unicode
    except messages.MessageError as error:
        raise _Refused("bad_value", str(error)) from None
    calls = app.get(CONTACT_CALLS_KEY)
    if calls is None:
        raise _Refused("not_now", "chat opens when you are connected to the customer")
    try:
        calls.agent_chat(agent_id, contact, text)
    except ContactCallError as error:
        raise _Refused(error.code, str(error)) from None


async def _works_in(app: web.Application, agent_id: str) -> str:
    row = await app[DATABASE_KEY].pool.fetchrow(QUERIES["get_agent"], agent_id)
    return "sip" if row is None else str(row["works_in"])


async def _set_state(
    app: web.Application, agent_id: str, wanted: AgentState, works_in: WorksIn | None = None
) -> str:
    current = await current_state(app, agent_id)
    unchanged = works_in is None or works_in == await _works_in(app, agent_id)
    if current == wanted.value and unchanged:
        return current  # nothing changes; the agent keeps its place among idle agents
    if wanted is AgentState.AVAILABLE and current == "busy":
        raise _Refused("not_now", "you are on a call; you can be available once it ends")
    calls = app.get(CONTACT_CALLS_KEY)
    if calls is not None:
        await calls.set_agent_state(agent_id, wanted, works_in)
    else:
        directory = AgentDirectory(app[DATABASE_KEY].pool, app[SETTINGS_KEY].sip.realm)
        await directory.set_state(agent_id, wanted, works_in)
    logger.info("agent %s is %s (console)", agent_id, wanted.value)
    return await current_state(app, agent_id)


async def _error(console: _Console, code: str, message: str) -> None:
    await _send(console, {"type": "error", "code": code, "message": message})


# ------------------------------------------------------------------ lifecycle


async def consoles_ctx(app: web.Application) -> AsyncIterator[None]:
    """Push call events to consoles while the app runs (after the SIP side has started)."""
    consoles = app[AGENT_CONSOLES_KEY]
    pump = consoles.start(app)
    calls = app.get(CONTACT_CALLS_KEY)
    if calls is not None:
        calls.watchers.append(consoles.watch)
    try:
        yield
    finally:
        if calls is not None:
            calls.watchers.remove(consoles.watch)
        pump.cancel()
        await asyncio.wait([pump])


async def close_consoles(app: web.Application) -> None:
    """At shutdown: close every console's socket."""
    for consoles in list(app[AGENT_CONSOLES_KEY].consoles.values()):
        for console in list(consoles):
            await console.socket.close(code=WSCloseCode.GOING_AWAY)


# ------------------------------------------------------------------ the screen pop


async def contact_screen_pop(request: web.Request) -> web.StreamResponse:
    """One contact as the agent sees it (the link of a phone's ``X-Assistline-Screen-Pop``)."""
    signed_in = await require_session(request)
    text = request.match_info["contact_id"]
    try:
        contact_id = uuid.UUID(text)
    except ValueError:
        raise HttpProblem(
            400, "invalid-contact-id", f"{text[:64]!r} is not a contact id (a UUID)"
        ) from None
    pool = request.app[DATABASE_KEY].pool
    contact = await get_contact(pool, contact_id)
    if contact is None:
        raise HttpProblem(404, "contact-not-found", f"no contact has id {text[:64]!r}")
    await pool.execute(
        QUERIES["insert_audit_event"],
        f"agent:{signed_in.agent_id}",
        "contact.view",
        f"contact:{contact_id}",
        "{}",
    )
    return web.json_response(screen_pop(contact), headers={"Cache-Control": "no-store"})


SCREEN_POP_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": [
        "contact",
        "customer_id",
        "account",
        "currency",
        "fields",
        "media",
        "context_trail",
    ],
    "properties": {
        "contact": {"type": "string", "format": "uuid"},
        "customer_id": {"type": "string"},
        "account": {"type": "string"},
        "balance_cents": {"type": ["integer", "null"]},
        "currency": {"type": "string"},
        "step": {"type": ["string", "null"]},
        "fields": {"type": "object"},
        "media": {"enum": ["voice", "video"]},
        "context_trail": {"type": "array", "items": {"type": "object"}},
    },
}

OPERATIONS: tuple[Operation, ...] = (
    Operation(
        "GET",
        "/ws/agent",
        agent_socket,
        "The agent console's WebSocket: state, offers with their screen pop, call states",
        {
            "101": {"description": "switching to the WebSocket protocol"},
            **SESSION_PROBLEMS,
            "403": problem("Origin not allowed"),
        },
        tag="agent",
    ),
    Operation(
        "GET",
        "/api/v1/agent/contacts/{contact_id}",
        contact_screen_pop,
        "A contact's screen pop for a signed-in agent (customer, account, balance, context)",
        {
            "200": {"description": "the screen pop", "content": json_content(SCREEN_POP_SCHEMA)},
            "400": problem("the id is not a UUID"),
            **SESSION_PROBLEMS,
            "404": problem("no such contact"),
        },
        tag="agent",
        parameters=(CONTACT_ID_PARAMETER,),
    ),
)
