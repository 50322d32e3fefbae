"""``GET /ws``: a customer's page joins its contact (signalling v1, :mod:`.messages`).

The page opens ``/ws?contact=<id>&token=<token>`` with the values of its join
link. The socket is refused *before the upgrade*, so before any frame (let
alone SDP) is read, with a problem document naming why:

- 403 ``origin-not-allowed``: the ``Origin`` header is missing or not one of
  ``http.allowed_origins`` (by default the server's own public origin);
- 401 ``token-refused``: the token is missing, not shaped like one, unknown,
  expired or already used (the problem says which);
- 403 ``token-foreign``: the token belongs to another contact. It is spent
  all the same: a token presented for the wrong contact has leaked;
- 400 ``contact-invalid``: ``contact`` is missing or not a UUID;
- 409 ``contact-ended``: the contact has ended.

Joining spends the token (a reload needs a new link) and moves the contact
to ``joined``. The first frame is ``hello``, with the ICE servers from
``webrtc.ice_servers`` only (TURN with short-lived credentials,
:mod:`.turn`); nothing else is ever suggested to the browser.

Every frame is parsed by :func:`.messages.parse_client`. A refused frame
gets an ``error`` naming the problem and the session goes on; a frame over
:data:`.messages.MAX_FRAME` bytes gets ``too_large`` and the socket is
closed (1009). An ``offer`` is checked against the DTLS-SRTP-only policy
(:func:`.sdp_policy.check_offer`) before anything else looks at it; a
refused offer gets ``sdp_refused`` with the reason. A ``hangup`` (or the
page going away) ends the contact with its reason.

An accepted offer starts the contact's call
(:class:`~assistline.queue.contact_calls.ContactCalls`): a WebRTC leg in a
media worker, whose answer comes back as ``answer``; candidates are relayed
to it; ``state`` messages follow (queued with position, ringing, connected,
ended). When the call ends on the server's side the session sends
``ended`` and closes. Without media workers (``sip.enabled = false``) an
offer is answered ``not_now``. Keypad digits go to the agent's phone as
RFC 4733 events once the call is connected.

Chat opens when the call is connected to an agent: a ``chat`` line has its
card numbers masked (:func:`~assistline.redaction.mask_card_numbers`, so
``4111 1111 1111 1111`` becomes ``[card …1111]``), is echoed back to the
page as ``chat`` from ``customer`` (the masked text: what the agent sees)
and goes to the agent's console; the agent's lines come as ``chat`` from
``agent``. Before that (queued, ringing, or no media workers), ``chat`` is
answered ``not_now`` ("chat opens when an agent is connected"). Chat text is
neither stored nor logged.

Video: ``escalate_video`` asks the agent to add video (a console agent's
console is told; a phone agent's page gets ``video_unavailable``); a second
``offer`` on a call whose media is up renegotiates the page's leg (the page
adding its camera), answered with ``answer``
(:mod:`assistline.queue.console_calls`).
"""

from __future__ import annotations

import logging
import time
import uuid
from urllib.parse import urlsplit

from aiohttp import WSCloseCode, WSMsgType, web

from assistline.queue.contact_call import CHAT_NOT_NOW, ContactCallError
from assistline.queue.contact_calls import ContactCalls
from assistline.queue.routing import Media
from assistline.settings import Settings
from assistline.signalling import messages
from assistline.signalling.contacts import consume_token, public_base_url
from assistline.signalling.keys import (
    CONTACT_CALLS_KEY,
    CONTACT_SESSIONS_KEY,
    DATABASE_KEY,
    SETTINGS_KEY,
    TASKS_KEY,
)
from assistline.signalling.openapi import Operation, problem
from assistline.signalling.problems import HttpProblem
from assistline.signalling.sdp_policy import SdpRefused, check_offer
from assistline.signalling.tokens import ContactRef, TokenRefusal
from assistline.signalling.turn import ice_servers
from assistline.store.queries import QUERIES

logger = logging.getLogger(__name__)

#: The contact's ``media`` (contacts API) as the signalling protocol names it.
_MEDIA: dict[str, messages.Media] = {"voice": "audio", "video": "video"}
_ROUTED = {"voice": Media.VOICE, "video": Media.VIDEO}
#: Seconds between WebSocket pings; a page that stops answering is dropped.
HEARTBEAT = 20.0


def allowed_origins(request: web.Request, settings: Settings) -> frozenset[str]:
    """Origins pages may open ``/ws`` from: the configured ones, else our own."""
    if settings.http.allowed_origins:
        return frozenset(o.lower().rstrip("/") for o in settings.http.allowed_origins)
    parts = urlsplit(public_base_url(request))
    return frozenset({f"{parts.scheme}://{parts.netloc}".lower()})


def refuse_origin(request: web.Request, settings: Settings) -> None:
    """403 unless the page's Origin is allowed (pages and consoles alike)."""
    origin = request.headers.get("Origin", "")
    if origin.lower().rstrip("/") not in allowed_origins(request, settings):
        shown = repr(origin[:100]) if origin else "missing"
        raise HttpProblem(
            403,
            "origin-not-allowed",
            f"the Origin header is {shown}; pages may join from http.allowed_origins only",
        )


def _contact_id(request: web.Request) -> uuid.UUID:
    text = request.query.get("contact", "")
    try:
        return uuid.UUID(text)
    except ValueError:
        detail = "contact is missing" if not text else "contact must be a UUID"
        raise HttpProblem(400, "contact-invalid", detail) from None


async def _join(request: web.Request) -> ContactRef:
    """Check Origin, contact and token, spend the token, mark the contact joined."""
    settings = request.app[SETTINGS_KEY]
    refuse_origin(request, settings)
    contact_id = _contact_id(request)
    pool = request.app[DATABASE_KEY].pool
    spent = await consume_token(pool, request.query.get("token", ""))
    if isinstance(spent, TokenRefusal):
        why = {
            TokenRefusal.MISSING: "the token is missing or unknown",
            TokenRefusal.EXPIRED: "the token has expired; ask for a new link",
            TokenRefusal.USED: "the token has been used already; ask for a new link",
        }[spent]
        raise HttpProblem(401, "token-refused", why)
    if spent.id != contact_id:
        logger.warning("contact %s: a token of contact %s was presented", contact_id, spent.id)
        raise HttpProblem(403, "token-foreign", "the token is not this contact's")
    if await pool.fetchrow(QUERIES["join_contact"], contact_id) is None:
        raise HttpProblem(409, "contact-ended", f"contact {contact_id} has ended")
    return spent


async def contact_socket(request: web.Request) -> web.StreamResponse:
    """Join a contact: the signalling WebSocket of the customer's page."""
    contact = await _join(request)
    settings = request.app[SETTINGS_KEY]
    # Frames up to 4× the limit reach the parser, which answers too_large before
    # closing; aiohttp itself cuts anything larger (1009, no error frame).
    socket = web.WebSocketResponse(heartbeat=HEARTBEAT, max_msg_size=4 * messages.MAX_FRAME)
    await socket.prepare(request)
    sessions = request.app[CONTACT_SESSIONS_KEY]
    sessions[contact.id] = socket
    calls = request.app.get(CONTACT_CALLS_KEY)
    page = _Page(socket)
    reason = "page_closed"
    try:
        await _send(
            socket,
            messages.Hello(
                version=messages.VERSION,
                contact=str(contact.id),
                media=_MEDIA[contact.media],
                ice_servers=tuple(ice_servers(settings.webrtc, str(contact.id), time.time())),
            ),
        )
        reason = await _converse(socket, contact, page, calls)
    finally:
        sessions.pop(contact.id, None)
        if calls is not None:
            calls.page_left(str(contact.id))
        reason = page.ended or reason
        # A task of its own: a handler cancelled as its client goes must still end the contact.
        pool = request.app[DATABASE_KEY].pool
        ending = pool.execute(QUERIES["end_contact"], contact.id, reason)
        _ = request.app[TASKS_KEY].spawn(f"end contact {contact.id}", ending)
        await socket.close()
    return socket


class _Page:
    """The page as :class:`ContactCalls` reaches it; an ``ended`` state closes the socket."""

    def __init__(self, socket: web.WebSocketResponse) -> None:
        self.socket = socket
        self.ended: str | None = None

    async def send(self, message: messages.ServerMessage) -> None:
        if self.socket.closed:
            raise ConnectionError("the page has gone")
        await self.socket.send_str(messages.encode(message))
        if isinstance(message, messages.State) and message.state == "ended":
            self.ended = message.reason
            await self.socket.close()


async def _converse(
    socket: web.WebSocketResponse, contact: ContactRef, page: _Page, calls: ContactCalls | None
) -> str:
    """Answer the page's frames until it hangs up or goes; the reason it ended."""
    async for frame in socket:
        if frame.type == WSMsgType.ERROR:
            return "connection_failed"
        if frame.type == WSMsgType.BINARY:
            await _send_error(socket, messages.MessageError("not_json", "frames must be text"))
            continue
        if frame.type != WSMsgType.TEXT:
            continue
        try:
            message = messages.parse_client(frame.data)
        except messages.MessageError as error:
            await _send_error(socket, error)
            if error.fatal:
                await socket.close(code=WSCloseCode.MESSAGE_TOO_BIG)
                return "protocol_error"
            continue
        match message:
            case messages.Ping():
                await _send(socket, messages.Pong())
            case messages.Hangup():
                if calls is not None:
                    calls.page_left(str(contact.id))
                await _send(socket, messages.State(state="ended", reason="hangup"))
                return "hangup"
            case messages.Offer(sdp=sdp):
                try:
                    check_offer(sdp)
                except SdpRefused as refused:
                    await _send_error(socket, messages.MessageError("sdp_refused", str(refused)))
                    continue
                if calls is None:
                    await _not_now(socket, "no media worker takes calls on this server")
                    continue
                try:
                    if str(contact.id) in calls.calls:  # a new offer on the call: video added
                        answer = await calls.console.renegotiate(str(contact.id), "customer", sdp)
                    else:
                        media = _ROUTED[contact.media]
                        answer = await calls.start(str(contact.id), media, sdp, page)
                except ContactCallError as error:
                    await _send_error(socket, messages.MessageError(error.code, str(error)[:500]))
                    continue
                await _send(socket, messages.Answer(sdp=answer))
            case messages.Candidate() if calls is not None:
                try:
                    await calls.candidate(str(contact.id), message)
                except ContactCallError as error:
                    await _send_error(socket, messages.MessageError(error.code, str(error)[:500]))
            case messages.Chat(text=text):
                try:
                    if calls is None:
                        raise ContactCallError("not_now", CHAT_NOT_NOW)
                    calls.chat(str(contact.id), text)
                except ContactCallError as error:
                    await _send_error(socket, messages.MessageError(error.code, str(error)[:500]))
            case messages.EscalateVideo() if calls is not None:
                try:
                    calls.console.escalate(str(contact.id), "customer")
                except ContactCallError as error:
                    await _send_error(socket, messages.MessageError(error.code, str(error)[:500]))
            case messages.Digit(digit=digit) if calls is not None:
                try:
                    await calls.digit(str(contact.id), digit)
                except ContactCallError as error:
                    await _send_error(socket, messages.MessageError(error.code, str(error)[:500]))
            case _:
                await _not_now(socket, f"{type(message).__name__} needs a connected call")
    return "page_closed"


async def _not_now(socket: web.WebSocketResponse, text: str) -> None:
    await _send_error(socket, messages.MessageError("not_now", text))


async def _send_error(socket: web.WebSocketResponse, error: messages.MessageError) -> None:
    await _send(socket, messages.Error.of(error))


async def _send(socket: web.WebSocketResponse, message: messages.ServerMessage) -> None:
    if not socket.closed:
        await socket.send_str(messages.encode(message))


async def close_sessions(app: web.Application) -> None:
    """At shutdown: tell every page the server is going, and close its socket."""
    for socket in list(app[CONTACT_SESSIONS_KEY].values()):
        try:
            await _send(socket, messages.State(state="ended", reason="shutdown"))
        except ConnectionError:
            pass
        await socket.close(code=WSCloseCode.GOING_AWAY)


_QUERY = (
    {"name": "contact", "in": "query", "required": True, "schema": {"type": "string"}},
    {"name": "token", "in": "query", "required": True, "schema": {"type": "string"}},
)
OPERATIONS: tuple[Operation, ...] = (
    Operation(
        "GET",
        "/ws",
        contact_socket,
        "Join a contact: the page's signalling WebSocket (web_client/signalling.schema.json)",
        {
            "101": {"description": "switching to the WebSocket protocol"},
            "400": problem("contact missing or not a UUID"),
            "401": problem("token missing, unknown, expired or used"),
            "403": problem("Origin not allowed, or the token is another contact's"),
            "409": problem("the contact has ended"),
        },
        tag="signalling",
        parameters=_QUERY,
    ),
)
