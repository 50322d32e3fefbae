"""The worker watchdog against a clock the test moves (no process is started)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from assistline.sip import protocol
from assistline.sip.pool import Worker, WorkerPool
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
