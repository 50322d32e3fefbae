"""bench/ivr.py's concurrency part: N payment calls on one core, prompts on time or not.

See bench/ivr.py's docstring for the method. Each level runs on a fresh
server; its window's CPU is split by process kind (control process, media
workers, Kamailio, PostgreSQL) from ``/proc``.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import random
import subprocess
import time
from pathlib import Path
from typing import Any

from _ivr_bench import Bench
from _ivr_caller import Call, Callers, Script
from _ivr_media import METHODS, MarkerDetector
from _ivr_prompts import accounts, write_markers
from _server import (
    LOAD_CORE,
    WORKER_RTP,
    Server,
    core_busy_seconds,
    cpu_seconds,
    log,
    on_core,
)
from _sip_db import jitter_buffer_totals
from _sip_rtp import FrameTiming, frame_timing, is_rtp, udp_datagrams

#: Calls placed per second in a level.
RAMP_RATE = 5
WINDOW = 10.0
#: Seconds after the ramp within which every call must have reached secure capture.
SETTLE_LIMIT = 120
#: Windows tried per level: one in which the callers' own RTP was late is measured again.
WINDOW_TRIES = 3
MAX_INTERVAL = 0.040


def cpu_by_kind(server: Server) -> dict[str, float]:
    """CPU seconds so far of the server's processes: control, workers, Kamailio, PostgreSQL."""
    found: dict[str, float] = {}
    for pid in server.tree():
        try:
            command = Path(f"/proc/{pid}/cmdline").read_bytes()
        except OSError:
            continue
        kind = (
            "media_workers"
            if b"assistline.sip.worker" in command
            else "control"
            if b"assistline" in command
            else "kamailio"
            if b"kamailio" in command
            else "postgresql"
            if b"postgres" in command
            else "other"
        )
        found[kind] = found.get(kind, 0.0) + cpu_seconds([pid])
    return found


def measure_window(server: Server, capture: Path) -> dict[str, Any]:
    """CPU, PSS and the RTP timing both ways over one window (blocking: run in a thread)."""
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
    kinds, busy, started = cpu_by_kind(server), core_busy_seconds(LOAD_CORE), time.monotonic()
    time.sleep(WINDOW)
    elapsed = time.monotonic() - started
    spent = {kind: (cpu - kinds.get(kind, 0.0)) for kind, cpu in cpu_by_kind(server).items()}
    cpu_percent = sum(spent.values()) / elapsed * 100
    load_busy = core_busy_seconds(LOAD_CORE)
    load_percent = (load_busy[0] - busy[0]) / max(load_busy[1] - busy[1], 1e-9) * 100
    pss = server.pss_mb()
    tcpdump.terminate()
    tcpdump.wait()
    sent = frame_timing(capture, WORKER_RTP, MAX_INTERVAL)
    generator = frame_timing(capture, WORKER_RTP, MAX_INTERVAL, sent_by_workers=False)
    moments = late_moments(capture)
    capture.unlink()
    return {
        "started": started,
        "ended": started + elapsed,
        "cpu": cpu_percent,
        "cpu_by_kind": {kind: round(cpu / elapsed * 100, 1) for kind, cpu in spent.items()},
        "load_core": load_percent,
        "pss": pss,
        "sent": sent,
        "generator": generator,
        "late_moments": moments,
    }


def late_moments(capture: Path) -> list[dict[str, float]]:
    """When the workers' streams were late: late intervals grouped into moments.

    A late interval (over 40 ms) ends with the packet that came late; those
    within 100 ms of each other are one moment. Many streams late at one
    moment and nowhere else is the whole core held up for a while (another
    process, the VM); late intervals spread over the window is the load.
    """
    packets: dict[tuple[int, int, int], list[float]] = {}
    first = None
    for when, source, destination, payload in udp_datagrams(capture):
        first = when if first is None else first
        if WORKER_RTP[0] <= source <= WORKER_RTP[1] and is_rtp(payload):
            ssrc = int.from_bytes(payload[8:12], "big")
            packets.setdefault((source, destination, ssrc), []).append(when)
    late: list[tuple[float, float, tuple[int, int, int]]] = []
    for stream, times in packets.items():
        for before, after in itertools.pairwise(times):
            if after - before > MAX_INTERVAL:
                late.append((after, after - before, stream))
    moments: list[dict[str, Any]] = []
    for when, interval, stream in sorted(late):
        if not moments or when - moments[-1]["last"] > 0.1:
            moments.append(
                {"last": when, "at_s": when - (first or when), "worst": 0.0, "of": set()}
            )
        moment = moments[-1]
        moment["last"] = when
        moment["worst"] = max(moment["worst"], interval)
        moment["of"].add(stream)
    return [
        {"at_s": round(m["at_s"], 2), "streams": len(m["of"]), "worst_ms": round(m["worst"] * 1000)}
        for m in moments
    ]


async def concurrency_level(bench: Bench, calls_wanted: int) -> dict[str, Any]:
    """One level on a fresh server (see the module)."""
    if bench.spoken is None:
        bench.spoken = await asyncio.to_thread(write_markers, bench.work / "prompts-spoken", True)
    prompts = bench.spoken
    made = accounts(calls_wanted, f"{bench.seed} level {calls_wanted}")
    workers = calls_wanted // 2 + 2
    server = await bench.server(f"level-{calls_wanted}", workers, prompts, 160, made)
    figures: dict[str, Any] = {"calls": calls_wanted, "media_workers": workers, "passed": False}
    callers = Callers(bench.work, server.edge_port, MarkerDetector(prompts.frequencies))
    try:
        cpu, since = server.cpu_seconds(), time.monotonic()
        await asyncio.sleep(5)
        figures["idle_cpu_percent_of_core"] = round(
            (server.cpu_seconds() - cpu) / (time.monotonic() - since) * 100, 1
        )
        for index, account in enumerate(made):
            script = Script(
                account.number, account.postal_code, random.Random(index), None, bench.endings
            )
            method = METHODS[index % 2]
            await callers.add(Call(index, method, script, prompts.durations, True, None))
        started = time.time()
        callers.start(RAMP_RATE)
        # The window opens once every call has reached secure capture at least once,
        # so the calls are spread over the whole flow, card entry included.
        deadline = time.monotonic() + calls_wanted / RAMP_RATE + SETTLE_LIMIT
        while time.monotonic() < deadline:
            if callers.up() == calls_wanted and all(map(_paid_once, callers.calls)):
                break
            await asyncio.sleep(0.5)
        up, paying = callers.up(), sum(map(_paid_once, callers.calls))
        figures["calls_reached_secure_capture"] = paying
        if up < calls_wanted or paying < calls_wanted:
            figures["reason"] = f"{up} calls up, {paying} reached secure capture"
            log(f"  {calls_wanted} calls: {figures['reason']}")
            return figures
        tried: list[dict[str, Any]] = []
        for attempt in range(1, WINDOW_TRIES + 1):
            before = await jitter_buffer_totals(server.data_dir, started)
            window = await asyncio.to_thread(
                measure_window, server, bench.work / f"rtp-{calls_wanted}-{attempt}.pcap"
            )
            await asyncio.sleep(1.5)
            after = await jitter_buffer_totals(server.data_dir, started)
            tried.append(
                {
                    "late_streams": window["sent"].late_streams,
                    "worst_interval_ms": round(window["sent"].worst_interval_ms, 1),
                    "callers_late_streams": window["generator"].late_streams,
                    "server_cpu_percent_of_core": round(window["cpu"], 1),
                }
            )
            if window["generator"].late_streams == 0:
                break
            log(f"  window {attempt}: the callers' own RTP was late; measuring again")
        figures.update(level_figures(bench, callers, window, before, after, attempt))
        figures["windows"] = tried
    finally:
        await callers.stop()
        await asyncio.to_thread(server.stop)
    log(f"  {calls_wanted} calls: {json.dumps(figures)}")
    return figures


def _paid_once(call: Call) -> bool:
    return any(key == "secure.card_number" for _, key in call.heard)


def level_figures(
    bench: Bench,
    callers: Callers,
    window: dict[str, Any],
    before: tuple[int, int, int],
    after: tuple[int, int, int],
    tries: int,
) -> dict[str, Any]:
    """A level's figures from its window, and whether it passed."""
    calls = callers.calls
    start, end = window["started"], window["ended"]
    sent: FrameTiming = window["sent"]
    generator: FrameTiming = window["generator"]
    still_up = sum(1 for c in calls if not c.ended and not c.gave_up)
    prompts = sum(1 for c in calls for when, _ in c.heard if start <= when <= end)
    keying = sum(1 for c in calls if any(start <= when <= end for when, _ in c.presses))
    charges = sum(1 for charge in bench.gateway.all_charges() if start <= charge.arrived <= end)
    reasons = []
    if still_up < len(calls):
        reasons.append(f"{len(calls) - still_up} calls ended")
    if sent.streams < len(calls):
        reasons.append(f"{sent.streams} RTP streams from the workers, not {len(calls)}")
    if sent.late_streams or sent.sequence_gaps:
        reasons.append("prompt frames late or missing")
    return {
        "passed": not reasons,
        "reason": "; ".join(reasons),
        "server_cpu_percent_of_core": round(window["cpu"], 1),
        "server_cpu_percent_by_process": window["cpu_by_kind"],
        "cpu_percent_per_call": round(window["cpu"] / len(calls), 3),
        "pss_mb": round(window["pss"], 1),
        "load_core_busy_percent": round(window["load_core"], 1),
        "rtp_streams_from_workers": sent.streams,
        "late_streams": sent.late_streams,
        "worst_interval_ms": round(sent.worst_interval_ms, 1),
        "sequence_gaps": sent.sequence_gaps,
        "callers_late_streams": generator.late_streams,
        "callers_worst_interval_ms": round(generator.worst_interval_ms, 1),
        "prompts_started_in_window": prompts,
        "calls_keying_in_window": keying,
        "charges_in_window": charges,
        "window_jbuf_lost": after[0] - before[0],
        "window_jbuf_discarded": after[1] - before[1],
        "window_rtp_never_came": after[2] - before[2],
        "windows_measured": tries,
        "late_moments": window["late_moments"][:10],
        "late_moment_count": len(window["late_moments"]),
        "refusals_so_far": sum(
            c.script.identification_refusals
            + c.script.menu_refusals
            + sum(1 for a in c.script.attempts for e in a.entries if e.verdict)
            for c in calls
            if c.script is not None
        ),
    }
