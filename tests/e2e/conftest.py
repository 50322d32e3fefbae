"""End-to-end fixtures: the real app on loopback, and Debian's Chromium driven by Playwright.

The database fixtures (one embedded PostgreSQL cluster, a migrated template
cloned per test) are the integration tier's own, imported from its conftest.
Each test gets servers it starts through :func:`start_server` and one fresh
Chromium (its own profile under the test's ``tmp_path``); both are stopped
when the test ends. A test that needs a second browser (another fake
microphone) starts one with :func:`chromium`. A browser may reach loopback
only: any other host fails to resolve, and a request to one fails the test.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import socket
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import asyncpg
import pytest
from aiohttp import web
from playwright.async_api import (
    BrowserContext,
    Page,
    Playwright,
    Request,
    ViewportSize,
    WebSocket,
    async_playwright,
)

from assistline.settings import HttpSettings, Settings, WebRtcSettings
from assistline.signalling.app import create_app
from tests.integration.conftest import database_url, pg_server, settings

__all__ = ["database_url", "pg_server", "settings"]

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--use-fake-ui-for-media-stream",
    "--use-fake-device-for-media-stream",
    "--allow-loopback-in-peer-connection",
    # Loopback only: every other name fails to resolve.
    "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE localhost, EXCLUDE 127.0.0.1",
]
#: A phone's viewport: the page must work at 360 px wide.
PHONE = ViewportSize(width=360, height=740)
API_KEY = "k-0123456789abcdef-e2e-backend"
ICE_SERVERS = ("stun:127.0.0.1:3478",)
LOOPBACK_HOSTS = {"127.0.0.1", "localhost"}


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "e2e: the web client in headless Chromium (tests/e2e)")


@dataclasses.dataclass(frozen=True)
class Server:
    """An assistline app serving on loopback."""

    url: str
    port: int
    app: web.Application

    def on(self, host: str) -> str:
        """This server's base URL under another loopback name (``localhost``)."""
        return f"http://{host}:{self.port}"


ServerFactory = Callable[..., Awaitable[Server]]


def bound_socket() -> socket.socket:
    """A TCP socket bound to 127.0.0.1 and a free port, so the port is known before serving."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    return sock


async def serve(app: web.Application, sock: socket.socket, runners: list[web.AppRunner]) -> None:
    """Serve ``app`` on ``sock``; the test's fixture stops every runner in ``runners``."""
    runner = web.AppRunner(app, handle_signals=False, shutdown_timeout=2.0)
    await runner.setup()
    runners.append(runner)
    await web.SockSite(runner, sock).start()


@pytest.fixture
async def runners() -> AsyncIterator[list[web.AppRunner]]:
    """The aiohttp servers a test started, stopped (last first) when it ends."""
    started: list[web.AppRunner] = []
    try:
        yield started
    finally:
        for runner in reversed(started):
            await runner.cleanup()


@pytest.fixture
def start_server(settings: Settings, runners: list[web.AppRunner]) -> ServerFactory:
    """Start the real app: ``await start_server(demo=…, allowed_origins=…)``.

    ``allowed_origins`` may name the origins with ``{port}``, the port the
    server gets (known before it starts).
    """

    async def start(*, demo: bool = False, allowed_origins: tuple[str, ...] = ()) -> Server:
        sock = bound_socket()
        port: int = sock.getsockname()[1]
        http = HttpSettings(
            port=port,
            api_keys=(API_KEY,),
            demo=demo,
            allowed_origins=tuple(o.format(port=port) for o in allowed_origins),
        )
        webrtc = WebRtcSettings(ice_servers=ICE_SERVERS)
        app = create_app(dataclasses.replace(settings, http=http, webrtc=webrtc))
        await serve(app, sock, runners)
        return Server(f"http://127.0.0.1:{port}", port, app)

    return start


@pytest.fixture
async def db(database_url: str) -> AsyncIterator[asyncpg.Connection]:
    """A connection to this test's database, to check what the server stored."""
    connection = await asyncpg.connect(database_url)
    try:
        yield connection
    finally:
        await connection.close()


@pytest.fixture
def chromium_args() -> list[str]:
    """Chromium's command-line flags; a test module overrides this fixture to add some."""
    return list(CHROMIUM_ARGS)


@pytest.fixture
async def playwright_driver() -> AsyncIterator[Playwright]:
    """Playwright, driving the browsers of one test."""
    async with async_playwright() as driver:
        yield driver


@contextlib.asynccontextmanager
async def chromium(
    driver: Playwright, profile: Path, args: Sequence[str]
) -> AsyncIterator[BrowserContext]:
    """Debian's Chromium with ``args``, a fresh ``profile`` and a phone-sized viewport.

    It fails the test, once closed, if it asked for anything but loopback.
    """
    outside: list[str] = []

    def check_host(request: Request) -> None:
        parts = urlsplit(request.url)
        if parts.scheme in ("http", "https", "ws", "wss") and parts.hostname not in LOOPBACK_HOSTS:
            outside.append(request.url)

    context = await driver.chromium.launch_persistent_context(
        profile,
        executable_path=CHROMIUM,
        headless=True,
        args=list(args),
        viewport=PHONE,
        has_touch=True,
    )
    context.on("request", check_host)
    try:
        yield context
    finally:
        await context.close()
    assert outside == [], f"the browser asked for non-loopback URLs: {outside}"


@pytest.fixture
async def browser(
    playwright_driver: Playwright, tmp_path: Path, chromium_args: list[str]
) -> AsyncIterator[BrowserContext]:
    """Debian's Chromium with fake media, a fresh profile and a phone-sized viewport."""
    async with chromium(playwright_driver, tmp_path / "chromium-profile", chromium_args) as context:
        yield context


@pytest.fixture
def page_errors() -> Iterator[list[str]]:
    """Uncaught errors of the page's scripts; the test fails if any is left at its end."""
    errors: list[str] = []
    yield errors
    assert errors == [], f"uncaught errors in the page: {errors}"


@pytest.fixture
async def page(browser: BrowserContext, page_errors: list[str]) -> Page:
    """The browser's one tab; its uncaught script errors go to ``page_errors``."""
    tab = browser.pages[0] if browser.pages else await browser.new_page()
    tab.on("pageerror", lambda error: page_errors.append(error.message))
    return tab


@dataclasses.dataclass
class Frames:
    """The signalling frames one page sent and received, parsed."""

    sent: list[dict[str, Any]] = dataclasses.field(default_factory=list)
    received: list[dict[str, Any]] = dataclasses.field(default_factory=list)
    sockets: list[str] = dataclasses.field(default_factory=list)

    def of(self, kind: str, direction: str = "received") -> list[dict[str, Any]]:
        frames = self.sent if direction == "sent" else self.received
        return [frame for frame in frames if frame.get("type") == kind]


def record_frames(page: Page) -> Frames:
    """Record every WebSocket frame ``page`` exchanges from now on."""
    frames = Frames()

    def keep(into: list[dict[str, Any]]) -> Callable[[str | bytes], None]:
        def add(payload: str | bytes) -> None:
            into.append(json.loads(payload))

        return add

    def opened(ws: WebSocket) -> None:
        frames.sockets.append(ws.url)
        ws.on("framesent", keep(frames.sent))
        ws.on("framereceived", keep(frames.received))

    page.on("websocket", opened)
    return frames
