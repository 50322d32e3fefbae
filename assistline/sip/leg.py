"""A SIP call inside a media worker, as a *leg* of the media model.

A :class:`SipLeg` wraps one pjsua2 ``Call`` and one ``AudioMediaPort``
(:class:`FramePort`) connected to the call's audio in pjmedia's conference
bridge. The bridge runs at the internal rate (16 kHz, 20 ms), so the port
sees exactly :class:`~assistline.media.frame.AudioFrame`-sized buffers and
pjmedia does the G.711/G.722 coding and any resampling.

Threads. The pjsua2 objects live on the :class:`~.pjthread.PjThread`: the
signalling callbacks (``onCallState``, ``onCallMediaState``,
``onDtmfDigit``) run there and post protocol events to the event loop with
:meth:`~.pjthread.PjThread.emit`. ``onFrameReceived`` and
``onFrameRequested`` run on pjmedia's *clock thread* instead, so audio
crosses threads only through two bounded ``collections.deque(maxlen=…)``
rings of ``bytes`` (appends and pops of a deque are atomic under the GIL; a
full ring drops its oldest frame, so a stalled reader never grows memory).

DTMF: RFC 4733 events and SIP INFO (``application/dtmf-relay``) both reach
``onDtmfDigit`` with the method, and become the same ``digit`` event
(method ``rfc4733`` or ``info``); :meth:`SipLeg.inband_digits` runs the
media core's detector over received frames for tones in the audio
(``inband``), silenced once the leg has used RFC 4733 or INFO. Digits are
never logged.

Measured here (pjsua2-python 2.15.1): copying a 640-byte ``ByteVector``
out of a ``MediaFrame`` costs ~0.5 ms through ``tuple()`` and ~1.2 ms
through ``bytes()`` (SWIG iterates element by element), building one from
``bytes`` ~20 µs. So reading audio costs about 2.5 % of a core per leg.
"""

from __future__ import annotations

import collections
import logging
import weakref
from collections.abc import Callable
from typing import Any

import numpy as np
import pjsua2 as pj

from assistline.errors import AssistlineError
from assistline.media.dtmf import DtmfDetector
from assistline.media.frame import FRAME_SAMPLES, INTERNAL_RATE, AudioFrame
from assistline.sip import protocol
from assistline.sip.pjthread import PjThread, guarded

logger = logging.getLogger(__name__)

#: Frames each audio ring holds: 200 ms.
RING_FRAMES = 10
FRAME_BYTES = FRAME_SAMPLES * 2
_SILENCE = bytes(FRAME_BYTES)

EventSink = Callable[[protocol.Event], None]


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


class LegEndedError(AssistlineError):
    """The call has ended; the command came too late."""


def _none() -> None:
    return None


class FramePort(pj.AudioMediaPort):  # type: ignore[misc]  # pjsua2 has no stubs
    """An ``AudioMediaPort`` passing 20 ms 16 kHz frames through two bounded rings."""

    def __init__(self) -> None:
        super().__init__()
        self.received: collections.deque[bytes] = collections.deque(maxlen=RING_FRAMES)
        self.to_send: collections.deque[bytes] = collections.deque(maxlen=RING_FRAMES)

    def create(self, name: str) -> None:
        """Register the port in the conference bridge (pjsua2 thread)."""
        fmt = pj.MediaFormatAudio()
        fmt.init(pj.PJMEDIA_FORMAT_PCM, INTERNAL_RATE, 1, 20_000, 16)
        self.createPort(name, fmt)

    @guarded
    def onFrameReceived(self, frame: Any) -> None:  # noqa: N802 - pjsua2's name
        """Clock thread: audio from the call."""
        if frame.type == pj.PJMEDIA_FRAME_TYPE_AUDIO and frame.size == FRAME_BYTES:
            self.received.append(bytes(tuple(frame.buf)))

    @guarded
    def onFrameRequested(self, frame: Any) -> None:  # noqa: N802 - pjsua2's name
        """Clock thread: audio to the call (silence when nothing is queued)."""
        try:
            data = self.to_send.popleft()
        except IndexError:
            data = _SILENCE
        frame.type = pj.PJMEDIA_FRAME_TYPE_AUDIO
        frame.buf = pj.ByteVector(data)
        frame.size = FRAME_BYTES


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
        self._call_ref: Callable[[], Any] = _none
        self._port_ref: Callable[[], FramePort | None] = _none
        self._held = False
        self._answered = False
        self._ringing = False
        self.ended = False
        self.status = 0
        self.reason = ""
        self._rx_timestamp = 0
        self._detector = DtmfDetector(INTERNAL_RATE)
        #: True once a digit came out of band (RFC 4733 or SIP INFO).
        self.out_of_band_dtmf = False
        self.on_ended: Callable[[SipLeg], None] | None = None

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
        call.hangup(param)

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
        info = call.getInfo()
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
            self.ended = True
            self.status = int(info.lastStatusCode)
            self.reason = str(info.lastReason)
            self._emit(protocol.CallEnded(self.id, self.status, self.reason))
            if self.on_ended is not None:
                self.on_ended(self)
            port = self._port_ref()
            if port is not None:
                self._pjt.release(port)
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

    def _connect(self, audio: Any) -> None:
        port = self._port_ref()
        if port is None:
            port = self._pjt.hold(FramePort())
            port.create(f"leg-{self.id}")
            self._port_ref = weakref.ref(port)
        audio.startTransmit(port)
        port.startTransmit(audio)

    def _on_digit(self, digit: str, method: int) -> None:
        self.out_of_band_dtmf = True
        name: protocol.DtmfMethod = "info" if method == pj.PJSUA_DTMF_METHOD_SIP_INFO else "rfc4733"
        self._emit(protocol.Digit(self.id, digit, name))

    # ------------------------------------------------------- any thread

    def read_frame(self) -> AudioFrame | None:
        """The oldest frame heard from the call, or None when none is waiting."""
        port = self._port_ref()
        if port is None:
            return None
        try:
            data = port.received.popleft()
        except IndexError:
            return None
        frame = AudioFrame(np.frombuffer(data, dtype=np.int16).copy(), self._rx_timestamp)
        self._rx_timestamp = frame.next_timestamp
        return frame

    def inband_digits(self, frame: AudioFrame) -> list[str]:
        """Keys whose tones ended in ``frame`` (none once DTMF came out of band)."""
        events = self._detector.feed(frame.samples)
        if self.out_of_band_dtmf:
            return []
        return [event.digit for event in events]

    def queued(self) -> int:
        """Frames waiting to be sent to the call."""
        port = self._port_ref()
        return 0 if port is None else len(port.to_send)

    def write_frame(self, frame: AudioFrame) -> None:
        """Queue a frame to send to the call (the oldest is dropped when 200 ms are queued)."""
        port = self._port_ref()
        if port is not None:
            port.to_send.append(frame.samples.tobytes())
