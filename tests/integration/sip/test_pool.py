"""The worker pool supervising real media worker processes, with sipp calling them."""

from __future__ import annotations

import asyncio
import os
import signal
import time
from collections.abc import AsyncIterator

import pytest

from assistline.sip import protocol
from assistline.sip.pool import WorkerPool
from assistline.tasks import TaskRegistry
from tests.integration.sip.worker_peers import (
    free_udp_port,
    pid_alive,
    run_sipp,
    short_dir,
    until,
)


class Events:
    """Worker events as the control process would receive them, with arrival times."""

    def __init__(self) -> None:
        self.seen: list[tuple[float, str, protocol.Event]] = []
        self.arrived = asyncio.Event()

    def __call__(self, worker: str, event: protocol.Event) -> None:
        self.seen.append((time.monotonic(), worker, event))
        self.arrived.set()

    async def wait_for(self, kind: type[protocol.Event], timeout: float = 10) -> tuple[float, str]:
        async with asyncio.timeout(timeout):
            while True:
                for at, worker, event in self.seen:
                    if isinstance(event, kind):
                        return at, worker
                self.arrived.clear()
                await self.arrived.wait()


@pytest.fixture
async def pool() -> AsyncIterator[tuple[WorkerPool, Events]]:
    directory = short_dir()
    tasks = TaskRegistry()
    events = Events()
    # Two free ports in a row are not guaranteed; the base port comes from a free one.
    base = free_udp_port()
    workers = WorkerPool(
        directory / "pool.sock", events, tasks, workers=2, max_workers=3, base_port=base
    )
    try:
        await workers.start()
        yield workers, events
    finally:
        pids = [w.pid for w in workers.workers.values()]
        await workers.stop()
        await tasks.close()
        directory.rmdir()
        assert not [pid for pid in pids if pid_alive(pid)], "a worker outlived the pool"


async def test_pool_starts_workers_and_knows_their_capacity(
    pool: tuple[WorkerPool, Events],
) -> None:
    workers, _ = pool
    assert sorted(workers.workers) == ["w1", "w2"]
    assert workers.free == 8
    busy = asyncio.gather(
        *(
            run_sipp("info_dtmf.xml", w.sip_port, calls=4, pause_ms=2000)
            for w in workers.workers.values()
        )
    )
    await until(lambda: workers.free == 0, 10)
    # Every worker full: the pool grows by one, up to max_workers (3 here).
    await until(lambda: "w3" in workers.workers and workers.workers["w3"].ready.is_set(), 15)
    assert workers.free == 4
    results = await busy
    assert [(r.successful, r.failed) for r in results] == [(4, 0), (4, 0)]


async def test_killed_worker_is_detected_its_calls_ended_and_it_restarts(
    pool: tuple[WorkerPool, Events],
) -> None:
    workers, events = pool
    w1 = workers.workers["w1"]
    old_pid = w1.pid
    sipp = asyncio.create_task(run_sipp("info_dtmf.xml", w1.sip_port, pause_ms=8000, timeout=15))
    await events.wait_for(protocol.Answered)
    killed_at = time.monotonic()
    os.kill(old_pid, signal.SIGKILL)
    ended_at, worker = await events.wait_for(protocol.CallEnded, timeout=5)
    ended = [e for _, _, e in events.seen if isinstance(e, protocol.CallEnded)]
    assert worker == "w1"
    assert [(e.status, e.reason) for e in ended] == [(0, "worker died")]
    assert ended_at - killed_at < 2.0
    await until(lambda: w1.pid != old_pid and w1.ready.is_set(), 15)
    assert w1.restarts == 1 and w1.pid != old_pid and pid_alive(w1.pid)
    result = await sipp
    assert result.failed == 1
    # The restarted worker takes calls on the same port.
    again = await run_sipp("info_dtmf.xml", w1.sip_port, pause_ms=200)
    assert (again.successful, again.failed) == (1, 0), again.errors


async def test_place_call_from_one_worker_to_the_echo_of_another_with_headers(
    pool: tuple[WorkerPool, Events],
) -> None:
    workers, events = pool
    w2_port = workers.workers["w2"].sip_port
    result = await workers.command(
        "w1",
        lambda request: protocol.PlaceCall(
            request,
            f"sip:echo@127.0.0.1:{w2_port}",
            "sip:collections@assistline.test",
            (("X-Assistline-Contact", "contact-7"),),
        ),
    )
    outbound = result.leg
    assert outbound.startswith("w1-")
    await until(lambda: any(isinstance(e, protocol.Answered) for _, _, e in events.seen), 10)
    incoming = [e for _, w, e in events.seen if isinstance(e, protocol.IncomingCall)]
    assert [(i.from_uri, i.headers) for i in incoming] == [
        ("<sip:collections@assistline.test>", (("X-Assistline-Contact", "contact-7"),))
    ]
    await workers.command("w1", lambda request: protocol.Hangup(request, outbound))
    await until(
        lambda: len([e for _, _, e in events.seen if isinstance(e, protocol.CallEnded)]) == 2, 10
    )
    assert workers.workers["w1"].legs == set() and workers.workers["w2"].legs == set()


async def test_hung_worker_is_killed_after_two_silent_seconds_and_restarts(
    pool: tuple[WorkerPool, Events],
) -> None:
    workers, events = pool
    w2 = workers.workers["w2"]
    old_pid = w2.pid
    sipp = asyncio.create_task(run_sipp("info_dtmf.xml", w2.sip_port, pause_ms=8000, timeout=15))
    await events.wait_for(protocol.Answered)
    last_health = w2.last_seen
    os.kill(old_pid, signal.SIGSTOP)  # alive but silent: only missed health shows it
    ended_at, worker = await events.wait_for(protocol.CallEnded, timeout=6)
    assert worker == "w2"
    # Health comes every second; silence longer than 2 s kills (plus the 0.2 s watch step).
    assert 2.0 <= ended_at - last_health < 2.0 + 0.2 + 0.5
    await until(lambda: w2.pid != old_pid and w2.ready.is_set(), 15)
    assert not pid_alive(old_pid)
    await sipp
