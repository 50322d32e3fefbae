"""The control ↔ media worker protocol: every command and event, in one place.

A media worker connects to the control process's Unix socket and both sides
exchange **one JSON object per line** (UTF-8, newline-terminated, at most
:data:`MAX_LINE` bytes). Every object has a ``"type"``; the other keys are
exactly the fields listed below (a missing or unknown key is an error, so a
typo never passes silently). This module holds the messages;
:mod:`assistline.sip.protocol_wire` (sans-IO) encodes them and decodes bytes,
fed in any chunking, back into messages, raising :class:`ProtocolError`
naming what was wrong.

Version :data:`VERSION` = 2 (2 added ``place_call``'s connect_to and
record, and ``connected``). The worker's first line is ``hello``; the
control process closes the connection when the version is not its own.

Worker → control, once:

- ``hello`` version, worker (id), pid, sip_port, capacity (calls it holds)

Control → worker commands. Each carries ``id``, a request id the control
process chooses; the worker answers each with ``result`` or ``error``
carrying the same ``id``:

- ``answer`` id, leg
- ``reject`` id, leg, status (SIP 4xx–6xx), reason
- ``place_call`` id, destination (SIP URI), caller_id (SIP URI), headers
  (list of [name, value]); the ``result`` carries the new leg id. With
  connect_to (a ringing caller's leg on this worker; "" for none) the
  worker connects the two itself, without a round trip per step: when the
  new leg answers, the caller is answered and bridged to it and, with
  record (a path, as ``record`` takes; "" for none), recorded; then the
  ``connected`` event comes. From then on, when either leg ends the worker
  hangs up the other; before, a caller that ends cancels the new leg (an
  unanswered new leg leaves the caller to the control process). 404 when
  the caller has ended already (no INVITE is sent)
- ``play`` id, leg, file (path of a mono 16-bit WAV file at 8 or 16 kHz,
  played once) or tone (a call-progress tone name from
  :data:`assistline.media.tones.CALL_PROGRESS_TONES`, played until the next
  ``play`` or ``bridge``): exactly one of them
- ``stop_play`` id, leg: stop the prompt or tone playing to the leg (the
  caller pressed a key over it: barge-in); idempotent
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
- ``secure_start`` id, leg: secure capture of card data begins on ``leg``
  (a SIP or WebRTC leg). Until ``secure_end``, recordings of the leg and of
  the leg it is bridged to are paused, and what the leg sends reaches its
  bridged leg and recordings only through DTMF suppression (40 ms later,
  keypad tones silenced; a pair bridged inside pjmedia moves to the Python
  path for it); it may be played prompts while bridged (they replace its
  peer's audio toward it while they play). Its digits still come to the
  control process as ``digit``
  events, and only there: a worker never forwards keypad events (RFC 4733,
  SIP INFO) from one leg to another. Idempotent
- ``hold_leg`` id, leg, on: a leg bridged through Python is put on hold
  (``on`` true: it hears the ``hold`` tone, its peer hears nothing of it)
  or taken off (the bridge as it was); 409 when the leg is not bridged
  through Python (agents on phones hold from the phone)
- ``secure_end`` id, leg: the window is over; the recordings
  ``secure_start`` paused resume (404 when the leg is not in secure
  capture). A leg that ends, or a worker that stops, ends its window too
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
- ``webrtc_offer`` id, contact, sdp (the page's offer: DTLS-SRTP, checked by
  the control process first), ice_servers (list of [url, username,
  credential]; "" for none): a WebRTC leg (:mod:`assistline.webrtc`) for the
  contact, role ("customer", the default, or "agent": an agent's browser
  console); the ``result`` carries the new leg id and the answer in
  ``sdp``. A customer's offer is refused 503 unless a call slot is free
  for its agent leg; an agent's takes none (its customer's holds it)
- ``webrtc_renegotiate`` id, leg, sdp: a new offer from the leg's page on
  the same connection (adding video mid-call); the ``result`` carries the
  answer in ``sdp``
- ``webrtc_candidate`` id, leg, candidate ("" ends them), sdp_mid,
  sdp_mline_index (each may be null): a candidate the page trickled. A
  WebRTC leg takes ``bridge`` (to a SIP leg, or to another WebRTC leg:
  audio both ways and, when both pages send it, video), ``play``,
  ``hangup`` and nothing else yet; it reports ``answered`` when its media
  connects and ``hangup`` when it ends (status 408 when its page stopped
  answering ICE consent checks)

Worker → control events:

- ``result`` id, leg ("" when the command made none), sdp (a
  ``webrtc_offer``'s answer; otherwise "")
- ``error`` id, code (SIP-like status: 400 bad command, 404 unknown leg
  or no recording, 409 conflict (leg already bridged or recorded, file
  exists), 501 not implemented, 503 full), message
- ``incoming_call`` leg, from_uri, to_uri, headers (list of [name, value];
  the ``X-`` headers of the INVITE)
- ``ringing`` leg; ``answered`` leg
- ``connected`` leg, peer, recording: a ``place_call`` leg with connect_to
  answered, and the worker answered its caller (``peer``) and bridged the
  two; recording says whether the asked recording runs (false when none
  was asked, or it failed: the worker logs why)
- ``played`` leg: a ``play`` of a file has handed its last frame to the leg
  (60 ms before it is heard); not sent for a tone, nor for a prompt ended
  by ``stop_play``, a later ``play`` or ``bridge``
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
import typing
from typing import Any, ClassVar, Literal

from assistline.errors import AssistlineError
from assistline.sip.protocol_commands import (  # re-exported: callers name protocol.X
    Answer as Answer,
)
from assistline.sip.protocol_commands import (
    Bridge as Bridge,
)
from assistline.sip.protocol_commands import (
    CollectDigits as CollectDigits,
)
from assistline.sip.protocol_commands import (
    Command as Command,
)
from assistline.sip.protocol_commands import (
    Hangup as Hangup,
)
from assistline.sip.protocol_commands import (
    Headers as Headers,
)
from assistline.sip.protocol_commands import (
    HoldLeg as HoldLeg,
)
from assistline.sip.protocol_commands import (
    IceServers as IceServers,
)
from assistline.sip.protocol_commands import (
    PauseRecording as PauseRecording,
)
from assistline.sip.protocol_commands import (
    PlaceCall as PlaceCall,
)
from assistline.sip.protocol_commands import (
    Play as Play,
)
from assistline.sip.protocol_commands import (
    Record as Record,
)
from assistline.sip.protocol_commands import (
    Reject as Reject,
)
from assistline.sip.protocol_commands import (
    ResumeRecording as ResumeRecording,
)
from assistline.sip.protocol_commands import (
    SecureEnd as SecureEnd,
)
from assistline.sip.protocol_commands import (
    SecureStart as SecureStart,
)
from assistline.sip.protocol_commands import (
    SendDtmf as SendDtmf,
)
from assistline.sip.protocol_commands import (
    Stop as Stop,
)
from assistline.sip.protocol_commands import (
    StopPlay as StopPlay,
)
from assistline.sip.protocol_commands import (
    Trunk as Trunk,
)
from assistline.sip.protocol_commands import (
    WebRtcCandidate as WebRtcCandidate,
)
from assistline.sip.protocol_commands import (
    WebRtcOffer as WebRtcOffer,
)
from assistline.sip.protocol_commands import (
    WebRtcRenegotiate as WebRtcRenegotiate,
)

VERSION = 2
#: Call slots a caller takes in its worker: its own leg and the agent leg the
#: control process places from the same worker to bridge it to. A worker
#: refuses an incoming call with "503 Worker Full" when fewer are free.
SLOTS_PER_CALL = 2
#: Longest line accepted, terminator included; longer is a protocol error.
MAX_LINE = 65_536

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


# ------------------------------------------------------------------- events


@dataclasses.dataclass(frozen=True, slots=True)
class Result:
    """A command succeeded; ``leg`` is the leg it made, if any (``sdp``: a WebRTC answer)."""

    TYPE: ClassVar[str] = "result"
    id: int
    leg: str = ""
    sdp: str = ""


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
class Played:
    """A file played to a leg to its end."""

    TYPE: ClassVar[str] = "played"
    leg: str


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


@dataclasses.dataclass(frozen=True, slots=True)
class Connected:
    """A placed leg answered and the worker connected it to its ``connect_to`` caller."""

    TYPE: ClassVar[str] = "connected"
    leg: str
    peer: str
    recording: bool


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
    | Connected
    | Played
    | Digit
    | DigitsCollected
    | Hold
    | Unhold
    | CallEnded
    | MediaStats
    | Health
)
Message = Hello | Command | Event

CLASSES: tuple[type[Any], ...] = (Hello, *typing.get_args(Command), *typing.get_args(Event))
#: Message classes by type, for each direction ("hangup" is both a command and an event).
TO_WORKER: dict[str, type[Any]] = {cls.TYPE: cls for cls in typing.get_args(Command)}
TO_CONTROL: dict[str, type[Any]] = {cls.TYPE: cls for cls in (Hello, *typing.get_args(Event))}
Direction = Literal["to_worker", "to_control"]
