"""The worker watchdog against a clock the test moves (no process is started)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from assistline.sip import protocol
from assistline.sip.pool import NoWorkerError, Worker, WorkerPool
from assistline.tasks import TaskRegistry


class SilentProcess:
    """Stands in for a worker process that is alive: only kill() is watched."""

    returncode = None

    def __init__(self) -> None:
        self.killed = False

    def kill(self) -> None:
        self.killed = True


def _ignore(worker: str, event: protocol.Event) -> None:
    del worker, event


async def test_a_late_watchdog_round_judges_nobody_and_the_next_one_does() -> None:
    now = [100.0]
    pool = WorkerPool(Path("/run/x.sock"), _ignore, TaskRegistry(), clock=lambda: now[0])
    worker = Worker("w1", 6000, last_seen=100.0)
    worker.ready.set()
    process = SilentProcess()
    worker.process = process  # type: ignore[assignment]  # only returncode and kill()
    pool.workers["w1"] = worker
    watch: asyncio.Task[Any] = asyncio.create_task(pool._watch())
    try:
        await asyncio.sleep(0.05)  # the watchdog starts: its first round is due at 100.2
        now[0] = 105.0  # this process stalled ~5 s: the worker's messages are still unread
        await asyncio.sleep(0.25)
        assert not process.killed
        now[0] = 105.2  # the next round is on time, and the worker still said nothing
        await asyncio.sleep(0.2)
        assert process.killed
    finally:
        watch.cancel()
        await asyncio.gather(watch, return_exceptions=True)


async def test_a_starting_worker_keeps_the_grace_of_all_that_started_with_it() -> None:
    # Three workers start together: each gets 5 x 2 s + 1 s per worker
    # starting = 13 s to say hello, and keeps it as the other two get ready
    # (they share the cores until then, so the last is as slow as all three).
    now = [100.0]
    pool = WorkerPool(Path("/run/x.sock"), _ignore, TaskRegistry(), clock=lambda: now[0])
    processes: dict[str, SilentProcess] = {}

    def killed() -> list[str]:
        return [worker_id for worker_id, process in processes.items() if process.killed]

    for index in (1, 2, 3):
        worker = Worker(f"w{index}", 6000 + index, last_seen=100.0)
        processes[worker.id] = SilentProcess()
        worker.process = processes[worker.id]  # type: ignore[assignment]  # kill() only
        pool.workers[worker.id] = worker
    watch: asyncio.Task[Any] = asyncio.create_task(pool._watch())
    try:
        await asyncio.sleep(0.05)
        now[0] = 100.2  # the first round: three starting
        await asyncio.sleep(0.2)
        assert [w.start_grace for w in pool.workers.values()] == [13.0, 13.0, 13.0]
        for worker_id in ("w1", "w2"):
            pool.workers[worker_id].ready.set()
            pool.workers[worker_id].last_seen = 112.0
        now[0] = 112.2  # a jump: that round is late and judges nobody
        await asyncio.sleep(0.2)
        now[0] = 112.4  # on time; w3 silent 12.4 s, the only one starting now
        await asyncio.sleep(0.2)
        assert killed() == []
        assert pool.workers["w3"].start_grace == 13.0
        now[0] = 113.2
        await asyncio.sleep(0.2)
        assert killed() == ["w3"]
    finally:
        watch.cancel()
        await asyncio.gather(watch, return_exceptions=True)


def test_picks_between_health_reports_spread_over_the_workers() -> None:
    pool = WorkerPool(Path("/run/x.sock"), _ignore, TaskRegistry())
    for index in (1, 2):
        worker = Worker(f"w{index}", 6000 + index, capacity=4)
        worker.ready.set()
        pool.workers[worker.id] = worker
    pool.max_workers = 2  # full means full: no worker is started here
    # Four bridged calls with no health report in between: two each, then none fits.
    picked = [pool.pick(protocol.SLOTS_PER_CALL).id for _ in range(4)]
    assert picked == ["w1", "w2", "w1", "w2"]
    with pytest.raises(NoWorkerError):
        pool.pick()
    # w1's report (one call still up) replaces the guess.
    pool._received(pool.workers["w1"], protocol.Health(calls=1, capacity=4))
    assert pool.pick(protocol.SLOTS_PER_CALL).id == "w1"
    with pytest.raises(NoWorkerError):
        pool.pick(protocol.SLOTS_PER_CALL)  # w1 has one slot left, w2 none
    assert pool.pick().id == "w1"
