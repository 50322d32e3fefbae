"""``assistline serve`` as a benchmark's child, and the helpers around it.

Shared by bench/sip.py and bench/webrtc.py: the server (control process,
media workers, Kamailio, embedded PostgreSQL) pinned to one core, started
with its settings in the environment and waited for until ``/readyz``
answers and every media worker runs; its whole process tree's CPU time and
proportional set size read from ``/proc``; loopback ports free for it.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

SERVER_CORE = 0
LOAD_CORE = 1
#: The media workers' RTP ports, below the ephemeral range other ports come from.
WORKER_RTP = (20000, 32000)
#: The backend's API key (the calls API asks for one).
API_KEY = "bench-server-backend-key"


def log(text: str) -> None:
    """Progress on stderr; stdout's last line is the JSON result."""
    print(text, file=sys.stderr, flush=True)


def free_port() -> int:
    """A loopback port free for both UDP and TCP."""
    while True:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
            probe.bind(("127.0.0.1", 0))
            port = int(probe.getsockname()[1])
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
            try:
                probe.bind(("127.0.0.1", port))
            except OSError:
                continue
        return port


def free_block(count: int, start: int = 10000) -> int:
    """The first of ``count`` consecutive free UDP ports from ``start``."""
    first = start
    while first + count < WORKER_RTP[0]:
        try:
            for port in range(first, first + count):
                with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
                    probe.bind(("127.0.0.1", port))
        except OSError:
            first = port + 1
            continue
        return first
    raise RuntimeError("no block of free ports for the media workers")


def on_core(core: int) -> Callable[[], None]:
    """A preexec_fn pinning the child (and its children) to one core."""

    def pin() -> None:
        os.sched_setaffinity(0, {core})

    return pin


def process_tree(root: int) -> list[int]:
    """``root`` and every process below it."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            with contextlib.suppress(OSError):
                stat = Path(f"/proc/{entry}/stat").read_text()
                parent = int(stat.rsplit(")", 1)[1].split()[1])
                children.setdefault(parent, []).append(int(entry))
    found, todo = [], [root]
    while todo:
        pid = todo.pop()
        found.append(pid)
        todo.extend(children.get(pid, []))
    return found


def cpu_seconds(pids: Iterable[int]) -> float:
    """User + system CPU of ``pids`` (every thread of each) so far."""
    ticks = 0
    for pid in pids:
        with contextlib.suppress(OSError):
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            ticks += int(fields[11]) + int(fields[12])
    return ticks / os.sysconf("SC_CLK_TCK")


def pss_mb(pids: Iterable[int]) -> float:
    """Proportional set size of ``pids`` (shared pages counted once), in MiB."""
    kilobytes = 0
    for pid in pids:
        with contextlib.suppress(OSError):
            for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
                if line.startswith("Pss:"):
                    kilobytes += int(line.split()[1])
    return kilobytes / 1024


def core_busy_seconds(core: int) -> tuple[float, float]:
    """(busy, total) seconds of one core so far, every process on it (``/proc/stat``)."""
    for line in Path("/proc/stat").read_text().splitlines():
        if line.startswith(f"cpu{core} "):
            ticks = [int(value) for value in line.split()[1:]]
            idle = ticks[3] + ticks[4]  # idle, iowait
            hertz = os.sysconf("SC_CLK_TCK")
            return (sum(ticks[:8]) - idle) / hertz, sum(ticks[:8]) / hertz
    raise RuntimeError(f"no cpu{core} in /proc/stat")


@dataclass
class Server:
    """``assistline serve`` as a child on the server core.

    ``settings`` are more ``ASSISTLINE_*`` variables, on top of (and able to
    override) the ones every benchmark needs.
    """

    data_dir: Path
    record: bool
    workers: int
    settings: Mapping[str, str] = field(default_factory=dict)
    core: int = SERVER_CORE
    http_port: int = field(default_factory=free_port)
    edge_port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        """Start and wait until /readyz answers and every worker is up."""
        base = free_block(self.workers + 1)
        environ = {
            **os.environ,
            "ASSISTLINE_STORE_DATA_DIR": str(self.data_dir),
            "ASSISTLINE_HTTP_HOST": "127.0.0.1",
            "ASSISTLINE_HTTP_PORT": str(self.http_port),
            "ASSISTLINE_SIP_EDGE_PORT": str(self.edge_port),
            "ASSISTLINE_SIP_TLS_PORT": str(free_port()),
            "ASSISTLINE_SIP_WORKER_BASE_PORT": str(base),
            "ASSISTLINE_SIP_WORKERS": str(self.workers),
            "ASSISTLINE_SIP_MAX_WORKERS": str(self.workers + 1),
            "ASSISTLINE_SIP_RTP_PORT_MIN": str(WORKER_RTP[0]),
            "ASSISTLINE_SIP_RTP_PORT_MAX": str(WORKER_RTP[1]),
            "ASSISTLINE_SIP_RECORD_CALLS": "true" if self.record else "false",
            "ASSISTLINE_SIP_QUALITY_INTERVAL": "1",
            "ASSISTLINE_LOG_LEVEL": "WARNING",
            "ASSISTLINE_HTTP_API_KEYS": API_KEY,
            **self.settings,
        }
        log_file = open(self.data_dir / "serve.log", "ab")  # noqa: SIM115 - the child's
        self.process = subprocess.Popen(
            [sys.executable, "-m", "assistline", "serve"],
            env=environ,
            stdout=log_file,
            stderr=log_file,
            preexec_fn=on_core(self.core),
        )
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"serve exited {self.process.returncode}; see serve.log")
            with contextlib.suppress(OSError):
                with urllib.request.urlopen(self.url("/readyz"), timeout=2) as reply:
                    if reply.status == 200 and self.live_workers() >= self.workers:
                        return
            time.sleep(0.5)
        raise RuntimeError("serve did not become ready in 180 s")

    def url(self, path: str) -> str:
        """An address on the server's HTTP port."""
        return f"http://127.0.0.1:{self.http_port}{path}"

    def stop(self) -> None:
        """SIGTERM, then wait (it stops its workers, Kamailio and PostgreSQL)."""
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(60)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def tree(self) -> list[int]:
        """The server and every process below it."""
        assert self.process is not None
        return process_tree(self.process.pid)

    def live_workers(self) -> int:
        """Media worker processes running now."""
        count = 0
        for pid in self.tree():
            with contextlib.suppress(OSError):
                if b"assistline.sip.worker" in Path(f"/proc/{pid}/cmdline").read_bytes():
                    count += 1
        return count

    def cpu_seconds(self) -> float:
        """User + system CPU of the whole tree so far."""
        return cpu_seconds(self.tree())

    def pss_mb(self) -> float:
        """Proportional set size of the whole tree (shared pages counted once)."""
        return pss_mb(self.tree())

    def connected_calls(self) -> int:
        """Calls the API lists as connected to an agent."""
        key = self.settings.get("ASSISTLINE_HTTP_API_KEYS", API_KEY).split(",")[0]
        calls_url = urllib.request.Request(
            self.url("/api/v1/calls"), headers={"Authorization": f"Bearer {key}"}
        )
        with urllib.request.urlopen(calls_url, timeout=5) as reply:
            body = json.load(reply)
        calls = body["calls"] if isinstance(body, dict) else body
        return sum(1 for call in calls if call["state"] == "connected")
