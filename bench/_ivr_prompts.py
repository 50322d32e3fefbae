"""bench/ivr.py's set-up of the payment line: recorded marker prompts and the callers' accounts.

**Marker prompts.** The line plays a recording at ``ivr.prompts_dir/<key>.wav``
instead of speech for any prompt (:mod:`assistline.ivr.prompts`), so the
bench records one for each prompt a caller must recognise: every prompt of
the shipped ``payment_line`` flow and of secure capture, except the ones
that carry the call's values, which stay spoken by eSpeak NG through the
line's cache (the balance, the total, the approval with its confirmation
number, the refused amount, and secure capture's "charging … to the card
ending in …", which is on the way from the last key to the charge).
Each recording opens with its own marker tone (:mod:`_ivr_media`). *Short*
prompts are the tone alone (0.29 s), for the accuracy and latency parts,
whose callers key at once. *Spoken* prompts are the tone followed by the
prompt's text spoken by the same engine at the line's default speed (160
words a minute), as long as the real prompt, for the concurrency part.

**Accounts.** One ``account`` row per caller, written before the server
starts (its migrations are applied by :func:`~assistline.store.database.open_store`).
"""

from __future__ import annotations

import dataclasses
import datetime
import random
from pathlib import Path

from _ivr_media import marker_frequencies, marker_wav

from assistline.ivr.flow import Flow, HangupStep, Prompt, TransferStep
from assistline.ivr.flow_load import BUNDLED_FLOWS, load_flows
from assistline.ivr.prompts import EspeakSynthesiser, convert_rate
from assistline.ivr.secure_capture_fields import PROMPTS
from assistline.ivr.verbalise import verbalise
from assistline.settings import StoreSettings
from assistline.store.database import open_store

#: Prompts left to speech: they say the call's own values.
SPOKEN = frozenset(
    {
        "payment_line.say_balance",
        "payment_line.say_total",
        "payment_line.approved",
        "payment_line.amount_refused",
    }
)
#: What a placeholder reads as in a spoken marker prompt's body.
EXAMPLE_VALUE = "forty-two dollars and ten cents"


def _prompts(value: object) -> list[Prompt]:
    if isinstance(value, Prompt):
        return [value]
    if isinstance(value, tuple | list):
        return [prompt for item in value for prompt in _prompts(item)]
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return [p for f in dataclasses.fields(value) for p in _prompts(getattr(value, f.name))]
    return []


def flow_prompts() -> dict[str, str]:
    """Each marker prompt's key and the words it says (flow first, then secure capture)."""
    flow: Flow = load_flows(BUNDLED_FLOWS)["payment_line"]
    texts: dict[str, str] = {}
    for prompt in _prompts(flow.steps):
        if prompt.key not in SPOKEN and prompt.text:
            words = [p if isinstance(p, str) else EXAMPLE_VALUE for p in prompt.text]
            texts.setdefault(prompt.key, " ".join(words))
    for key, utterance in PROMPTS.items():
        texts[key] = verbalise(utterance)
    return texts


def flow_endings() -> dict[str, str]:
    """The flow's steps that end a call: "hangup" or "transfer" (to an agent), by name."""
    flow: Flow = load_flows(BUNDLED_FLOWS)["payment_line"]
    endings = {}
    for step in flow.steps:
        if isinstance(step, HangupStep | TransferStep):
            endings[step.name] = "hangup" if isinstance(step, HangupStep) else "transfer"
    return endings


@dataclasses.dataclass(frozen=True, slots=True)
class MarkerPrompts:
    """The marker of each prompt key, and each recording's length (s) in a prompts directory."""

    directory: Path
    frequencies: dict[str, int]
    durations: dict[str, float]


def write_markers(directory: Path, spoken: bool) -> MarkerPrompts:
    """Record every marker prompt into ``directory`` (see the module)."""
    directory.mkdir(parents=True, exist_ok=True)
    texts = flow_prompts()
    frequencies = marker_frequencies(list(texts))
    synthesiser = EspeakSynthesiser() if spoken else None
    durations = {}
    for key, text in texts.items():
        body = None
        if synthesiser is not None:
            speech = synthesiser.synthesise(text)
            body = convert_rate(speech.samples, speech.rate, 16000)
        durations[key] = marker_wav(directory / f"{key}.wav", frequencies[key], body)
    return MarkerPrompts(directory, frequencies, durations)


@dataclasses.dataclass(frozen=True, slots=True)
class Account:
    """A caller's account: what identifies it on the line."""

    number: str
    postal_code: str


def accounts(count: int, seed: str) -> list[Account]:
    """``count`` accounts with distinct 8-digit numbers and random ZIP codes."""
    rng = random.Random(f"accounts {seed}")
    numbers = rng.sample(range(10_000_000, 100_000_000), count)
    return [Account(str(n), f"{rng.randrange(100000):05d}") for n in numbers]


async def create_accounts(data_dir: Path, made: list[Account]) -> None:
    """Insert the accounts (each owes $42.10 + its index in cents, due in 10 days)."""
    due = datetime.date.today() + datetime.timedelta(days=10)
    async with open_store(StoreSettings(data_dir=data_dir)) as database:
        await database.pool.executemany(
            "INSERT INTO account (number, customer_id, name, postal_code, balance_cents,"
            " minimum_due_cents, due_date) VALUES ($1, $2, 'Bench', $3, $4, 2500, $5)",
            [(a.number, f"bench-{i}", a.postal_code, 4210 + i, due) for i, a in enumerate(made)],
        )
