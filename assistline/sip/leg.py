"""A SIP call inside a media worker, as a *leg* of the media model.

A :class:`SipLeg` wraps one pjsua2 ``Call`` and, while its audio passes
through Python, one port in pjmedia's conference bridge connected to the
call's audio (:mod:`~assistline.sip.leg_port`: 16 kHz, 20 ms frames through
two bounded rings). pjmedia does the G.711/G.722 coding and any
resampling: the bridge itself mixes at ``sip.bridge_rate``. At 8 kHz a
G.711 call bridged to another never meets a resampler (measured with
``bench/sip.py``, 40 bridged and recorded calls: 32.7 % of a core at
16 kHz, 20.0 % at 8 kHz, where pjmedia's resampler had been a quarter of
the work); the leg's port is then converted 8 ↔ 16 kHz by the bridge.

Threads. The pjsua2 objects live on the :class:`~.pjthread.PjThread`: the
signalling callbacks (``onCallState``, ``onCallMediaState``, and
``onDtmfDigit`` for SIP INFO) run there and post protocol events to the
event loop with :meth:`~.pjthread.PjThread.emit`. ``onDtmfDigit`` for
RFC 4733 runs on pjmedia's RTP thread and only posts its event (it touches
no pjsua2 object). Frames cross from pjmedia's clock thread to the event
loop only through the port's rings (:mod:`~assistline.sip.leg_port`).

DTMF: RFC 4733 events and SIP INFO (``application/dtmf-relay``) both reach
``onDtmfDigit`` with the method, and become the same ``digit`` event
(method ``rfc4733`` or ``info``); :meth:`SipLeg.inband_digits` runs the
media core's detector over received frames for tones in the audio
(``inband``), silenced once the leg has used RFC 4733 or INFO. Digits are
never logged.
"""

from __future__ import annotations

import dataclasses
import itertools
import logging
import weakref
from collections.abc import Callable
from typing import Any

import numpy as np
import pjsua2 as pj

from assistline.errors import AssistlineError
from assistline.media.dtmf import DtmfDetector
from assistline.media.frame import INTERNAL_RATE, AudioFrame
from assistline.sip import protocol
from assistline.sip.leg_port import NO_RINGS, LegPort, new_port
from assistline.sip.pjsua_c import no_object
from assistline.sip.pjthread import PjThread, guarded
from assistline.sip.sdp import prefer_local_codec

logger = logging.getLogger(__name__)

EventSink = Callable[[protocol.Event], None]

_port_names = itertools.count(1)


def tx_option(headers: protocol.Headers) -> Any:
    """A pjsua2 ``SipTxOption`` carrying ``headers`` (pjsua2 thread)."""
    option = pj.SipTxOption()
    vector = pj.SipHeaderVector()
    for name, value in headers:
        header = pj.SipHeader()
        header.hName = name
        header.hValue = value
        vector.append(header)
    option.headers = vector
    return option


@dataclasses.dataclass(frozen=True, slots=True)
class StreamTotals:
    """What an audio stream has received so far (``media_stats`` sends differences)."""

    packets: int = 0
    lost: int = 0
    jitter_ms: int = 0
    jbuf_lost: int = 0
    jbuf_discarded: int = 0
    jbuf_delay_ms: int = 0

    def minus(self, earlier: StreamTotals) -> StreamTotals:
        """The counts since ``earlier``; jitter and delay stay as they are now."""
        return StreamTotals(
            self.packets - earlier.packets,
            self.lost - earlier.lost,
            self.jitter_ms,
            self.jbuf_lost - earlier.jbuf_lost,
            self.jbuf_discarded - earlier.jbuf_discarded,
            self.jbuf_delay_ms,
        )


def _stream_totals(call: Any, index: int) -> StreamTotals:
    stat = call.getStreamStat(index)
    rx, jbuf = stat.rtcp.rxStat, stat.jbuf
    return StreamTotals(
        int(rx.pkt),
        int(rx.loss),
        int(rx.jitterUsec.max) // 1000,
        int(jbuf.lost),
        int(jbuf.discard),
        int(jbuf.avgDelayMsec),
    )


class LegEndedError(AssistlineError):
    """The call has ended; the command came too late."""


class _Call(pj.Call):  # type: ignore[misc]  # pjsua2 has no stubs
    def __init__(self, account: Any, call_id: int, leg: SipLeg) -> None:
        if call_id < 0:
            super().__init__(account)
        else:
            super().__init__(account, call_id)
        self.leg = leg

    @guarded
    def onCallState(self, prm: Any) -> None:  # noqa: N802 - pjsua2's name
        self.leg._on_state()

    @guarded
    def onCallMediaState(self, prm: Any) -> None:  # noqa: N802 - pjsua2's name
        self.leg._on_media()

    @guarded
    def onStreamDestroyed(self, prm: Any) -> None:  # noqa: N802 - pjsua2's name
        self.leg._on_stream_destroyed(self, int(prm.streamIdx))

    @guarded
    def onCallSdpCreated(self, prm: Any) -> None:  # noqa: N802 - pjsua2's name
        # Answers follow our codec order, not the caller's (see sip/sdp.py).
        local = str(prm.sdp.wholeSdp)
        answer = prefer_local_codec(local, str(prm.remSdp.wholeSdp))
        if answer != local:
            prm.sdp.wholeSdp = answer

    @guarded
    def onDtmfDigit(self, prm: Any) -> None:  # noqa: N802 - pjsua2's name
        self.leg._on_digit(str(prm.digit), int(prm.method))


class SipLeg:
    """One SIP call in the worker; methods named ``pj_*`` run on the pjsua2 thread."""

    def __init__(self, pjt: PjThread, leg_id: str, sink: EventSink) -> None:
        self.id = leg_id
        self._pjt = pjt
        self._sink = sink
        # Weak references: the PjThread's registry is the only owner of pjsua2
        # objects, so they are never deleted off the pjsua2 thread through a leg.
        self._call_ref: Callable[[], Any] = no_object
        self._port_ref: Callable[[], LegPort | None] = no_object
        # The rings of the leg's port while it is in the bridge. The event loop
        # uses these, never the port (see leg_port: who frees what, where).
        self._rings = NO_RINGS
        self._held = False
        self._answered = False
        self._ringing = False
        self.ended = False
        self.status = 0
        self.reason = ""
        self._rx_timestamp = 0
        # Made at the first frame through Python (0.4 ms to build: most legs
        # are bridged directly and never need one).
        self._detector: DtmfDetector | None = None
        #: True once a digit came out of band (RFC 4733 or SIP INFO).
        self.out_of_band_dtmf = False
        self.on_ended: Callable[[SipLeg], None] | None = None
        #: Called on the event loop when the leg's frames start or stop passing
        #: through Python (a port joins or leaves the bridge).
        self.on_media_path: Callable[[], None] | None = None
        #: A leg hung up when this one ends (``place_call``'s connect_to).
        self.ends_with: SipLeg | None = None
        #: A placed leg's ringing caller, connected to it on answer, and the
        #: recording path asked for them ("" for none).
        self.connect_to: SipLeg | None = None
        self.record_path = ""
        self._hanging_up = False
        #: The leg this one is bridged to inside pjmedia (see sip/conference.py).
        self.direct_peer: SipLeg | None = None
        #: What the current audio stream had received when last reported (sip/quality.py).
        self._reported = StreamTotals()

    # ---------------------------------------------------- pjsua2 thread only

    def pj_attach_incoming(self, account: Any, call_id: int) -> tuple[str, str]:
        """Take the incoming call ``call_id``; returns its (from, to) URIs."""
        call = self._pjt.hold(_Call(account, call_id, self))
        self._call_ref = weakref.ref(call)
        info = call.getInfo()
        return str(info.remoteUri), str(info.localUri)

    def pj_make_call(
        self, account: Any, destination: str, headers: protocol.Headers, caller_id: str = ""
    ) -> None:
        """Send an INVITE to ``destination`` with ``headers``, From ``caller_id`` if given."""
        call = self._pjt.hold(_Call(account, -1, self))
        self._call_ref = weakref.ref(call)
        param = pj.CallOpParam(True)
        param.txOption = tx_option(headers)
        if caller_id:
            param.txOption.localUri = caller_id
        call.makeCall(destination, param)

    def pj_answer(self, status: int = 200, reason: str = "") -> None:
        """Answer with ``status`` (180 rings, 200 answers, 4xx–6xx refuses)."""
        param = pj.CallOpParam(True)
        param.statusCode = status
        if reason:
            param.reason = reason
        self._live_call().answer(param)

    def pj_hangup(self, status: int = 603, reason: str = "") -> None:
        """Hang up: ``status`` is used before answer, a BYE is sent after."""
        call = self._call_ref()
        if call is None or self.ended:
            return
        param = pj.CallOpParam(True)
        param.statusCode = status
        if reason:
            param.reason = reason
        self._hanging_up = True  # its frames need no port any more
        call.hangup(param)

    def pj_hang_up_with_partner(self) -> None:
        """The leg this one ends with has ended: CANCEL before answer, BYE after."""
        if not self.ended:
            self.pj_hangup(200 if self._answered else 487)

    def pj_send_dtmf(self, digits: str) -> None:
        """Send ``digits`` as RFC 4733 events."""
        param = pj.CallSendDtmfParam()
        param.digits = digits
        param.method = pj.PJSUA_DTMF_METHOD_RFC2833
        self._live_call().sendDtmf(param)

    def _live_call(self) -> Any:
        call = self._call_ref()
        if call is None or self.ended:
            raise LegEndedError()
        return call

    def _emit(self, event: protocol.Event) -> None:
        self._pjt.emit(self._sink, event)

    def _on_state(self) -> None:
        call = self._call_ref()
        if call is None:
            return
        try:
            info = call.getInfo()
        except pj.Error:
            # pjsua reports a call hung up before its session existed (an
            # INVITE still waiting for its media transport) with no session
            # to read: that report is the call's end.
            if not self.ended:
                self._end(call, 487 if self._hanging_up else 500, "ended before its session")
            return
        state = info.state
        if (
            state == pj.PJSIP_INV_STATE_EARLY
            and not self._ringing
            and info.role == pj.PJSIP_ROLE_UAC
        ):
            self._ringing = True
            self._emit(protocol.Ringing(self.id))
        elif state == pj.PJSIP_INV_STATE_CONFIRMED and not self._answered:
            self._answered = True
            self._emit(protocol.Answered(self.id))
        elif state == pj.PJSIP_INV_STATE_DISCONNECTED and not self.ended:
            self._end(call, int(info.lastStatusCode), str(info.lastReason))

    def _end(self, call: Any, status: int, reason: str) -> None:
        self.ended = True
        self.status = status
        self.reason = reason
        self._emit(protocol.CallEnded(self.id, self.status, self.reason))
        if self.on_ended is not None:
            self.on_ended(self)
        partner, self.ends_with = self.ends_with, None
        if partner is not None:
            if partner.ends_with is self:
                partner.ends_with = None
            partner.direct_peer = None
            self._pjt.defer(partner.pj_hang_up_with_partner)
        self._retire_port()
        self._pjt.release(call)

    def _on_media(self) -> None:
        call = self._call_ref()
        if call is None or self.ended:
            return
        info = call.getInfo()
        for media in info.media:
            if media.type != pj.PJMEDIA_TYPE_AUDIO:
                continue
            if media.status == pj.PJSUA_CALL_MEDIA_REMOTE_HOLD and not self._held:
                self._held = True
                self._emit(protocol.Hold(self.id))
            elif media.status == pj.PJSUA_CALL_MEDIA_ACTIVE:
                if self._held:
                    self._held = False
                    self._emit(protocol.Unhold(self.id))
                self._connect(call.getAudioMedia(media.index))

    def _pj_audio_index(self, *statuses: int) -> tuple[Any, int] | None:
        """(call, index) of the call's audio stream in one of ``statuses``, or None."""
        call = self._call_ref()
        if call is None or self.ended:
            return None
        try:
            info = call.getInfo()  # keep it: .media points into it (SWIG)
            for media in info.media:
                if media.type == pj.PJMEDIA_TYPE_AUDIO and media.status in statuses:
                    return call, int(media.index)
        except pj.Error:
            return None
        return None

    def pj_audio(self) -> Any:
        """The call's audio in the conference bridge, or None before media (or after)."""
        found = self._pj_audio_index(pj.PJSUA_CALL_MEDIA_ACTIVE, pj.PJSUA_CALL_MEDIA_REMOTE_HOLD)
        if found is None:
            return None
        call, index = found
        try:
            return call.getAudioMedia(index)
        except pj.Error:
            return None

    def pj_rx_packets(self) -> int | None:
        """RTP packets the audio stream has received, or None (no stream, or held)."""
        if self._held or not self._answered:
            return None
        found = self._pj_audio_index(pj.PJSUA_CALL_MEDIA_ACTIVE)
        if found is None:
            return None
        call, index = found
        try:
            return int(call.getStreamStat(index).rtcp.rxStat.pkt)
        except pj.Error:
            return None

    def pj_connect_on_answer(self, caller: SipLeg, record_path: str) -> None:
        """Arrange, before the INVITE: on answer this leg and ``caller`` meet in pjmedia."""
        self.connect_to, self.record_path = caller, record_path
        self.direct_peer, caller.direct_peer = caller, self
        caller.ends_with = self  # a caller that hangs up cancels this leg

    def pj_go_direct(self, peer: SipLeg) -> None:
        """Carry this leg's audio to and from ``peer`` inside pjmedia, not through Python."""
        self.direct_peer = peer
        audio = self.pj_audio()
        if audio is not None:
            self._connect(audio)

    def pj_go_python(self) -> None:
        """Back to a port of its own (the peer ended or is taken away)."""
        peer, self.direct_peer = self.direct_peer, None
        audio = self.pj_audio()
        if audio is None:
            return
        peer_audio = None if peer is None else peer.pj_audio()
        if peer_audio is not None:
            audio.stopTransmit(peer_audio)
            peer_audio.stopTransmit(audio)
        self._connect(audio)

    def _connect(self, audio: Any) -> None:
        peer = self.direct_peer
        peer_audio = None if peer is None else peer.pj_audio()
        if peer is not None and peer_audio is not None:
            self._unplug(audio)
            peer._unplug(peer_audio)
            audio.startTransmit(peer_audio)
            peer_audio.startTransmit(audio)
            return
        if peer is not None or self._hanging_up:
            return  # the peer's media will connect both; a leg going needs none
        port = self._port_ref()
        if port is None:
            port = self._pjt.hold(new_port(f"leg-{next(_port_names)}"))
            self._port_ref = weakref.ref(port)
            self._rings = port.rings
            self._media_path_changed()
        port.connect(audio)

    def _on_stream_destroyed(self, call: Any, index: int) -> None:
        """The stream still exists here: report what it received since last time."""
        self._report(_stream_totals(call, index))
        self._reported = StreamTotals()  # a re-INVITE's new stream counts from zero

    def pj_report_quality(self) -> None:
        """Report what the audio stream received since the last report, if anything."""
        found = self._pj_audio_index(pj.PJSUA_CALL_MEDIA_ACTIVE, pj.PJSUA_CALL_MEDIA_REMOTE_HOLD)
        if found is not None:
            try:
                totals = _stream_totals(*found)
            except pj.Error:
                return
            if totals != self._reported:
                self._report(totals)

    def _report(self, totals: StreamTotals) -> None:
        since = totals.minus(self._reported)
        self._reported = totals
        self._emit(
            protocol.MediaStats(
                self.id,
                packets=since.packets,
                lost=since.lost,
                jitter_ms=totals.jitter_ms,
                jbuf_lost=since.jbuf_lost,
                jbuf_discarded=since.jbuf_discarded,
                jbuf_delay_ms=since.jbuf_delay_ms,
            )
        )

    def _unplug(self, audio: Any) -> None:
        """Stop frames flowing between the call and its port (none cross into Python)."""
        port = self._port_ref()
        if port is not None:
            port.disconnect(audio)
            self._retire_port()

    def _retire_port(self) -> None:
        """Take the leg's port out of the bridge (an idle port still costs a call a tick)."""
        port = self._port_ref()
        if port is not None:
            self._port_ref = no_object
            # Until pjmedia lets go, the port fills rings nobody reads.
            self._rings = NO_RINGS
            port.rings.clear()
            self._pjt.retire(port)
            self._media_path_changed()

    def _media_path_changed(self) -> None:
        if self.on_media_path is not None:
            self._pjt.emit(self.on_media_path)

    def _on_digit(self, digit: str, method: int) -> None:
        self.out_of_band_dtmf = True
        name: protocol.DtmfMethod = "info" if method == pj.PJSUA_DTMF_METHOD_SIP_INFO else "rfc4733"
        self._emit(protocol.Digit(self.id, digit, name))

    # ------------------------------------------------------- any thread

    def read_frame(self) -> AudioFrame | None:
        """The oldest frame heard from the call, or None when none is waiting."""
        data = self._rings.read()
        if data is None:
            return None
        frame = AudioFrame(np.frombuffer(data, dtype=np.int16).copy(), self._rx_timestamp)
        self._rx_timestamp = frame.next_timestamp
        return frame

    def inband_digits(self, frame: AudioFrame) -> list[str]:
        """Keys whose tones ended in ``frame`` (none once DTMF came out of band)."""
        if self.out_of_band_dtmf:
            return []  # the keypad's tones would only repeat its events
        if self._detector is None:
            self._detector = DtmfDetector(INTERNAL_RATE)
        return [event.digit for event in self._detector.feed(frame.samples)]

    @property
    def through_python(self) -> bool:
        """Whether the leg's frames pass through Python (its port is in the bridge)."""
        return self._rings is not NO_RINGS

    def queued(self) -> int:
        """Frames waiting to be sent to the call."""
        return self._rings.queued()

    def write_frame(self, frame: AudioFrame) -> None:
        """Queue a frame to send to the call (the oldest is dropped when 200 ms are queued)."""
        self._rings.write(frame.samples.tobytes())
