"""A customer's WebRTC call inside a media worker, as a *leg* of the media model.

A :class:`WebRtcLeg` wraps one ``aiortc.RTCPeerConnection`` for one contact.
The control process relays the browser's SDP offer and trickled candidates
to the worker; :meth:`WebRtcLeg.accept_offer` answers with audio
``sendrecv`` (Opus only, DTLS-SRTP only: ``UDP/TLS/RTP/SAVPF`` with a
fingerprint, or :class:`OfferRejectedError`), and the first video section
``sendrecv`` (VP8 or H.264; see :mod:`assistline.webrtc.video`), any other
section ``inactive``. A later offer on the same connection
(:meth:`WebRtcLeg.renegotiate`: the browser adds video mid-call) is answered
the same way. ICE servers come only from the list
given (see :mod:`assistline.webrtc.ice`), and host candidates only from the
addresses given.

Audio (see :mod:`assistline.webrtc.audio`): what the customer says is
decoded from Opus on the worker's event loop into 20 ms internal-rate
:class:`~assistline.media.frame.AudioFrame` s, kept in a bounded ring for
:meth:`WebRtcLeg.read_frame`; what the customer hears,
:meth:`WebRtcLeg.write_frame`, waits in a second bounded ring, from which
one frame every 20 ms (silence when empty) is encoded and sent by the leg's
own :class:`~assistline.webrtc.audio_sender.AudioSender` (or, where it
cannot, by aiortc's sender). Both rings hold 200 ms and drop their oldest frame when full.
Everything runs on the worker's event loop, Opus coding included.

Ending. ``on_ended(leg)`` is called once, with :attr:`WebRtcLeg.reason`:
``consent-expired`` (the connection failed after it had connected: the
browser stopped answering ICE consent checks), ``ice-failed`` or
``dtls-failed`` (it never connected), ``remote-closed`` (the browser closed
DTLS) or ``closed`` (:meth:`WebRtcLeg.close`). The owner then awaits
:meth:`WebRtcLeg.close`, which releases the sockets and the leg's task.

Consent freshness (RFC 7675) is aioice's: once connected, every 4–6 s
(5 s × a random 0.8–1.2) it sends one binding request on the nominated
pair, with no retransmission and 0.5 s to answer; six failures in a row
close the ICE connection. A check cycle is 4.5–6.5 s, so a browser that
vanishes is noticed 27–39 s after its last answer, which is 21–39 s after
it vanished: within the required 40 s, with at most a second to spare in
the worst case. aiortc 1.16 then closes DTLS and the peer connection
itself, so the connection state goes ``connected`` → ``closed``, never
``failed``; the ICE transport's ``failed`` state tells it from a browser
that closed DTLS. Measured on loopback with the browser killed by SIGKILL
(its ICMP port-unreachables change nothing: aioice only logs them): 27.8,
28.8, 29.8, 32.6, 33.6, 33.8 and 34.9 s. aioice's interval and failure count
are module constants, so ``webrtc.consent_timeout`` cannot change this per
leg.

Cost, on the 2-core development machine: see ``bench/webrtc.py`` and the
README for a bridged call's share of the core.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Final, Literal

from aiortc import (
    RTCIceTransport,
    RTCPeerConnection,
    RTCRtpCodecCapability,
    RTCRtpSender,
    RTCRtpTransceiver,
    RTCSessionDescription,
)
from aiortc.mediastreams import MediaStreamTrack
from aiortc.sdp import SessionDescription, candidate_from_sdp

from assistline.errors import AssistlineError
from assistline.media.frame import AudioFrame
from assistline.tasks import TaskRegistry
from assistline.webrtc.audio import IncomingAudio, OutgoingAudio, decode_on_loop
from assistline.webrtc.audio_sender import AudioSender, IdleTrack, can_send
from assistline.webrtc.ice import check_host_addresses, gathering_on, rtc_configuration
from assistline.webrtc.video import ForwardedVideo, VideoReader, video_codecs

logger = logging.getLogger(__name__)

#: The only media profile answered: RTP over DTLS-SRTP with RTCP feedback (RFC 5764).
SRTP_PROFILE: Final = "UDP/TLS/RTP/SAVPF"

EndReason = Literal["consent-expired", "ice-failed", "dtls-failed", "remote-closed", "closed"]


class OfferRejectedError(AssistlineError, ValueError):
    """The browser's SDP offer cannot be answered: a WebRTC leg needs DTLS-SRTP audio in Opus."""


def check_offer(sdp: str) -> None:
    """Raise :class:`OfferRejectedError` unless ``sdp`` is an offer a leg can answer.

    One audio section, not disabled, ``UDP/TLS/RTP/SAVPF`` with a DTLS
    fingerprint and Opus among its codecs; every other audio or video section
    also DTLS-SRTP.
    """
    try:
        description = SessionDescription.parse(sdp)
    except (ValueError, KeyError, IndexError) as exc:
        raise OfferRejectedError(f"the SDP offer does not parse: {exc}") from None
    audio = [m for m in description.media if m.kind == "audio" and m.port != 0]
    if len(audio) != 1:
        raise OfferRejectedError(f"the offer needs one audio section, not {len(audio)}")
    for media in description.media:
        if media.kind not in ("audio", "video") or media.port == 0:
            continue
        if media.profile != SRTP_PROFILE:
            raise OfferRejectedError(
                f"the offer's {media.kind} is {media.profile}; only {SRTP_PROFILE} is answered"
            )
        if media.dtls is None or not media.dtls.fingerprints:
            raise OfferRejectedError(f"the offer's {media.kind} has no DTLS fingerprint")
    if not any(codec.mimeType.lower() == "audio/opus" for codec in audio[0].rtp.codecs):
        raise OfferRejectedError("the offer's audio has no Opus")


def _opus_only() -> list[RTCRtpCodecCapability]:
    capabilities = RTCRtpSender.getCapabilities("audio").codecs
    return [codec for codec in capabilities if codec.mimeType.lower() == "audio/opus"]


class WebRtcLeg:
    """One contact's aiortc peer connection; create it inside the worker's event loop."""

    def __init__(
        self,
        leg_id: str,
        tasks: TaskRegistry,
        *,
        ice_servers: Sequence[Mapping[str, Any]] = (),
        host_addresses: Sequence[str] = (),
    ) -> None:
        asyncio.get_running_loop()  # aiortc's objects belong to the loop they start in
        self.id = leg_id
        self._tasks = tasks
        self._host_addresses = check_host_addresses(host_addresses)
        self._pc = RTCPeerConnection(rtc_configuration(ice_servers))
        self._outgoing = OutgoingAudio()
        self._incoming = IncomingAudio()
        self._reader: asyncio.Task[None] | None = None
        self._sender: AudioSender | None = None
        self._sending: asyncio.Task[None] | None = None
        self._audio: RTCRtpTransceiver | None = None
        self._video: RTCRtpTransceiver | None = None
        self._video_task: asyncio.Task[None] | None = None
        #: The video this leg's browser sends, handed to whatever it is bridged to.
        self.video_in = VideoReader()
        #: The video this leg's browser is sent.
        self.video_out = ForwardedVideo()
        self._ice: RTCIceTransport | None = None
        self._answered = False
        self._connected = False
        self._closing = False
        self.ended = False
        self.reason: EndReason | None = None
        self.on_ended: Callable[[WebRtcLeg], None] | None = None
        #: Called once, when ICE and DTLS are up and media can flow.
        self.on_connected: Callable[[WebRtcLeg], None] | None = None
        self._pc.on("connectionstatechange", self._on_state)

    @property
    def state(self) -> str:
        """The peer connection's state (aiortc's): new, connecting, connected, failed or closed."""
        return str(self._pc.connectionState)

    async def accept_offer(self, sdp: str) -> str:
        """Answer the browser's offer; the answer carries every local candidate."""
        check_offer(sdp)
        if self._answered or self.ended:
            raise OfferRejectedError("this leg has answered an offer already (or has ended)")
        self._answered = True
        audio: RTCRtpTransceiver = self._pc.addTransceiver("audio", direction="sendrecv")
        if can_send(audio):  # the leg sends its packets itself, aiortc's sender idles
            audio.sender.replaceTrack(IdleTrack())
            self._sender = AudioSender(audio)
        else:
            audio.sender.replaceTrack(self._outgoing)
        audio.setCodecPreferences(_opus_only())
        self._audio = audio
        await self._pc.setRemoteDescription(RTCSessionDescription(sdp=sdp, type="offer"))
        self._ice = audio.receiver.transport.transport
        # None when the browser offers no audio of its own (recvonly), whatever aiortc's hint.
        track: MediaStreamTrack | None = audio.receiver.track
        if track is not None and not decode_on_loop(audio.receiver, self._incoming):
            self._reader = self._tasks.spawn(
                f"webrtc-{self.id}-audio-in", self._incoming.read_track(track)
            )
        return await self._answer()

    async def renegotiate(self, sdp: str) -> str:
        """Answer a new offer from the browser on this connection (e.g. adding video)."""
        check_offer(sdp)
        if not self._answered or self.ended:
            raise OfferRejectedError("this leg has no connection to renegotiate (or has ended)")
        await self._pc.setRemoteDescription(RTCSessionDescription(sdp=sdp, type="offer"))
        return await self._answer()

    async def _answer(self) -> str:
        for transceiver in self._pc.getTransceivers():
            if transceiver is self._audio:
                continue
            if transceiver.kind == "video" and self._video in (None, transceiver):
                self._take_video(transceiver)
            else:
                transceiver.direction = "inactive"  # one audio and one video section at most
        answer = await self._pc.createAnswer()
        with gathering_on(self._host_addresses):
            await self._pc.setLocalDescription(answer)
        return str(self._pc.localDescription.sdp)

    def _take_video(self, transceiver: RTCRtpTransceiver) -> None:
        """Send and receive video on the offer's (first) video section."""
        if self._video is None:
            self._video = transceiver
            transceiver.setCodecPreferences(video_codecs())
            transceiver.sender.replaceTrack(self.video_out)
        transceiver.direction = "sendrecv"
        track: MediaStreamTrack | None = transceiver.receiver.track
        if track is not None and self._video_task is None:
            self._video_task = self._tasks.spawn(
                f"webrtc-{self.id}-video-in", self.video_in.run(track)
            )

    @property
    def has_video(self) -> bool:
        """Whether the browser has a video section answered ``sendrecv``."""
        return self._video is not None and self._video.currentDirection == "sendrecv"

    async def add_candidate(
        self, candidate: str, sdp_mid: str | None = None, sdp_mline_index: int | None = None
    ) -> None:
        """Add a candidate the browser trickled; an empty ``candidate`` ends them."""
        if not candidate:
            await self._pc.addIceCandidate(None)
            return
        if sdp_mid is None and sdp_mline_index is None:
            sdp_mline_index = 0
        parsed = candidate_from_sdp(candidate.removeprefix("candidate:"))
        parsed.sdpMid = sdp_mid
        parsed.sdpMLineIndex = sdp_mline_index
        await self._pc.addIceCandidate(parsed)

    def read_frame(self) -> AudioFrame | None:
        """The oldest frame heard from the customer, or None when none is waiting."""
        try:
            return self._incoming.ring.popleft()
        except IndexError:
            return None

    def queued(self) -> int:
        """Frames waiting to be sent to the customer."""
        return len(self._outgoing.ring)

    def write_frame(self, frame: AudioFrame) -> None:
        """Queue a frame for the customer (the oldest is dropped when 200 ms are queued)."""
        if not self.ended:
            self._outgoing.ring.append(frame.samples)

    async def close(self) -> None:
        """End the leg: stop the tracks, close the peer connection and its sockets."""
        self._closing = True
        self._end("closed")
        self._outgoing.stop()
        self.video_out.stop()
        for task in (self._reader, self._video_task, self._sending):
            if task is not None:
                task.cancel()
                try:
                    await task
                except asyncio.CancelledError:
                    pass
        self._reader = self._video_task = self._sending = None
        await self._pc.close()

    def _on_state(self) -> None:
        state = self._pc.connectionState
        if state == "connected":
            if self._sender is not None and self._sending is None:
                self._sending = self._tasks.spawn(
                    f"webrtc-{self.id}-audio-out", self._sender.run(self._outgoing.next_packet)
                )
            if not self._connected and self.on_connected is not None:
                self.on_connected(self)
            self._connected = True
            return
        if state not in ("failed", "closed") or self._closing:
            return
        # aiortc 1.16 reports a lost consent as "closed", not "failed": the ICE connection
        # closes, so DTLS closes, so the peer connection closes itself; only the ICE
        # transport's own state ("failed", set just before) tells it from a DTLS close_notify.
        ice_failed = self._ice is not None and self._ice.state == "failed"
        if self._connected:
            self._end("consent-expired" if ice_failed else "remote-closed")
        elif ice_failed:
            self._end("ice-failed")
        else:
            self._end("dtls-failed" if state == "failed" else "remote-closed")

    def _end(self, reason: EndReason) -> None:
        if self.ended:
            return
        self.ended = True
        self.reason = reason
        logger.info("WebRTC leg %s ended: %s", self.id, reason)
        if self.on_ended is not None:
            self.on_ended(self)
