"""What bench/ivr.py's parts share: a fresh server for the payment line, and running a batch.

:class:`Bench` holds the work directory, the payment provider (its URL is
the server's ``ivr.gateway_url``), the short marker prompts and the flow's
endings; :meth:`Bench.server` starts ``assistline serve`` on the server's
core with the accounts of its callers in its database. :func:`run_calls`
places a batch and waits for its calls to end; with ``--keep`` it leaves a
post-mortem of each call (what it heard and keyed, with the synthetic test
cards) in the work directory.
"""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path
from typing import Any

import asyncpg
from _ivr_caller import Call, Callers
from _ivr_gateway import SECRET_KEY, FakeGateway
from _ivr_media import MarkerDetector
from _ivr_prompts import Account, MarkerPrompts, create_accounts, flow_endings, write_markers
from _server import Server, log

from assistline.store.database import EMBEDDED_DATABASE
from assistline.store.embedded import EmbeddedPostgres

#: Calls placed per second in the accuracy and latency batches.
BATCH_RATE = 4


class Bench:
    """What every part shares: the work directory, the provider and the marker prompts."""

    def __init__(
        self, work: Path, seed: str, gateway: FakeGateway, gateway_url: str, keep: bool
    ) -> None:
        self.work = work
        self.keep = keep
        self.seed = seed
        self.gateway = gateway
        self.gateway_url = gateway_url
        self.short = write_markers(work / "prompts-short", spoken=False)
        self.spoken: MarkerPrompts | None = None
        self.endings = flow_endings()

    async def server(
        self,
        tag: str,
        workers: int,
        prompts: MarkerPrompts,
        wpm: int,
        made: list[Account],
        media_timeout: int = 60,
    ) -> Server:
        """A fresh server with ``workers`` media workers and the accounts ``made``."""
        data_dir = self.work / f"data-{tag}"
        data_dir.mkdir()
        await create_accounts(data_dir, made)
        settings = {
            "ASSISTLINE_IVR_GATEWAY": "http",
            "ASSISTLINE_IVR_GATEWAY_URL": self.gateway_url,
            "ASSISTLINE_IVR_GATEWAY_SECRET_KEY": SECRET_KEY,
            "ASSISTLINE_IVR_PROMPTS_DIR": str(prompts.directory),
            "ASSISTLINE_IVR_TTS_WORDS_PER_MINUTE": str(wpm),
            "ASSISTLINE_SIP_MEDIA_TIMEOUT": str(media_timeout),
        }
        server = Server(data_dir, record=True, workers=workers, settings=settings)
        await asyncio.to_thread(server.start)
        return server


async def worker_view(data_dir: Path, since: float) -> dict[str, int]:
    """What the media workers reported receiving on the legs started after ``since`` (epoch s).

    Their own count of the RTP that never came and of the largest interarrival
    jitter: the loss and jitter the bench injected, as the line saw them.
    """
    await asyncio.sleep(3)  # the last legs' figures come with or just after their hang-up
    connection = await asyncpg.connect(EmbeddedPostgres(data_dir).dsn(EMBEDDED_DATABASE))
    try:
        row = await connection.fetchrow(
            "SELECT count(*) AS legs, coalesce(sum(rx_packets), 0) AS rtp_received,"
            " coalesce(sum(rx_lost), 0) AS rtp_never_came,"
            " coalesce(max(rx_jitter_max_ms), 0) AS jitter_max_ms,"
            " coalesce(sum(jbuf_lost), 0) AS jbuf_lost,"
            " coalesce(sum(jbuf_discarded), 0) AS jbuf_discarded"
            " FROM call_record WHERE started_at >= to_timestamp($1)",
            since,
        )
        assert row is not None
        return {f"workers_{key}": int(row[key]) for key in row.keys()}  # noqa: SIM118 - a Record
    finally:
        await connection.close()


async def run_calls(
    bench: Bench, server: Server, calls: list[Call], prompts: MarkerPrompts, timeout: float
) -> tuple[Callers, float, dict[str, int]]:
    """Place ``calls`` and wait for them all to end.

    Returns the batch, the server's CPU meanwhile (% of its core) and what
    the workers reported receiving (:func:`worker_view`).
    """
    callers = Callers(bench.work, server.edge_port, MarkerDetector(prompts.frequencies))
    for call in calls:
        await callers.add(call)
    started = time.time()
    cpu, since = server.cpu_seconds(), time.monotonic()
    callers.start(BATCH_RATE)
    if not await callers.wait(timeout):
        log(f"  {len(calls) - sum(c.ended for c in calls)} calls still up after {timeout:.0f} s")
    cpu_percent = (server.cpu_seconds() - cpu) / (time.monotonic() - since) * 100
    await callers.stop()
    if bench.keep:  # what each call heard and keyed (synthetic test cards), for a post-mortem
        trace = bench.work / f"calls-{time.monotonic_ns()}.json"
        trace.write_text(json.dumps([call_trace(call, since) for call in calls], indent=1))
    return callers, cpu_percent, await worker_view(server.data_dir, started)


def call_trace(call: Call, since: float) -> dict[str, Any]:
    """One call's timeline (seconds from the batch's start) and entries."""
    script = call.script
    return {
        "index": call.index,
        "method": call.method,
        "up": None if call.up_at is None else round(call.up_at - since, 3),
        "last_rx": round(call.last_rx - since, 3),
        "remote": call.remote,
        "strays": call.strays,
        "repeats": call.repeats,
        "gave_up": call.gave_up,
        "heard": [(round(when - since, 3), key) for when, key in call.heard],
        "presses": [(round(when - since, 3), keys) for when, keys in call.presses],
        "account": None if script is None else script.account,
        "ending": None if script is None else script.ending,
        "attempts": []
        if script is None
        else [[(e.field, e.keys, e.verdict) for e in a.entries] for a in script.attempts],
    }


def stall_json(callers: Callers) -> dict[str, Any]:
    """How often, and how long at most, the callers' process sent late."""
    longest = max((until - since for since, until in callers.stalls), default=0.0)
    return {"callers_late_ticks": len(callers.stalls), "callers_latest_ms": round(longest * 1000)}
