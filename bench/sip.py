"""SIP bridge benchmark: concurrent bridged calls per core, and the call-setup rate.

The real thing end to end on loopback: ``assistline serve`` (control
process, media workers, Kamailio, embedded PostgreSQL) pinned to core 0;
sipp as the callers and as the agents' phones, and tcpdump, pinned to
core 1. Agents are created in the directory, register through the edge
with digest authentication, and each caller dials an agent's extension:
the server places the agent leg from the same worker, bridges the two and
records the call (stereo WAV), as in production. Both sides stream G.711
tones (sipp ``rtp_stream``).

Concurrent calls: each level N runs on a fresh server with N/2 + 2 media
workers (idle workers cost CPU too: ~0.3 % of a core each); N calls are
set up (5/s, :data:`RAMP_RATE`) and held; once the API lists N connected
calls, a 10 s window measures the server's CPU (every process under ``serve``, in
/proc) and memory (PSS), and tcpdump captures the RTP both ways. A level
passes when every call completed, every one of the 2N streams the workers
send had no interval over 40 ms and no gap in its RTP sequence during the
window, and the workers' jitter buffers lost and discarded no frame in it
(the workers report each leg's figures every second, ``sip.quality_interval``,
into the call records: the window's losses are the difference between the
sums read just before it and 1.5 s after it). Losses over the whole calls,
ramp and hang-up included, are reported beside them, and so are the RTP
packets that never came in the window: pjmedia counts as "lost" both
those and the frames its progressive discard drops on purpose to shrink
latency after a burst of arrivals, so lost frames beyond the packets that
never came are such drops (still counted as a failure here). The load generator's own worst
interval is reported beside it: when it was late too (a stall of the whole
VM, seen here as both sides late by the same ~50 ms at the same moment),
the window is measured again, up to three times, and the last one counts.
The same is run without recording.

Setup rate: short calls (0.5 s held) at increasing rates for 6 s each, each
rate on a fresh server with rate/2 + 4 workers (a call holds two of its
worker's four slots for about a second; more workers were measured worse:
at 40/s, 3/4 rate + 4 workers took 94 % of the core against 83 %, each idle
worker's pjmedia RTP thread polling 100 times a second) and the product's
``sip.quality_interval`` (10 s; the concurrency windows' reports every
second are their instrument, not part of a set-up); the highest rate at
which every call completed is reported, with the server's CPU at each rate.

Targets (exit 1 when missed): ≥ 100 concurrent bridged G.711 calls on the
server's core with recording and frames on time; ≥ 50 setups/s with 0
failures. Prints progress, then one JSON object as the last line.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))

# bench/ is on sys.path just above.
from _server import LOAD_CORE, WORKER_RTP, Server, log, on_core  # noqa: E402
from _sip_db import create_agents, jitter_buffer_totals, media_quality  # noqa: E402
from _sip_load import PASSWORD, REALM, SCENARIOS, AgentPhone, mulaw_wav, sipp  # noqa: E402
from _sip_rtp import FrameTiming, frame_timing  # noqa: E402

from assistline.settings import SipSettings  # noqa: E402

TARGET_CALLS = 100
TARGET_RATE = 50
LEVELS = (25, 50, 75, 100, 125)
RATES = (20, 30, 40, 50, 60)
#: The set-up rates run with the product's own quality interval (see the module).
PRODUCT_QUALITY = {"ASSISTLINE_SIP_QUALITY_INTERVAL": str(SipSettings().quality_interval)}
WINDOW = 10.0
#: Calls set up per second for the concurrency levels: measured here on a
#: quiet run, 25 calls set up at 25/s left 2 frames lost in the workers'
#: jitter buffers (the set-up burst takes most of the core), at 5/s none.
#: Stalls of the whole VM during a level still cost frames: the jitter
#: buffers count the whole call, not only the re-measured window.
RAMP_RATE = 5
#: Windows tried per level: one in which the load generator (on the other core
#: of this shared VM) was late too is measured again.
WINDOW_TRIES = 3
MAX_INTERVAL = 0.040
AGENTS = 20


# -------------------------------------------------------------------- the load


class Load(AgentPhone):
    """The agents' phone (one sipp UAS for every agent) and the callers dialling them."""

    def __init__(self, directory: Path, edge_port: int) -> None:
        super().__init__(directory, edge_port, AGENTS)

    def start(self) -> None:
        """Answer agent legs, and register every agent at the edge with its contact."""
        mulaw_wav(self.directory / "caller.wav", 440)
        super().start()

    def callers(self, calls: int, rate: int, hold_ms: int, limit: int) -> subprocess.Popen[bytes]:
        """``calls`` callers at ``rate``/s, at most ``limit`` at once, each held ``hold_ms``."""
        dialled = self.directory / "callers.csv"
        dialled.write_text("SEQUENTIAL\n" + "".join(f"agent{i % AGENTS}\n" for i in range(calls)))
        return sipp(
            [
                *("-sf", str(SCENARIOS / "caller.xml"), "-inf", str(dialled)),
                *("-m", str(calls), "-r", str(rate), "-l", str(limit), "-d", str(hold_ms)),
                *("-recv_timeout", "30000", "-trace_err", "-error_file"),
                str(self.directory / f"callers-{calls}-{rate}.errors"),
                f"127.0.0.1:{self.edge_port}",
            ],
            self.directory,
        )


# ------------------------------------------------------------------ the phases


@dataclass
class Level:
    """One concurrency level's figures."""

    calls: int
    passed: bool
    failed_calls: int
    cpu_percent: float
    pss_mb: float
    timing: FrameTiming
    quality: dict[str, int]
    reason: str = ""
    idle_cpu_percent: float = 0.0

    def as_json(self) -> dict[str, Any]:
        """The figures for the report."""
        return {
            "calls": self.calls,
            "passed": self.passed,
            "reason": self.reason,
            "failed_calls": self.failed_calls,
            "server_cpu_percent_of_core": round(self.cpu_percent, 1),
            "idle_cpu_percent_of_core": round(self.idle_cpu_percent, 1),
            "cpu_percent_per_call": round(self.cpu_percent / self.calls, 3),
            "pss_mb": round(self.pss_mb, 1),
            "rtp_streams": self.timing.streams,
            "late_streams": self.timing.late_streams,
            "worst_interval_ms": round(self.timing.worst_interval_ms, 1),
            "sequence_gaps": self.timing.sequence_gaps,
            **self.quality,
        }


def concurrency(server: Server, load: Load, calls: int, work: Path) -> Level:
    """Hold ``calls`` bridged calls and measure a window of them."""
    started = time.time()
    hold_ms = int((calls / RAMP_RATE + 15 + WINDOW_TRIES * (WINDOW + 3)) * 1000)
    callers = load.callers(calls, RAMP_RATE, hold_ms, calls)
    deadline = time.monotonic() + calls / RAMP_RATE + 30
    up = 0
    while time.monotonic() < deadline and callers.poll() is None:
        up = server.connected_calls()
        if up >= calls:
            break
        time.sleep(0.5)
    if up < calls:
        callers.kill()
        callers.wait()
        log(f"  {calls} calls: only {up} connected")
        return Level(calls, False, calls - up, 0, 0, FrameTiming(), {}, f"only {up} connected")
    time.sleep(2)  # past every call's first frames
    windows = []
    for attempt in range(1, WINDOW_TRIES + 1):
        windows.append(measure_window(server, work / f"rtp-{calls}-{attempt}.pcap", started))
        if windows[-1][3].late_streams == 0:
            break  # the load generator kept time: the window is clean
        log(f"  window {attempt}: the load generator itself was late; measuring again")
    cpu_percent, pss, timing, generator, window_jbuf = windows[-1]
    _, errors = callers.communicate(timeout=hold_ms / 1000 + 60)
    failed = 0 if callers.returncode == 0 else calls
    if callers.returncode != 0:
        log(f"  callers exited {callers.returncode}: {errors.decode()[-300:]}")
    quality = asyncio.run(media_quality(server.data_dir, started))
    reasons = []
    if failed:
        reasons.append("calls failed")
    if timing.streams < 2 * calls:
        reasons.append(f"{timing.streams} RTP streams seen, not {2 * calls}")
    if timing.late_streams or timing.sequence_gaps:
        reasons.append("frames late or missing")
    if window_jbuf[0] or window_jbuf[1]:
        reasons.append("jitter buffer loss in the window")
    quality["window_jbuf_lost"], quality["window_jbuf_discarded"] = window_jbuf[:2]
    quality["window_rtp_never_came"] = window_jbuf[2]
    quality["load_generator_late_streams"] = generator.late_streams
    quality["load_generator_worst_interval_ms"] = round(generator.worst_interval_ms)
    quality["windows_measured"] = len(windows)
    level = Level(calls, not reasons, failed, cpu_percent, pss, timing, quality, "; ".join(reasons))
    log(f"  {calls} calls: {json.dumps(level.as_json())}")
    return level


def measure_window(
    server: Server, capture: Path, since: float
) -> tuple[float, float, FrameTiming, FrameTiming, tuple[int, int, int]]:
    """CPU %, PSS, RTP timing (workers', load generator's), jitter-buffer losses in a window.

    ``since`` (epoch s) picks the level's legs in the call records.
    """
    tcpdump = subprocess.Popen(
        [
            *("tcpdump", "-i", "lo", "-s", "64", "-B", "16384", "-w", str(capture), "-n"),
            f"udp and (src portrange {WORKER_RTP[0]}-{WORKER_RTP[1]}"
            f" or dst portrange {WORKER_RTP[0]}-{WORKER_RTP[1]})",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        preexec_fn=on_core(LOAD_CORE),
    )
    time.sleep(1)
    before = asyncio.run(jitter_buffer_totals(server.data_dir, since))
    cpu, started = server.cpu_seconds(), time.monotonic()
    time.sleep(WINDOW)
    cpu_percent = (server.cpu_seconds() - cpu) / (time.monotonic() - started) * 100
    pss = server.pss_mb()
    tcpdump.terminate()
    tcpdump.wait()
    time.sleep(1.5)  # the window's last reports (one a second)
    after = asyncio.run(jitter_buffer_totals(server.data_dir, since))
    window_jbuf = (after[0] - before[0], after[1] - before[1], after[2] - before[2])
    timing = frame_timing(capture, WORKER_RTP, MAX_INTERVAL)
    generator = frame_timing(capture, WORKER_RTP, MAX_INTERVAL, sent_by_workers=False)
    capture.unlink()
    return cpu_percent, pss, timing, generator, window_jbuf


def setup_rate(server: Server, load: Load, rate: int) -> tuple[bool, str, float]:
    """Calls at ``rate``/s for 6 s, each held 0.5 s: did every one complete, at what CPU?"""
    calls = rate * 6
    cpu, since = server.cpu_seconds(), time.monotonic()
    callers = load.callers(calls, rate, 500, calls)
    _, errors = callers.communicate(timeout=120)
    cpu_percent = (server.cpu_seconds() - cpu) / (time.monotonic() - since) * 100
    return callers.returncode == 0, errors.decode()[-300:], cpu_percent


@contextlib.contextmanager
def running(
    work: Path, record: bool, workers: int, tag: str, settings: dict[str, str] | None = None
) -> Iterator[tuple[Server, Load]]:
    """A fresh server with ``workers`` media workers and the agents registered."""
    data_dir = work / f"data-{tag}"
    data_dir.mkdir()
    asyncio.run(create_agents(data_dir, AGENTS, REALM, PASSWORD))
    server = Server(data_dir, record, workers=workers, settings=settings or {})
    server.start()
    load = Load(work, server.edge_port)
    try:
        load.start()
        yield server, load
    finally:
        load.stop()
        server.stop()


def run_levels(work: Path, record: bool, levels: Sequence[int]) -> list[Level]:
    """Each level on a server with just the workers it needs (idle ones cost CPU)."""
    results: list[Level] = []
    kind = "recorded" if record else "unrecorded"
    for calls in levels:
        workers = calls // 2 + 2
        with running(work, record, workers, f"{kind}-{calls}") as (server, load):
            cpu, since = server.cpu_seconds(), time.monotonic()
            time.sleep(5)
            idle = (server.cpu_seconds() - cpu) / (time.monotonic() - since) * 100
            log(f"{kind}, {workers} media workers: idle {idle:.1f} % of the core")
            level = concurrency(server, load, calls, work)
            level.idle_cpu_percent = idle
            results.append(level)
        if level.failed_calls:
            break  # more calls than the server can hold: higher levels fail the same way
    return results


def main(argv: Sequence[str] | None = None) -> int:
    """Run every phase and print the report."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--levels", default=",".join(map(str, LEVELS)), help="concurrent calls")
    parser.add_argument("--rates", default=",".join(map(str, RATES)), help="setups per second")
    parser.add_argument("--keep", action="store_true", help="keep the work directory (logs)")
    parser.add_argument("--no-unrecorded", action="store_true", help="skip the unrecorded run")
    args = parser.parse_args(argv)
    levels = [int(n) for n in args.levels.split(",") if n]
    rates_asked = [int(n) for n in args.rates.split(",") if n]
    for program in ("sipp", "kamailio", "tcpdump"):
        if shutil.which(program, path="/usr/sbin:/usr/bin:/usr/local/bin") is None:
            log(f"bench/sip.py needs {program}; `make bench` installs it")
            return 2
    if len(os.sched_getaffinity(0)) < 2:
        log("bench/sip.py needs two cores: the server on one, the load on the other")
        return 2
    with tempfile.TemporaryDirectory(prefix="assistline-bench-sip-") as temporary:
        work = (
            Path(tempfile.mkdtemp(prefix="assistline-bench-sip-")) if args.keep else Path(temporary)
        )
        log(f"work directory {work}")
        recorded = run_levels(work, True, levels)
        rates: list[dict[str, Any]] = []
        best_rate = 0
        for rate in rates_asked:
            # A call lasts about a second (0.5 s held) and holds 2 of a worker's 4 slots.
            with running(work, True, rate // 2 + 4, f"rate-{rate}", PRODUCT_QUALITY) as (
                server,
                load,
            ):
                ok, errors, cpu_percent = setup_rate(server, load, rate)
            rates.append(
                {"rate": rate, "all_completed": ok, "server_cpu_percent": round(cpu_percent)}
            )
            outcome = "every call completed" if ok else f"calls failed ({errors[-120:]!r})"
            log(f"  {rate} setups/s: {outcome}; server {cpu_percent:.0f} % of the core")
            if not ok:
                break
            best_rate = rate
        unrecorded = [] if args.no_unrecorded else run_levels(work, False, levels)
    best = max((level.calls for level in recorded if level.passed), default=0)
    best_unrecorded = max((level.calls for level in unrecorded if level.passed), default=0)
    top = next((level for level in recorded if level.calls == best), None)
    result = {
        "bench": "sip",
        "concurrent_bridged_calls_per_core_recorded": best,
        "concurrent_bridged_calls_per_core_unrecorded": best_unrecorded,
        "cpu_percent_per_call_recorded": round(top.cpu_percent / top.calls, 3) if top else None,
        "pss_mb_per_call_recorded": round(top.pss_mb / top.calls, 1) if top else None,
        "setups_per_second": best_rate,
        "levels_recorded": [level.as_json() for level in recorded],
        "levels_unrecorded": [level.as_json() for level in unrecorded],
        "setup_rates": rates,
        "targets": {"concurrent_calls": TARGET_CALLS, "setups_per_second": TARGET_RATE},
        "met": {
            "concurrent_calls": best >= TARGET_CALLS,
            "setups_per_second": best_rate >= TARGET_RATE,
        },
    }
    print(json.dumps(result))
    return 0 if best >= TARGET_CALLS and best_rate >= TARGET_RATE else 1


if __name__ == "__main__":
    sys.exit(main())
