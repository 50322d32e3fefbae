"""The media worker process: pjsua2 on one thread, driven over the control socket.

Run as ``python -m assistline.sip.worker --id w1 --port 5080 --control
/path/to/control.sock`` (``--help`` lists the rest). The worker listens for
SIP on one loopback UDP port, connects to the control process's Unix socket,
says ``hello`` (see :mod:`assistline.sip.protocol`), sends ``health`` every
second and runs the commands it receives. It exits when told to ``stop``,
on SIGTERM/SIGINT, or when the control connection closes, so it never
outlives its control process. Without ``--control`` it runs alone (events
are logged, digits never).

The **echo extension**: a call to ``sip:echo@<worker>`` is answered at once
and its audio is looped back frame by frame through the leg's rings, so a
worker can be tested with nothing but a SIP peer. Every leg's received
audio also goes through the media core's DTMF detector
(:class:`~assistline.media.dtmf.DtmfDetector`), whose digits are reported
with method ``inband`` until the leg has sent an RFC 4733 or SIP INFO digit
(phones that send both would otherwise report each key twice).

Media in the worker is moved by one asyncio task every 20 ms, while any
leg's frames pass through Python (:mod:`assistline.sip.worker_pump`):
received frames go through the detector, then back (echo) or to a leg
bridged through Python, and a playing prompt or tone is kept a few frames
ahead of pjmedia's clock. ``secure_start``/``secure_end`` put a leg in
secure capture: recordings paused, its keypad tones silenced toward its
peer (the pump's suppressors), a pjmedia-bridged pair moved to Python.
``bridge`` connects two legs inside pjmedia's conference bridge instead
(:mod:`assistline.sip.conference`: no frame crosses into Python, measured
~4 % of a core per bridged call the other way), unless one of them is
already recorded through Python; with no leg's frames in Python (none has a
port in the bridge: ringing legs have none) the task sleeps. Bridges, hold, secure
capture and ``place_call``'s connect-on-answer are
:mod:`assistline.sip.worker_bridges`.
A customer's WebRTC leg (``webrtc_offer``, :mod:`assistline.sip.worker_webrtc`)
is bridged to a SIP leg through that task too.
``collect_digits`` gathers a leg's digits (:mod:`assistline.sip.digits`)
while each still comes as a ``digit`` event. Other incoming calls ring
(180) and wait for the control process to ``answer`` or ``reject`` them.

**Recording.** ``record``, ``pause_recording`` and ``resume_recording`` are
run by :class:`~assistline.sip.worker_recording.WorkerRecordings`, which
says how a leg is recorded; the 20 ms task feeds it the frames of recorded
legs whose media passes through Python. A leg's recording is closed when
the leg ends, and every recording when the worker stops.

What the pjsua2 wheel allows (4 calls per process, ~75 call attempts/s,
media callbacks beside busy Python threads, priorities) was measured and is
recorded in :mod:`assistline.sip.pjthread`.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import os
import sys
import weakref
from collections.abc import Callable, Sequence
from typing import Any

import pjsua2 as pj

from assistline.sip import protocol, protocol_wire, request_guard
from assistline.sip.digits import CollectError, DigitCollections
from assistline.sip.leg import SipLeg
from assistline.sip.pjsua_c import DEFAULT_JITTER, JitterBuffer, no_object, pjsua_call_slots
from assistline.sip.pjthread import PjsuaStoppedError, PjThread, guarded, pj_error_text
from assistline.sip.quality import DEFAULT_INTERVAL, report_quality
from assistline.sip.rtp_timeout import DEFAULT_TIMEOUT, watch_rtp
from assistline.sip.sipmsg import ECHO_USER, codec_priorities, sip_user, x_headers
from assistline.sip.trunk import TrunkAccounts, TrunkSetupError
from assistline.sip.worker_bridges import WorkerBridges
from assistline.sip.worker_media import CommandError, playing
from assistline.sip.worker_pump import MediaPump
from assistline.sip.worker_recording import WorkerRecordings
from assistline.sip.worker_webrtc import WorkerWebRtc

logger = logging.getLogger(__name__)

#: Calls one worker holds: the wheel's compile-time PJSUA_MAX_CALLS.
CAPACITY = 4
HEALTH_INTERVAL = 1.0
#: pjlib's status for "too many objects": every pjsua call slot is taken.
PJ_ETOOMANY = 70010
#: Seconds place_call waits for pjsua to free an ended call's slot.
RELEASE_WAIT = 0.5
#: GIL switch interval in a worker, seconds (5 ms by default in CPython).
SWITCH_INTERVAL = 0.001


class _Account(pj.Account):  # type: ignore[misc]  # pjsua2 has no stubs
    def __init__(self, worker: MediaWorker) -> None:
        super().__init__()
        self.worker = worker

    @guarded
    def onIncomingCall(self, prm: Any) -> None:  # noqa: N802 - pjsua2's name
        self.worker._pj_incoming(self, prm)


class MediaWorker:
    """One worker: SIP on ``sip_port``, commands and events on the control socket."""

    def __init__(
        self,
        worker_id: str,
        sip_port: int,
        *,
        control_path: str | None = None,
        bind_address: str = "127.0.0.1",
        codecs: Sequence[str] = ("PCMU", "PCMA", "G722"),
        rtp_port_min: int = 20000,
        rtp_port_max: int = 30000,
        public_address: str = "",
        capacity: int = CAPACITY,
        media_timeout: float = DEFAULT_TIMEOUT,
        bridge_rate: int = 8000,
        quality_interval: float = DEFAULT_INTERVAL,
        jitter: JitterBuffer = DEFAULT_JITTER,
        ice_host_addresses: Sequence[str] = (),
        consent_timeout: float | None = None,
    ) -> None:
        self.id = worker_id
        self.sip_port = sip_port
        self.control_path = control_path
        self.bind_address = bind_address
        self.codecs = tuple(codecs)
        self.rtp_port_min = rtp_port_min
        self.rtp_port_max = rtp_port_max
        self.public_address = public_address
        self.capacity = capacity
        self.media_timeout = media_timeout
        self.bridge_rate = bridge_rate
        self.quality_interval = quality_interval
        wake_host = "127.0.0.1" if bind_address in ("0.0.0.0", "") else bind_address
        wake_host = "::1" if wake_host == "::" else wake_host
        self.pjt = PjThread(
            self._pj_setup,
            max_calls=capacity,
            clock_rate=bridge_rate,
            jitter=jitter,
            on_exit=self.stop,
            wake_address=(wake_host, sip_port),
        )
        # Weak: the PjThread's registry is the only owner of pjsua2 objects.
        self._account: Callable[[], Any] = no_object
        # The SIP trunk's accounts (assistline.sip.trunk), set up by a ``trunk`` command.
        self.trunk = TrunkAccounts(
            self.pjt, self._pj_incoming, bind_address, (rtp_port_min, rtp_port_max), public_address
        )
        self._numbers = itertools.count(1)
        self._active: set[str] = set()  # legs up, changed on the pjsua2 thread only
        self._awaiting_agent: set[str] = set()  # callers holding a slot for an agent leg
        self.legs: dict[str, SipLeg] = {}  # legs known to the loop
        self._echo: set[str] = set()
        self._bridged: dict[str, str] = {}  # leg id -> the leg it hears it
        self._recordings = WorkerRecordings(
            self.pjt,
            self.legs,
            self._bridged,
            bridge_rate,
            send=self._send,
            finish=self._finish,
            pj_call=self._pj_call,
        )
        self.webrtc = WorkerWebRtc(
            self._numbers,
            worker_id,
            self._event,
            self._reserve_agent_slot,
            host_addresses=ice_host_addresses,
            consent_timeout=consent_timeout,
        )
        self._collections = DigitCollections(self._send)
        self._direct: set[str] = set()  # legs bridged inside pjmedia
        self.pump = MediaPump(
            self.legs,
            self.webrtc.legs,
            self._bridged,
            self._direct,
            self._echo,
            self._recordings,
            self._event,
        )
        self._playing = self.pump.playing  # leg id -> frames to play
        self.bridges = WorkerBridges(
            self.pjt,
            self.legs,
            self.webrtc,
            self.pump,
            self._recordings,
            bridged=self._bridged,
            direct=self._direct,
            echo=self._echo,
            awaiting_agent=self._awaiting_agent,
            media_changed=self._update_python_media,
            send=self._send,
            finish=self._finish,
            pj_call=self._pj_call,
        )
        self._python_media = asyncio.Event()  # set while any leg's frames pass through Python
        self._finishing: set[asyncio.Task[None]] = set()
        self._writer: asyncio.StreamWriter | None = None
        self._stop = asyncio.Event()

    # ------------------------------------------------------- pjsua2 thread

    def _pj_setup(self, ep: Any) -> None:
        transport = pj.TransportConfig()
        transport.port = self.sip_port
        transport.boundAddress = self.bind_address
        ep.transportCreate(pj.PJSIP_TRANSPORT_UDP, transport)
        available = [str(codec.codecId) for codec in ep.codecEnum2()]
        for codec, priority in codec_priorities(self.codecs, available).items():
            ep.codecSetPriority(codec, priority)
        config = pj.AccountConfig()
        config.idUri = f"sip:worker@{self.bind_address}:{self.sip_port}"
        media = config.mediaConfig.transportConfig
        media.port = self.rtp_port_min
        media.portRange = self.rtp_port_max - self.rtp_port_min
        media.boundAddress = self.bind_address
        if self.public_address:
            media.publicAddress = self.public_address
        account = self.pjt.hold(_Account(self))
        account.create(config, True)
        self._account = weakref.ref(account)

    def _pj_incoming(self, account: Any, prm: Any) -> None:
        leg = SipLeg(self.pjt, f"{self.id}-{next(self._numbers)}", self._event)
        from_uri, to_uri = leg.pj_attach_incoming(account, prm.callId)
        # Each caller keeps a slot free for the agent leg to be bridged to it
        # (the echo extension needs none); the edge takes "503 Worker Full" as
        # "try the next worker" without marking this one down. (The edge's own
        # load count lags: it frees a call's load at the caller's BYE, while
        # the agent leg holds its slot here until its BYE is answered.) pjsua
        # reports a call we hang up as ended at once but frees its slot only
        # then, so its own count is the one that binds. pjsua2 calls this
        # before pjsua counts the new call (from on_create_media_transport),
        # so the count excludes it; less one, a slot still releasing is taken
        # as free. It normally is free within milliseconds, and the agent leg
        # waits up to RELEASE_WAIT for it; refusing would send the caller on
        # to another worker. (Refusing was tried at 40 and 50 calls/s: fewer
        # agent legs failed, more callers ran out of workers at the edge.)
        echo = sip_user(to_uri) == ECHO_USER
        needed = 1 if echo else protocol.SLOTS_PER_CALL
        held = max(len(self._active), pjsua_call_slots() - 1)
        if held + len(self._awaiting_agent) + needed > self.capacity:
            leg.pj_answer(503, "Worker Full")
            return
        self._active.add(leg.id)
        if not echo:
            self._awaiting_agent.add(leg.id)
        leg.on_ended = self._pj_ended
        leg.on_media_path = self._update_python_media
        headers = x_headers(str(prm.rdata.wholeMsg))
        self.pjt.emit(self._adopt, leg, echo)
        self.pjt.emit(self._event, protocol.IncomingCall(leg.id, from_uri, to_uri, headers))
        leg.pj_answer(200 if echo else 180)

    async def _reserve_agent_slot(self, leg_id: str) -> bool:
        """Keep a call slot for the agent leg a WebRTC leg will be bridged to."""

        def reserve() -> bool:
            held = max(len(self._active), pjsua_call_slots())
            if held + len(self._awaiting_agent) >= self.capacity:
                return False
            self._awaiting_agent.add(leg_id)
            return True

        return await self.pjt.run(reserve)

    def _pj_ended(self, leg: SipLeg) -> None:
        self._active.discard(leg.id)
        self._awaiting_agent.discard(leg.id)

    def _pj_place_call(self, command: protocol.PlaceCall, caller: SipLeg | None) -> str:
        if caller is not None and caller.ended:
            raise CommandError(404, f"leg {caller.id} has ended")
        # The slot a caller reserved is used now, or if it is not one of
        # them, any caller's; given up only once the INVITE is sent, so a
        # retry while an ended call's slot is still releasing finds it again.
        reserved: str | None = None
        if caller is not None and caller.id in self._awaiting_agent:
            reserved = caller.id
        elif self._awaiting_agent:
            reserved = next(iter(self._awaiting_agent))
        elif max(len(self._active), pjsua_call_slots()) >= self.capacity:
            raise CommandError(503, "worker full")
        leg = SipLeg(self.pjt, f"{self.id}-{next(self._numbers)}", self._event)
        leg.on_media_path = self._update_python_media
        if caller is not None:
            leg.pj_connect_on_answer(caller, command.record)
        headers = command.headers
        account = self.trunk.pj_account_for(command.destination) or self._account()
        try:
            leg.pj_make_call(account, command.destination, headers, command.caller_id)
        except pj.Error as error:
            if caller is not None:
                caller.direct_peer = caller.ends_with = None
            # pjsua frees an ended call's slot a little after its hang-up
            # event (seen under churn of 50 short calls/s): full, not broken.
            if getattr(error, "status", 0) == PJ_ETOOMANY:
                raise CommandError(503, "worker full: ended calls still releasing") from None
            raise
        if reserved is not None:
            self._awaiting_agent.discard(reserved)
        self._active.add(leg.id)
        leg.on_ended = self._pj_ended
        self.pjt.emit(self._adopt, leg, False)
        return leg.id

    # ---------------------------------------------------------- event loop

    def _adopt(self, leg: SipLeg, echo: bool) -> None:
        if not leg.ended:
            self.legs[leg.id] = leg
            if echo:
                self._echo.add(leg.id)
            self.bridges.adopted(leg)
            self._update_python_media()

    def _event(self, event: protocol.Event) -> None:
        if isinstance(event, protocol.Digit):
            self._send(event)
            self._collections.digit(event.leg, event.digit)
            return
        if isinstance(event, protocol.Answered) and event.leg in self.bridges.links:
            self._finish(self.bridges.connect(event.leg))
        if isinstance(event, protocol.CallEnded):
            self.legs.pop(event.leg, None)
            self._echo.discard(event.leg)
            self._playing.pop(event.leg, None)
            self._recordings.stop(event.leg)
            self._collections.ended(event.leg)
            self.bridges.ended(event.leg)
            if event.leg not in self._active:  # a WebRTC leg: the slot it kept is free
                self._finish(self._pj_call(lambda: self._awaiting_agent.discard(event.leg)))
            # Every ending may leave no leg in Python: the media loop sleeps then.
            self._update_python_media()
            # The leg's hangup event follows its complete recording.
            if self._recordings.send_after(event):
                return
        self._send(event)

    def _finish(self, work: Any) -> None:
        task = asyncio.ensure_future(work)
        self._finishing.add(task)
        task.add_done_callback(self._finishing.discard)

    async def _pj_call(self, fn: Any) -> None:
        try:
            await self.pjt.run(fn)
        except PjsuaStoppedError:
            pass  # shutting down: pjsua2 has hung every call up itself
        except Exception as error:  # noqa: BLE001 - the leg may be gone meanwhile
            logger.warning("media change failed: %s", pj_error_text(error))

    def _update_python_media(self) -> None:
        # A leg without a port (ringing, or bridged in pjmedia) gives the task nothing.
        python = any(leg.through_python for leg in self.legs.values())
        if self._recordings.paired or self.webrtc.legs or self._playing or python:
            self._python_media.set()
        else:
            self._python_media.clear()

    def _send(self, message: protocol.Message) -> None:
        if self._writer is not None and not self._writer.is_closing():
            self._writer.write(protocol_wire.encode(message))
        elif not isinstance(message, protocol.Health):
            logger.info("event %r", message)  # Digit's repr masks the digit

    @property
    def calls(self) -> int:
        """Call slots in use or promised: SIP legs up, and one kept for each agent leg to come.

        A WebRTC leg takes no slot of its own (aiortc is not pjsua), only the
        one it keeps for its agent leg, which the agent leg then uses: a
        worker carries as many WebRTC customers as pjsua holds agent legs.
        """
        return len(self._active) + len(self._awaiting_agent)

    async def run(self) -> None:
        """Start pjsua2, serve until stopped, then shut everything down."""
        await self.pjt.start()
        tasks: list[asyncio.Task[None]] = []
        try:
            if self.control_path is not None:
                reader, self._writer = await asyncio.open_unix_connection(self.control_path)
                self._send(
                    protocol.Hello(
                        protocol.VERSION, self.id, os.getpid(), self.sip_port, self.capacity
                    )
                )
                tasks.append(asyncio.create_task(self._commands(reader), name="worker-commands"))
            tasks.append(asyncio.create_task(self._health(), name="worker-health"))
            pump = self.pump.run(self._python_media)
            tasks.append(asyncio.create_task(pump, name="worker-media"))
            if self.media_timeout > 0:
                watch = watch_rtp(self.pjt, self.legs, self._pj_call, self.media_timeout)
                tasks.append(asyncio.create_task(watch, name="worker-rtp-watch"))
            if self.quality_interval > 0:
                report = report_quality(self.pjt, self.legs, self.quality_interval)
                tasks.append(asyncio.create_task(report, name="worker-quality"))
            await self._stop.wait()
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            await self.webrtc.close_all()
            await self.pjt.stop()
            self._recordings.close_all()
            await asyncio.gather(*self._finishing, return_exceptions=True)
            if self._writer is not None:
                self._writer.close()
                with contextlib.suppress(OSError):
                    await self._writer.wait_closed()

    def stop(self) -> None:
        """Ask :meth:`run` to finish."""
        self._stop.set()

    async def _health(self) -> None:
        refused = request_guard.stats()
        while True:
            self._send(protocol.Health(self.calls, self.capacity))
            await asyncio.sleep(HEALTH_INTERVAL)
            # Read off the pjsua2 thread: counters it only adds to; a stale one waits a second.
            refused, before = request_guard.stats(), refused
            if summary := request_guard.describe_refusals(before, refused):
                logger.warning("%s", summary)

    async def _place_call(self, command: protocol.PlaceCall) -> str:
        caller = None
        if command.connect_to:
            caller = self._leg(command.connect_to)
            if caller.id in self._bridged or caller.id in self.bridges.links.values():
                raise CommandError(409, f"leg {caller.id} is bridged or connecting already")
        # pjsua frees an ended call's slot a moment after its hang-up event:
        # wait up to RELEASE_WAIT for it rather than refuse the caller's agent.
        deadline = asyncio.get_running_loop().time() + RELEASE_WAIT
        while True:
            try:
                return await self.pjt.run(lambda: self._pj_place_call(command, caller))
            except CommandError as error:
                if error.code != 503 or asyncio.get_running_loop().time() > deadline:
                    raise
            await asyncio.sleep(0.02)

    async def _commands(self, reader: asyncio.StreamReader) -> None:
        decoder = protocol_wire.Decoder("to_worker")
        try:
            while data := await reader.read(65536):
                for message in decoder.feed(data):
                    self._send(await self._execute(message))
        except protocol.ProtocolError as error:
            logger.error("bad control message, stopping: %s", error)
        finally:
            self.stop()

    async def _execute(self, message: protocol.Message) -> protocol.Event:
        command_id = getattr(message, "id", 0)
        try:
            if isinstance(message, protocol.WebRtcOffer):
                result = protocol.Result(command_id, *await self.webrtc.offer(message))
                self._python_media.set()  # its frames, and any tone it hears, pass through here
                return result
            if isinstance(message, protocol.WebRtcRenegotiate):
                return protocol.Result(command_id, *await self.webrtc.renegotiate(message))
            leg_id = await self._dispatch(message)
        except CommandError as error:
            return protocol.Error(command_id, error.code, error.text)
        except Exception as error:  # noqa: BLE001 - pjsua2 errors go back to the caller
            return protocol.Error(command_id, 500, pj_error_text(error))
        return protocol.Result(command_id, leg_id)

    def _leg(self, leg_id: str) -> SipLeg:
        return self.bridges.leg(leg_id)

    async def _dispatch(self, message: protocol.Message) -> str:
        run = self.pjt.run
        match message:
            case protocol.Answer(leg=leg_id):
                leg = self._leg(leg_id)
                await run(lambda: leg.pj_answer(200))
            case protocol.Reject(leg=leg_id, status=status, reason=reason):
                leg = self._leg(leg_id)
                if not 400 <= status <= 699:
                    raise CommandError(400, "reject status must be 400..699")
                await run(lambda: leg.pj_answer(status, reason))
            case protocol.Hangup(leg=leg_id) if leg_id in self.webrtc.legs:
                await self.webrtc.hangup(leg_id)
            case protocol.WebRtcCandidate():
                await self.webrtc.candidate(message)
            case protocol.Hangup(leg=leg_id, cause=cause):
                leg = self._leg(leg_id)
                await run(lambda: leg.pj_hangup(cause))
            case protocol.SendDtmf(leg=leg_id, digits=digits):
                leg = self._leg(leg_id)
                await run(lambda: leg.pj_send_dtmf(digits))
            case protocol.PlaceCall():
                return await self._place_call(message)
            case protocol.Stop():
                self.stop()
            case protocol.Trunk():
                trunk = message
                try:
                    await run(lambda: self.trunk.pj_configure(trunk))
                except TrunkSetupError as error:
                    raise CommandError(error.code, str(error)) from None
            case protocol.Hello() | protocol.Result() | protocol.Error():
                raise CommandError(400, f"{type(message).TYPE} is not a command")
            case protocol.Bridge(leg_a=leg_a, leg_b=leg_b):
                await self.bridges.bridge(leg_a, leg_b)
            case protocol.Play(leg=leg_id, file=file, tone=tone):
                # A SIP leg, or a WebRTC leg waiting for its agent (the comfort tone).
                leg_id = (self.webrtc.legs.get(leg_id) or self._leg(leg_id)).id
                if self._bridged.get(leg_id) and leg_id not in self.pump.secure:
                    raise CommandError(409, "the leg is bridged (prompts only in secure capture)")
                self._playing[leg_id] = await playing(file, tone)
                self._echo.discard(leg_id)
                self._update_python_media()
            case protocol.HoldLeg(leg=leg_id, on=on):
                await self.bridges.hold(leg_id, on)
            case protocol.StopPlay(leg=leg_id):
                self._playing.pop((self.webrtc.legs.get(leg_id) or self._leg(leg_id)).id, None)
            case protocol.CollectDigits():
                self._leg(message.leg)
                try:
                    self._collections.start(message)
                except CollectError as error:
                    raise CommandError(400, str(error)) from None
            case protocol.Record(leg=leg_id, path=path):
                leg = self._leg(leg_id)
                if leg.id in self.bridges.links or leg.id in self.bridges.links.values():
                    raise CommandError(409, f"leg {leg.id} is connecting (place_call records it)")
                direct = leg.id in self._direct
                await self._recordings.record(leg, path, direct=direct)
                if not direct:
                    self._update_python_media()  # its frames pass through Python now
            case protocol.SecureStart(leg=leg_id):
                await self.bridges.secure_start(leg_id)
            case protocol.SecureEnd(leg=leg_id):
                await self.bridges.secure_end(leg_id)
            case protocol.PauseRecording(leg=leg_id):
                await self._recordings.pause(leg_id)
            case protocol.ResumeRecording(leg=leg_id):
                await self._recordings.resume(leg_id)
            case _:
                raise CommandError(400, f"{type(message).TYPE} is not a command")
        return ""


if __name__ == "__main__":
    from assistline.sip.worker_cli import main

    sys.exit(main())
