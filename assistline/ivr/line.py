"""Assembling the payment line from the settings: flows, prompts, AR policy, gateway.

:func:`payment_line` builds every part once at start-up, so a broken flow
file, AR policy or missing speech engine stops ``assistline serve`` with a
message naming it, before any caller hears silence. Flows are the shipped
ones (``assistline/ivr/flows``) with those of ``ivr.flows_dir`` on top (a
file of the same name replaces a shipped flow). The ``http`` gateway's
client session lives as long as the line.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import asyncpg

from assistline.ivr.accounts import PaymentLineApplication
from assistline.ivr.assisted import AssistedPayments
from assistline.ivr.calls import IvrCalls
from assistline.ivr.flow_load import BUNDLED_FLOWS, load_flows
from assistline.ivr.gateway import PaymentGateway
from assistline.ivr.gateway_http import HttpGateway
from assistline.ivr.gateway_sandbox import SandboxGateway
from assistline.ivr.payment_desk import PaymentDesk
from assistline.ivr.policy_load import DEFAULT_POLICY_FILE, Channel, load_policy
from assistline.ivr.prompts import EspeakSynthesiser, Prompts
from assistline.ivr.transfer import QueueTransfer
from assistline.queue.contact_calls import ContactCalls
from assistline.settings import Settings
from assistline.sip.recordings import RecordingStore
from assistline.sip.records import CallRecords
from assistline.sip.routing import Commands
from assistline.tasks import TaskRegistry


@contextlib.asynccontextmanager
async def payment_line(
    settings: Settings,
    pool: asyncpg.Pool,
    commands: Commands,
    tasks: TaskRegistry,
    records: CallRecords,
    recordings: RecordingStore,
    recordings_dir: Path,
    contacts: ContactCalls | None = None,
) -> AsyncIterator[IvrCalls]:
    """The payment line's calls, for the duration of the context.

    With ``contacts``, agents connected to a contact can take a secure
    payment from it too (:mod:`assistline.ivr.assisted`), through the same
    gateway and prompts.
    """
    ivr = settings.ivr
    flows = load_flows(BUNDLED_FLOWS)
    if ivr.flows_dir is not None:
        flows.update(load_flows(ivr.flows_dir))
    policy = load_policy(ivr.ar_policy_file or DEFAULT_POLICY_FILE)
    cache_dir = ivr.prompt_cache_dir or settings.store.data_dir / "prompts"
    cache_dir.mkdir(parents=True, exist_ok=True)
    synthesiser = EspeakSynthesiser(ivr.tts_voice, ivr.tts_words_per_minute)
    prompts = Prompts(cache_dir, synthesiser, ivr.prompts_dir)
    async with contextlib.AsyncExitStack() as stack:
        gateway: PaymentGateway
        if ivr.gateway == "http":
            session = await stack.enter_async_context(aiohttp.ClientSession())
            gateway = HttpGateway(
                session,
                base_url=ivr.gateway_url,
                secret_key=ivr.gateway_secret_key,
                attempt_timeout=ivr.gateway_attempt_timeout,
                max_attempts=ivr.gateway_max_attempts,
            )
        else:
            gateway = SandboxGateway()
        desk = PaymentDesk(commands, gateway, prompts, pool, tasks)
        if contacts is not None:
            AssistedPayments(
                lambda progress: PaymentDesk(
                    commands,
                    gateway,
                    prompts,
                    pool,
                    tasks,
                    channel=Channel.AGENT,
                    on_progress=progress,
                ),
                contacts,
                pool,
                tasks,
            )
        yield IvrCalls(
            commands,
            tasks,
            records,
            line=ivr.payment_line,
            flows=flows,
            prompts=prompts,
            prompts_dir=ivr.prompts_dir,
            application=PaymentLineApplication(pool, policy),
            payments=desk,
            recordings=recordings,
            recordings_dir=recordings_dir,
            handover=None if contacts is None else QueueTransfer(pool, contacts),
        )
