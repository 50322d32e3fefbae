"""The commands the control process sends a media worker.

They are documented in :mod:`assistline.sip.protocol`, which re-exports
them beside the events, so callers name every message ``protocol.X``: one
frozen dataclass per command.
"""

from __future__ import annotations

import dataclasses
from typing import ClassVar, Literal

Headers = tuple[tuple[str, str], ...]
#: A WebRTC leg's ICE servers: (url, username, credential), "" where none.
IceServers = tuple[tuple[str, str, str], ...]


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
    #: A ringing caller on this worker that the new leg connects to when it
    #: answers (answered, bridged and, with ``record``, recorded by the worker).
    connect_to: str = ""
    record: str = ""


@dataclasses.dataclass(frozen=True, slots=True)
class Play:
    """Play a WAV file or a named tone to a leg."""

    TYPE: ClassVar[str] = "play"
    id: int
    leg: str
    file: str | None = None
    tone: str | None = None


@dataclasses.dataclass(frozen=True, slots=True)
class StopPlay:
    """Stop what is playing to a leg (barge-in)."""

    TYPE: ClassVar[str] = "stop_play"
    id: int
    leg: str


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
class SecureStart:
    """Card data may come from this leg: pause recordings, suppress its tones toward its peer."""

    TYPE: ClassVar[str] = "secure_start"
    id: int
    leg: str


@dataclasses.dataclass(frozen=True, slots=True)
class HoldLeg:
    """Put a bridged leg on hold (it hears the hold tone, its peer hears nothing of it)."""

    TYPE: ClassVar[str] = "hold_leg"
    id: int
    leg: str
    on: bool


@dataclasses.dataclass(frozen=True, slots=True)
class SecureEnd:
    """The secure window of this leg is over: resume what ``secure_start`` paused."""

    TYPE: ClassVar[str] = "secure_end"
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


@dataclasses.dataclass(frozen=True, slots=True)
class WebRtcOffer:
    """Create a WebRTC leg answering a page's offer."""

    TYPE: ClassVar[str] = "webrtc_offer"
    id: int
    contact: str
    sdp: str
    ice_servers: IceServers = ()
    role: Literal["customer", "agent"] = "customer"


@dataclasses.dataclass(frozen=True, slots=True)
class WebRtcRenegotiate:
    """Answer a new offer from a WebRTC leg's page (video added mid-call)."""

    TYPE: ClassVar[str] = "webrtc_renegotiate"
    id: int
    leg: str
    sdp: str


@dataclasses.dataclass(frozen=True, slots=True)
class WebRtcCandidate:
    """A candidate a WebRTC leg's page trickled ("" ends them)."""

    TYPE: ClassVar[str] = "webrtc_candidate"
    id: int
    leg: str
    candidate: str
    sdp_mid: str | None = None
    sdp_mline_index: int | None = None


Command = (
    Answer
    | Reject
    | PlaceCall
    | Play
    | StopPlay
    | CollectDigits
    | Bridge
    | Record
    | PauseRecording
    | ResumeRecording
    | SecureStart
    | SecureEnd
    | HoldLeg
    | Hangup
    | SendDtmf
    | Stop
    | Trunk
    | WebRtcOffer
    | WebRtcRenegotiate
    | WebRtcCandidate
)
