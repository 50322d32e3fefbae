"""LISTEN on a dedicated, reconnecting PostgreSQL connection.

A pooled connection cannot LISTEN: the pool hands it to another task and
its notifications go with it, or stop when it is released. So
:class:`Listener` keeps one connection of its own, listens on the channels
it was given, and when the connection drops (the database restarted, a
network blip) connects again with a growing pause (0.5 s up to 10 s). On
every connection, the first included, it calls every handler once with an
empty payload, as if notified: whatever changed while nobody was listening
is caught up. Handlers run on the event loop and must not block;
their failures are logged.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable, Mapping

import asyncpg

from assistline.redaction import mask_card_numbers
from assistline.tasks import TaskRegistry

logger = logging.getLogger(__name__)

Handler = Callable[[str], None]


class Listener:
    """Calls ``handlers[channel](payload)`` for each notification on its channels."""

    def __init__(self, dsn: str, handlers: Mapping[str, Handler]) -> None:
        self._dsn = dsn
        self._handlers = dict(handlers)
        self._lost = asyncio.Event()
        self.connected = asyncio.Event()

    def _notified(self, connection: object, pid: int, channel: str, payload: object) -> None:
        self._call(channel, str(payload))

    def _call(self, channel: str, payload: str) -> None:
        try:
            self._handlers[channel](payload)
        except Exception:  # noqa: BLE001 - one handler's failure must not stop listening
            logger.exception("handling a notification on %s failed", channel)

    async def run(self) -> None:
        """Listen until cancelled, reconnecting whenever the connection is lost."""
        pause = 0.5
        while True:
            try:
                connection = await asyncpg.connect(self._dsn, timeout=10)
            except (OSError, asyncpg.PostgresError, TimeoutError) as error:
                logger.warning("listener: cannot connect (%s); again in %.1f s", error, pause)
                await asyncio.sleep(pause)
                pause = min(pause * 2, 10.0)
                continue
            try:
                self._lost.clear()
                connection.add_termination_listener(lambda _: self._lost.set())
                for channel in self._handlers:
                    await connection.add_listener(channel, self._notified)
                pause = 0.5
                self.connected.set()
                # Catch up with what changed while nobody listened (before the
                # first connection too: its owner read the state before it).
                for channel in self._handlers:
                    self._call(channel, "")
                await self._lost.wait()
                logger.warning("listener: the connection was lost; reconnecting")
            except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as error:
                logger.warning("listener: %s", mask_card_numbers(str(error)))
            finally:
                self.connected.clear()
                with contextlib.suppress(Exception):
                    await connection.close(timeout=2)


@contextlib.asynccontextmanager
async def listening(
    dsn: str, handlers: Mapping[str, Handler], tasks: TaskRegistry
) -> AsyncIterator[Listener]:
    """A running :class:`Listener` (a task of ``tasks``), stopped when the context ends."""
    listener = Listener(dsn, handlers)
    task = tasks.spawn(f"listen {', '.join(handlers)}", listener.run())
    try:
        async with asyncio.timeout(10):
            await listener.connected.wait()
    except TimeoutError:
        logger.warning("listener: not connected after 10 s; it keeps trying")
    try:
        yield listener
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
