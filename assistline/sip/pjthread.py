"""The one thread that owns pjsua2 in a media worker, and its asyncio facade.

pjsua2 is not thread-safe in the ways Python would need, so a worker runs it
the way pjsua2's documentation recommends for garbage-collected languages:
the :class:`PjThread` creates the ``Endpoint`` on its own thread with
``uaConfig.threadCnt = 0`` and ``uaConfig.mainThreadOnly = True`` (no pjsip
worker threads; every SIP callback runs on this thread) and a null audio
device, then loops: ``libHandleEvents(POLL_MS)``, then runs the callables
queued by :meth:`PjThread.run`. ``run`` is the only way asyncio code touches
pjsua2: the callable runs on the pjsua2 thread and its result (or
exception) resolves an asyncio future on the loop. pjsua2 callbacks report
back with :meth:`PjThread.emit`, the same way: everything the thread sends
the loop goes through one queue, in order, with one
``loop.call_soon_threadsafe`` per batch.

Every pjsua2 object (Account, Call, AudioMediaPort) is created by a callable
running on this thread and kept in :attr:`PjThread.keep` until it is
released with :meth:`PjThread.release`, which deletes it on this thread at
the top of the next loop turn, never inside the pjsua2 callback that is
still running on it. Python's garbage collector therefore never deletes a
pjsua2 object on another thread (that asserts inside pjlib), and a ``Call``
is never collected while its call is up (that hangs the call up early).
Conference ports (a leg's ``AudioMediaPort``) go another way,
:meth:`PjThread.retire`: out of pjmedia's bridge first, deleted once the
bridge has let go of their slot.
Shutdown hangs up every call, polls until pjsua2 says they are gone (at most
:data:`SHUTDOWN_WAIT` seconds), deletes what is left (ports and recorders,
then calls, then accounts) and only then calls ``libDestroy()``. Nothing
else may hold a strong reference to a pjsua2 object (hold weak ones): one
deleted after ``libDestroy`` aborts the process inside pjlib, so anything
still alive then is logged and left undeleted
(:func:`~assistline.sip.pjsua_c.disown_survivors`).

A Python exception escaping a SWIG director callback would unwind through C
code; :func:`guarded` wraps every callback so it is logged instead.

Waking the thread. Measured here, an idle endpoint polled every 10 ms
costs 0.8–0.9 % of a core (100 turns/s of select, timer heap and SWIG),
every 100 ms 0.15 %; a pool of dozens of workers cannot afford the first.
So the thread waits up to :data:`POLL_MS` = 100 ms (pjsip shortens the
wait itself for its own timers), and :meth:`PjThread.run` wakes it at once by sending
an RFC 5626 CRLF keep-alive (CR LF CR LF) to the worker's own SIP
UDP port, which pjsip's transport layer discards.

The command queue is bounded (:data:`QUEUE_SIZE`); when it is full
:meth:`PjThread.run` raises :class:`PjsuaBusyError` at once rather than
let the event loop pile up work the pjsua2 thread cannot keep up with.

The wheel, measured here on pjsua2-python 2.15.1, 2 cores (scripts kept
out of the repository; the worker is :mod:`assistline.sip.worker`):

- **4 calls per process.** ``uaConfig.maxCalls = 8`` (or 32) is accepted by
  ``libInit`` and reads back unchanged, but the library is compiled with
  ``PJSUA_MAX_CALLS = 4``: with four calls up, a fifth and sixth INVITE are
  refused by pjsua itself with ``486 Busy Here`` before ``onIncomingCall``
  runs. ``worker.CAPACITY`` is therefore 4. The worker itself refuses an
  incoming call with ``503 Worker Full`` when fewer than two slots are free
  (the caller's and its agent leg's; tests/integration/sip/test_worker.py).
  pjsua's 486 is still reached under churn: a leg we hang up keeps its slot
  until its BYE is answered, and the edge's load count has let it go. The
  edge takes a worker's "486 Busy Here" as "full" and tries the next one
  (assistline's own busy is "486 Agent Busy").
- **~75 call attempts/s abort the process.** sipp's ``uac`` scenario (50 ms
  calls) at 20 and 40 attempts/s for 6 s: every call completes; at 75, 150
  and 300/s the process dies within about a second on
  ``ioqueue_select.c:386: pj_ioqueue_register_sock2: Assertion
  `!pj_list_empty(&ioqueue->free_list)'`` (SIGABRT, exit 134), with RTP on
  its own ioqueue or sharing the SIP one alike. Our reading of pjlib (not
  measured): the select ioqueue has a fixed table of socket slots and a
  closed socket's slot is reused only after a delay, so call churn, not
  concurrency, runs it out. Rate limiting belongs in front of the workers
  (the Kamailio edge's anti-flood), and the pool restarts a worker that
  aborts.
- **A busy Python thread starves media callbacks.** One echo call,
  ``onFrameReceived`` counted over 2 s: 50.0/s idle; 10.5/s while another
  thread in the process spins in pure Python; 49.5/s with the same busy
  thread once ``sys.setswitchinterval(0.001)`` is set (the default is
  5 ms). :func:`main` sets 1 ms, and nothing CPU-heavy runs in a worker's
  Python threads (use a process).
- **Priorities made frames later.** With 52 workers on one core and 25
  bridged calls, workers at ``nice -10`` sent 48 of 50 RTP streams with
  an interval over 40 ms (worst 87 ms), and pjmedia's clock and RTP
  threads at ``SCHED_RR`` 29 of 50 (worst 72 ms, 4,911 frames discarded
  by jitter buffers), against 1 to 4 streams (worst 41 ms) at normal
  priority; so workers run at normal priority.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import functools
import logging
import queue
import socket
import threading
import time
import weakref
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

import pjsua2 as pj

from assistline.errors import AssistlineError
from assistline.sip import media_poll, request_guard
from assistline.sip.pjsua_c import DEFAULT_JITTER, JitterBuffer, disown_survivors, pjsua

if TYPE_CHECKING:
    from assistline.sip.leg_port import LegPort

logger = logging.getLogger(__name__)

T = TypeVar("T")
F = TypeVar("F", bound=Callable[..., Any])

QUEUE_SIZE = 256
POLL_MS = 100
#: pjmedia's quality knob (1-10; resampler and codec effort), see _create_endpoint.
MEDIA_QUALITY = 4
#: An RFC 5626 keep-alive: wakes the select() in libHandleEvents, ignored by pjsip.
WAKE = b"\r\n\r\n"
SHUTDOWN_WAIT = 2.0


class PjsuaError(AssistlineError):
    """pjsua2 refused an operation; the worker log has pjsua2's reason."""


class PjsuaBusyError(PjsuaError):
    """The pjsua2 thread has too much queued work; try again or use another worker."""


class PjsuaStoppedError(PjsuaError):
    """The pjsua2 thread has stopped; the worker is shutting down."""


#: Configures the endpoint after ``libInit`` (transports, codecs, accounts),
#: on the pjsua2 thread; it receives the pjsua2 ``Endpoint``.
EndpointSetup = Callable[[Any], None]


def guarded(method: F) -> F:
    """Wrap a pjsua2 callback so that no Python exception escapes into C++."""

    @functools.wraps(method)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return method(*args, **kwargs)
        except Exception:
            logger.exception("pjsua2 callback %s failed", method.__qualname__)
            return None

    return wrapper  # type: ignore[return-value]  # same signature as method


def pj_error_text(error: BaseException) -> str:
    """A readable one-line text for a pjsua2 ``Error`` (SWIG) or any exception."""
    info = getattr(error, "info", None)
    if callable(info):
        try:
            return str(info(False))
        except Exception:  # noqa: BLE001 - the text is best effort
            pass
    return str(error) or type(error).__name__


class PjThread:
    """A dedicated thread owning a pjsua2 ``Endpoint``; asyncio talks to it via ``run``."""

    def __init__(
        self,
        setup: EndpointSetup,
        *,
        max_calls: int = 4,
        clock_rate: int = 16_000,
        log_level: int = 1,
        shared_ioqueue: bool = False,
        on_exit: Callable[[], None] | None = None,
        wake_address: tuple[str, int] | None = None,
        jitter: JitterBuffer = DEFAULT_JITTER,
    ) -> None:
        self._setup = setup
        self._jitter = jitter
        self._wake_address = wake_address
        self._wake_socket: socket.socket | None = None
        self._max_calls = max_calls
        self._clock_rate = clock_rate
        self._log_level = log_level
        self._shared_ioqueue = shared_ioqueue
        self._on_exit = on_exit
        self._commands: queue.Queue[_Job] = queue.Queue(QUEUE_SIZE)
        # One wake-up per batch each way (measured at 40 call setups/s: a
        # datagram per run() and a self-pipe write per emit() were a sixth
        # of a worker's Python time). The thread clears _wake_sent before
        # draining, so a job queued after the drain's last look wakes it.
        self._wake_sent = False
        self._outbox: collections.deque[tuple[Callable[..., None], tuple[Any, ...]]] = (
            collections.deque()
        )
        self._outbox_armed = False
        self._thread: threading.Thread | None = None
        self._stopping = threading.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._pending_release: list[Any] = []
        self._deferred: list[Callable[[], None]] = []
        self._retired: list[LegPort] = []
        self.endpoint: Any = None
        #: pjsua2 objects alive on this thread, by id(); touch only on the thread.
        self.keep: dict[int, Any] = {}

    # ------------------------------------------------------------ lifecycle

    async def start(self) -> None:
        """Start the thread and wait until the endpoint is up (or failed)."""
        self._loop = asyncio.get_running_loop()
        started: asyncio.Future[None] = self._loop.create_future()
        self._thread = threading.Thread(
            target=self._main, args=(started,), name="pjsua2", daemon=True
        )
        self._thread.start()
        await started
        if self._wake_address is not None:
            family = socket.AF_INET6 if ":" in self._wake_address[0] else socket.AF_INET
            self._wake_socket = socket.socket(family, socket.SOCK_DGRAM)
            self._wake_socket.setblocking(False)

    async def stop(self) -> None:
        """Hang up, destroy every pjsua2 object and the endpoint, join the thread."""
        if self._thread is None:
            return
        self._stopping.set()
        self._wake()
        await asyncio.to_thread(self._thread.join)
        self._thread = None
        self._cancel_queued()
        if self._wake_socket is not None:
            self._wake_socket.close()
            self._wake_socket = None

    def _wake(self) -> None:
        """Make the pjsua2 thread's ``libHandleEvents`` return now (see the module docs)."""
        if self._wake_socket is not None and self._wake_address is not None:
            # A full socket buffer means wake-ups are already queued.
            with contextlib.suppress(OSError):
                self._wake_socket.sendto(WAKE, self._wake_address)

    def _cancel_queued(self) -> None:
        while True:
            try:
                job = self._commands.get_nowait()
            except queue.Empty:
                return
            job.cancel()

    @property
    def running(self) -> bool:
        """True while the thread takes jobs."""
        return self._thread is not None and not self._stopping.is_set()

    @property
    def on_thread(self) -> bool:
        """True when called from the pjsua2 thread."""
        return threading.current_thread() is self._thread

    # ------------------------------------------------------- cross-thread API

    async def run(self, fn: Callable[[], T]) -> T:
        """Run ``fn`` on the pjsua2 thread and return its result here."""
        loop = asyncio.get_running_loop()
        if self._stopping.is_set() or self._thread is None:
            raise PjsuaStoppedError()
        future: asyncio.Future[T] = loop.create_future()
        try:
            self._commands.put_nowait(_Job(fn, future, self.emit))
        except queue.Full:
            raise PjsuaBusyError() from None
        if not self._wake_sent:
            self._wake_sent = True
            self._wake()
        return await future

    def emit(self, callback: Callable[..., None], *args: Any) -> None:
        """From the pjsua2 thread (or pjmedia's clock thread): run ``callback`` on the loop.

        Callbacks run in the order emitted, job results among them.
        """
        loop = self._loop
        if loop is None or loop.is_closed():
            return
        self._outbox.append((callback, args))
        if not self._outbox_armed:
            self._outbox_armed = True
            try:
                loop.call_soon_threadsafe(self._deliver)
            except RuntimeError:  # the loop closed between the check and the call
                pass

    def _deliver(self) -> None:
        """On the loop: run every emitted callback, oldest first."""
        self._outbox_armed = False  # before draining: a later emit arms it again
        while self._outbox:
            callback, args = self._outbox.popleft()
            try:
                callback(*args)
            except Exception as error:  # noqa: BLE001 - as call_soon would: logged, not fatal
                assert self._loop is not None
                self._loop.call_exception_handler(
                    {"message": f"pjsua2 event {callback!r} failed", "exception": error}
                )

    def hold(self, obj: T) -> T:
        """Keep a pjsua2 object alive until :meth:`release` (pjsua2 thread only)."""
        self.keep[id(obj)] = obj
        return obj

    def forget(self, obj: Any) -> None:
        """Stop keeping ``obj``: deleted when the caller drops it (a job, never a callback)."""
        self.keep.pop(id(obj), None)

    def retire(self, port: LegPort) -> None:
        """Take a conference ``port`` out of the bridge now; delete it once pjmedia lets go.

        pjmedia's bridge calls every port it holds on each clock tick, even
        one nothing is connected to (a NULL "heart-beat" frame): for a
        pjsua2 ``FramePort`` that is a trip into Python 50 times a second, measured
        at 7 % of a core for 40 bridged calls whose idle ports stayed in
        the bridge. Deleting an ``AudioMediaPort`` at once is no answer:
        pjmedia removes a port on its clock thread after the removing call
        has returned, and the clock then called into a half-destroyed
        object (SIGSEGV under 50 calls/s). So the port leaves the bridge
        first (pjsua's own C call, which pjsua2 does not wrap), stays
        alive, and is deleted on a later loop turn once its slot is empty
        (see :meth:`_sweep_retired`). A C port (``leg_port.RingPort``)
        never calls into Python, but pjmedia reads it until then all the
        same. pjsua2 thread only.
        """
        self.keep.pop(id(port), None)
        port.remove_from_bridge()
        self._retired.append(port)

    def _sweep_retired(self) -> None:
        """Delete retired ports whose bridge slot is empty.

        pjsua2's destructor removes the slot again; an empty slot is
        refused harmlessly. A slot taken by a new port in the meantime (ports
        are added only on this thread, so not between this check and the
        deletion) keeps its retired port for a later turn.
        """
        kept = []
        for port in self._retired:
            if pjsua.occupied(int(port.getPortId())):
                kept.append(port)
            else:
                port.let_go()
        self._retired = kept  # the others are deleted with the old list

    def defer(self, fn: Callable[[], None]) -> None:
        """Run ``fn`` on the next loop turn, outside any callback (pjsua2 thread only).

        A hang-up inside another call's callback nests pjsua's callbacks (seen
        under load: a call's info gone mid-callback, a worker aborting).
        """
        self._deferred.append(fn)

    def release(self, obj: Any) -> None:
        """Delete ``obj`` on the next loop turn, outside any callback (pjsua2 thread only)."""
        if self.keep.pop(id(obj), None) is not None:
            self._pending_release.append(obj)

    # --------------------------------------------------------- the thread

    def _main(self, started: asyncio.Future[None]) -> None:
        assert self._loop is not None
        try:
            self._create_endpoint()
        except BaseException as error:  # noqa: BLE001 - reported to start()
            text = pj_error_text(error)
            self._loop.call_soon_threadsafe(
                _fail, started, PjsuaError(f"pjsua2 did not start: {text}")
            )
            self._destroy_endpoint()
            return
        self._loop.call_soon_threadsafe(_resolve, started, None)
        try:
            while not self._stopping.is_set():
                self.endpoint.libHandleEvents(POLL_MS)
                self._wake_sent = False
                self._run_deferred()
                self._drain()
                self._pending_release.clear()
                if self._retired:
                    self._sweep_retired()
        except BaseException:
            logger.exception("the pjsua2 thread failed; the worker stops")
        finally:
            self._stopping.set()
            self._shutdown()
            if self._on_exit is not None:
                self.emit(self._on_exit)

    def _run_deferred(self) -> None:
        while self._deferred:
            deferred, self._deferred = self._deferred, []
            for fn in deferred:
                try:
                    fn()
                except Exception as error:  # noqa: BLE001 - the call may be gone meanwhile
                    logger.warning("deferred pjsua2 work failed: %s", pj_error_text(error))

    def _drain(self) -> None:
        for _ in range(QUEUE_SIZE):
            try:
                job = self._commands.get_nowait()
            except queue.Empty:
                return
            job.run()

    def _create_endpoint(self) -> None:
        ep = pj.Endpoint()
        self.endpoint = ep
        ep.libCreate()
        config = pj.EpConfig()
        config.uaConfig.threadCnt = 0
        config.uaConfig.mainThreadOnly = True
        config.uaConfig.maxCalls = self._max_calls
        config.uaConfig.userAgent = "assistline"
        config.logConfig.level = self._log_level
        config.logConfig.consoleLevel = self._log_level
        config.medConfig.clockRate = self._clock_rate
        config.medConfig.sndClockRate = self._clock_rate
        config.medConfig.audioFramePtime = 20
        config.medConfig.ptime = 20
        config.medConfig.noVad = True
        # pjmedia's "small filter" resampler (quality 3-4) instead of the default
        # 8's large one: measured 2.9 → 1.8 % of a core on the clock thread for
        # two bridged G.711 calls (8 kHz legs in a 16 kHz bridge).
        config.medConfig.quality = MEDIA_QUALITY
        config.medConfig.ecTailLen = 0
        self._jitter.apply(config)
        # By default RTP has pjmedia's own ioqueue and a thread polling it, so
        # packets never wake this Python thread (measured, 10 bridged calls:
        # 1.14 % of a core per call vs 1.25 % sharing); RFC 4733 digits then
        # reach onDtmfDigit on that thread, which only posts an event. Sharing
        # puts them here.
        # (The ~75 attempts/s abort of worker.py happens with either choice.)
        if self._shared_ioqueue:
            config.medConfig.hasIoqueue = False
            config.medConfig.threadCnt = 0
        ep.libInit(config)
        request_guard.install()
        ep.audDevManager().setNullDev()
        self._setup(ep)
        ep.libStart()
        # That thread is our own C one in place of pjmedia's, which wakes
        # every 10 ms (see media_poll).
        if not self._shared_ioqueue and media_poll.available():
            media_poll.start()

    def _shutdown(self) -> None:
        ep = self.endpoint
        if ep is None:
            return
        # Run what is still queued (anything queued later is cancelled by stop()).
        self._drain()
        try:
            ep.hangupAllCalls()
        except Exception as error:  # noqa: BLE001 - shutdown goes on regardless
            logger.warning("hanging up all calls failed: %s", pj_error_text(error))
        deadline = time.monotonic() + SHUTDOWN_WAIT
        while time.monotonic() < deadline and (self._live_calls() or self._retired):
            ep.libHandleEvents(10)
            self._pending_release.clear()
            self._sweep_retired()
        self._pending_release.clear()
        self._retired.clear()
        # Ports first (they reference the conference bridge), then calls, then accounts.
        left = [weakref.ref(obj) for obj in self.keep.values()]
        for kind in (pj.AudioMedia, pj.Call, pj.Account):
            for key in [key for key, obj in self.keep.items() if isinstance(obj, kind)]:
                del self.keep[key]
        self.keep.clear()
        disown_survivors(left)
        self._destroy_endpoint()

    def _live_calls(self) -> bool:
        for obj in self.keep.values():
            if isinstance(obj, pj.Call):
                try:
                    if obj.isActive():
                        return True
                except Exception:  # noqa: BLE001 - a call already gone
                    continue
        return False

    def _destroy_endpoint(self) -> None:
        ep = self.endpoint
        if ep is None:
            return
        media_poll.stop()  # it polls a queue libDestroy frees
        try:
            ep.libDestroy(pj.PJSUA_DESTROY_NO_NETWORK)
        except Exception as error:  # noqa: BLE001 - nothing more to do at exit
            logger.warning("pjsua2 libDestroy failed: %s", pj_error_text(error))
        self.endpoint = None
        del ep


class _Job:
    """A callable queued for the pjsua2 thread and the future waiting for it."""

    def __init__(
        self,
        fn: Callable[[], Any],
        future: asyncio.Future[Any],
        emit: Callable[..., None],
    ) -> None:
        self.fn = fn
        self.future = future
        self.emit = emit  # PjThread.emit: results keep their place among events

    def run(self) -> None:
        """On the pjsua2 thread: call, then settle the future on its loop."""
        try:
            result = self.fn()
        except BaseException as error:  # noqa: BLE001 - handed to the caller
            self._settle(_fail, error)
        else:
            self._settle(_resolve, result)

    def cancel(self) -> None:
        """The thread is gone: fail the future instead."""
        self._settle(_fail, PjsuaStoppedError())

    def _settle(self, how: Callable[[asyncio.Future[Any], Any], None], value: Any) -> None:
        self.emit(how, self.future, value)  # nothing when the loop has closed: nobody waits


def _resolve(future: asyncio.Future[T], result: T) -> None:
    if not future.done():
        future.set_result(result)


def _fail(future: asyncio.Future[Any], error: BaseException) -> None:
    if not future.done():
        future.set_exception(error)
