"""Serving the web client: the customer page, the agent console and their files.

The files live in ``web_client/`` at the repository root and are copied into
the wheel as ``assistline/web_client``; both places are looked up, so a
source checkout and an installed server serve the same pages.
"""

from __future__ import annotations

import mimetypes
from pathlib import Path

from aiohttp import web

import assistline
from assistline.errors import AssistlineError
from assistline.signalling.problems import HttpProblem


class WebClientMissingError(AssistlineError):
    """The web client's files are missing from this installation; reinstall assistline."""


def web_client_dir() -> Path:
    """The directory holding the web client's files."""
    package = Path(assistline.__file__).resolve().parent
    for candidate in (package / "web_client", package.parent / "web_client"):
        if (candidate / "index.html").is_file():
            return candidate
    raise WebClientMissingError()


def _file(relative: str) -> web.FileResponse:
    root = web_client_dir()
    path = (root / relative).resolve()
    if not path.is_relative_to(root) or not path.is_file():
        raise HttpProblem(404, "not-found", f"the web client has no file {relative!r}")
    content_type, _ = mimetypes.guess_type(path.name)
    return web.FileResponse(
        path,
        headers={
            "Content-Type": content_type or "application/octet-stream",
            "Cache-Control": "no-cache",
            "X-Content-Type-Options": "nosniff",
        },
    )


async def customer_page(request: web.Request) -> web.StreamResponse:
    """The page a customer opens to call, video-call or leave a message."""
    return _file("index.html")


async def agent_console(request: web.Request) -> web.StreamResponse:
    """The agents' browser console."""
    return _file("agent.html")


async def web_asset(request: web.Request) -> web.StreamResponse:
    """A script, style sheet or image of the web client."""
    return _file(request.match_info["path"])
