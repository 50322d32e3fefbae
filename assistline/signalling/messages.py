"""The page ↔ server WebSocket signalling protocol, version 1: every message, in one place.

A customer's page (or an agent's console) opens ``GET /ws`` with its token
and both sides exchange **JSON text frames, one object each**, at most
:data:`MAX_FRAME` bytes of UTF-8. Every object has a ``"type"``; the other
keys are exactly the ones listed below (a missing or unknown key is an error
naming it). This module is sans-IO: :func:`parse_client` turns a frame into
a message or raises :class:`MessageError`, :func:`encode` turns a message
into a frame, and :func:`schema` is the same protocol as a JSON Schema
(draft 2020-12), shipped as ``web_client/signalling.schema.json``.

Client → server:

- ``offer`` sdp; ``answer`` sdp (to a server ``offer``, when the server
  renegotiates): at most :data:`MAX_SDP` characters
- ``candidate`` candidate (a ``candidate:`` line of at most
  :data:`MAX_CANDIDATE` characters; ``""`` for end-of-candidates), sdpMid
  (string or null), sdpMLineIndex (0..65535 or null; one of the two is set
  unless the candidate is ``""``), usernameFragment (optional, string or
  null: what ``RTCIceCandidate.toJSON()`` gives may be sent as it is)
- ``digit`` digit: one key, ``0``-``9``, ``*``, ``#``, ``A``-``D``, sent to
  the agent as a keypad tone. ``repr`` masks it: the IVR may reuse this
  message, and there a digit can be card data
- ``chat`` text: 1..:data:`MAX_CHAT` characters
- ``escalate_video`` (add video to an audio call: the page adds its camera
  and sends a new ``offer`` on the same connection, which the server
  answers with ``answer``); ``hangup``; ``ping``

Server → client:

- ``hello`` version (:data:`VERSION`), contact (id), media (``audio`` or
  ``video``), ice_servers (``RTCIceServer`` dicts: urls, and username and
  credential for TURN): the first frame, before anything else
- ``answer`` sdp; ``offer`` sdp; ``candidate``: as above
- ``state`` state, one of ``queued`` (with position, 1 = next),
  ``ringing`` (with agent), ``connected`` (with agent), ``on_hold``,
  ``ended`` (with reason, e.g. ``hangup``, ``agent_hangup``, ``no_agent``,
  ``media_failed``, ``shutdown``); agent is a display name, nothing more
- ``chat`` text, from (``agent`` or ``customer``)
- ``video_unavailable`` reason: an ``escalate_video`` cannot be honoured
  (the agent is on a phone)
- ``escalate_video``: the agent turned video on; the page adds its camera
  and sends a new ``offer`` (the server answers it)
- ``secure`` state (``on`` or ``off``): the agent started a secure payment
  capture (the customer's keypad digits go to it, never to the agent, and
  the recording is paused), or it ended
- ``error`` code, message: a frame was refused; the message names the
  problem (``chat.text must be 1..2000 characters``, ``unknown type
  'ofer'``, ``offer.sdp is missing``, ``not JSON: ...``). Codes:
  ``not_json``, ``missing_key``, ``unknown_key``, ``unknown_type``,
  ``bad_value``, ``too_large`` (fatal: the server closes the socket),
  ``sdp_refused`` (see :mod:`assistline.signalling.sdp_policy`),
  ``not_now`` (a well-formed message the session cannot take in its state)
- ``pong``

Every error but ``too_large`` leaves the session as it was: the page may
send the next frame. Every string is bounded (agent 100, reasons 200, error
messages 500, contact 64 characters); the schema carries every bound.
"""

from __future__ import annotations

import dataclasses
import json
import typing
from collections.abc import Mapping
from typing import Annotated, Any, ClassVar, Literal, NotRequired, TypedDict

from assistline.redaction import mask_card_numbers
from assistline.signalling.message_fields import (
    Choice,
    IceServersCheck,
    Integer,
    OrNull,
    Text,
    fields_of,
)
from assistline.signalling.message_fields import (
    ErrorCode as ErrorCode,
)
from assistline.signalling.message_fields import (
    MessageError as MessageError,
)

VERSION = 1
#: Largest frame accepted, in bytes of UTF-8; a larger one ends the session.
MAX_FRAME = 65_536
#: Longest SDP (characters) and ICE candidate line carried.
MAX_SDP = 16_384
MAX_CANDIDATE = 1_024
#: Longest chat text, in characters.
MAX_CHAT = 2_000
#: Keys a ``digit`` may carry.
DIGITS = "0123456789*#ABCD"

StateName = Literal["queued", "ringing", "connected", "on_hold", "ended"]
Media = Literal["audio", "video"]
Sender = Literal["agent", "customer"]


class IceServer(TypedDict):
    """One ``RTCIceServer`` as a browser's ``RTCPeerConnection`` takes it."""

    urls: list[str]
    username: NotRequired[str]
    credential: NotRequired[str]


class _Message:
    """Checks every field on construction, so a message that exists is valid."""

    __slots__ = ()
    TYPE: ClassVar[str]

    def __post_init__(self) -> None:
        for field in _FIELDS[type(self)]:
            value = getattr(self, field.name)
            if value is None and field.optional:
                continue
            checked = field.spec.check(f"{self.TYPE}.{field.key}", value)
            if checked is not value:
                object.__setattr__(self, field.name, checked)
        self._check_together()

    def _check_together(self) -> None:
        """Rules across fields."""

    @classmethod
    def _schema(cls) -> dict[str, Any]:
        fields = _FIELDS[cls]
        properties = {"type": {"const": cls.TYPE}} | {f.key: f.spec.schema() for f in fields}
        schema = {
            "type": "object",
            "description": (cls.__doc__ or "").strip(),
            "properties": properties,
            "required": ["type", *(f.key for f in fields if not f.optional)],
            "additionalProperties": False,
        }
        return schema | cls._schema_together()

    @classmethod
    def _schema_together(cls) -> dict[str, Any]:
        """The rules of :meth:`_check_together`, as JSON Schema keywords."""
        return {}


# ----------------------------------------------------------------- messages

_CANDIDATE_LINE = Text(
    0,
    MAX_CANDIDATE,
    r"(candidate:[^\r\n]+)?",
    "must be empty or one line starting with 'candidate:'",
)
_MID = Text(1, 32, r"[!-~]+", "must be printable ASCII")
_Sdp = Annotated[str, Text(1, MAX_SDP)]
_AgentName = Annotated[str | None, Text(1, 100)]
_Reason = Annotated[str, Text(1, 200)]
_ChatText = Annotated[str, Text(1, MAX_CHAT)]


@dataclasses.dataclass(frozen=True, slots=True)
class Offer(_Message):
    """An SDP offer: from the page to start (or escalate) a call, or from the server."""

    TYPE: ClassVar[str] = "offer"
    sdp: _Sdp


@dataclasses.dataclass(frozen=True, slots=True)
class Answer(_Message):
    """The SDP answer to an offer from the other side."""

    TYPE: ClassVar[str] = "answer"
    sdp: _Sdp


@dataclasses.dataclass(frozen=True, slots=True)
class Candidate(_Message):
    """A trickled ICE candidate; candidate "" is the end of candidates."""

    TYPE: ClassVar[str] = "candidate"
    candidate: Annotated[str, _CANDIDATE_LINE]
    sdp_mid: Annotated[str | None, OrNull(_MID), "sdpMid"]
    sdp_mline_index: Annotated[int | None, OrNull(Integer(0, 65535)), "sdpMLineIndex"]
    username_fragment: Annotated[str | None, OrNull(Text(1, 256)), "usernameFragment"] = None

    def _check_together(self) -> None:
        if self.candidate and self.sdp_mid is None and self.sdp_mline_index is None:
            raise MessageError("bad_value", "candidate needs sdpMid or sdpMLineIndex")

    @classmethod
    def _schema_together(cls) -> dict[str, Any]:
        located = [
            {"properties": {"candidate": {"const": ""}}},
            {"properties": {"sdpMid": {"type": "string"}}},
            {"properties": {"sdpMLineIndex": {"type": "integer"}}},
        ]
        return {"anyOf": located}


@dataclasses.dataclass(frozen=True, slots=True, repr=False)
class Digit(_Message):
    """A keypad key pressed on the page, played to the agent as a tone."""

    TYPE: ClassVar[str] = "digit"
    digit: Annotated[str, Choice(tuple(DIGITS), "must be one key: 0-9, *, #, A-D")]

    def __repr__(self) -> str:
        return "Digit(digit='*')"


@dataclasses.dataclass(frozen=True, slots=True, repr=False)
class Chat(_Message):
    """Chat text the customer typed."""

    TYPE: ClassVar[str] = "chat"
    text: _ChatText

    def __repr__(self) -> str:
        return f"Chat(text={mask_card_numbers(self.text)!r})"


@dataclasses.dataclass(frozen=True, slots=True)
class EscalateVideo(_Message):
    """The customer asks to add video to the call."""

    TYPE: ClassVar[str] = "escalate_video"


@dataclasses.dataclass(frozen=True, slots=True)
class Hangup(_Message):
    """The customer ends the contact."""

    TYPE: ClassVar[str] = "hangup"


@dataclasses.dataclass(frozen=True, slots=True)
class Ping(_Message):
    """Keep-alive; the server answers pong."""

    TYPE: ClassVar[str] = "ping"


@dataclasses.dataclass(frozen=True, slots=True, repr=False)
class Hello(_Message):
    """The server's first frame: the contact, its media and the ICE servers to use."""

    TYPE: ClassVar[str] = "hello"
    contact: Annotated[str, Text(1, 64)]
    media: Annotated[Media, Choice(typing.get_args(Media))]
    ice_servers: Annotated[tuple[IceServer, ...], IceServersCheck()]
    version: Annotated[int, Integer(VERSION, VERSION)] = VERSION

    def __repr__(self) -> str:
        servers = [
            {**s, "credential": "<masked>"} if "credential" in s else s for s in self.ice_servers
        ]
        return f"Hello(contact={self.contact!r}, media={self.media!r}, ice_servers={servers!r})"


#: The keys a ``state`` carries besides ``state``, per state.
STATE_KEYS: Mapping[str, tuple[str, ...]] = {
    "queued": ("position",),
    "ringing": ("agent",),
    "connected": ("agent",),
    "on_hold": (),
    "ended": ("reason",),
}


@dataclasses.dataclass(frozen=True, slots=True)
class State(_Message):
    """Where the contact is: queued (position), ringing, connected, on hold, ended (reason)."""

    TYPE: ClassVar[str] = "state"
    state: Annotated[StateName, Choice(typing.get_args(StateName))]
    position: Annotated[int | None, Integer(1, 100_000)] = None
    agent: _AgentName = None
    reason: Annotated[str | None, Text(1, 200)] = None

    def _check_together(self) -> None:
        wanted = STATE_KEYS[self.state]
        for key in _STATE_EXTRAS:
            present = getattr(self, key) is not None
            if present and key not in wanted:
                raise MessageError(
                    "unknown_key", f"state.{key} does not go with state {self.state!r}"
                )
            if not present and key in wanted:
                raise MessageError("missing_key", f"state.{key} is missing")

    @classmethod
    def _schema_together(cls) -> dict[str, Any]:
        variants = []
        for state, keys in STATE_KEYS.items():
            others = [key for key in _STATE_EXTRAS if key not in keys]
            properties: dict[str, Any] = {"state": {"const": state}} | dict.fromkeys(others, False)
            variants.append({"properties": properties, "required": ["state", *keys]})
        return {"oneOf": variants}


_STATE_EXTRAS = ("position", "agent", "reason")


@dataclasses.dataclass(frozen=True, slots=True, repr=False)
class ChatLine(_Message):
    """A chat line for the page to show: the agent's, or the customer's own echoed back."""

    TYPE: ClassVar[str] = "chat"
    text: _ChatText
    sender: Annotated[Sender, Choice(typing.get_args(Sender)), "from"]

    def __repr__(self) -> str:
        return f"ChatLine(text={mask_card_numbers(self.text)!r}, sender={self.sender!r})"


@dataclasses.dataclass(frozen=True, slots=True)
class VideoUnavailable(_Message):
    """An ``escalate_video`` cannot be honoured; the call goes on as it was."""

    TYPE: ClassVar[str] = "video_unavailable"
    reason: _Reason


SecureWindow = Literal["on", "off"]


@dataclasses.dataclass(frozen=True, slots=True)
class Secure(_Message):
    """The agent put the customer into secure payment capture (``on``), or it ended."""

    TYPE: ClassVar[str] = "secure"
    state: Annotated[SecureWindow, Choice(typing.get_args(SecureWindow))]


@dataclasses.dataclass(frozen=True, slots=True)
class Error(_Message):
    """A frame from the page was refused; the message names the problem."""

    TYPE: ClassVar[str] = "error"
    code: Annotated[ErrorCode, Choice(typing.get_args(ErrorCode))]
    message: Annotated[str, Text(1, 500)]

    @classmethod
    def of(cls, error: MessageError) -> Error:
        """The ``error`` frame telling the page about ``error``."""
        return cls(error.code, str(error))


@dataclasses.dataclass(frozen=True, slots=True)
class Pong(_Message):
    """The answer to a ping."""

    TYPE: ClassVar[str] = "pong"


ClientMessage = Offer | Answer | Candidate | Digit | Chat | EscalateVideo | Hangup | Ping
ServerMessage = (
    Hello
    | Offer
    | Answer
    | Candidate
    | State
    | ChatLine
    | VideoUnavailable
    | EscalateVideo
    | Secure
    | Error
    | Pong
)
#: Message classes by type, per direction (offer, answer, candidate, chat go both ways).
FROM_CLIENT: Mapping[str, type[_Message]] = {c.TYPE: c for c in typing.get_args(ClientMessage)}
FROM_SERVER: Mapping[str, type[_Message]] = {c.TYPE: c for c in typing.get_args(ServerMessage)}
_FIELDS = {cls: fields_of(cls) for cls in {*FROM_CLIENT.values(), *FROM_SERVER.values()}}


# ------------------------------------------------------------ wire format


def parse_client(text: str) -> ClientMessage:
    """A text frame from a page, as a message; raises :class:`MessageError` naming the problem."""
    message: ClientMessage = _parse(text, FROM_CLIENT, "server")
    return message


def parse_server(text: str) -> ServerMessage:
    """A text frame from the server, as a message (for test clients and tools)."""
    message: ServerMessage = _parse(text, FROM_SERVER, "client")
    return message


def _parse(text: str, classes: Mapping[str, type[_Message]], other_side: str) -> Any:
    size = len(text.encode("utf-8", "surrogatepass"))
    if size > MAX_FRAME:
        raise MessageError("too_large", f"frame is {size} bytes, more than {MAX_FRAME}", fatal=True)
    try:
        body = json.loads(text, parse_constant=_refuse_constant, parse_int=_short_int)
    except RecursionError:
        raise MessageError("not_json", "not JSON: nested too deeply") from None
    except ValueError as error:
        raise MessageError("not_json", f"not JSON: {error}") from None
    if not isinstance(body, dict):
        raise MessageError("not_json", "not a JSON object")
    kind = body.pop("type", None)
    if kind is None:
        raise MessageError("missing_key", "type is missing")
    if type(kind) is not str:
        raise MessageError("bad_value", "type must be a string")
    cls = classes.get(kind)
    if cls is None:
        if kind in (FROM_SERVER if other_side == "server" else FROM_CLIENT):
            raise MessageError("unknown_type", f"type {kind!r} is only sent by the {other_side}")
        raise MessageError("unknown_type", f"unknown type {kind[:40]!r}")
    fields = _FIELDS[cls]
    unknown = sorted(body.keys() - {f.key for f in fields})
    if unknown:
        raise MessageError("unknown_key", f"{kind} has unknown key {unknown[0][:40]!r}")
    for field in fields:
        if field.key not in body and not field.optional:
            raise MessageError("missing_key", f"{kind}.{field.key} is missing")
    return cls(**{f.name: body[f.key] for f in fields if f.key in body})


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


def _short_int(digits: str) -> int:
    if len(digits) > 20:
        raise ValueError("an integer is longer than 20 digits")
    return int(digits)


def encode(message: ClientMessage | ServerMessage) -> str:
    """One message as one compact JSON text frame (keys in the documented order)."""
    cls = type(message)
    if cls not in _FIELDS:
        raise TypeError(f"{cls.__name__} is not a signalling message")
    body: dict[str, Any] = {"type": cls.TYPE}
    for field in _FIELDS[cls]:
        value = getattr(message, field.name)
        if value is None and field.optional:
            continue
        body[field.key] = list(value) if isinstance(value, tuple) else value
    return json.dumps(body, ensure_ascii=False, separators=(",", ":"))


# ----------------------------------------------------------------- schema


def schema() -> dict[str, Any]:
    """The protocol as a JSON Schema (draft 2020-12): any frame, either direction."""
    defs: dict[str, Any] = {cls.__name__: cls._schema() for cls in _FIELDS}
    for name, classes, says in (
        ("ClientMessage", FROM_CLIENT, "A frame from the page to the server."),
        ("ServerMessage", FROM_SERVER, "A frame from the server to the page."),
    ):
        refs = [{"$ref": f"#/$defs/{cls.__name__}"} for cls in classes.values()]
        defs[name] = {"description": says, "oneOf": refs}
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": f"assistline WebSocket signalling, version {VERSION}",
        "description": (
            f"One JSON object per text frame, at most {MAX_FRAME} bytes of UTF-8. "
            "Generated from assistline.signalling.messages; do not edit by hand."
        ),
        "anyOf": [{"$ref": "#/$defs/ClientMessage"}, {"$ref": "#/$defs/ServerMessage"}],
        "$defs": defs,
    }


def schema_json() -> str:
    """:func:`schema` exactly as ``web_client/signalling.schema.json`` holds it."""
    return json.dumps(schema(), indent=2, sort_keys=True) + "\n"
