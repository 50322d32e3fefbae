"""The real server as a subprocess: start, serve, signals, kill -9, restart."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import asyncpg
import pytest

from assistline.store.embedded import EmbeddedPostgres
from tests.integration.sip.worker_peers import consecutive_free_ports

pytestmark = pytest.mark.slow


class RunningServer:
    """``python -m assistline serve`` on free ports and its own data directory.

    The SIP side runs too: two media workers and, when installed, Kamailio.
    """

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir
        environment = {k: v for k, v in os.environ.items() if not k.startswith("ASSISTLINE_")}
        environment.pop("DATABASE_URL", None)
        first = consecutive_free_ports(6)
        environment |= {
            "ASSISTLINE_SIP_EDGE_PORT": str(first),
            "ASSISTLINE_SIP_TLS_PORT": str(first + 1),
            "ASSISTLINE_SIP_WORKER_BASE_PORT": str(first + 2),
            "ASSISTLINE_SIP_WORKERS": "2",
            "ASSISTLINE_SIP_MAX_WORKERS": "4",
        }
        self.sip_port = first
        # Output goes to files, not pipes: a pipe nobody reads fills up and
        # blocks the server (its workers and Kamailio log too).
        self.stdout_path = data_dir.parent / f"serve-{first}.out"
        self.stderr_path = data_dir.parent / f"serve-{first}.err"
        data_dir.parent.mkdir(parents=True, exist_ok=True)
        with open(self.stdout_path, "w") as out, open(self.stderr_path, "w") as err:
            self.process = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "assistline",
                    "serve",
                    "--port",
                    "0",
                    "--data-dir",
                    str(data_dir),
                ],
                stdout=out,
                stderr=err,
                env=environment,
            )
        self.url = self._wait_for_url()

    @property
    def stderr(self) -> str:
        return self.stderr_path.read_text(errors="replace")

    def wait(self, timeout: float) -> int:
        return self.process.wait(timeout)

    def _wait_for_url(self) -> str:
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline and self.process.poll() is None:
            for line in self.stdout_path.read_text(errors="replace").splitlines():
                if "API document" in line:
                    return line.split()[-1].removesuffix("/api/v1/openapi.json")
            time.sleep(0.1)
        self.process.kill()
        self.process.wait()
        raise AssertionError(f"the server did not start:\n{self.stderr}")

    @property
    def port(self) -> int:
        return int(self.url.rsplit(":", 1)[1])

    def get(self, path: str) -> int:
        with urllib.request.urlopen(self.url + path, timeout=5) as response:
            return int(response.status)

    def descendants(self) -> set[int]:
        """Every process below the server (the postmaster and its workers)."""
        parents: dict[int, int] = {}
        for entry in Path("/proc").iterdir():
            if entry.name.isdigit():
                try:
                    stat = (entry / "stat").read_text()
                except OSError:
                    continue
                parents[int(entry.name)] = int(stat.rsplit(")", 1)[1].split()[1])
        found: set[int] = set()
        frontier = {self.process.pid}
        while frontier:
            children = {pid for pid, ppid in parents.items() if ppid in frontier}
            found |= children
            frontier = children
        return found

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait()


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    return tmp_path / "data"


@pytest.fixture
def server(data_dir: Path) -> Iterator[RunningServer]:
    running = RunningServer(data_dir)
    try:
        yield running
    finally:
        running.stop()


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def _command(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""


def _listening(port: int) -> bool:
    with socket.socket() as probe:
        return probe.connect_ex(("127.0.0.1", port)) == 0


@pytest.mark.parametrize("stop_signal", [signal.SIGTERM, signal.SIGINT])
def test_signal_shuts_down_cleanly_within_10_s(
    server: RunningServer, stop_signal: signal.Signals
) -> None:
    assert server.get("/readyz") == 200
    children = server.descendants()
    commands = {_command(pid) for pid in children}
    assert any("postgres" in c for c in commands), "the embedded PostgreSQL runs as a child"
    assert sum("assistline.sip.worker" in c for c in commands) == 2, commands
    assert any("kamailio" in c for c in commands), "Kamailio runs as a child"
    assert _listening(server.sip_port)
    pg_socket = EmbeddedPostgres(server.data_dir).socket_dir / ".s.PGSQL.5432"
    assert pg_socket.exists()

    started = time.monotonic()
    server.process.send_signal(stop_signal)
    returncode = server.wait(timeout=10)
    assert time.monotonic() - started < 10
    stderr = server.stderr
    assert returncode == 0, stderr
    for complaint in ("Task was destroyed", "was never retrieved", "Traceback", "pending"):
        assert complaint not in stderr
    assert not [pid for pid in children if _alive(pid)]
    assert not _listening(server.port)
    assert not _listening(server.sip_port)
    assert not pg_socket.exists()


async def _write_row(data_dir: Path) -> None:
    connection = await asyncpg.connect(EmbeddedPostgres(data_dir).dsn("assistline"))
    try:
        await connection.execute(
            "INSERT INTO audit_event (actor, action, subject) VALUES ('test', 'kept', 'crash')"
        )
    finally:
        await connection.close()


async def _count_rows(data_dir: Path) -> int:
    connection = await asyncpg.connect(EmbeddedPostgres(data_dir).dsn("assistline"))
    try:
        return int(await connection.fetchval("SELECT count(*) FROM audit_event"))
    finally:
        await connection.close()


def test_start_after_kill_9_recovers_without_losing_data(data_dir: Path) -> None:
    first = RunningServer(data_dir)
    try:
        asyncio.run(_write_row(data_dir))
        children = first.descendants()
        first.process.kill()
        first.process.wait()
        # The postmaster's parent-death signal stops it on its own.
        deadline = time.monotonic() + 15
        while any(_alive(pid) for pid in children) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not [pid for pid in children if _alive(pid)]
    finally:
        first.stop()

    second = RunningServer(data_dir)
    try:
        assert second.get("/readyz") == 200
        assert asyncio.run(_count_rows(data_dir)) == 1
        second.process.send_signal(signal.SIGTERM)
        assert second.wait(timeout=10) == 0
    finally:
        second.stop()


def test_start_after_both_processes_were_killed_recovers(data_dir: Path) -> None:
    first = RunningServer(data_dir)
    try:
        asyncio.run(_write_row(data_dir))
        # A machine-wide crash: the postmaster dies first, leaving postmaster.pid behind.
        pid_file = EmbeddedPostgres(data_dir).cluster_dir / "postmaster.pid"
        os.kill(int(pid_file.read_text().split()[0]), signal.SIGKILL)
        first.process.kill()
        first.process.wait()
    finally:
        first.stop()
    second = RunningServer(data_dir)
    try:
        assert second.get("/readyz") == 200
        assert asyncio.run(_count_rows(data_dir)) == 1
    finally:
        second.process.send_signal(signal.SIGTERM)
        second.wait(timeout=10)
        second.stop()


def test_calls_through_the_edge_spread_over_the_workers(server: RunningServer) -> None:
    from tests.integration.sip.worker_peers import free_udp_port, run_sipp

    # Four simultaneous calls: more than one worker takes (two inbound calls,
    # each keeping a slot for the agent leg it may be bridged to), so Kamailio's
    # dispatcher must spread them over both workers. The echoed audio goes to a
    # port nobody reads; the worker tests check the audio itself.
    sink = str(free_udp_port())
    result = asyncio.run(
        run_sipp(
            "echo_call.xml", server.sip_port, calls=4, pause_ms=1500, keys=[("rtp_sink", sink)]
        )
    )
    assert (result.successful, result.failed) == (4, 0), result.errors
    records = asyncio.run(_call_records(server.data_dir))
    assert len(records) == 4
    assert {r["worker"] for r in records} == {"w1", "w2"}
    for record in records:
        assert record["direction"] == "inbound"
        assert record["outcome"] == "answered"
        assert record["hangup_status"] == 200
        assert record["started_at"] <= record["answered_at"] <= record["ended_at"]
        # The worker's media_stats: sipp sent G.711 from its pcap the whole call.
        assert record["rx_packets"] > 0
        assert record["jbuf_delay_max_ms"] > 0


async def _call_records(data_dir: Path) -> list[asyncpg.Record]:
    connection = await asyncpg.connect(EmbeddedPostgres(data_dir).dsn("assistline"))
    try:
        deadline = time.monotonic() + 5
        while True:  # the last BYEs' records are written just after sipp exits
            rows = await connection.fetch("SELECT * FROM call_record ORDER BY id")
            # media_stats may follow a leg's hangup event by a moment.
            done = all(r["ended_at"] and r["rx_packets"] is not None for r in rows)
            if done or time.monotonic() > deadline:
                return list(rows)
            await asyncio.sleep(0.1)
    finally:
        await connection.close()
