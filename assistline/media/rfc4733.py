"""RFC 4733 telephone events: the payload, a receiver and a sender.

A key press on a SIP leg usually arrives as RTP packets of the
``telephone-event`` payload type rather than as tones in the audio. Each
packet carries one 4-byte report (event code, End bit, volume, duration so
far) and every report of one event shares the event's RTP timestamp. This
module owns the payload format, the receiver state machine that turns such a
packet stream into key presses, and the sender that turns a key press into
the standard packet sequence. RTP headers, sequence numbers and pacing are
left to the leg (pjsua2 or aiortc); :class:`EventPacket` maps onto the RTP
fields one to one.

Why the receiver works as it does:

- **A key press is reported on its first packet**, whichever packet that is
  (the marked start, an update or only an end), because an IVR that waits
  for the End bit answers a whole key-press later (100 ms or more) and gains
  nothing: the RTP timestamp already identifies the event. Each event is
  then reported exactly once more, as a :class:`KeyRelease`, when its End bit
  arrives, when a later event begins, or after ``release_timeout`` without
  a packet.
- **Events are told apart by RTP timestamp alone**, as RFC 4733 defines
  them: duplicates, the three retransmitted end packets and reordered updates
  carry the timestamp of an event already known and are absorbed; two presses
  of the same key carry different timestamps and are two presses. So the
  receiver needs no RTP sequence numbers.
- **A packet older than the current event is dropped**: reporting it late
  would put the digits of a card number out of order, while a missing digit
  makes the number too short, which the collecting step notices. A timestamp
  more than ``clock_rate`` units (one second) behind is not a late packet but
  a stream whose timestamps were re-based, and starts a new event.
- **Long events** (§2.5.1.3): when a duration would pass 0xFFFF the sender
  starts a new segment whose timestamp is the previous segment's timestamp
  plus that segment's duration, without marker. The receiver joins a segment
  to the current event when it has the same code, no marker, and starts a
  multiple of 0xFFFF units (whole segments may be lost) after the segment
  before, or exactly at the duration last reported if no End bit came. A new
  press whose start was lost does not start there: a key press is followed
  by a pause, and human timing does not hit 0xFFFF units to the unit.
- **The release timeout** defaults to 250 ms: five update intervals at
  50 ms, the longest in common use for DTMF, so a short burst of lost updates
  does not release a held key, while a press whose end packets were all lost
  is released within a quarter of a second (at once if the next press comes
  first). Time comes in as an argument (``now``, seconds on any monotonic
  clock); the module never reads a clock.

Payloads with several reports (§2.5.1.5) are rejected: DTMF senders do not
use them. Digit values are card data during payment, so nothing here logs
them or puts them into an exception message.
"""

from __future__ import annotations

import dataclasses
import struct

#: The DTMF keys in event-code order: codes 0-15 (RFC 4733 §3.2).
DTMF_KEYS = "0123456789*#ABCD"
#: The largest duration one report can carry, in timestamp units.
MAX_DURATION = 0xFFFF
#: The clock of ``telephone-event`` in practice (``telephone-event/8000``).
DEFAULT_CLOCK_RATE = 8000
#: Volume of generated DTMF, in -dBm0 (10 means -10 dBm0, a typical DTMF level).
DEFAULT_VOLUME = 10

_PAYLOAD = struct.Struct("!BBH")
_END_BIT = 0x80
_RESERVED_BIT = 0x40
_TIMESTAMP_MODULUS = 1 << 32


def key_name(code: int) -> str | None:
    """The DTMF key of an event code, or None for codes above 15."""
    if not 0 <= code <= 255:
        raise ValueError(f"an event code is 0-255, not {code}")
    return DTMF_KEYS[code] if code < len(DTMF_KEYS) else None


def key_code(key: str) -> int:
    """The event code of a DTMF key (``"0"``-``"9"``, ``"*"``, ``"#"``, ``"A"``-``"D"``)."""
    if len(key) != 1 or key.upper() not in DTMF_KEYS:
        raise ValueError("a DTMF key is one of 0-9, *, #, A-D")
    return DTMF_KEYS.index(key.upper())


@dataclasses.dataclass(frozen=True, slots=True)
class TelephoneEvent:
    """One 4-byte telephone-event report (RFC 4733 §2.3).

    ``volume`` is the power level in -dBm0 (0-63) and ``duration`` the time
    since the event's RTP timestamp, in timestamp units (0-0xFFFF).
    ``reserved`` is the R bit: senders clear it and receivers ignore it; it is
    kept so that a parsed payload serialises back to the same bytes.
    """

    code: int
    end: bool
    volume: int
    duration: int
    reserved: bool = False

    def __post_init__(self) -> None:
        if not 0 <= self.code <= 255:
            raise ValueError(f"an event code is 0-255, not {self.code}")
        if not 0 <= self.volume <= 63:
            raise ValueError(f"a telephone-event volume is 0-63, not {self.volume}")
        if not 0 <= self.duration <= MAX_DURATION:
            raise ValueError(f"a telephone-event duration is 0-65535, not {self.duration}")

    @property
    def key(self) -> str | None:
        """The DTMF key, or None for codes above 15."""
        return key_name(self.code)

    def to_bytes(self) -> bytes:
        """The 4-byte payload."""
        flags = (_END_BIT if self.end else 0) | (_RESERVED_BIT if self.reserved else 0)
        return _PAYLOAD.pack(self.code, flags | self.volume, self.duration)

    @classmethod
    def from_bytes(cls, payload: bytes) -> TelephoneEvent:
        """Parse a 4-byte payload."""
        if len(payload) != _PAYLOAD.size:
            raise ValueError(f"a telephone-event payload is 4 bytes, not {len(payload)}")
        code, flags, duration = _PAYLOAD.unpack(payload)
        return cls(
            code=code,
            end=bool(flags & _END_BIT),
            volume=flags & 0x3F,
            duration=duration,
            reserved=bool(flags & _RESERVED_BIT),
        )


@dataclasses.dataclass(frozen=True, slots=True)
class EventPacket:
    """One telephone-event RTP packet, as the sender plans it.

    The leg sends it ``send_offset`` timestamp units after the key went down,
    with the RTP marker bit set to ``marker``, the RTP timestamp set to the
    event's start timestamp plus ``timestamp_offset`` (modulo 2**32) and
    :attr:`payload` as the RTP payload.
    """

    marker: bool
    timestamp_offset: int
    send_offset: int
    event: TelephoneEvent

    @property
    def payload(self) -> bytes:
        """The RTP payload."""
        return self.event.to_bytes()


def event_packets(
    key: str | int,
    duration_ms: int,
    *,
    volume: int = DEFAULT_VOLUME,
    clock_rate: int = DEFAULT_CLOCK_RATE,
    packet_ms: int = 20,
    end_repeats: int = 3,
) -> list[EventPacket]:
    """The standard packet sequence for one key press of ``duration_ms``.

    Every ``packet_ms`` while the key is down a report with the duration so
    far (the first one with the marker bit), then ``end_repeats`` reports
    with the End bit and the final duration, one ``packet_ms`` apart so that
    one burst of loss does not take them all. Durations beyond 0xFFFF are
    split into segments as RFC 4733 §2.5.1.3 says: the last report of a full
    segment carries 0xFFFF, and the next segment starts 0xFFFF units later,
    without marker. ``key`` is a DTMF key or an event code 0-255.
    """
    code = key_code(key) if isinstance(key, str) else key
    key_name(code)  # validates the code range
    if clock_rate <= 0 or clock_rate % 1000:
        raise ValueError(f"the clock rate must be a positive multiple of 1000 Hz, not {clock_rate}")
    if duration_ms <= 0:
        raise ValueError(f"a key press lasts a positive number of ms, not {duration_ms}")
    if packet_ms <= 0:
        raise ValueError(f"the packet interval must be a positive number of ms, not {packet_ms}")
    if end_repeats < 1:
        raise ValueError(f"at least one end packet is needed, not {end_repeats}")
    units_per_ms = clock_rate // 1000
    total = duration_ms * units_per_ms
    interval = packet_ms * units_per_ms

    # Report times: every interval while the key is down, plus each segment
    # boundary, where the finished segment gets its closing 0xFFFF report.
    times = sorted(
        set(range(interval, total, interval)) | set(range(MAX_DURATION, total, MAX_DURATION))
    )
    packets: list[EventPacket] = []
    for elapsed in times:
        segment_start = (elapsed - 1) // MAX_DURATION * MAX_DURATION
        report = TelephoneEvent(code, False, volume, elapsed - segment_start)
        packets.append(EventPacket(not packets, segment_start, elapsed, report))
    segment_start = (total - 1) // MAX_DURATION * MAX_DURATION
    final = TelephoneEvent(code, True, volume, total - segment_start)
    for repeat in range(end_repeats):
        packets.append(EventPacket(not packets, segment_start, total + repeat * interval, final))
    return packets


@dataclasses.dataclass(frozen=True, slots=True)
class KeyPress:
    """A key went down; reported once per event, on its first packet to arrive.

    ``timestamp`` is the RTP timestamp of the event's first segment, which
    identifies the event.
    """

    code: int
    timestamp: int
    volume: int

    @property
    def key(self) -> str | None:
        """The DTMF key, or None for codes above 15."""
        return key_name(self.code)


@dataclasses.dataclass(frozen=True, slots=True)
class KeyRelease:
    """A key went up; reported once per event, after its :class:`KeyPress`.

    ``duration`` is the longest duration reported, in timestamp units, summed
    over the segments of a long event. ``end_seen`` is False when the event
    was closed by a timeout or by the next event because its end packets were
    lost.
    """

    code: int
    timestamp: int
    duration: int
    end_seen: bool


ReceiverEvent = KeyPress | KeyRelease


@dataclasses.dataclass(slots=True)
class _Event:
    code: int
    start: int  # RTP timestamp of the first segment: the event's identity
    segment: int  # RTP timestamp of the current segment
    earlier: int  # summed duration of the finished segments
    duration: int  # longest duration reported in the current segment
    last_arrival: float
    ended: bool = False  # an End bit arrived
    released: bool = False  # the KeyRelease went out


class TelephoneEventReceiver:
    """Turns a telephone-event packet stream into key presses, each exactly once.

    Feed every packet of the telephone-event payload type with :meth:`feed`,
    and call :meth:`poll` now and then (every 20 ms frame will do) so that a
    press whose end packets were all lost is released.
    """

    def __init__(
        self, *, release_timeout: float = 0.25, clock_rate: int = DEFAULT_CLOCK_RATE
    ) -> None:
        if release_timeout <= 0:
            raise ValueError(f"the release timeout must be positive, not {release_timeout}")
        if clock_rate <= 0:
            raise ValueError(f"the clock rate must be positive, not {clock_rate}")
        self._release_timeout = release_timeout
        self._rebase_window = clock_rate
        self._current: _Event | None = None

    def feed(self, timestamp: int, marker: bool, payload: bytes, now: float) -> list[ReceiverEvent]:
        """Take one packet: its RTP timestamp, marker bit and payload, and the arrival time."""
        if not 0 <= timestamp < _TIMESTAMP_MODULUS:
            raise ValueError(f"an RTP timestamp is 0 to 2**32-1, not {timestamp}")
        report = TelephoneEvent.from_bytes(payload)
        out = self.poll(now)
        current = self._current
        if current is not None:
            offset = _ts_offset(timestamp, current.segment)
            if offset == 0 or self._continues(current, offset, marker, report):
                if offset:  # the next segment of a long press (§2.5.1.3)
                    current.earlier += offset
                    current.segment = timestamp
                    current.duration = 0
                # Otherwise an update, a duplicate or a retransmitted end.
                if report.code == current.code and not current.released:
                    current.duration = max(current.duration, report.duration)
                    current.last_arrival = now
                    if report.end:
                        out.append(self._release(current, end_seen=True))
                return out
            if -self._rebase_window <= offset < 0:
                return out  # late packet of an earlier segment or event
            if not current.released:
                out.append(self._release(current, end_seen=False))
        new = _Event(report.code, timestamp, timestamp, 0, report.duration, now)
        self._current = new
        out.append(KeyPress(report.code, timestamp, report.volume))
        if report.end:
            out.append(self._release(new, end_seen=True))
        return out

    def poll(self, now: float) -> list[ReceiverEvent]:
        """Release a press that has had no packet for ``release_timeout`` seconds."""
        current = self._current
        if (
            current is None
            or current.released
            or now - current.last_arrival < self._release_timeout
        ):
            return []
        return [self._release(current, end_seen=False)]

    @staticmethod
    def _continues(current: _Event, offset: int, marker: bool, report: TelephoneEvent) -> bool:
        # A segment may follow a release (by timeout after lost updates, or by
        # a sender that ends every segment): it still belongs to the same press.
        # Whole segments may be lost in between, hence the multiple.
        return (
            not marker
            and report.code == current.code
            and offset > 0
            and (offset % MAX_DURATION == 0 or (offset == current.duration and not current.ended))
        )

    @staticmethod
    def _release(event: _Event, *, end_seen: bool) -> KeyRelease:
        event.released = True
        event.ended = event.ended or end_seen
        return KeyRelease(event.code, event.start, event.earlier + event.duration, end_seen)


def _ts_offset(timestamp: int, reference: int) -> int:
    """``timestamp - reference`` in RTP serial arithmetic: -2**31 to 2**31-1."""
    return (timestamp - reference + (1 << 31)) % _TIMESTAMP_MODULUS - (1 << 31)
