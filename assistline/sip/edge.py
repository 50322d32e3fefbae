"""The SIP edge: Kamailio as a supervised child of the control process.

:class:`SipEdge` writes the files :mod:`assistline.sip.edge_config` renders
into ``<data dir>/edge``, has Kamailio check the configuration (``-c``; an
error names the line Kamailio complains about), then runs it in the
foreground (``-DD -E``: no daemon, log to stderr) in a process group of its
own. Its log lines go to the ``assistline.sip.kamailio`` logger and to
``edge/kamailio.log`` (rotated at 10 MB, one old generation), the file a
fail2ban jail watches. If Kamailio dies it is started again after 0.5 s,
doubling up to 30 s while it keeps dying within a minute. Stopping sends
SIGTERM to the group, then SIGKILL after 5 s: nothing is left running.

The dispatcher list (media workers) and the credentials table (agents' HA1
digests) are reloaded at run time through Kamailio's control socket with
``kamcmd`` (``dispatcher.reload``, ``htable.reload creds``).

Measured here (Kamailio 5.6.3, 2 cores): with ``children=2`` Kamailio runs
10 processes; ``-c`` takes 0.01 s, start to the control socket answering
0.06 s, SIGTERM to the group until every process is gone 0.01 s. After a
``kill -9`` of the main process its children keep our stderr pipe open, so
the supervisor waits on a pidfd, not on ``Process.wait()``.

As root, Kamailio runs as the ``kamailio`` system user (switched before
exec, so it keeps the parent-death signal that stops it if assistline is
killed) when that user exists and can reach the edge directory; otherwise
it keeps the server's user, and the log says so.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import os
import pwd
import re
import secrets
import shutil
import signal
import stat
import time
from collections import deque
from collections.abc import Iterable
from pathlib import Path

from assistline.children import die_with_parent
from assistline.errors import AssistlineError
from assistline.settings import Settings
from assistline.sip import edge_config
from assistline.sip.edge_config import EdgeLimits, EdgeRuntime
from assistline.tasks import TaskRegistry

logger = logging.getLogger(__name__)
kamailio_logger = logging.getLogger("assistline.sip.kamailio")

LOG_FILE_MAX_BYTES = 10 * 1024 * 1024
STOP_TIMEOUT = 5.0
READY_TIMEOUT = 15.0
_LEVELS = {
    "EMERGENCY": logging.CRITICAL,
    "ALERT": logging.INFO,
    "CRITICAL": logging.CRITICAL,
    "ERROR": logging.ERROR,
    "WARNING": logging.WARNING,
    "NOTICE": logging.INFO,
    "INFO": logging.DEBUG,
    "DEBUG": logging.DEBUG,
}
_LEVEL = re.compile(r"\b(EMERGENCY|ALERT|CRITICAL|ERROR|WARNING|NOTICE|INFO|DEBUG):")
_CONFIG_LINE = re.compile(r"config file (\S+), line (\d+)")


class EdgeStartError(AssistlineError):
    """Kamailio, the SIP edge, did not start; its log lines above say why."""


class EdgeControlError(AssistlineError):
    """Kamailio's control socket refused a command; the edge may be stopped."""


def find_kamailio(settings: Settings) -> Path | None:
    """The Kamailio executable ``sip.kamailio`` names, or None when missing."""
    found = shutil.which(settings.sip.kamailio)
    if found is None and "/" not in settings.sip.kamailio:
        # Debian installs it in /usr/sbin, often missing from a user's PATH.
        found = shutil.which(settings.sip.kamailio, path="/usr/sbin:/usr/local/sbin")
    return Path(found) if found else None


def missing_kamailio_message(settings: Settings) -> str:
    """What the log says when there is no Kamailio to run."""
    return (
        "Kamailio is not installed (Debian package kamailio); SIP phones and trunks "
        f"will reach worker 1 directly on port {settings.sip.edge_port}, without "
        "registrar, anti-flood, ACL or TLS"
    )


def _unprivileged_user(directory: Path) -> tuple[str, str] | None:
    """(user, group) to run Kamailio as when we are root, if it can work."""
    if os.geteuid() != 0:
        return None
    try:
        entry = pwd.getpwnam("kamailio")
    except KeyError:
        return None
    for parent in directory.resolve().parents:
        mode = parent.stat().st_mode
        if not mode & stat.S_IXOTH and parent.stat().st_uid != entry.pw_uid:
            return None
    return ("kamailio", "kamailio")


class SipEdge:
    """Kamailio generated from the settings, run and supervised as a child."""

    def __init__(
        self,
        settings: Settings,
        executable: Path,
        tasks: TaskRegistry,
        workers: Iterable[tuple[str, int]],
        *,
        directory: Path | None = None,
        tls_certificate: Path | None = None,
        tls_private_key: Path | None = None,
        tls_port: int = 5061,
        limits: EdgeLimits | None = None,
    ) -> None:
        self._settings = settings
        self._executable = executable
        self._kamcmd = self._find_kamcmd(executable)
        self._tasks = tasks
        self.runtime = EdgeRuntime(
            directory=directory or settings.store.data_dir / "edge",
            workers=tuple(workers),
            auth_secret=secrets.token_hex(16),
            tls_certificate=tls_certificate,
            tls_private_key=tls_private_key,
            tls_port=tls_port,
            limits=limits or EdgeLimits(),
        )
        self._process: asyncio.subprocess.Process | None = None
        self._supervisor: asyncio.Task[None] | None = None
        self._stopping = False
        self._reader: asyncio.Task[None] | None = None
        self._user: tuple[str, str] | None = None
        self._recent: deque[str] = deque(maxlen=20)
        self.restarts = 0

    @staticmethod
    def _find_kamcmd(executable: Path) -> Path | None:
        beside = executable.parent / "kamcmd"
        if beside.exists():
            return beside
        found = shutil.which("kamcmd")
        return Path(found) if found else None

    @property
    def log_file(self) -> Path:
        """Kamailio's log lines, the file fail2ban watches."""
        return self.runtime.directory / "kamailio.log"

    @property
    def pid(self) -> int | None:
        """Process id of the running Kamailio main process."""
        if self._process is None or self._process.returncode is not None:
            return None
        return self._process.pid

    def _write_files(self, credentials: Iterable[tuple[str, str]] | None) -> None:
        runtime = self.runtime
        runtime.runtime_dir.mkdir(parents=True, exist_ok=True)
        runtime.db_dir.mkdir(parents=True, exist_ok=True)
        runtime.config_file.write_text(edge_config.render_config(self._settings.sip, runtime))
        runtime.dispatcher_file.write_text(
            edge_config.dispatcher_list(runtime.workers, runtime.limits.calls_per_worker)
        )
        if credentials is not None or not runtime.credentials_file.exists():
            _replace(runtime.credentials_file, edge_config.credentials_table(credentials or ()))
        if runtime.tls_certificate is not None and runtime.tls_private_key is not None:
            runtime.tls_config_file.write_text(
                edge_config.tls_config(runtime.tls_certificate, runtime.tls_private_key)
            )
        self._user = _unprivileged_user(runtime.directory)
        if self._user is not None:
            entry = pwd.getpwnam(self._user[0])
            for path in [runtime.directory, *runtime.directory.rglob("*")]:
                os.chown(path, entry.pw_uid, entry.pw_gid)
        elif os.geteuid() == 0:
            logger.warning(
                "Kamailio runs as root: no kamailio user can reach %s", runtime.directory
            )

    def _command(self, check: bool = False) -> list[str]:
        runtime = self.runtime
        command = [str(self._executable), "-f", str(runtime.config_file)]
        command += ["-Y", str(runtime.runtime_dir)]
        if check:
            return [*command, "-c"]
        return [*command, "-DD", "-E", "-P", str(runtime.pid_file)]

    async def _check(self) -> None:
        process = await asyncio.create_subprocess_exec(
            *self._command(check=True),
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
        )
        output, _ = await process.communicate()
        if process.returncode == 0:
            return
        message = describe_check_failure(output.decode(errors="replace"))
        raise EdgeStartError(message)

    async def start(self, credentials: Iterable[tuple[str, str]] | None = None) -> None:
        """Write the configuration, check it, start Kamailio and wait until it answers.

        ``credentials`` are (username, HA1) pairs; None keeps the table on disk.
        """
        self._stopping = False
        self._write_files(credentials)
        await self._check()
        await self._end_leftover()
        await self._spawn()
        try:
            await self._wait_ready()
        except BaseException:
            await self._terminate()
            raise
        self._supervisor = self._tasks.spawn("sip-edge supervisor", self._supervise())
        logger.info(
            "SIP edge (Kamailio pid %d) listening on %s:%d",
            self.pid or 0,
            self._settings.sip.edge_host,
            self._settings.sip.edge_port,
        )

    async def _end_leftover(self) -> None:
        """Stop a Kamailio an earlier run of this server left in the pid file.

        A server killed with ``kill -9`` sends its Kamailio SIGTERM (the
        parent-death signal), but Kamailio may still be ending when the
        server starts again; a second one then finds "a running process in
        the pid file" and fails to start (seen in CI's kill-and-restart
        test). Only a process named kamailio running this configuration is
        stopped: a pid may have been reused.
        """
        pid = leftover_kamailio(self.runtime.pid_file, self.runtime.config_file)
        if pid is None:
            return
        logger.warning("a Kamailio of an earlier run (pid %d) is still running; stopping it", pid)
        await self._kill_group(pid)
        # Gone, or a zombie its parent has not reaped: either way not ours to wait for.
        self.runtime.pid_file.unlink(missing_ok=True)  # noqa: ASYNC240 - one unlink

    async def _spawn(self) -> None:
        self._recent.clear()
        self._process = await asyncio.create_subprocess_exec(
            *self._command(),
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.PIPE,
            start_new_session=True,
            # The user is switched before exec, not by Kamailio's -u: a process
            # that changes its own user id loses its parent-death signal.
            preexec_fn=die_with_parent(),
            user=self._user[0] if self._user else None,
            group=self._user[1] if self._user else None,
            extra_groups=[] if self._user else None,
        )
        self._reader = self._tasks.spawn("sip-edge log", self._read_log(self._process))

    async def _wait_ready(self) -> None:
        deadline = time.monotonic() + READY_TIMEOUT
        process = self._process
        assert process is not None
        while time.monotonic() < deadline:
            if process.returncode is not None:
                await self._wait_reader()
                raise EdgeStartError(
                    f"Kamailio exited with status {process.returncode} while starting: "
                    + " | ".join(list(self._recent)[-3:])
                )
            if self.runtime.ctl_socket.exists():
                with contextlib.suppress(EdgeControlError):
                    await self.rpc("core.uptime")
                    return
            await asyncio.sleep(0.05)
        raise EdgeStartError(f"Kamailio did not answer on its control socket in {READY_TIMEOUT} s")

    async def _wait_reader(self) -> None:
        """Let the log reader drain what the exited process wrote."""
        if self._reader is not None:
            await asyncio.wait({self._reader}, timeout=1.0)

    async def _read_log(self, process: asyncio.subprocess.Process) -> None:
        assert process.stderr is not None
        while line := await process.stderr.readline():
            text = line.decode(errors="replace").rstrip()
            if not text:
                continue
            self._recent.append(text)
            match = _LEVEL.search(text)
            level = _LEVELS[match.group(1)] if match else logging.DEBUG
            if "assistline-edge:" in text:
                level = max(level, logging.WARNING)
            kamailio_logger.log(level, "%s", text)
            self._append_log(text)

    def _append_log(self, text: str) -> None:
        path = self.log_file
        with contextlib.suppress(FileNotFoundError):
            if path.stat().st_size > LOG_FILE_MAX_BYTES:
                path.replace(path.with_name(path.name + ".1"))
        with path.open("a", encoding="utf-8") as file:
            file.write(time.strftime("%Y-%m-%dT%H:%M:%S ") + text + "\n")

    async def _supervise(self) -> None:
        delay = 0.5
        while True:
            process = self._process
            assert process is not None
            started = time.monotonic()
            # process.wait() would also wait for Kamailio's children to close
            # our stderr pipe; the main process's exit is what counts.
            await _exited(process.pid)
            await self._kill_group(process.pid)
            status = await process.wait()
            await self._wait_reader()
            if self._stopping:
                return
            if time.monotonic() - started > 60.0:
                delay = 0.5
            logger.error(
                "Kamailio exited with status %d; starting it again in %.1f s", status, delay
            )
            await asyncio.sleep(delay)
            delay = min(delay * 2, 30.0)
            try:
                await self._spawn()
                await self._wait_ready()
            except EdgeStartError as error:
                logger.error("%s", error)
                continue
            self.restarts += 1
            logger.info("Kamailio started again (pid %d)", self.pid or 0)

    async def stop(self) -> None:
        """Stop Kamailio and its children; nothing keeps listening."""
        self._stopping = True
        supervisor, self._supervisor = self._supervisor, None
        if supervisor is not None:
            supervisor.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await supervisor
        await self._terminate()

    async def _terminate(self) -> None:
        process = self._process
        if process is None:
            return
        if process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGTERM)
            try:
                await asyncio.wait_for(process.wait(), STOP_TIMEOUT)
            except TimeoutError:
                logger.warning("Kamailio ignored SIGTERM for %.0f s; killing it", STOP_TIMEOUT)
        await self._kill_group(process.pid)
        await process.wait()
        await self._wait_reader()
        self._process = None
        logger.info("SIP edge stopped")

    @staticmethod
    async def _kill_group(pgid: int) -> None:
        """SIGTERM, then SIGKILL, what is left of the process group until it is gone."""
        for sig in (signal.SIGTERM, signal.SIGKILL):
            deadline = time.monotonic() + STOP_TIMEOUT
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pgid, sig)
            while time.monotonic() < deadline:
                if not group_alive(pgid):
                    return
                await asyncio.sleep(0.05)
        logger.error("Kamailio processes of group %d would not die", pgid)

    async def rpc(self, *command: str) -> str:
        """Run a Kamailio RPC command through the control socket; its output."""
        if self._kamcmd is None:
            raise EdgeControlError("kamcmd is missing (Debian package kamailio)")
        process = await asyncio.create_subprocess_exec(
            str(self._kamcmd),
            "-s",
            f"unix:{self.runtime.ctl_socket}",
            *command,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
        )
        try:
            output, _ = await asyncio.wait_for(process.communicate(), 5.0)
        except TimeoutError:
            process.kill()
            await process.wait()
            raise EdgeControlError(f"kamcmd {command[0]} did not answer in 5 s") from None
        text = output.decode(errors="replace")
        if process.returncode != 0 or text.startswith("error:"):
            raise EdgeControlError(f"kamcmd {' '.join(command)} failed: {text.strip()}")
        return text

    async def set_workers(self, workers: Iterable[tuple[str, int]]) -> None:
        """Replace the media workers Kamailio dispatches calls to."""
        self.runtime = dataclasses.replace(self.runtime, workers=tuple(workers))
        _replace(
            self.runtime.dispatcher_file,
            edge_config.dispatcher_list(self.runtime.workers, self.runtime.limits.calls_per_worker),
        )
        await self.rpc("dispatcher.reload")

    async def set_credentials(self, credentials: Iterable[tuple[str, str]]) -> None:
        """Replace agents' credentials, as (username, HA1) pairs."""
        _replace(self.runtime.credentials_file, edge_config.credentials_table(credentials))
        await self.rpc("htable.reload", "creds")


async def _exited(pid: int) -> None:
    """Wait until process ``pid`` has exited (through a pidfd, no polling)."""
    try:
        fd = os.pidfd_open(pid)
    except ProcessLookupError:
        return
    loop = asyncio.get_running_loop()
    done: asyncio.Future[None] = loop.create_future()

    def readable() -> None:
        if not done.done():
            done.set_result(None)

    loop.add_reader(fd, readable)
    try:
        await done
    finally:
        loop.remove_reader(fd)
        os.close(fd)


def describe_check_failure(output: str) -> str:
    """The first error of ``kamailio -c``, with the configuration line it names."""
    lines = [line for line in output.splitlines() if "CRITICAL" in line or "ERROR" in line]
    detail = lines[0].strip() if lines else (output.strip().splitlines() or ["no output"])[-1]
    message = f"Kamailio rejects its configuration: {detail}"
    match = _CONFIG_LINE.search(output)
    if match:
        number = int(match.group(2))
        with contextlib.suppress(OSError):
            config_lines = Path(match.group(1)).read_text().splitlines()
            if 0 < number <= len(config_lines):
                message += f" (line {number}: {config_lines[number - 1].strip()})"
    return message


def leftover_kamailio(pid_file: Path, config_file: Path) -> int | None:
    """The pid in ``pid_file`` if it is a process named kamailio running ``config_file``."""
    try:
        pid = int(pid_file.read_text().split()[0])
        comm = Path(f"/proc/{pid}/comm").read_text().strip()
        command = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except (OSError, ValueError, IndexError):
        return None
    return pid if comm == "kamailio" and os.fsencode(config_file) in command else None


def group_alive(pgid: int) -> bool:
    """True while a live (not zombie) process belongs to process group ``pgid``."""
    for stat_file in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError):
            # pid (comm) state ppid pgrp ...; comm may hold spaces.
            fields = stat_file.read_text().rsplit(")", 1)[1].split()
            if int(fields[2]) == pgid and fields[0] != "Z":
                return True
    return False


def _replace(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` atomically, keeping its owner."""
    temporary = path.with_name(path.name + ".new")
    temporary.write_text(text)
    with contextlib.suppress(FileNotFoundError):
        info = path.stat()
        os.chown(temporary, info.st_uid, info.st_gid)
        # db_text notices a change by the file's mtime, in whole seconds.
        if int(temporary.stat().st_mtime) <= int(info.st_mtime):
            later = int(info.st_mtime) + 1
            os.utime(temporary, (later, later))
    os.chmod(temporary, 0o640 if path.name == "credentials" else 0o644)
    temporary.replace(path)
