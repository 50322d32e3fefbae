"""The control process's side of the media workers: start, watch, restart, stop.

:class:`WorkerPool` owns the Unix socket the workers connect to and the
worker processes themselves (``python -m assistline.sip.worker``). It knows
each worker's free capacity from its ``health`` events (sent every second),
relays every worker event to the control process through an
:class:`EventSink`, and sends commands with request ids, matching each
``result``/``error`` to its request. A :data:`Greeting` (set as
:attr:`WorkerPool.greeting` before :meth:`WorkerPool.start`) gives the
commands each worker, restarted ones too, gets right after its ``hello``
and before any other (the SIP trunk's account): a worker runs commands in
order, so nothing sent later finds it unprepared.

A worker is dead when its process exits (noticed at once: a task waits on
it) or when it has sent nothing for :data:`HEALTH_TIMEOUT` seconds (then it
is killed). Either way, every call it carried is reported ended
(``hangup`` with status 0 and reason ``worker died``), commands waiting on
it fail with :class:`WorkerDiedError`, and a new process takes the same id
and SIP port. The pool starts ``workers`` processes and adds one, up to
``max_workers``, when every worker is full. :meth:`WorkerPool.stop` sends
``stop`` to each worker, waits, then terminates and finally kills
stragglers, so no child outlives the pool.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import itertools
import logging
import os
import sys
import time
import typing
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Protocol

from assistline.errors import AssistlineError
from assistline.settings import SipSettings, WebRtcSettings
from assistline.sip import protocol, protocol_wire
from assistline.tasks import TaskRegistry

logger = logging.getLogger(__name__)

#: The pool grows when no worker has room for one more bridged call, and the
#: edge dispatches at most capacity // SLOTS_PER_CALL inbound calls to a worker.
SLOTS_PER_CALL = protocol.SLOTS_PER_CALL

HEALTH_TIMEOUT = 2.0
WATCH_INTERVAL = 0.2
STOP_GRACE = 5.0
_EVENTS: tuple[type[protocol.Event], ...] = typing.get_args(protocol.Event)


class WorkerDiedError(AssistlineError):
    """The media worker died before answering; its calls were ended and it is restarting."""


class WorkerCommandError(AssistlineError):
    """A media worker refused a command; the message says why."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(f"{code} {message}")
        self.code = code


class NoWorkerError(AssistlineError):
    """Every media worker is full or down; raise sip.max_workers or wait."""


class EventSink(Protocol):
    """Where the pool delivers worker events (on the event loop)."""

    def __call__(self, worker: str, event: protocol.Event) -> None:
        """Handle ``event`` from ``worker``."""


@dataclasses.dataclass(eq=False)
class Worker:
    """What the pool knows about one worker process."""

    id: str
    sip_port: int
    process: asyncio.subprocess.Process | None = None
    writer: asyncio.StreamWriter | None = None
    pid: int = 0
    calls: int = 0
    capacity: int = 0
    last_seen: float = 0.0
    started: float = 0.0
    #: Seconds it may stay silent before its hello (the most the watchdog gave it).
    start_grace: float = 0.0
    restarts: int = 0
    legs: set[str] = dataclasses.field(default_factory=set)
    ready: asyncio.Event = dataclasses.field(default_factory=asyncio.Event)

    @property
    def free(self) -> int:
        """Calls it can still take (0 until it has said hello)."""
        return max(self.capacity - self.calls, 0) if self.ready.is_set() else 0


#: The set-up commands of a worker (by id), each made from its request id.
Greeting = Callable[[str], Sequence[Callable[[int], protocol.Command]]]


class WorkerPool:
    """Media worker processes, supervised; commands out, events in."""

    def __init__(
        self,
        socket_path: Path,
        on_event: EventSink,
        tasks: TaskRegistry,
        *,
        workers: int = 2,
        max_workers: int = 8,
        base_port: int = 5080,
        worker_args: Sequence[str] = (),
        rtp_ports: tuple[int, int] = (20000, 30000),
        python: str = sys.executable,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.socket_path = socket_path
        self._on_event = on_event
        self._tasks = tasks
        self._initial = workers
        self.max_workers = max_workers
        self.base_port = base_port
        self._worker_args = tuple(worker_args)
        self._python = python
        self.rtp_ports = rtp_ports
        self._clock = clock
        self.workers: dict[str, Worker] = {}
        self._server: asyncio.Server | None = None
        self._ids = itertools.count(1)
        self._pending: dict[int, tuple[Worker, asyncio.Future[protocol.Result]]] = {}
        self._stopping = False
        self.greeting: Greeting | None = None

    @property
    def worker_args(self) -> tuple[str, ...]:
        """The command-line arguments every worker is started with."""
        return self._worker_args

    @classmethod
    def from_settings(
        cls,
        settings: SipSettings,
        socket_path: Path,
        on_event: EventSink,
        tasks: TaskRegistry,
        webrtc: WebRtcSettings | None = None,
    ) -> WorkerPool:
        """A pool sized and configured by the ``[sip]`` (and ``[webrtc]``) settings."""
        webrtc = webrtc or WebRtcSettings()
        args = [
            *("--codecs", ",".join(settings.codecs)),
            *("--media-timeout", str(settings.media_timeout)),
            *("--bridge-rate", str(settings.bridge_rate)),
            *("--quality-interval", str(settings.quality_interval)),
            *("--jitter-discard", settings.jitter_discard),
            *("--jitter-max-ms", str(settings.jitter_max_ms)),
            *("--consent-timeout", str(webrtc.consent_timeout)),
        ]
        if webrtc.ice_host_addresses:
            args += ["--ice-host-addresses", ",".join(webrtc.ice_host_addresses)]
        if settings.public_address:
            args += ["--public-address", settings.public_address]
        return cls(
            socket_path,
            on_event,
            tasks,
            workers=settings.workers,
            max_workers=settings.max_workers,
            base_port=settings.worker_base_port,
            worker_args=args,
            rtp_ports=(settings.rtp_port_min, settings.rtp_port_max),
        )

    # ------------------------------------------------------------ lifecycle

    async def start(self, timeout: float = 20.0, per_worker: float = 1.0) -> None:
        """Listen, start the initial workers and wait until each has said hello.

        They start together and share the cores, so the wait is ``timeout``
        plus ``per_worker`` for each (measured: ~0.4 s of CPU each to import
        numpy and pjsua2 and start an endpoint).
        """
        self.socket_path.unlink(missing_ok=True)
        self._server = await asyncio.start_unix_server(self._connected, path=str(self.socket_path))
        for index in range(self._initial):
            await self._spawn(Worker(f"w{index + 1}", self.base_port + index))
        _ = self._tasks.spawn("sip-pool-watch", self._watch())
        async with asyncio.timeout(timeout + per_worker * self._initial):
            for worker in list(self.workers.values()):
                await worker.ready.wait()

    async def stop(self) -> None:
        """Stop every worker (stop command, SIGTERM, then SIGKILL) and the socket."""
        self._stopping = True
        for worker in self.workers.values():
            if worker.writer is not None and not worker.writer.is_closing():
                worker.writer.write(protocol_wire.encode(protocol.Stop(next(self._ids))))
        await asyncio.gather(*(self._reap(w) for w in self.workers.values()))
        for worker in self.workers.values():
            if worker.writer is not None:
                worker.writer.close()
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None
        self.socket_path.unlink(missing_ok=True)
        for _, future in self._pending.values():
            if not future.done():
                future.set_exception(WorkerDiedError("the worker pool stopped"))
        self._pending.clear()

    async def _reap(self, worker: Worker) -> None:
        process = worker.process
        if process is None:
            return
        try:
            await asyncio.wait_for(process.wait(), STOP_GRACE)
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                process.terminate()
            try:
                await asyncio.wait_for(process.wait(), STOP_GRACE)
            except TimeoutError:
                with contextlib.suppress(ProcessLookupError):
                    process.kill()
                await process.wait()

    def _rtp_args(self, worker: Worker) -> list[str]:
        """Each worker slot gets its own slice of the RTP range: pjmedia does not share."""
        low, high = self.rtp_ports
        size = (high - low + 1) // self.max_workers
        slot = worker.sip_port - self.base_port
        first = low + slot * size
        return ["--rtp-min", str(first), "--rtp-max", str(first + size - 1)]

    async def _spawn(self, worker: Worker) -> None:
        self.workers[worker.id] = worker
        worker.ready.clear()
        worker.calls = worker.capacity = 0
        worker.writer = None
        worker.process = await asyncio.create_subprocess_exec(
            *(self._python, "-m", "assistline.sip.worker", "--id", worker.id),
            *("--port", str(worker.sip_port), "--control", str(self.socket_path)),
            *self._worker_args,
            *self._rtp_args(worker),
            *("--parent", str(os.getpid())),  # the worker arms its parent-death signal
            stdin=asyncio.subprocess.DEVNULL,
        )
        worker.pid = worker.process.pid
        worker.started = worker.last_seen = self._clock()
        worker.start_grace = 0.0
        logger.info(
            "media worker %s started (pid %d, SIP port %d)", worker.id, worker.pid, worker.sip_port
        )
        _ = self._tasks.spawn(f"sip-worker-{worker.id}-{worker.pid}-exit", self._exited(worker))

    async def _exited(self, worker: Worker) -> None:
        process = worker.process
        assert process is not None
        code = await process.wait()
        if self._stopping or worker.process is not process:
            return
        logger.error(
            "media worker %s (pid %d) died with exit code %s", worker.id, process.pid, code
        )
        await self._died(worker)

    async def _died(self, worker: Worker) -> None:
        legs = sorted(worker.legs)
        worker.legs.clear()
        worker.ready.clear()
        if worker.writer is not None:
            worker.writer.close()
            worker.writer = None
        for leg in legs:
            self._on_event(worker.id, protocol.CallEnded(leg, 0, "worker died"))
        for request, (owner, future) in list(self._pending.items()):
            if owner is worker:
                del self._pending[request]
                if not future.done():
                    future.set_exception(WorkerDiedError())
        if not self._stopping:
            worker.restarts += 1
            await self._spawn(worker)

    async def _watch(self) -> None:
        due = self._clock() + WATCH_INTERVAL
        while True:
            await asyncio.sleep(WATCH_INTERVAL)
            now = self._clock()
            late, due = now - due, now + WATCH_INTERVAL
            if late > HEALTH_TIMEOUT / 2:
                # This process was stalled (a busy core; starting a worker forks
                # and waits for its exec): the workers' health messages wait
                # unread in their sockets. Read them before judging anyone.
                logger.warning("the worker watchdog ran %.1f s late; judging next round", late)
                continue
            # Workers starting together share the cores (~0.7 s of CPU each to
            # import numpy, aiortc and pjsua2): each one starting adds a second
            # to the grace of all of them. A worker keeps the most it was given:
            # 29 started at once all said hello after 18-22 s (bench/sip.py),
            # and a grace shrinking as the others became ready had killed the
            # last of them.
            starting = sum(1 for w in self.workers.values() if not w.ready.is_set())
            for worker in list(self.workers.values()):
                if not worker.ready.is_set():
                    grace = 5 * HEALTH_TIMEOUT + 1.0 * starting
                    worker.start_grace = max(worker.start_grace, grace)
                process = worker.process
                silent = now - worker.last_seen
                if process is None or process.returncode is not None or self._stopping:
                    continue
                # A starting worker gets longer: importing pjsua2 takes a while.
                limit = HEALTH_TIMEOUT if worker.ready.is_set() else worker.start_grace
                if silent > limit:
                    logger.error("media worker %s silent for %.1f s: killing it", worker.id, silent)
                    with contextlib.suppress(ProcessLookupError):
                        process.kill()

    # ------------------------------------------------------ the control socket

    async def _connected(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        decoder = protocol_wire.Decoder("to_control")
        worker: Worker | None = None
        try:
            while data := await reader.read(65536):
                for message in decoder.feed(data):
                    if worker is None:
                        worker = self._hello(message, writer)
                        if worker is None:
                            return
                        continue
                    self._received(worker, message)
        except protocol.ProtocolError as error:
            logger.error(
                "bad message from media worker %s: %s", worker.id if worker else "?", error
            )
        except ConnectionError:
            pass
        finally:
            writer.close()

    def _hello(self, message: protocol.Message, writer: asyncio.StreamWriter) -> Worker | None:
        if not isinstance(message, protocol.Hello) or message.version != protocol.VERSION:
            logger.error(
                "a media worker spoke protocol %r, not version %d; dropped",
                getattr(message, "version", None),
                protocol.VERSION,
            )
            return None
        worker = self.workers.get(message.worker)
        if worker is None or worker.pid != message.pid:
            logger.error(
                "unknown media worker %s (pid %d) connected; dropped", message.worker, message.pid
            )
            return None
        worker.writer = writer
        for make in self.greeting(worker.id) if self.greeting is not None else ():
            self._greet(worker, writer, make)
        worker.capacity = message.capacity
        worker.last_seen = self._clock()
        worker.ready.set()
        logger.info("media worker %s ready: %d calls", worker.id, worker.capacity)
        return worker

    def _greet(
        self,
        worker: Worker,
        writer: asyncio.StreamWriter,
        make: Callable[[int], protocol.Command],
    ) -> None:
        """Send a set-up command; nobody awaits it, so a refusal is logged."""
        request = next(self._ids)
        future: asyncio.Future[protocol.Result] = asyncio.get_running_loop().create_future()
        self._pending[request] = (worker, future)

        def done(future: asyncio.Future[protocol.Result]) -> None:
            error = None if future.cancelled() else future.exception()
            if isinstance(error, WorkerCommandError):
                logger.error("media worker %s refused its set-up: %s", worker.id, error)

        future.add_done_callback(done)
        writer.write(protocol_wire.encode(make(request)))

    def _received(self, worker: Worker, message: protocol.Message) -> None:
        worker.last_seen = self._clock()
        match message:
            case protocol.Health(calls=calls, capacity=capacity):
                worker.calls, worker.capacity = calls, capacity
                if not any(w.free >= SLOTS_PER_CALL for w in self.workers.values()):
                    self._grow()
                return
            case protocol.Result(id=request, leg=leg):
                if leg:
                    worker.legs.add(leg)
                self._settle(request, message)
                return
            case protocol.Error(id=request, code=code, message=text):
                self._settle(request, WorkerCommandError(code, text))
                return
            case protocol.IncomingCall(leg=leg):
                worker.legs.add(leg)
            case protocol.CallEnded(leg=leg):
                worker.legs.discard(leg)
            case protocol.Hello():
                logger.error("media worker %s said hello twice", worker.id)
                return
            case _:
                pass
        if isinstance(message, _EVENTS):
            self._on_event(worker.id, message)

    def _settle(self, request: int, outcome: protocol.Result | Exception) -> None:
        entry = self._pending.pop(request, None)
        if entry is None or entry[1].done():
            return
        if isinstance(outcome, Exception):
            entry[1].set_exception(outcome)
        else:
            entry[1].set_result(outcome)

    # ----------------------------------------------------------- public API

    @property
    def free(self) -> int:
        """Calls the pool can take now, over all ready workers."""
        return sum(worker.free for worker in self.workers.values())

    def _grow(self) -> None:
        if self._stopping or len(self.workers) >= self.max_workers:
            return
        if any(not worker.ready.is_set() for worker in self.workers.values()):
            return  # one is already starting
        index = len(self.workers)
        worker = Worker(f"w{index + 1}", self.base_port + index)
        self.workers[worker.id] = worker
        _ = self._tasks.spawn(f"sip-pool-grow-{worker.id}", self._spawn(worker))

    def pick(self, slots: int = 1) -> Worker:
        """The ready worker with the most free calls, at least ``slots`` (grows the pool if none).

        The pick counts at once against the worker's calls: its figure comes
        from health reports a second apart, and contacts arriving meanwhile
        would all pick the same worker (``bench/webrtc.py``'s 25th call got
        ``503 worker full``). Its next report, which counts the call itself,
        replaces the guess.
        """
        ready = [worker for worker in self.workers.values() if worker.free >= slots]
        if not ready:
            self._grow()
            raise NoWorkerError()
        worker = max(ready, key=lambda worker: (worker.free, -worker.sip_port))
        worker.calls += slots
        return worker

    async def command(
        self, worker_id: str, make: Callable[[int], protocol.Command], timeout: float = 10.0
    ) -> protocol.Result:
        """Send the command ``make(request_id)`` to a worker and wait for its result."""
        worker = self.workers[worker_id]
        if worker.writer is None or not worker.ready.is_set():
            raise WorkerDiedError(f"media worker {worker_id} is not running")
        request = next(self._ids)
        future: asyncio.Future[protocol.Result] = asyncio.get_running_loop().create_future()
        self._pending[request] = (worker, future)
        worker.writer.write(protocol_wire.encode(make(request)))
        try:
            return await asyncio.wait_for(future, timeout)
        finally:
            self._pending.pop(request, None)

    def child_pids(self) -> list[int]:
        """Process ids of the workers still running."""
        return [
            worker.pid
            for worker in self.workers.values()
            if worker.process is not None and worker.process.returncode is None
        ]
