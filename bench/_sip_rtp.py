"""RTP timing from a pcap of the loopback device, for bench/sip.py.

Per RTP stream (source port, destination port, SSRC; RTCP left out): the
largest interval between packets and the gaps in the sequence numbers.
Timestamps are the kernel's, taken as each packet is sent on ``lo``.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
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


def frame_timing(
    path: Path, ports: tuple[int, int], max_interval: float, sent_by_workers: bool = True
) -> FrameTiming:
    """Per RTP stream: largest interval between packets and gaps in the sequence.

    ``ports`` is the workers' RTP port range, ``max_interval`` (seconds) the
    longest gap on time. ``sent_by_workers`` picks the streams the server sends; False picks
    the load generator's, which tells whether the workers' jitter buffers
    had late packets to cope with.
    """
    streams: dict[tuple[int, int, int], list[tuple[float, int]]] = {}
    for when, packet in read_pcap(path):
        if len(packet) < 20 + 8 + 12 or packet[9] != 17:
            continue
        header = (packet[0] & 0x0F) * 4
        source, destination = struct.unpack("!HH", packet[header : header + 4])
        if (ports[0] <= source <= ports[1]) != sent_by_workers:
            continue
        rtp = packet[header + 8 :]
        # RTP version 2, and not RTCP (packet types 200-204 in the same byte).
        if len(rtp) < 12 or rtp[0] >> 6 != 2 or 72 <= rtp[1] & 0x7F <= 76:
            continue
        sequence, ssrc = struct.unpack("!H", rtp[2:4])[0], struct.unpack("!I", rtp[8:12])[0]
        streams.setdefault((source, destination, ssrc), []).append((when, sequence))
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
