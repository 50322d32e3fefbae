"""The control ↔ media worker protocol: every command and event, in one place.

A media worker connects to the control process's Unix socket and both sides
exchange **one JSON object per line** (UTF-8, newline-terminated, at most
:data:`MAX_LINE` bytes). Every object has a ``"type"``; the other keys are
exactly the fields listed below (a missing or unknown key is an error, so a
typo never passes silently). This module is sans-IO: :func:`encode` turns a
message into bytes and a :class:`Decoder` turns bytes, fed in any chunking,
back into messages, raising :class:`ProtocolError` naming what was wrong.

Version :data:`VERSION` = 1. The worker's first line is ``hello``; the
control process closes the connection when the version is not its own.

Worker → control, once:

- ``hello`` version, worker (id), pid, sip_port, capacity (calls it holds)

Control → worker commands. Each carries ``id``, a request id the control
process chooses; the worker answers each with ``result`` or ``error``
carrying the same ``id``:

- ``answer`` id, leg
- ``reject`` id, leg, status (SIP 4xx–6xx), reason
- ``place_call`` id, destination (SIP URI), caller_id (SIP URI), headers
  (list of [name, value]); the ``result`` carries the new leg id
- ``play`` id, leg, file (path of a mono 16-bit WAV file at 8 or 16 kHz,
  played once) or tone (a call-progress tone name from
  :data:`assistline.media.tones.CALL_PROGRESS_TONES`, played until the next
  ``play`` or ``bridge``): exactly one of them
- ``collect_digits`` id, leg, min_digits, max_digits (1..64), terminator
  (one key, "" for none), first_timeout_ms, inter_digit_timeout_ms: the
  ``result`` comes at once, the digits later in a ``digits`` event; a new
  collection on the leg replaces a running one (see
  :mod:`assistline.sip.digits`)
- ``bridge`` id, leg_a, leg_b (both on this worker; each hears the other,
  until one of them ends)
- ``record`` id, leg, path: a stereo 16 kHz WAV file (left what the leg
  sends, right what it hears) at ``path``, absolute, in an existing
  directory, never overwritten (409 when it or its ``.json`` sidecar of
  pause intervals exists, or the leg is already recorded); closed when the
  leg ends
- ``pause_recording`` id, leg; ``resume_recording`` id, leg: silence
  instead of audio until resumed (idempotent; 404 when the leg is not
  being recorded)
- ``hangup`` id, leg, cause (SIP status sent, e.g. 486 before answer;
  ignored after answer, where a BYE is sent)
- ``send_dtmf`` id, leg, digits
- ``stop`` id: hang up every call and exit
- ``trunk`` id, address (host:port of the SIP trunk), username, password
  (digest credentials; ``repr`` masks the password and nothing logs it),
  proxy (outbound proxy URI, the SIP edge; "" for none), contact (Contact
  URI of the registration; "" for the worker's own), register_expiry
  (seconds; 0: do not register): set up the trunk account that
  ``place_call`` uses for destinations at ``address`` (409 when one is set
  up already, 400 for a bad address). The control process sends it
  right after ``hello``

Worker → control events:

- ``result`` id, leg ("" when the command made none)
- ``error`` id, code (SIP-like status: 400 bad command, 404 unknown leg
  or no recording, 409 conflict (leg already bridged or recorded, file
  exists), 501 not implemented, 503 full), message
- ``incoming_call`` leg, from_uri, to_uri, headers (list of [name, value];
  the ``X-`` headers of the INVITE)
- ``ringing`` leg; ``answered`` leg
- ``digit`` leg, digit, method (``rfc4733``, ``info`` or ``inband``). The
  digit may be card data: the control process needs it for the IVR, so it
  crosses the socket in memory, but ``repr`` masks it and nothing logs it
- ``digits`` leg, digits, outcome (``max_digits``, ``terminator``,
  ``timeout``, ``no_input`` or ``hangup``), valid (min..max collected):
  the end of a ``collect_digits``; ``repr`` masks the digits
- ``hold`` leg; ``unhold`` leg
- ``hangup`` leg, status (SIP status that ended the call: 200 for a BYE
  from the far end, the refusal it got (486, 408…), the ``cause`` of a
  ``hangup`` command; 0 when the worker died), reason
- ``media_stats`` leg, packets (RTP packets received), lost (packets the
  RTP sequence says never came), jitter_ms (largest interarrival jitter),
  jbuf_lost and jbuf_discarded (frames the jitter buffer concealed or threw
  away), jbuf_delay_ms (its average delay so far): counts since the leg's
  previous ``media_stats`` (jitter_ms: the largest so far), summing to totals.
  Sent every ``sip.quality_interval`` while the stream is up and something
  changed, and when it ends (at hang-up, and when a re-INVITE replaces
  it), before or after its ``hangup`` (see :mod:`assistline.sip.quality`)
- ``health`` calls, capacity; sent every second, so a worker silent for
  2 s is dead

Why JSON lines: the control socket carries a few events per call per
second, so readability and easy debugging beat a binary format, and every
language can speak it.
"""

from __future__ import annotations

import dataclasses
import json
import types
import typing
from collections.abc import Callable, Iterator
from typing import Any, ClassVar, Literal, Union

from assistline.errors import AssistlineError

VERSION = 1
#: Call slots a caller takes in its worker: its own leg and the agent leg the
#: control process places from the same worker to bridge it to. A worker
#: refuses an incoming call with "503 Worker Full" when fewer are free.
SLOTS_PER_CALL = 2
#: Longest line accepted, terminator included; longer is a protocol error.
MAX_LINE = 65_536

Headers = tuple[tuple[str, str], ...]
DtmfMethod = Literal["rfc4733", "info", "inband"]
CollectOutcome = Literal["max_digits", "terminator", "timeout", "no_input", "hangup"]


class ProtocolError(AssistlineError, ValueError):
    """A control-socket message was malformed; the peer speaks another protocol version."""


@dataclasses.dataclass(frozen=True, slots=True)
class Hello:
    """First line from a worker: who it is and what it holds."""

    TYPE: ClassVar[str] = "hello"
    version: int
    worker: str
    pid: int
    sip_port: int
    capacity: int


# ----------------------------------------------------------------- commands


@dataclasses.dataclass(frozen=True, slots=True)
class Answer:
    """Answer an incoming call with 200 OK."""

    TYPE: ClassVar[str] = "answer"
    id: int
    leg: str


@dataclasses.dataclass(frozen=True, slots=True)
class Reject:
    """Refuse an incoming call with a SIP error status."""

    TYPE: ClassVar[str] = "reject"
    id: int
    leg: str
    status: int
    reason: str


@dataclasses.dataclass(frozen=True, slots=True)
class PlaceCall:
    """Send an INVITE; the result names the new leg."""

    TYPE: ClassVar[str] = "place_call"
    id: int
    destination: str
    caller_id: str
    headers: Headers = ()


@dataclasses.dataclass(frozen=True, slots=True)
class Play:
    """Play a WAV file or a named tone to a leg."""

    TYPE: ClassVar[str] = "play"
    id: int
    leg: str
    file: str | None = None
    tone: str | None = None


@dataclasses.dataclass(frozen=True, slots=True)
class CollectDigits:
    """Gather keypad digits on a leg (digits still come as ``digit`` events)."""

    TYPE: ClassVar[str] = "collect_digits"
    id: int
    leg: str
    min_digits: int
    max_digits: int
    terminator: str
    first_timeout_ms: int
    inter_digit_timeout_ms: int


@dataclasses.dataclass(frozen=True, slots=True)
class Bridge:
    """Connect two legs so each hears the other."""

    TYPE: ClassVar[str] = "bridge"
    id: int
    leg_a: str
    leg_b: str


@dataclasses.dataclass(frozen=True, slots=True)
class Record:
    """Start recording a leg (and whatever it is bridged to) to ``path``."""

    TYPE: ClassVar[str] = "record"
    id: int
    leg: str
    path: str


@dataclasses.dataclass(frozen=True, slots=True)
class PauseRecording:
    """Pause a leg's recording (secure capture)."""

    TYPE: ClassVar[str] = "pause_recording"
    id: int
    leg: str


@dataclasses.dataclass(frozen=True, slots=True)
class ResumeRecording:
    """Resume a paused recording."""

    TYPE: ClassVar[str] = "resume_recording"
    id: int
    leg: str


@dataclasses.dataclass(frozen=True, slots=True)
class Hangup:
    """End a call; ``cause`` is the SIP status sent when it is not yet answered."""

    TYPE: ClassVar[str] = "hangup"
    id: int
    leg: str
    cause: int = 603


@dataclasses.dataclass(frozen=True, slots=True, repr=False)
class SendDtmf:
    """Send keypad digits on a leg (RFC 4733)."""

    TYPE: ClassVar[str] = "send_dtmf"
    id: int
    leg: str
    digits: str

    def __repr__(self) -> str:
        return f"SendDtmf(id={self.id}, leg={self.leg!r}, digits=<{len(self.digits)} masked>)"


@dataclasses.dataclass(frozen=True, slots=True)
class Stop:
    """Hang up everything and exit."""

    TYPE: ClassVar[str] = "stop"
    id: int


@dataclasses.dataclass(frozen=True, slots=True, repr=False)
class Trunk:
    """Set up the SIP trunk account: calls through it, and registration if asked."""

    TYPE: ClassVar[str] = "trunk"
    id: int
    address: str
    username: str
    password: str
    proxy: str = ""
    contact: str = ""
    register_expiry: int = 0

    def __repr__(self) -> str:
        return (
            f"Trunk(id={self.id}, address={self.address!r}, username={self.username!r}, "
            f"password=<masked>, proxy={self.proxy!r}, contact={self.contact!r}, "
            f"register_expiry={self.register_expiry})"
        )


Command = (
    Answer
    | Reject
    | PlaceCall
    | Play
    | CollectDigits
    | Bridge
    | Record
    | PauseRecording
    | ResumeRecording
    | Hangup
    | SendDtmf
    | Stop
    | Trunk
)

# ------------------------------------------------------------------- events


@dataclasses.dataclass(frozen=True, slots=True)
class Result:
    """A command succeeded; ``leg`` is the leg it made, if any."""

    TYPE: ClassVar[str] = "result"
    id: int
    leg: str = ""


@dataclasses.dataclass(frozen=True, slots=True)
class Error:
    """A command failed; ``code`` is SIP-like (400, 404, 501, 503)."""

    TYPE: ClassVar[str] = "error"
    id: int
    code: int
    message: str


@dataclasses.dataclass(frozen=True, slots=True)
class IncomingCall:
    """An INVITE arrived and is ringing, waiting for answer or reject."""

    TYPE: ClassVar[str] = "incoming_call"
    leg: str
    from_uri: str
    to_uri: str
    headers: Headers = ()


@dataclasses.dataclass(frozen=True, slots=True)
class Ringing:
    """An outbound call is ringing at the far end."""

    TYPE: ClassVar[str] = "ringing"
    leg: str


@dataclasses.dataclass(frozen=True, slots=True)
class Answered:
    """A call is connected (either direction)."""

    TYPE: ClassVar[str] = "answered"
    leg: str


@dataclasses.dataclass(frozen=True, slots=True, repr=False)
class Digit:
    """A keypad digit arrived; ``repr`` masks the digit, which may be card data."""

    TYPE: ClassVar[str] = "digit"
    leg: str
    digit: str
    method: DtmfMethod

    def __repr__(self) -> str:
        return f"Digit(leg={self.leg!r}, digit='*', method={self.method!r})"


@dataclasses.dataclass(frozen=True, slots=True)
class DigitsCollected:
    """A ``collect_digits`` ended; ``repr`` masks the digits, which may be card data."""

    TYPE: ClassVar[str] = "digits"
    leg: str
    digits: str
    outcome: CollectOutcome
    valid: bool

    def __repr__(self) -> str:
        return (
            f"DigitsCollected(leg={self.leg!r}, digits='{'*' * len(self.digits)}', "
            f"outcome={self.outcome!r}, valid={self.valid!r})"
        )


@dataclasses.dataclass(frozen=True, slots=True)
class Hold:
    """The far end put the call on hold."""

    TYPE: ClassVar[str] = "hold"
    leg: str


@dataclasses.dataclass(frozen=True, slots=True)
class Unhold:
    """The far end took the call off hold."""

    TYPE: ClassVar[str] = "unhold"
    leg: str


@dataclasses.dataclass(frozen=True, slots=True)
class CallEnded:
    """A call ended; ``status`` 0 means its worker died."""

    TYPE: ClassVar[str] = "hangup"
    leg: str
    status: int
    reason: str


@dataclasses.dataclass(frozen=True, slots=True)
class MediaStats:
    """What a leg's audio stream received since its previous report (live, and at its end)."""

    TYPE: ClassVar[str] = "media_stats"
    leg: str
    packets: int
    lost: int
    jitter_ms: int
    jbuf_lost: int
    jbuf_discarded: int
    jbuf_delay_ms: int


@dataclasses.dataclass(frozen=True, slots=True)
class Health:
    """Sent every second: calls in use and the most the worker holds."""

    TYPE: ClassVar[str] = "health"
    calls: int
    capacity: int


Event = (
    Result
    | Error
    | IncomingCall
    | Ringing
    | Answered
    | Digit
    | DigitsCollected
    | Hold
    | Unhold
    | CallEnded
    | MediaStats
    | Health
)
Message = Hello | Command | Event

_CLASSES: tuple[type[Any], ...] = (Hello, *typing.get_args(Command), *typing.get_args(Event))
#: Message classes by type, for each direction ("hangup" is both a command and an event).
TO_WORKER: dict[str, type[Any]] = {cls.TYPE: cls for cls in typing.get_args(Command)}
TO_CONTROL: dict[str, type[Any]] = {cls.TYPE: cls for cls in (Hello, *typing.get_args(Event))}
Direction = Literal["to_worker", "to_control"]


def encode(message: Message) -> bytes:
    """One message as one JSON line."""
    cls = type(message)
    if cls not in _FIELDS:
        raise TypeError(f"{cls.__name__} is not a protocol message")
    body: dict[str, Any] = {"type": cls.TYPE}
    for name, *_ in _FIELDS[cls]:
        value = getattr(message, name)
        body[name] = [list(pair) for pair in value] if name == "headers" else value
    return json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode() + b"\n"


#: Checks a field's JSON value (``where`` names it in errors) and returns its Python shape.
_Checker = Callable[[str, Any], Any]


def _checker(hint: Any) -> _Checker:
    """The check for a field typed ``hint``, built once per field (parsing is per message)."""
    origin = typing.get_origin(hint)
    if origin in (Union, types.UnionType):
        options = [_checker(option) for option in typing.get_args(hint)]

        def check_union(where: str, value: Any) -> Any:
            for option in options:
                try:
                    return option(where, value)
                except ProtocolError:
                    continue
            raise ProtocolError(f"{where} has the wrong type ({type(value).__name__})")

        return check_union
    if origin is Literal:
        allowed = typing.get_args(hint)

        def check_literal(where: str, value: Any) -> Any:
            if value not in allowed:
                raise ProtocolError(f"{where} must be one of {', '.join(allowed)}")
            return value

        return check_literal
    if hint in _SCALARS:
        return _scalar(hint, _SCALARS[hint])
    if hint == Headers:
        return _check_headers
    raise TypeError(f"no check for {hint!r}")  # pragma: no cover - a bug in this module


#: Exact types: JSON gives exact ones, and True must not pass for an integer.
_SCALARS = {
    type(None): "must be null",
    int: "must be an integer",
    bool: "must be true or false",
    str: "must be a string",
}


def _scalar(kind: type[Any], error: str) -> _Checker:
    def check(where: str, value: Any) -> Any:
        if type(value) is not kind:
            raise ProtocolError(f"{where} {error}")
        return value

    return check


def _check_headers(where: str, value: Any) -> Headers:
    if not isinstance(value, list) or not all(
        isinstance(pair, list) and len(pair) == 2 and all(isinstance(s, str) for s in pair)
        for pair in value
    ):
        raise ProtocolError(f"{where} must be a list of [name, value] strings")
    return tuple((pair[0], pair[1]) for pair in value)


#: Per message class, in field order: (name, "kind.name", required, check).
def _field_checks(cls: type[Any]) -> tuple[tuple[str, str, bool, _Checker], ...]:
    """(name, "kind.name", required, check) for each field of ``cls``, in order."""
    hints, required = typing.get_type_hints(cls), dataclasses.MISSING
    return tuple(
        (f.name, f"{cls.TYPE}.{f.name}", f.default is required, _checker(hints[f.name]))
        for f in dataclasses.fields(cls)
    )


_FIELDS = {cls: _field_checks(cls) for cls in _CLASSES}
_NAMES = {cls: {field[0] for field in fields} for cls, fields in _FIELDS.items()}


def parse(line: bytes, direction: Direction) -> Message:
    """One JSON line (without its terminator) sent in ``direction``, as a message."""
    try:
        body = json.loads(line)
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise ProtocolError("line is not JSON") from None
    if not isinstance(body, dict):
        raise ProtocolError("line is not a JSON object")
    kind = body.pop("type", None)
    if not isinstance(kind, str):
        raise ProtocolError("message has no type")
    cls = (TO_WORKER if direction == "to_worker" else TO_CONTROL).get(kind)
    if cls is None:
        raise ProtocolError(f"unknown message type {kind[:40]!r} {direction.replace('_', ' ')}")
    if not _NAMES[cls] >= body.keys():
        unknown = sorted(set(body) - _NAMES[cls])
        raise ProtocolError(f"{kind} has unknown field {unknown[0][:40]!r}")
    values: dict[str, Any] = {}
    for name, where, required, check in _FIELDS[cls]:
        if name not in body:
            if required:
                raise ProtocolError(f"{kind} lacks field {name!r}")
            continue
        values[name] = check(where, body[name])
    message: Message = cls(**values)
    if isinstance(message, Play) and (message.file is None) == (message.tone is None):
        raise ProtocolError("play needs exactly one of file and tone")
    return message


class Decoder:
    """Streaming decoder: feed bytes as they arrive, get whole messages back.

    ``direction`` is the direction of the bytes fed: a worker decodes
    ``"to_worker"`` (commands), the control process ``"to_control"``.
    """

    def __init__(self, direction: Direction) -> None:
        self.direction: Direction = direction
        self._buffer = bytearray()

    def feed(self, data: bytes) -> Iterator[Message]:
        """Messages completed by ``data``; raises ProtocolError at the first bad line."""
        self._buffer += data
        while True:
            end = self._buffer.find(b"\n")
            if end < 0:
                if len(self._buffer) >= MAX_LINE:
                    self._buffer.clear()
                    raise ProtocolError(f"line longer than {MAX_LINE} bytes")
                return
            if end + 1 > MAX_LINE:
                del self._buffer[: end + 1]
                raise ProtocolError(f"line longer than {MAX_LINE} bytes")
            line = bytes(self._buffer[:end])
            del self._buffer[: end + 1]
            yield parse(line, self.direction)

    @property
    def pending(self) -> int:
        """Bytes received but not yet a whole line."""
        return len(self._buffer)
