"""RTP timing from a pcap of the loopback device, for bench/sip.py and bench/webrtc.py.

Per RTP stream (source port, destination port, SSRC; RTCP left out): the
largest interval between packets and the gaps in the sequence numbers.
Timestamps are the kernel's, taken as each packet is sent on ``lo``.

SRTP keeps the RTP header in clear, so WebRTC streams are read the same
way; their port also carries STUN, DTLS and SRTCP, told apart by the first
byte as RFC 7983 demultiplexes them: 0-3 STUN, 20-63 DTLS, 64-79 TURN
channels, 128-191 RTP or RTCP (RTP version 2), and among those RTCP by its
packet type 200-204 in the second byte (RFC 5761). Only RTP is kept.
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np


@dataclass
class FrameTiming:
    """What the capture says about the RTP the workers sent in the window."""

    streams: int = 0
    packets: int = 0
    late_streams: int = 0
    worst_interval_ms: float = 0.0
    sequence_gaps: int = 0


def read_pcap(path: Path) -> Iterator[tuple[float, bytes]]:
    """(time, IPv4 packet) from a classic pcap of the loopback device."""
    data = path.read_bytes()
    if len(data) < 24:
        return
    magic = struct.unpack("<I", data[:4])[0]
    endian = "<" if magic in (0xA1B2C3D4, 0xA1B23C4D) else ">"
    scale = 1e-9 if magic in (0xA1B23C4D, 0x4D3CB2A1) else 1e-6
    link = struct.unpack(endian + "I", data[20:24])[0]
    skip = 14 if link == 1 else 16 if link == 113 else 0
    offset = 24
    while offset + 16 <= len(data):
        seconds, fraction, length, _ = struct.unpack(endian + "IIII", data[offset : offset + 16])
        offset += 16
        yield seconds + fraction * scale, data[offset + skip : offset + length]
        offset += length


def udp_datagrams(path: Path) -> Iterator[tuple[float, int, int, bytes]]:
    """(time, source port, destination port, payload) of every UDP/IPv4 datagram captured."""
    for when, packet in read_pcap(path):
        if len(packet) < 20 + 8 or packet[0] >> 4 != 4 or packet[9] != 17:
            continue
        header = (packet[0] & 0x0F) * 4
        source, destination = struct.unpack("!HH", packet[header : header + 4])
        yield when, source, destination, packet[header + 8 :]


def is_rtp(payload: bytes) -> bool:
    """RTP, not STUN, DTLS, TURN channel data or RTCP (RFC 7983, RFC 5761)."""
    # First byte 128-191 (RTP version 2); RTCP's packet types 200-204 in the second
    # byte (72-76 once the marker bit is masked).
    return len(payload) >= 12 and payload[0] >> 6 == 2 and not 72 <= payload[1] & 0x7F <= 76


def stream_timing(
    path: Path, direction: Callable[[int, int], str | None], max_interval: float
) -> dict[str, FrameTiming]:
    """Per direction, the timing of its RTP streams: largest interval and sequence gaps.

    ``direction(source port, destination port)`` names the direction a
    datagram belongs to, or None to leave it out; ``max_interval`` (seconds)
    is the longest gap on time. A stream is a (source port, destination port,
    SSRC); every direction named at least once is in the result.
    """
    streams: dict[str, dict[tuple[int, int, int], list[tuple[float, int]]]] = {}
    for when, source, destination, payload in udp_datagrams(path):
        name = direction(source, destination)
        if name is None:
            continue
        of_direction = streams.setdefault(name, {})
        if not is_rtp(payload):
            continue
        sequence, ssrc = struct.unpack("!H", payload[2:4])[0], struct.unpack("!I", payload[8:12])[0]
        of_direction.setdefault((source, destination, ssrc), []).append((when, sequence))
    return {name: _timing(found, max_interval) for name, found in streams.items()}


def _timing(
    streams: dict[tuple[int, int, int], list[tuple[float, int]]], max_interval: float
) -> FrameTiming:
    timing = FrameTiming(streams=len(streams))
    for packets in streams.values():
        timing.packets += len(packets)
        times = np.array([when for when, _ in packets])
        intervals = np.diff(times) if len(times) > 1 else np.zeros(1)
        worst = float(intervals.max()) * 1000
        timing.worst_interval_ms = max(timing.worst_interval_ms, worst)
        if worst > max_interval * 1000:
            timing.late_streams += 1
        sequences = np.array([sequence for _, sequence in packets], dtype=np.int64)
        steps = np.diff(sequences) % 65536
        timing.sequence_gaps += int(np.count_nonzero(steps != 1))
    return timing


def frame_timing(
    path: Path, ports: tuple[int, int], max_interval: float, sent_by_workers: bool = True
) -> FrameTiming:
    """Per RTP stream: largest interval between packets and gaps in the sequence.

    ``ports`` is the workers' RTP port range, ``max_interval`` (seconds) the
    longest gap on time. ``sent_by_workers`` picks the streams the server sends; False picks
    the load generator's, which tells whether the workers' jitter buffers
    had late packets to cope with.
    """

    def sent(source: int, destination: int) -> str | None:
        return "sent" if (ports[0] <= source <= ports[1]) == sent_by_workers else None

    return stream_timing(path, sent, max_interval).get("sent", FrameTiming())
