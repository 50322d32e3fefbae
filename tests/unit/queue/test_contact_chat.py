"""Chat between a contact's page and its agent, through ContactCalls, with no worker or database.

Chat touches neither: a call is put in place as routing and the worker
would leave it, and the page and the watchers are recorders.
"""

from __future__ import annotations

import asyncio
import datetime
import logging
from typing import Any

import pytest

from assistline.queue.agents import Agent, AgentState
from assistline.queue.contact_call import AgentEvent, ContactCall, ContactCallError
from assistline.queue.contact_calls import ContactCalls
from assistline.queue.routing import Media
from assistline.signalling import messages
from assistline.tasks import TaskRegistry

CANARY = "4111 1111 1111 1111"
ADA = Agent("ada", "Ada Agent", "ada", AgentState.BUSY, datetime.datetime.now(datetime.UTC))


class _Page:
    def __init__(self) -> None:
        self.sent: list[messages.ServerMessage] = []

    async def send(self, message: messages.ServerMessage) -> None:
        self.sent.append(message)


async def _calls(tasks: TaskRegistry) -> tuple[ContactCalls, list[AgentEvent]]:
    unused: Any = None  # chat reaches no worker, agent table or call record
    calls = ContactCalls(
        unused,
        unused,
        tasks,
        unused,
        edge="127.0.0.1",
        ice_servers=lambda contact: (),
        console_url=lambda contact: "",
    )
    events: list[AgentEvent] = []
    calls.watchers.append(events.append)
    return calls, events


def _call(page: _Page, *, answered: bool) -> ContactCall:
    return ContactCall(
        "c1", Media.VOICE, page, "w1", "leg-1", connected=True, agent=ADA, agent_answered=answered
    )


async def _settled(tasks: TaskRegistry) -> None:
    """Let the page's send tasks run (the recorder never waits)."""
    for _ in range(3):
        await asyncio.sleep(0)
    assert tasks.names == []


async def test_lines_go_both_ways_masked_and_each_side_sees_its_own(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    tasks = TaskRegistry()
    calls, events = await _calls(tasks)
    page = _Page()
    calls.calls["c1"] = _call(page, answered=True)

    calls.chat("c1", f"my card is {CANARY}, can I pay Friday?")
    calls.agent_chat("ada", "c1", f"Please do not type it: {CANARY.replace(' ', '')}")
    await _settled(tasks)

    customer_line = "my card is [card …1111], can I pay Friday?"
    agent_line = "Please do not type it: [card …1111]"
    assert page.sent == [
        messages.ChatLine(customer_line, "customer"),
        messages.ChatLine(agent_line, "agent"),
    ]
    assert events == [
        AgentEvent("ada", "chat", "c1", customer_line, "customer"),
        AgentEvent("ada", "chat", "c1", agent_line, "agent"),
    ]
    # Nothing of the lines is in the events' repr, or in a log.
    assert "Friday" not in repr(events) and "[card" not in repr(events)
    for needle in ("Friday", "[card", CANARY, "4111111111111111"):
        assert needle not in caplog.text, needle
    await tasks.close()


async def test_chat_before_the_agent_is_connected_is_not_now() -> None:
    tasks = TaskRegistry()
    calls, events = await _calls(tasks)
    page = _Page()
    with pytest.raises(ContactCallError, match="^chat opens when an agent is connected$") as no:
        calls.chat("c1", "hello?")  # no call yet
    assert no.value.code == "not_now"
    calls.calls["c1"] = _call(page, answered=False)  # Ada's phone is ringing
    with pytest.raises(ContactCallError, match="^chat opens when an agent is connected$"):
        calls.chat("c1", "hello?")
    for agent, contact in (("ada", "c1"), ("bo", "c1"), ("ada", "c2")):
        with pytest.raises(ContactCallError, match="connected to the customer") as refused:
            calls.agent_chat(agent, contact, "Hello")
        assert refused.value.code == "not_now"
    # Connected: a line for another agent's call, or another contact, is still refused.
    calls.calls["c1"] = _call(page, answered=True)
    for agent, contact in (("bo", "c1"), ("ada", "c2")):
        with pytest.raises(ContactCallError, match="connected to the customer"):
            calls.agent_chat(agent, contact, "Hello")
    await _settled(tasks)
    assert page.sent == [] and events == []
    await tasks.close()
