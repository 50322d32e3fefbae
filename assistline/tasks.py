"""The one registry through which background tasks are started and stopped.

Every long-lived task has a name, its failure is logged the moment it
happens (not when someone finally awaits it), and shutdown cancels what is
left and waits a bounded time, naming any task that would not stop.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine
from typing import Any, TypeVar

logger = logging.getLogger(__name__)
T = TypeVar("T")


class TaskRegistry:
    """Owns background tasks from creation to cancellation."""

    def __init__(self) -> None:
        self._tasks: set[asyncio.Task[Any]] = set()
        self._closed = False

    def spawn(self, name: str, coro: Coroutine[Any, Any, T]) -> asyncio.Task[T]:
        """Start ``coro`` as a task called ``name``; it is kept until it ends."""
        if self._closed:
            coro.close()
            raise RuntimeError(f"task registry is closed; {name} was not started")
        task = asyncio.get_running_loop().create_task(coro, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._finished)
        return task

    def _finished(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if task.cancelled():
            return
        error = task.exception()
        if error is not None:
            logger.error("task %s failed", task.get_name(), exc_info=error)

    @property
    def names(self) -> list[str]:
        """Names of the tasks still running, sorted."""
        return sorted(task.get_name() for task in self._tasks)

    async def close(self, timeout: float = 5.0) -> None:
        """Cancel every task and wait up to ``timeout`` seconds for them to end."""
        self._closed = True
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        if not tasks:
            return
        _, pending = await asyncio.wait(tasks, timeout=timeout)
        if pending:
            names = ", ".join(sorted(task.get_name() for task in pending))
            logger.error("tasks still running %.1f s after cancellation: %s", timeout, names)
