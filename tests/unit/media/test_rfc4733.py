from __future__ import annotations

import dataclasses
import random
from collections.abc import Callable

import pytest
from hypothesis import given
from hypothesis import strategies as st

from assistline.media.rfc4733 import (
    MAX_DURATION,
    EventPacket,
    KeyPress,
    KeyRelease,
    ReceiverEvent,
    TelephoneEvent,
    TelephoneEventReceiver,
    event_packets,
    key_code,
    key_name,
)

# --- the payload ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("event", "wire"),
    [
        # RFC 4733's own example values: digit 1 at -10 dBm0 lasting 100 ms (800 units).
        (TelephoneEvent(code=1, end=False, volume=10, duration=800), "010a0320"),
        (TelephoneEvent(code=1, end=True, volume=10, duration=800), "018a0320"),
        (TelephoneEvent(code=11, end=True, volume=0, duration=MAX_DURATION), "0b80ffff"),
        (TelephoneEvent(code=10, end=False, volume=63, duration=0), "0a3f0000"),
        (TelephoneEvent(code=255, end=False, volume=7, duration=160), "ff0700a0"),
        (TelephoneEvent(code=1, end=True, volume=10, duration=800, reserved=True), "01ca0320"),
    ],
)
def test_payload_known_vectors(event: TelephoneEvent, wire: str) -> None:
    assert event.to_bytes() == bytes.fromhex(wire)
    assert TelephoneEvent.from_bytes(bytes.fromhex(wire)) == event


@given(st.binary(min_size=4, max_size=4))
def test_any_four_bytes_round_trip(wire: bytes) -> None:
    assert TelephoneEvent.from_bytes(wire).to_bytes() == wire


@given(
    st.integers(0, 255),
    st.booleans(),
    st.integers(0, 63),
    st.integers(0, MAX_DURATION),
    st.booleans(),
)
def test_any_event_round_trips(
    code: int, end: bool, volume: int, duration: int, reserved: bool
) -> None:
    event = TelephoneEvent(code, end, volume, duration, reserved)
    assert TelephoneEvent.from_bytes(event.to_bytes()) == event


def test_key_names() -> None:
    assert [key_name(code) for code in range(17)] == [*"0123456789*#ABCD", None]
    assert key_name(255) is None
    assert [key_code(key) for key in "0123456789*#ABCDabcd"] == [*range(16), *range(12, 16)]
    assert TelephoneEvent(11, True, 10, 800).key == "#"


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: TelephoneEvent(256, False, 10, 0), "an event code is 0-255, not 256"),
        (lambda: TelephoneEvent(-1, False, 10, 0), "an event code is 0-255, not -1"),
        (lambda: TelephoneEvent(1, False, 64, 0), "a telephone-event volume is 0-63, not 64"),
        (
            lambda: TelephoneEvent(1, False, 10, 65536),
            "a telephone-event duration is 0-65535, not 65536",
        ),
        (
            lambda: TelephoneEvent.from_bytes(b"\x01\x0a\x03"),
            "a telephone-event payload is 4 bytes, not 3",
        ),
        (
            lambda: TelephoneEvent.from_bytes(bytes(8)),
            "a telephone-event payload is 4 bytes, not 8",
        ),
        (lambda: key_code("E"), "a DTMF key is one of 0-9, \\*, #, A-D"),
        (lambda: key_code("12"), "a DTMF key is one of 0-9, \\*, #, A-D"),
        (lambda: key_name(256), "an event code is 0-255, not 256"),
    ],
)
def test_payload_rejects_bad_values(make: Callable[[], object], message: str) -> None:
    with pytest.raises(ValueError, match=f"^{message}$"):
        make()


# --- the sender ----------------------------------------------------------------------------


def summary(packets: list[EventPacket]) -> list[tuple[bool, int, int, int, bool]]:
    """(marker, timestamp offset, send offset, duration, end) of each packet."""
    return [
        (p.marker, p.timestamp_offset, p.send_offset, p.event.duration, p.event.end)
        for p in packets
    ]


def test_sender_standard_sequence() -> None:
    packets = event_packets("5", 100)
    assert summary(packets) == [
        (True, 0, 160, 160, False),
        (False, 0, 320, 320, False),
        (False, 0, 480, 480, False),
        (False, 0, 640, 640, False),
        (False, 0, 800, 800, True),
        (False, 0, 960, 800, True),
        (False, 0, 1120, 800, True),
    ]
    assert packets[0].payload == bytes.fromhex("050a00a0")
    assert packets[-1].payload == bytes.fromhex("058a0320")
    assert {p.event.code for p in packets} == {5}


def test_sender_duration_not_a_multiple_of_the_interval() -> None:
    assert summary(event_packets("#", 90)) == [
        (True, 0, 160, 160, False),
        (False, 0, 320, 320, False),
        (False, 0, 480, 480, False),
        (False, 0, 640, 640, False),
        (False, 0, 720, 720, True),
        (False, 0, 880, 720, True),
        (False, 0, 1040, 720, True),
    ]


def test_sender_press_shorter_than_one_packet_is_only_end_packets() -> None:
    assert summary(event_packets(0, 10)) == [
        (True, 0, 80, 80, True),
        (False, 0, 240, 80, True),
        (False, 0, 400, 80, True),
    ]


def test_sender_options() -> None:
    packets = event_packets("D", 120, volume=20, clock_rate=16000, packet_ms=50, end_repeats=2)
    assert summary(packets) == [
        (True, 0, 800, 800, False),
        (False, 0, 1600, 1600, False),
        (False, 0, 1920, 1920, True),
        (False, 0, 2720, 1920, True),
    ]
    assert {(p.event.code, p.event.volume) for p in packets} == {(15, 20)}


def test_sender_splits_long_events_into_segments() -> None:
    packets = event_packets("0", 10_000)  # 80000 units: two segments
    assert len(packets) == len(range(160, 80000, 160)) + 1 + 3
    assert [p.marker for p in packets].count(True) == 1 and packets[0].marker
    first = [p for p in packets if p.timestamp_offset == 0]
    second = [p for p in packets if p.timestamp_offset == MAX_DURATION]
    assert len(first) + len(second) == len(packets)
    # The first segment closes with a 0xFFFF report, without End bit.
    assert summary(first[-2:]) == [
        (False, 0, 65440, 65440, False),
        (False, 0, MAX_DURATION, MAX_DURATION, False),
    ]
    # The second starts where it ended, unmarked, and alone carries the End bit.
    assert summary(second[:1]) == [(False, MAX_DURATION, 65600, 65600 - MAX_DURATION, False)]
    assert summary(second[-3:]) == [
        (False, MAX_DURATION, 80000, 80000 - MAX_DURATION, True),
        (False, MAX_DURATION, 80160, 80000 - MAX_DURATION, True),
        (False, MAX_DURATION, 80320, 80000 - MAX_DURATION, True),
    ]
    assert not any(p.event.end for p in packets[:-3])
    sends = [p.send_offset for p in packets]
    assert sends == sorted(sends)


def test_sender_segment_boundaries_for_three_segments() -> None:
    packets = event_packets("9", 17_383)  # 139064 units
    offsets = sorted({p.timestamp_offset for p in packets})
    assert offsets == [0, MAX_DURATION, 2 * MAX_DURATION]
    closing = [p for p in packets if p.event.duration == MAX_DURATION]
    assert [(p.timestamp_offset, p.event.end) for p in closing] == [
        (0, False),
        (MAX_DURATION, False),
    ]


def test_sender_exact_segment_length_needs_no_extra_segment() -> None:
    packets = event_packets("1", 16_386)
    # 131088 units: the third segment holds 18 units.
    assert packets[-1].timestamp_offset == 2 * MAX_DURATION
    assert packets[-1].event.duration == 131088 - 2 * MAX_DURATION
    one_segment = event_packets("1", 8191, packet_ms=1)  # 65528 units
    assert {p.timestamp_offset for p in one_segment} == {0}


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: event_packets("X", 100), "a DTMF key is one of 0-9, \\*, #, A-D"),
        (lambda: event_packets(256, 100), "an event code is 0-255, not 256"),
        (lambda: event_packets("1", 0), "a key press lasts a positive number of ms, not 0"),
        (
            lambda: event_packets("1", 100, clock_rate=8001),
            "the clock rate must be a positive multiple of 1000 Hz, not 8001",
        ),
        (
            lambda: event_packets("1", 100, packet_ms=0),
            "the packet interval must be a positive number of ms, not 0",
        ),
        (
            lambda: event_packets("1", 100, end_repeats=0),
            "at least one end packet is needed, not 0",
        ),
    ],
)
def test_sender_rejects_bad_arguments(make: Callable[[], object], message: str) -> None:
    with pytest.raises(ValueError, match=f"^{message}$"):
        make()


# --- the receiver --------------------------------------------------------------------------

CLOCK = 8000
BASE = 123_456


@dataclasses.dataclass(frozen=True)
class Wire:
    """One packet as the receiver sees it."""

    timestamp: int
    marker: bool
    payload: bytes
    arrival: float


def on_wire(packets: list[EventPacket], base: int = BASE, at: float = 0.0) -> list[Wire]:
    """The packets of one event starting at RTP timestamp ``base``, pressed at ``at`` s."""
    return [
        Wire(
            (base + p.timestamp_offset) % 2**32,
            p.marker,
            p.payload,
            at + p.send_offset / CLOCK,
        )
        for p in packets
    ]


def feed(receiver: TelephoneEventReceiver, wires: list[Wire]) -> list[ReceiverEvent]:
    events: list[ReceiverEvent] = []
    for wire in wires:
        events += receiver.feed(wire.timestamp, wire.marker, wire.payload, wire.arrival)
    return events


def report(code: int, duration: int, end: bool = False) -> bytes:
    return TelephoneEvent(code, end, 10, duration).to_bytes()


def test_receiver_reports_press_on_first_packet_and_release_on_end() -> None:
    receiver = TelephoneEventReceiver()
    wires = on_wire(event_packets("5", 100))
    assert feed(receiver, wires[:1]) == [KeyPress(5, BASE, 10)]
    assert feed(receiver, wires[1:4]) == []
    assert feed(receiver, wires[4:5]) == [KeyRelease(5, BASE, 800, True)]
    # The two retransmitted end packets and any duplicate change nothing.
    assert feed(receiver, wires[5:] + wires) == []
    assert receiver.poll(10.0) == []


def test_receiver_press_key_names() -> None:
    receiver = TelephoneEventReceiver()
    [press, _] = feed(receiver, on_wire(event_packets("*", 100))[-1:])
    assert isinstance(press, KeyPress) and press.key == "*"
    [press] = feed(receiver, on_wire(event_packets(32, 100), base=BASE + 8000, at=1.0)[:1])
    assert isinstance(press, KeyPress) and press.key is None


def test_receiver_lost_start_packet() -> None:
    events = feed(TelephoneEventReceiver(), on_wire(event_packets("7", 100))[1:])
    assert events == [KeyPress(7, BASE, 10), KeyRelease(7, BASE, 800, True)]


def test_receiver_only_an_end_packet_arrives() -> None:
    events = feed(TelephoneEventReceiver(), on_wire(event_packets("7", 100))[-1:])
    assert events == [KeyPress(7, BASE, 10), KeyRelease(7, BASE, 800, True)]


def test_receiver_all_end_packets_lost_releases_after_timeout() -> None:
    receiver = TelephoneEventReceiver()
    wires = on_wire(event_packets("3", 100))
    assert feed(receiver, wires[:4]) == [KeyPress(3, BASE, 10)]
    last = wires[3].arrival
    assert receiver.poll(last + 0.249) == []
    assert receiver.poll(last + 0.251) == [KeyRelease(3, BASE, 640, False)]
    assert receiver.poll(last + 1.0) == []
    # The end packets arriving late do not report the press again.
    assert feed(receiver, [dataclasses.replace(w, arrival=last + 2.0) for w in wires[4:]]) == []


def test_receiver_timeout_is_checked_when_the_next_packet_arrives() -> None:
    receiver = TelephoneEventReceiver(release_timeout=0.1)
    wires = on_wire(event_packets("3", 100))
    feed(receiver, wires[:2])
    late = dataclasses.replace(wires[2], arrival=wires[1].arrival + 0.15)
    assert feed(receiver, [late]) == [KeyRelease(3, BASE, 320, False)]


def test_receiver_reordered_packets() -> None:
    wires = on_wire(event_packets("8", 180))  # 8 updates, 3 ends
    order = [2, 0, 1, 4, 3, 8, 5, 6, 7, 10, 9]
    events = feed(TelephoneEventReceiver(), [wires[i] for i in order])
    assert events == [KeyPress(8, BASE, 10), KeyRelease(8, BASE, 1440, True)]


def test_receiver_keeps_the_longest_duration_of_reordered_updates() -> None:
    receiver = TelephoneEventReceiver()
    wires = on_wire(event_packets("8", 100))
    feed(receiver, [wires[3], wires[0], wires[2], wires[1]])  # end packets lost
    assert receiver.poll(1.0) == [KeyRelease(8, BASE, 640, False)]


def test_receiver_duplicated_packets() -> None:
    wires = on_wire(event_packets("8", 100))
    doubled = [wire for wire in wires for _ in range(2)]
    events = feed(TelephoneEventReceiver(), doubled)
    assert events == [KeyPress(8, BASE, 10), KeyRelease(8, BASE, 800, True)]


def test_receiver_two_presses_of_the_same_key_are_two_events() -> None:
    first = on_wire(event_packets("1", 100))
    second = on_wire(event_packets("1", 100), base=BASE + 1440, at=0.18)
    events = feed(TelephoneEventReceiver(), first + second)
    assert events == [
        KeyPress(1, BASE, 10),
        KeyRelease(1, BASE, 800, True),
        KeyPress(1, BASE + 1440, 10),
        KeyRelease(1, BASE + 1440, 800, True),
    ]


def test_receiver_same_key_with_lost_ends_then_lost_start() -> None:
    first = on_wire(event_packets("1", 100))[:4]  # all three end packets lost
    second = on_wire(event_packets("1", 100), base=BASE + 1280, at=0.16)[1:]  # start lost
    events = feed(TelephoneEventReceiver(), first + second)
    assert events == [
        KeyPress(1, BASE, 10),
        KeyRelease(1, BASE, 640, False),
        KeyPress(1, BASE + 1280, 10),
        KeyRelease(1, BASE + 1280, 800, True),
    ]


def test_receiver_drops_a_late_packet_of_an_earlier_event() -> None:
    first = on_wire(event_packets("4", 100))
    second = on_wire(event_packets("2", 100), base=BASE + 1600, at=0.2)
    receiver = TelephoneEventReceiver()
    events = feed(receiver, first[:4] + second[:2])
    assert events == [
        KeyPress(4, BASE, 10),
        KeyRelease(4, BASE, 640, False),
        KeyPress(2, BASE + 1600, 10),
    ]
    # The first press's ends, delayed behind the second press, are dropped,
    assert feed(receiver, first[4:]) == []
    # and so is a press never seen before that would now be out of order.
    assert receiver.feed(BASE + 800, True, report(9, 160), 0.3) == []


def test_receiver_rebased_timestamps_start_a_new_event() -> None:
    receiver = TelephoneEventReceiver()
    feed(receiver, on_wire(event_packets("4", 100)))
    rebased = BASE - 8001  # more than one second behind: not a late packet
    assert receiver.feed(rebased, True, report(6, 160), 1.0) == [KeyPress(6, rebased, 10)]


def test_receiver_ignores_a_different_code_on_the_same_timestamp() -> None:
    receiver = TelephoneEventReceiver()
    assert receiver.feed(BASE, True, report(1, 160), 0.0) == [KeyPress(1, BASE, 10)]
    assert receiver.feed(BASE, False, report(2, 320, end=True), 0.02) == []
    assert receiver.feed(BASE, False, report(1, 800, end=True), 0.1) == [
        KeyRelease(1, BASE, 800, True)
    ]


def test_receiver_timestamps_wrap_around() -> None:
    base = 2**32 - 500
    first = on_wire(event_packets("1", 100), base=base)
    second = on_wire(event_packets("2", 100), base=(base + 1600) % 2**32, at=0.2)
    events = feed(TelephoneEventReceiver(), first + second)
    assert events == [
        KeyPress(1, base, 10),
        KeyRelease(1, base, 800, True),
        KeyPress(2, 1100, 10),
        KeyRelease(2, 1100, 800, True),
    ]


@pytest.mark.parametrize("base", [BASE, 2**32 - 70_000])
def test_receiver_long_event_is_one_press(base: int) -> None:
    wires = on_wire(event_packets("0", 20_000), base=base)  # 160000 units: three segments
    events = feed(TelephoneEventReceiver(), wires)
    assert events == [KeyPress(0, base, 10), KeyRelease(0, base, 160_000, True)]


def test_receiver_long_event_survives_losing_segment_boundaries() -> None:
    wires = on_wire(event_packets("0", 20_000))
    # Lose each segment's 0xFFFF report and the first 50 ms of each new segment.
    kept = [
        w
        for w in wires
        if TelephoneEvent.from_bytes(w.payload).duration != MAX_DURATION
        and not (w.timestamp != BASE and TelephoneEvent.from_bytes(w.payload).duration < 400)
    ]
    events = feed(TelephoneEventReceiver(), kept)
    assert events == [KeyPress(0, BASE, 10), KeyRelease(0, BASE, 160_000, True)]


def test_receiver_joins_segments_split_short_of_0xffff() -> None:
    # A sender that closes segments at 65440 (a multiple of its 160-unit
    # interval) instead of 0xFFFF: the next segment starts where the last
    # reported duration ended. (Updates in between left out; hence the timeout.)
    receiver = TelephoneEventReceiver(release_timeout=60.0)
    events = receiver.feed(BASE, True, report(5, 160), 0.0)
    events += receiver.feed(BASE, False, report(5, 65440), 8.18)
    events += receiver.feed(BASE + 65440, False, report(5, 160), 8.2)
    events += receiver.feed(BASE + 65440, False, report(5, 800, end=True), 8.28)
    assert events == [KeyPress(5, BASE, 10), KeyRelease(5, BASE, 66240, True)]


def test_receiver_adjacent_press_of_the_same_key_after_an_end_is_new() -> None:
    # The second press follows without a pause and its marked start is lost:
    # its timestamp equals the first press's final duration, but that press ended.
    receiver = TelephoneEventReceiver()
    events = feed(receiver, on_wire(event_packets("1", 100)))
    events += receiver.feed(BASE + 800, False, report(1, 320), 0.14)
    assert events == [
        KeyPress(1, BASE, 10),
        KeyRelease(1, BASE, 800, True),
        KeyPress(1, BASE + 800, 10),
    ]


def test_receiver_long_event_survives_losing_a_whole_segment() -> None:
    wires = on_wire(event_packets("0", 20_000))
    kept = [w for w in wires if w.timestamp != BASE + MAX_DURATION]
    receiver = TelephoneEventReceiver()
    events: list[ReceiverEvent] = []
    for wire in kept:
        events += receiver.poll(wire.arrival - 0.001)
        events += receiver.feed(wire.timestamp, wire.marker, wire.payload, wire.arrival)
    assert events == [KeyPress(0, BASE, 10), KeyRelease(0, BASE, MAX_DURATION, False)]


def test_receiver_joins_segments_of_a_sender_that_ends_each_segment() -> None:
    receiver = TelephoneEventReceiver()
    events = receiver.feed(BASE, True, report(5, 160), 0.0)
    events += receiver.feed(BASE, False, report(5, MAX_DURATION, end=True), 0.02)
    events += receiver.feed(BASE + MAX_DURATION, False, report(5, 160), 0.04)
    events += receiver.feed(BASE + MAX_DURATION, False, report(5, 800, end=True), 0.1)
    assert events == [KeyPress(5, BASE, 10), KeyRelease(5, BASE, MAX_DURATION, True)]


def test_receiver_long_event_whose_last_segment_shows_only_an_end() -> None:
    wires = on_wire(event_packets("0", 8300))  # 66400 units: the second segment is short
    kept = [w for w in wires if w.timestamp == BASE] + wires[-1:]
    events = feed(TelephoneEventReceiver(), kept)
    assert events == [KeyPress(0, BASE, 10), KeyRelease(0, BASE, 66400, True)]


@pytest.mark.parametrize(("code", "marker"), [(0, True), (1, False)])
def test_receiver_segment_needs_same_code_and_no_marker(code: int, marker: bool) -> None:
    receiver = TelephoneEventReceiver(release_timeout=60.0)
    receiver.feed(BASE, True, report(0, 65440), 0.0)
    events = receiver.feed(BASE + MAX_DURATION, marker, report(code, 160), 8.2)
    assert events == [KeyRelease(0, BASE, 65440, False), KeyPress(code, BASE + MAX_DURATION, 10)]


def test_receiver_long_event_after_a_timeout_is_still_one_press() -> None:
    wires = on_wire(event_packets("0", 10_000))
    # A 2 s outage across the segment boundary releases the key by timeout;
    # the second segment still belongs to the same press and is not reported again.
    kept = [w for w in wires if not 7.0 < w.arrival < 9.0]
    receiver = TelephoneEventReceiver()
    events: list[ReceiverEvent] = []
    for wire in kept:
        events += receiver.poll(wire.arrival - 0.001)
        events += receiver.feed(wire.timestamp, wire.marker, wire.payload, wire.arrival)
    assert events == [KeyPress(0, BASE, 10), KeyRelease(0, BASE, 56_000, False)]


def test_receiver_rejects_bad_input() -> None:
    receiver = TelephoneEventReceiver()
    with pytest.raises(ValueError, match=r"^an RTP timestamp is 0 to 2\*\*32-1, not -1$"):
        receiver.feed(-1, True, report(1, 160), 0.0)
    with pytest.raises(ValueError, match=r"^an RTP timestamp is 0 to 2\*\*32-1, not 4294967296$"):
        receiver.feed(2**32, True, report(1, 160), 0.0)
    with pytest.raises(ValueError, match="^a telephone-event payload is 4 bytes, not 5$"):
        receiver.feed(0, True, bytes(5), 0.0)
    with pytest.raises(ValueError, match="^the release timeout must be positive, not 0$"):
        TelephoneEventReceiver(release_timeout=0)
    with pytest.raises(ValueError, match="^the clock rate must be positive, not 0$"):
        TelephoneEventReceiver(clock_rate=0)


# --- sender to receiver, under loss ----------------------------------------------------------

CARD = "4111111111111111"


def key_sequence(keys: str, press_ms: int = 100, pause_ms: int = 60) -> list[list[Wire]]:
    """The packets of each key press, one press after another."""
    presses: list[list[Wire]] = []
    at_units = 0
    for key in keys:
        presses.append(on_wire(event_packets(key, press_ms), BASE + at_units, at_units / CLOCK))
        at_units += (press_ms + pause_ms) * CLOCK // 1000
    return presses


def run(receiver: TelephoneEventReceiver, wires: list[Wire]) -> list[ReceiverEvent]:
    """Feed the packets, polling every 20 ms of arrival time as a media worker would."""
    events: list[ReceiverEvent] = []
    tick = 0.0
    for wire in wires:
        while tick < wire.arrival:
            events += receiver.poll(tick)
            tick += 0.02
        events += receiver.feed(wire.timestamp, wire.marker, wire.payload, wire.arrival)
    return events + receiver.poll(tick + 1.0)


def check_pairs(events: list[ReceiverEvent]) -> str:
    """The keys pressed, checking each press is released exactly once before the next."""
    keys = ""
    for press, release in zip(events[::2], events[1::2], strict=True):
        assert isinstance(press, KeyPress) and isinstance(release, KeyRelease)
        assert (press.code, press.timestamp) == (release.code, release.timestamp)
        assert press.key is not None
        keys += press.key
    return keys


@pytest.mark.parametrize("every", [2, 3, 4, 5, 7])
@pytest.mark.parametrize("first", [0, 1])
def test_round_trip_dropping_every_nth_packet(every: int, first: int) -> None:
    wires = [w for press in key_sequence(CARD) for w in press]
    kept = [w for i, w in enumerate(wires) if (i - first) % every]
    assert check_pairs(run(TelephoneEventReceiver(), kept)) == CARD


@pytest.mark.parametrize("seed", range(8))
def test_round_trip_with_random_loss_duplication_and_reordering(seed: int) -> None:
    rng = random.Random(seed)
    keys = "".join(rng.choice("0123456789*#") for _ in range(20))
    expected = ""
    wires: list[Wire] = []
    for key, press in zip(
        keys, key_sequence(keys, press_ms=rng.choice([60, 100, 200])), strict=True
    ):
        survivors = [w for w in press if rng.random() > 0.5]
        survivors += [w for w in survivors if rng.random() < 0.2]  # duplicates
        arrivals = sorted(w.arrival for w in survivors)
        rng.shuffle(survivors)  # jitter within the press; time still runs forward
        wires += [
            dataclasses.replace(w, arrival=t) for w, t in zip(survivors, arrivals, strict=True)
        ]
        expected += key if survivors else ""
    events = run(TelephoneEventReceiver(), wires)
    assert check_pairs(events) == expected


@given(
    keys=st.text(alphabet="0123456789*#ABCD", min_size=1, max_size=12),
    press_ms=st.integers(40, 400),
    pause_ms=st.integers(40, 300),
    lost=st.lists(st.booleans(), min_size=300, max_size=300),
)
def test_round_trip_property(keys: str, press_ms: int, pause_ms: int, lost: list[bool]) -> None:
    presses = key_sequence(keys, press_ms, pause_ms)
    wires: list[Wire] = []
    expected = ""
    index = 0
    for key, press in zip(keys, presses, strict=True):
        survivors = [w for i, w in enumerate(press, start=index) if not lost[i]]
        index += len(press)
        wires += survivors
        expected += key if survivors else ""
    assert check_pairs(run(TelephoneEventReceiver(), wires)) == expected
