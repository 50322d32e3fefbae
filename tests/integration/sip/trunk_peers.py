"""Real peers for the outbound tests: sipp as a trunk or a phone, the whole SIP side.

:func:`sip_side` runs :func:`assistline.sip.service.sip_service` (media
workers and Kamailio) on free loopback ports against the test's own
PostgreSQL database; :func:`sipp_server` runs sipp as a server whose
message log the test reads (:class:`SipMessage`). Each stops what it
started and checks that nothing is left running.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import hashlib
import random
import re
import shutil
from collections.abc import AsyncIterator, Callable, Sequence
from pathlib import Path

from assistline.settings import Settings, SipSettings, StoreSettings, TrunkSettings
from assistline.sip.service import SipService, sip_service
from assistline.store.database import open_store
from assistline.tasks import TaskRegistry
from tests.integration.sip.test_edge import free_port
from tests.integration.sip.worker_peers import (
    SCENARIOS,
    pid_alive,
    short_dir,
    stop_process,
    until,
)

HOST = "127.0.0.1"
_SEPARATOR = re.compile(r"^-{20,} .*$", re.MULTILINE)
_PARAM = re.compile(r'(\w+)=(?:"([^"]*)"|([^\s,]+))')


@dataclasses.dataclass(frozen=True)
class SipMessage:
    """One message in sipp's message log, as sipp received or sent it."""

    received: bool
    start: str
    headers: tuple[tuple[str, str], ...]
    body: str

    def header(self, name: str) -> str | None:
        """The first value of header ``name`` (case-insensitive), or None."""
        for key, value in self.headers:
            if key.lower() == name.lower():
                return value
        return None

    def value(self, name: str) -> str:
        """The first value of header ``name``; AssertionError when it is missing."""
        found = self.header(name)
        assert found is not None, f"no {name} header in {self.start}"
        return found

    def all(self, name: str) -> list[str]:
        """Every value of header ``name``."""
        return [value for key, value in self.headers if key.lower() == name.lower()]

    @property
    def method(self) -> str:
        """The request's method, or "" for a response."""
        return "" if self.start.startswith("SIP/2.0") else self.start.split(" ", 1)[0]

    @property
    def uri(self) -> str:
        """The Request-URI."""
        return self.start.split(" ")[1]

    @property
    def status(self) -> int:
        """A response's status code, 0 for a request."""
        return int(self.start.split(" ")[1]) if self.start.startswith("SIP/2.0") else 0


def parse_message_log(text: str) -> list[SipMessage]:
    """The messages of a sipp ``-trace_msg`` log, in order."""
    messages = []
    for block in _SEPARATOR.split(text):
        lines = block.strip("\n").split("\n")
        if len(lines) < 3 or "message" not in lines[0]:
            continue
        received = "received" in lines[0]
        sip = "\n".join(lines[1:]).strip("\n").replace("\r\n", "\n")
        head, _, body = sip.partition("\n\n")
        head_lines = head.split("\n")
        headers = []
        for line in head_lines[1:]:
            name, sep, value = line.partition(":")
            if sep:
                headers.append((name.strip(), value.strip()))
        messages.append(SipMessage(received, head_lines[0].strip(), tuple(headers), body))
    return messages


def digest_params(header: str) -> dict[str, str]:
    """The parameters of a ``Digest …`` credentials header."""
    return {
        m.group(1): m.group(2) if m.group(2) is not None else m.group(3)
        for m in _PARAM.finditer(header.split("Digest", 1)[1])
    }


def digest_matches(header: str, method: str, password: str) -> bool:
    """True when a Digest (qop=auth) credentials header was made with ``password``."""
    p = digest_params(header)

    def md5(text: str) -> str:
        return hashlib.md5(text.encode(), usedforsecurity=False).hexdigest()

    ha1 = md5(f"{p['username']}:{p['realm']}:{password}")
    ha2 = md5(f"{method}:{p['uri']}")
    expected = md5(f"{ha1}:{p['nonce']}:{p['nc']}:{p['cnonce']}:{p['qop']}:{ha2}")
    return p["response"] == expected


class SippServer:
    """A sipp server started by a test: its port and what it saw and sent."""

    def __init__(self, port: int, log: Path, process: asyncio.subprocess.Process) -> None:
        self.port = port
        self.log = log
        self.process = process

    def messages(self) -> list[SipMessage]:
        """Every message so far (sipp flushes its log after each one)."""
        return parse_message_log(self.log.read_text()) if self.log.exists() else []

    def requests(self, method: str) -> list[SipMessage]:
        """The ``method`` requests it received."""
        return [m for m in self.messages() if m.received and m.method == method]

    async def wait_for(
        self, found: Callable[[list[SipMessage]], bool], timeout: float = 10.0
    ) -> list[SipMessage]:
        """Wait until ``found(messages)``; the messages then."""
        await until(lambda: found(self.messages()), timeout)
        return self.messages()


@contextlib.asynccontextmanager
async def sipp_server(
    scenario: str, keys: Sequence[tuple[str, str]] = (), extra: Sequence[str] = ()
) -> AsyncIterator[SippServer]:
    """Run sipp as a server with ``scenario`` on a free port; stop and reap it after."""
    workdir = short_dir()
    port = free_port()
    log = workdir / "messages.log"
    args = [
        *("sipp", "-sf", str(SCENARIOS / scenario), "-i", HOST, "-p", str(port)),
        *("-mp", str(free_port()), "-nostdin", "-trace_msg", "-message_file", str(log)),
        *extra,
    ]
    for name, value in keys:
        args += ["-key", name, value]
    process = await asyncio.create_subprocess_exec(
        *args,
        cwd=workdir,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
    )
    try:
        yield SippServer(port, log, process)
    finally:
        await stop_process(process, grace=2)
        shutil.rmtree(workdir, ignore_errors=True)


def sip_settings(
    data_dir: Path, database_url: str, trunk: TrunkSettings, workers: int = 1
) -> Settings:
    """Settings for the SIP side alone on free loopback ports (the HTTP side stays off)."""
    rtp = random.randrange(20000, 28000, 400)
    return Settings(
        store=StoreSettings(database_url=database_url, data_dir=data_dir),
        sip=SipSettings(
            edge_host=HOST,
            edge_port=free_port(),
            # Ports of further workers count up from here; a free one starts the run.
            worker_base_port=free_port(),
            workers=workers,
            max_workers=workers,
            rtp_port_min=rtp,
            rtp_port_max=rtp + 398,
        ),
        trunk=trunk,
    )


def processes_naming(path: Path) -> list[str]:
    """Live processes whose command line names ``path`` (Kamailio's config, a worker's socket)."""
    found = []
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        with contextlib.suppress(OSError):
            words = cmdline.read_bytes().split(b"\0")
            if any(str(path).encode() in word for word in words):
                found.append(b" ".join(words).decode(errors="replace"))
    return found


@contextlib.asynccontextmanager
async def sip_side(settings: Settings) -> AsyncIterator[SipService]:
    """Run the SIP side (workers and Kamailio) on the test's database; nothing is left after."""
    pids: list[int] = []
    tasks = TaskRegistry()
    try:
        async with open_store(settings.store) as database:
            async with sip_service(settings, database, tasks) as service:
                pids = [worker.pid for worker in service.pool.workers.values()]
                yield service
    finally:
        await tasks.close()
    assert not [pid for pid in pids if pid_alive(pid)], "a media worker outlived the test"
    assert processes_naming(settings.store.data_dir) == []


@contextlib.asynccontextmanager
async def data_directory() -> AsyncIterator[Path]:
    """A short data directory (Unix socket paths are short), removed after."""
    directory = short_dir()
    try:
        yield directory
    finally:
        shutil.rmtree(directory, ignore_errors=True)
