"""IVR payment line benchmark: card digits through the whole path, leaks, latency, calls per core.

The real thing on loopback: ``assistline serve`` (control process, media
workers, Kamailio, embedded PostgreSQL) pinned to core 0; this script (the
callers' RTP, the payment provider), sipp and tcpdump pinned to core 1.
Callers dial the payment line (``ivr.payment_line``, "pay") through the
edge and go through the shipped flow as a person would: account number and
ZIP code, ``1`` to pay in full, then the card in secure capture (number,
expiry, security code, ZIP code). The line's charges go to
``ivr.gateway = http`` pointed at this script's PaymentIntents endpoint
(:mod:`_ivr_gateway`), which is where card data is meant to arrive: the
bench compares what the callers keyed with what the provider received
there, and nothing new is exposed or logged by the server. Callers know
where they are in the flow from the prompts: the bench records each prompt
they need (``ivr.prompts_dir``) opening with its own marker tone
(:mod:`_ivr_prompts`, :mod:`_ivr_media`); prompts that carry the call's
values (balance, total, "charging … to the card ending in …", the
confirmation) stay spoken by eSpeak NG. Keys are G.711 μ-law calls' RFC 4733
events or in-band tones, 200 ms a key, one method a call (:mod:`_ivr_caller`).

**Digit accuracy** (``accuracy``): at each loss rate (0, 1 and 5 %, both
ways, seeded) with 20 ms of jitter (each packet delayed by a uniform
0-20 ms, never reordered), ``--calls`` calls per method each pay
``--attempts`` times (the provider declines all but the last). What was
keyed is matched with what was charged as :mod:`_ivr_results` says; the
JSON gives the exact denominator (``digits_sent``), the wrong digits by
kind and a strict bound. Attempts keyed while this process itself sent
late (a stall of the load generator, which would be counted against the
line) are left out and counted apart. The line hangs up a silent call after
15 s here (``sip.media_timeout``; 60 s by default) so that a caller that
gave up frees its worker slot before the next batch.

**Leaks** (``leak``): at the media worker's protocol, the bench standing in
for the control process (:mod:`_ivr_leak`): a bridged customer and agent,
``secure_start``, card keys by each method at 0 and 1 % loss, and the
agent's received audio run through the DTMF detector (plus any RFC 4733
packet reaching the agent). The agent-assisted payment from the console
serves WebRTC customers only, and the payment line has no agent leg.

**Last key to charge** (``latency``): clean path; ``--latency-calls`` calls
per method pay three times each; from the release (and the press) of the
last key (the ZIP code's fifth digit) to the charge's arrival at the
provider: p50, p95, max.

**Concurrent payment calls** (``concurrency``): each level N on a fresh
server with N/2 + 2 media workers (a payment line call keeps a second slot
of its worker for an agent). N callers (half of each method) ramp at 5/s,
listen to each prompt to its end (spoken prompts, 160 words a minute) and
key, and pay with cards the provider declines, round and round, so every
call keeps hearing prompts, keying and entering secure capture. Once all
N have reached secure capture once (so the calls are spread over the
whole flow), a 10 s window measures the server's CPU (every process
under ``serve``) and PSS, and tcpdump captures the RTP on ``lo``: a level
passes when every call is still up and each of the N streams the workers
send (the prompts, and silence between them) had no interval over 40 ms
and no gap in its sequence. When the callers' own streams were late too
(this VM stalls), the window is measured again, up to three times.

Targets (exit 1 when one measured is missed, by how much on stderr):
≥ 99.9 % of digits correct at 1 % loss for both methods; 0 digits leaked to
the agent leg; ≥ 50 concurrent payment calls per core with prompts on time.
Progress on stderr; one JSON object as the last line of stdout. ``--keep``
keeps the work directory: the server logs, and per batch what each call
heard and keyed (synthetic test cards only).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import shutil
import sys
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from aiohttp import web

sys.path.insert(0, str(Path(__file__).parent))

# bench/ is on sys.path just above.
from _ivr_bench import Bench, run_calls, stall_json  # noqa: E402
from _ivr_caller import Call, Callers, Script  # noqa: E402
from _ivr_concurrency import concurrency_level  # noqa: E402
from _ivr_gateway import FakeGateway  # noqa: E402
from _ivr_leak import ControlSocket, leak_condition  # noqa: E402
from _ivr_media import METHODS, Impairment  # noqa: E402
from _ivr_prompts import Account, accounts  # noqa: E402
from _ivr_results import Accuracy, latency_json  # noqa: E402
from _server import LOAD_CORE, log  # noqa: E402

PARTS = ("accuracy", "leak", "latency", "concurrency")
TARGET_ACCURACY = 99.9
TARGET_CALLS = 50
TARGET_LOSS = 1.0
LOSSES = (0.0, 1.0, 5.0)
LEVELS = (20, 30, 40, 50, 75)
JITTER = 0.020
#: The accuracy and latency parts speak the valued prompts fast (the integration test's speed).
FAST_WORDS_PER_MINUTE = 450


def payment_calls(
    bench: Bench, made: Iterator[Account], per_method: int, attempts: int, loss: float | None
) -> list[Call]:
    """``per_method`` calls of each method (interleaved), each paying ``attempts`` times."""
    calls: list[Call] = []
    for index in range(per_method):
        for method in METHODS:
            account = next(made)
            tag = f"{bench.seed} {loss} {method} {index}"
            impair = None
            if loss is not None:
                out = Impairment(loss / 100, JITTER, random.Random(f"{tag} to server"))
                back = Impairment(loss / 100, JITTER, random.Random(f"{tag} to caller"))
                impair = (out, back)
            script = Script(
                account.number, account.postal_code, random.Random(tag), attempts, bench.endings
            )
            bench.gateway.plan[account.number] = attempts
            durations = bench.short.durations
            calls.append(Call(len(calls), method, script, durations, False, impair))
    return calls


def tally(bench: Bench, callers: Callers, method: str) -> Accuracy:
    """The accuracy figures of the batch's calls made with ``method``."""
    figures = Accuracy()
    for call in callers.calls:
        if call.method == method and call.script is not None:
            charges = bench.gateway.charges.get(call.script.account, [])
            figures.add(call, charges, callers.stalls)
            figures.add_path(call)
    return figures


async def accuracy_and_latency(
    bench: Bench, args: argparse.Namespace, parts: set[str]
) -> dict[str, Any]:
    """Both parts on one server (marker prompts, the provider, valued prompts at 450 wpm)."""
    losses = [float(x) for x in args.losses.split(",") if x] if "accuracy" in parts else []
    latency_calls = args.latency_calls if "latency" in parts else 0
    needed = 2 * args.calls * len(losses) + 2 * latency_calls
    made = accounts(needed, f"{bench.seed} accuracy")
    found = iter(made)
    workers = max(args.calls, latency_calls) + 2
    # A caller that gives up (a transfer to an agent, a stuck call) goes silent, and the
    # line hangs up 15 s later instead of 60, so the next batch finds its worker slots free.
    server = await bench.server(
        "accuracy", workers, bench.short, FAST_WORDS_PER_MINUTE, made, media_timeout=15
    )
    out: dict[str, Any] = {"accuracy": {}, "latency": None}
    try:
        for loss in losses:
            log(
                f"accuracy at {loss:g} % loss, {JITTER * 1000:.0f} ms jitter: "
                f"{2 * args.calls} calls, {args.attempts} payments each"
            )
            calls = payment_calls(bench, found, args.calls, args.attempts, loss)
            callers, cpu, seen = await run_calls(
                bench, server, calls, bench.short, 120 + 60 * args.attempts
            )
            level: dict[str, Any] = {
                "server_cpu_percent_of_core": round(cpu, 1),
                **stall_json(callers),
                **seen,
            }
            log(
                f"  server {cpu:.0f} % of its core; callers late: {json.dumps(stall_json(callers))}"
                f"; workers saw {json.dumps(seen)}"
            )
            for method in METHODS:
                level[method] = tally(bench, callers, method).as_json()
                log(
                    f"  {method}: {level[method]['digits_correct']} of "
                    f"{level[method]['digits_sent']} digits correct "
                    f"({level[method]['digits_correct_percent']} %); refusals "
                    f"{level[method]['refusals']}; endings {level[method]['endings']}; "
                    f"{level[method]['attempts_left_out_callers_late']} attempts left out"
                )
            out["accuracy"][f"{loss:g}"] = level
        if latency_calls:
            log(f"latency: {2 * latency_calls} calls on a clean path, 3 payments each")
            calls = payment_calls(bench, found, latency_calls, 3, None)
            callers, cpu, _ = await run_calls(bench, server, calls, bench.short, 300)
            latency: dict[str, Any] = {"server_cpu_percent_of_core": round(cpu, 1)}
            latency |= stall_json(callers)
            both = Accuracy()
            for method in METHODS:
                figures = tally(bench, callers, method)
                latency[method] = latency_json(figures)
                both.release_ms += figures.release_ms
                both.press_ms += figures.press_ms
            latency["both"] = latency_json(both)
            log(f"  last key released to charge: {json.dumps(latency['both'])}")
            out["latency"] = latency
    finally:
        await asyncio.to_thread(server.stop)
    return out


async def leak_part(bench: Bench, args: argparse.Namespace) -> dict[str, Any]:
    """Each method at 0 and 1 % loss, at the same time, each on its own worker."""
    control = ControlSocket(bench.work / "leak.sock")
    await control.start()
    try:
        log("leak: bridged customer and agent on a media worker, keys in the secure window")
        conditions = [(m, loss) for m in METHODS for loss in (0.0, TARGET_LOSS / 100)]
        found = await asyncio.gather(
            *(
                leak_condition(control, bench.work, method, loss, args.leak_cards, 20000 + 100 * i)
                for i, (method, loss) in enumerate(conditions)
            )
        )
    finally:
        await control.close()
    return {
        "measured_at": "media worker protocol, the bench as control process "
        "(no agent leg on the payment line; console payments are WebRTC only)",
        "digits_leaked": sum(c["leaked"] for c in found),
        "card_digits_keyed": sum(c["card_digits_in_window"] for c in found),
        "instrument_ok": all(c["instrument_ok"] for c in found),
        "conditions": found,
    }


async def run(args: argparse.Namespace, parts: set[str], work: Path) -> dict[str, Any]:
    """Every part asked for, with the provider up throughout."""
    gateway = FakeGateway()
    runner = web.AppRunner(gateway.app(), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    bench = Bench(work, args.seed, gateway, f"http://127.0.0.1:{port}", args.keep)
    result: dict[str, Any] = {"load_average_at_start": [round(x, 2) for x in os.getloadavg()]}
    try:
        if parts & {"accuracy", "latency"}:
            result.update(await accuracy_and_latency(bench, args, parts))
        if "leak" in parts:
            result["leak"] = await leak_part(bench, args)
        if "concurrency" in parts:
            levels = []
            for calls in [int(n) for n in args.levels.split(",") if n]:
                log(f"concurrency: {calls} payment calls")
                levels.append(await concurrency_level(bench, calls))
                if not levels[-1]["passed"]:
                    break  # higher levels fail the same way
            result["concurrency"] = levels
        result["gateway_requests"] = gateway.requests
        result["gateway_refused"] = gateway.refused
        result["load_average_at_end"] = [round(x, 2) for x in os.getloadavg()]
    finally:
        await runner.cleanup()
    return result


def verdicts(result: dict[str, Any]) -> tuple[dict[str, bool | None], list[str]]:
    """Each target met, missed (with by how much) or not measured (None)."""
    met: dict[str, bool | None] = {}
    misses = []
    at_target: dict[str, Any] | None = result.get("accuracy", {}).get(f"{TARGET_LOSS:g}")
    for method in METHODS:
        key = f"digit_accuracy_{method}"
        if at_target is None:
            met[key] = None
            continue
        found = at_target[method]["digits_correct_percent"]
        met[key] = found is not None and found >= TARGET_ACCURACY
        if not met[key]:
            misses.append(
                f"{method} at 1 % loss: {found} % of {at_target[method]['digits_sent']} digits "
                f"correct, target {TARGET_ACCURACY} % (short by "
                f"{TARGET_ACCURACY - (found or 0):.3f} points)"
            )
    leak: dict[str, Any] | None = result.get("leak")
    met["no_digit_leaked"] = None
    if leak is not None:
        met["no_digit_leaked"] = leak["digits_leaked"] == 0 and leak["instrument_ok"]
    if leak is not None and not met["no_digit_leaked"]:
        misses.append(
            f"{leak['digits_leaked']} digits leaked to the agent leg "
            f"(instrument ok: {leak['instrument_ok']}); target 0"
        )
    levels = result.get("concurrency")
    best = max((lv["calls"] for lv in levels or [] if lv["passed"]), default=0)
    met["concurrent_calls"] = None if levels is None else best >= TARGET_CALLS
    if met["concurrent_calls"] is False:
        misses.append(
            f"{best} concurrent payment calls per core with prompts on time; "
            f"target {TARGET_CALLS} (short by {TARGET_CALLS - best})"
        )
    result["concurrent_payment_calls_per_core"] = None if levels is None else best
    return met, misses


def headline(result: dict[str, Any]) -> dict[str, Any]:
    """The figures the targets speak of, first in the report (None: part not run)."""
    at_target = result.get("accuracy", {}).get(f"{TARGET_LOSS:g}")
    latency = result.get("latency")
    leak = result.get("leak")
    return {
        "digits_correct_percent_at_1_percent_loss": None
        if at_target is None
        else {m: at_target[m]["digits_correct_percent"] for m in METHODS},
        "digits_sent_at_1_percent_loss": None
        if at_target is None
        else {m: at_target[m]["digits_sent"] for m in METHODS},
        "digits_leaked_to_agent": None if leak is None else leak["digits_leaked"],
        "last_key_to_charge_ms": None
        if latency is None
        else {m: latency[m]["from_release"] for m in (*METHODS, "both")},
    }


def main(argv: Sequence[str] | None = None) -> int:
    """Run the parts asked for and print the report."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--parts", default=",".join(PARTS), help="of " + ",".join(PARTS))
    parser.add_argument("--calls", type=int, default=12, help="accuracy calls per method and loss")
    parser.add_argument("--attempts", type=int, default=3, help="payments per accuracy call")
    parser.add_argument("--losses", default=",".join(f"{x:g}" for x in LOSSES), help="loss %%")
    parser.add_argument("--latency-calls", type=int, default=6, help="latency calls per method")
    parser.add_argument("--leak-cards", type=int, default=3, help="cards keyed per leak window")
    parser.add_argument("--levels", default=",".join(map(str, LEVELS)), help="concurrent calls")
    parser.add_argument("--seed", default="assistline", help="seed of loss, jitter and cards")
    parser.add_argument("--keep", action="store_true", help="keep the work directory (logs)")
    args = parser.parse_args(argv)
    parts = {p.strip() for p in args.parts.split(",") if p.strip()}
    if not parts or parts - set(PARTS):
        parser.error(f"--parts takes some of {','.join(PARTS)}")
    for program in ("sipp", "kamailio", "tcpdump"):
        if shutil.which(program, path="/usr/sbin:/usr/bin:/usr/local/bin") is None:
            log(f"bench/ivr.py needs {program}; `make bench` installs it")
            return 2
    if len(os.sched_getaffinity(0)) < 2:
        log("bench/ivr.py needs two cores: the server on one, the callers on the other")
        return 2
    os.sched_setaffinity(0, {LOAD_CORE})  # the callers; the server pins itself to core 0
    work = Path(tempfile.mkdtemp(prefix="assistline-bench-ivr-"))
    log(f"work directory {work}")
    try:
        result = asyncio.run(run(args, parts, work))
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    met, misses = verdicts(result)
    report = {
        "bench": "ivr",
        "parts": sorted(parts),
        **headline(result),
        **result,
        "targets": {
            "digits_correct_percent_at_1_percent_loss": TARGET_ACCURACY,
            "digits_leaked": 0,
            "concurrent_payment_calls_per_core": TARGET_CALLS,
        },
        "met": met,
    }
    for miss in misses:
        log(f"target missed: {miss}")
    print(json.dumps(report))
    return 1 if any(value is False for value in met.values()) else 0


if __name__ == "__main__":
    sys.exit(main())
