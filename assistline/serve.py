"""``assistline serve``: run the server until SIGTERM or SIGINT.

Start-up opens the app's resources (the embedded PostgreSQL among them),
then listens and prints where the pages are. A signal stops listening,
lets open requests finish within the shutdown timeout, cancels background
tasks and stops child processes, so nothing is left running or listening.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import sys
from typing import TextIO

from aiohttp import web

from assistline.settings import Settings
from assistline.signalling.app import create_app
from assistline.signalling.request_id import AccessLogger

logger = logging.getLogger(__name__)


def base_url(settings: Settings, port: int) -> str:
    """The URL people reach the server at."""
    if settings.http.public_url:
        return settings.http.public_url.rstrip("/")
    host = settings.http.host
    if host in ("0.0.0.0", "::", ""):
        host = "127.0.0.1"
    if ":" in host:
        host = f"[{host}]"
    return f"http://{host}:{port}"


async def serve(settings: Settings, out: TextIO = sys.stdout) -> None:
    """Serve until a stop signal arrives."""
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    runner = web.AppRunner(
        create_app(settings),
        access_log_class=AccessLogger,
        shutdown_timeout=settings.http.shutdown_timeout,
        handle_signals=False,
    )
    try:
        await runner.setup()
        site = web.TCPSite(runner, settings.http.host, settings.http.port)
        await site.start()
        port = runner.addresses[0][1]
        url = base_url(settings, port)
        print(
            "assistline is serving:\n"
            f"  customer page  {url}/\n"
            f"  agent console  {url}/agent\n"
            f"  API document   {url}/api/v1/openapi.json\n"
            "Press Ctrl-C to stop.",
            file=out,
            flush=True,
        )
        logger.info("listening on %s:%d", settings.http.host, port)
        await stop.wait()
        logger.info("stopping")
    finally:
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(sig)
        await runner.cleanup()
        logger.info("stopped")
