"""What the agent console is told of routing: offers ring, withdrawn offers end."""

from __future__ import annotations

import datetime

from assistline.queue.contact_call import AgentEvent, agent_events
from assistline.queue.routing import (
    AgentState,
    Contact,
    Media,
    QueueAgent,
    QueuePositions,
    Router,
    VideoUnavailable,
)

T0 = datetime.datetime(2025, 1, 31, 14, 0, tzinfo=datetime.UTC)


def _at(seconds: float) -> datetime.datetime:
    return T0 + datetime.timedelta(seconds=seconds)


def test_an_offer_is_offered_to_its_agent_and_a_contact_leaving_ends_it() -> None:
    router = Router()
    assert agent_events(router.agent_state(QueueAgent("ada"), AgentState.AVAILABLE, T0)) == []
    effects = router.contact_waiting(Contact("c1", _at(1)))
    assert agent_events(effects) == [AgentEvent("ada", "offered", "c1")]
    assert agent_events(router.contact_left("c1")) == [AgentEvent("ada", "ended", "c1")]


def test_an_agent_going_offline_while_ringing_ends_its_offer_and_the_next_agent_is_offered() -> (
    None
):
    router = Router()
    router.agent_state(QueueAgent("ada"), AgentState.AVAILABLE, T0)
    router.agent_state(QueueAgent("bo"), AgentState.AVAILABLE, _at(1))
    assert agent_events(router.contact_waiting(Contact("c1", _at(2)))) == [
        AgentEvent("ada", "offered", "c1")
    ]
    effects = router.agent_state(QueueAgent("ada"), AgentState.OFFLINE, _at(3))
    assert agent_events(effects) == [
        AgentEvent("ada", "ended", "c1"),
        AgentEvent("bo", "offered", "c1"),
    ]


def test_queue_positions_and_video_notices_tell_agents_nothing() -> None:
    router = Router()
    effects = router.contact_waiting(Contact("c1", T0, Media.VIDEO))
    assert any(isinstance(e, QueuePositions) for e in effects)
    assert agent_events(effects) == []
    effects = router.agent_state(QueueAgent("ada"), AgentState.AVAILABLE, _at(1))
    assert any(isinstance(e, VideoUnavailable) for e in effects)
    assert agent_events(effects) == [AgentEvent("ada", "offered", "c1")]
