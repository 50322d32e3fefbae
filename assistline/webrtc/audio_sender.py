"""Sending a WebRTC leg's Opus: RTP packets straight onto aiortc's DTLS-SRTP transport.

aiortc's ``RTCRtpSender`` builds every packet as an ``RtpPacket`` object,
packs its header extensions, converts its time base with Python fractions,
keeps it in a retransmission history and reads the wall clock twice: in
``bench/webrtc.py`` at 20 calls, its loop (the encoding excluded) was about
a third of a worker's event-loop time. :class:`AudioSender` sends the same
packets for far less (20 calls took 83 % of the core before, 46–56 %
after): the header (with the MID extension exactly as negotiated) is
serialized once by aiortc's own code and only its sequence number and
timestamp change; SRTP and ICE stay aiortc's
(``RTCDtlsTransport._send_rtp``). aiortc's sender keeps its track slot and
its RTCP: it is handed :class:`IdleTrack`, which yields nothing, and the
four sender-report counters it reads (packets, octets, the last RTP
timestamp and its NTP time) are kept up to date here, so the browser's
sender reports stay right (its lip sync with video relies on them).

The counters are private attributes of ``aiortc.RTCRtpSender``
(:data:`SENDER_REPORT_FIELDS`, there from 1.0 to 1.16), and the header and
the sending need a few more (:data:`TRANSCEIVER_FIELDS`, :data:`SENDER_FIELDS`,
the transport's ``_send_rtp``): where one is missing, :func:`can_send` says
no and aiortc's sender takes the packets as a track.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import struct
import time
from collections.abc import Awaitable, Callable
from typing import Any, Final

from aiortc import RTCRtpSender, RTCRtpTransceiver
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack
from aiortc.rtcrtpparameters import RTCRtpParameters
from aiortc.rtp import HeaderExtensionsMap, RtpPacket

logger = logging.getLogger(__name__)

#: The sender-report counters of an ``RTCRtpSender`` (Python's name mangling).
SENDER_REPORT_FIELDS: Final = (
    "_RTCRtpSender__ntp_timestamp",
    "_RTCRtpSender__rtp_timestamp",
    "_RTCRtpSender__octet_count",
    "_RTCRtpSender__packet_count",
)
#: The rest of aiortc's private parts the sender uses, checked with the counters.
TRANSCEIVER_FIELDS: Final = ("_codecs", "_headerExtensions")
SENDER_FIELDS: Final = ("_ssrc", *SENDER_REPORT_FIELDS)
_NTP_EPOCH: Final = 2_208_988_800  # seconds from 1900 to 1970
_SEQUENCE_AND_TIMESTAMP: Final = struct.Struct("!HI")
_MARKER: Final = 0x80


class IdleTrack(MediaStreamTrack):
    """The track aiortc's sender waits on while :class:`AudioSender` sends: it yields nothing."""

    kind = "audio"

    def __init__(self) -> None:
        super().__init__()
        self._ended = asyncio.Event()

    async def recv(self) -> Any:
        """Wait until stopped (aiortc's sender loop then ends as for any track)."""
        await self._ended.wait()
        raise MediaStreamError

    def stop(self) -> None:
        """End the track and release whoever waits on it."""
        super().stop()
        self._ended.set()


_warned = False


def can_send(transceiver: RTCRtpTransceiver) -> bool:
    """Whether :class:`AudioSender` finds in this aiortc what it uses of aiortc's private parts."""
    global _warned
    sender: RTCRtpSender = transceiver.sender
    missing = [name for name in TRANSCEIVER_FIELDS if not hasattr(transceiver, name)]
    missing += [name for name in SENDER_FIELDS if not hasattr(sender, name)]
    if not hasattr(sender.transport, "_send_rtp"):
        missing.append("RTCDtlsTransport._send_rtp")
    if not missing:
        return True
    if not _warned:
        _warned = True
        logger.warning(
            "this aiortc lacks %s; WebRTC audio is sent by aiortc's own sender,"
            " which costs more CPU per call",
            ", ".join(missing),
        )
    return False


def _ntp_now() -> int:
    """The wall clock as a 64-bit NTP timestamp (what aiortc's sender reports carry)."""
    return int((time.time() + _NTP_EPOCH) * (1 << 32))


class AudioSender:
    """One leg's outgoing Opus, sent by :meth:`run` on its transceiver's negotiated stream."""

    def __init__(self, transceiver: RTCRtpTransceiver) -> None:
        self._transceiver = transceiver
        self._sender = transceiver.sender
        #: Packets sent so far.
        self.packets = 0

    def _header(self) -> bytearray:
        """The RTP header of every packet, MID extension included, as aiortc serializes it."""
        codec = self._transceiver._codecs[0]  # the negotiated send codec
        assert codec.payloadType is not None  # negotiated: the answer gave it one
        packet = RtpPacket(payload_type=codec.payloadType, ssrc=self._sender._ssrc)
        packet.extensions.mid = self._transceiver.mid
        extensions = HeaderExtensionsMap()
        extensions.configure(RTCRtpParameters(headerExtensions=self._transceiver._headerExtensions))
        return bytearray(packet.serialize(extensions))

    async def run(self, next_packet: Callable[[], Awaitable[tuple[bytes, int]]]) -> None:
        """Send ``await next_packet()`` (payload, RTP timestamp) until it or the transport ends."""
        header = self._header()
        sequence = secrets.randbelow(1 << 16)
        origin = secrets.randbelow(1 << 32)
        send = self._sender.transport._send_rtp  # SRTP, then ICE
        sender = self._sender
        octets = 0
        header[1] |= _MARKER  # the first packet starts a talkspurt (RFC 3551, 4.1)
        try:
            while True:
                payload, timestamp = await next_packet()
                timestamp = (origin + timestamp) & 0xFFFFFFFF
                _SEQUENCE_AND_TIMESTAMP.pack_into(header, 2, sequence, timestamp)
                await send(bytes(header) + payload)
                header[1] &= ~_MARKER & 0xFF
                sequence = (sequence + 1) & 0xFFFF
                self.packets += 1
                octets += len(payload)
                # What aiortc's RTCP loop puts in its next sender report.
                setattr(sender, SENDER_REPORT_FIELDS[0], _ntp_now())
                setattr(sender, SENDER_REPORT_FIELDS[1], timestamp)
                setattr(sender, SENDER_REPORT_FIELDS[2], octets)
                setattr(sender, SENDER_REPORT_FIELDS[3], self.packets)
        except (ConnectionError, MediaStreamError):
            return  # the connection closed, or the leg stopped its audio
