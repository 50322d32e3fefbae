from __future__ import annotations

import asyncio
import logging

import pytest

from assistline.tasks import TaskRegistry


async def test_failures_are_logged_when_they_happen(caplog: pytest.LogCaptureFixture) -> None:
    registry = TaskRegistry()

    async def fail() -> None:
        raise RuntimeError("boom")

    with caplog.at_level(logging.ERROR, logger="assistline.tasks"):
        task = registry.spawn("failing-job", fail())
        await asyncio.wait([task])
        await asyncio.sleep(0)
    assert [r.getMessage() for r in caplog.records] == ["task failing-job failed"]
    assert registry.names == []
    await registry.close()


async def test_close_cancels_running_tasks_and_refuses_new_ones() -> None:
    registry = TaskRegistry()
    cancelled = asyncio.Event()

    async def forever() -> None:
        try:
            await asyncio.sleep(3600)
        except asyncio.CancelledError:
            cancelled.set()
            raise

    task = registry.spawn("forever", forever())
    await asyncio.sleep(0)
    assert registry.names == ["forever"]
    await registry.close(timeout=1)
    assert cancelled.is_set()
    assert task.cancelled()

    async def late() -> None:
        return None

    with pytest.raises(RuntimeError, match="task registry is closed; late was not started"):
        _ = registry.spawn("late", late())


async def test_close_names_tasks_that_refuse_to_stop(caplog: pytest.LogCaptureFixture) -> None:
    registry = TaskRegistry()
    release = asyncio.Event()

    async def stubborn() -> None:
        while not release.is_set():
            try:
                await asyncio.sleep(3600)
            except asyncio.CancelledError:
                await release.wait()

    task = registry.spawn("stubborn", stubborn())
    await asyncio.sleep(0)
    with caplog.at_level(logging.ERROR, logger="assistline.tasks"):
        await registry.close(timeout=0.05)
    assert "tasks still running 0.1 s after cancellation: stubborn" in caplog.text
    release.set()
    await task
