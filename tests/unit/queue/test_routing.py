"""Routing contacts to agents: exact effects for arrivals, states, offers and time."""

from __future__ import annotations

import ast
import datetime
import re
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import assistline.queue.routing
from assistline.queue import agents
from assistline.queue.routing import (
    AgentState,
    Contact,
    Effect,
    Media,
    Offer,
    OfferWithdrawn,
    QueueAgent,
    QueuePositions,
    Router,
    VideoUnavailable,
    WorksIn,
)

T0 = datetime.datetime(2025, 3, 3, 9, 0, tzinfo=datetime.UTC)
AVAILABLE, BUSY, OFFLINE, WRAP_UP = (
    AgentState.AVAILABLE,
    AgentState.BUSY,
    AgentState.OFFLINE,
    AgentState.WRAP_UP,
)


def t(seconds: float) -> datetime.datetime:
    return T0 + datetime.timedelta(seconds=seconds)


def phone(agent_id: str) -> QueueAgent:
    return QueueAgent(agent_id, WorksIn.SIP)


def console(agent_id: str) -> QueueAgent:
    return QueueAgent(agent_id, WorksIn.CONSOLE)


def voice(contact_id: str, at: float) -> Contact:
    return Contact(contact_id, t(at), Media.VOICE)


def video(contact_id: str, at: float) -> Contact:
    return Contact(contact_id, t(at), Media.VIDEO)


def router(wrap_up: float = 30, exclusion: float = 30) -> Router:
    return Router(
        wrap_up=datetime.timedelta(seconds=wrap_up),
        exclusion=datetime.timedelta(seconds=exclusion),
    )


def signed_in(r: Router, *agents_at: tuple[QueueAgent, float]) -> None:
    for agent, at in agents_at:
        assert r.agent_state(agent, AVAILABLE, t(at)) == []


# ------------------------------------------------------------ choosing agents


def test_a_contact_goes_to_the_longest_idle_available_agent() -> None:
    r = router()
    a, b, c = phone("a"), phone("b"), phone("c")
    signed_in(r, (b, 1), (a, 2), (c, 3))
    assert r.contact_waiting(voice("x", 10)) == [Offer(voice("x", 10), b)]
    assert r.contact_waiting(voice("y", 11)) == [Offer(voice("y", 11), a)]
    assert r.agent("b").state is BUSY and r.agent("b").offer == "x"
    assert r.offers == {"b": "x", "a": "y"}


def test_equal_idle_times_go_to_the_smallest_agent_id() -> None:
    r = router()
    signed_in(r, (phone("b2"), 5), (phone("a9"), 5), (phone("b1"), 5))
    offers = [r.contact_waiting(voice(f"c{i}", 10 + i)) for i in range(3)]
    assert [effects[0].agent.id for effects in offers if isinstance(effects[0], Offer)] == [
        "a9",
        "b1",
        "b2",
    ]


def test_offline_agents_are_never_offered_a_contact() -> None:
    r = router()
    signed_in(r, (phone("a"), 0))
    assert r.agent_state(phone("a"), OFFLINE, t(1)) == []
    assert r.agent_state(phone("b"), OFFLINE, t(1)) == []
    assert r.contact_waiting(voice("x", 2)) == [QueuePositions({"x": 1})]
    assert r.tick(t(1000)) == []
    assert r.agent_state(phone("b"), AVAILABLE, t(1001)) == [Offer(voice("x", 2), phone("b"))]


def test_busy_and_wrap_up_agents_are_never_offered_a_contact() -> None:
    r = router(wrap_up=60)
    signed_in(r, (phone("a"), 0), (phone("b"), 0))
    assert r.agent_state(phone("a"), BUSY, t(1)) == []
    assert r.agent_state(phone("b"), WRAP_UP, t(1)) == []
    assert r.contact_waiting(voice("x", 2)) == [QueuePositions({"x": 1})]
    assert r.tick(t(60)) == []
    assert r.tick(t(61)) == [Offer(voice("x", 2), phone("b"))]


def test_events_for_unknown_agents_and_contacts_change_nothing() -> None:
    r = router()
    assert r.call_ended("nobody", t(0)) == []
    assert r.offer_declined("x", "nobody", t(0)) == []
    assert r.offer_answered("x", "nobody") == []
    assert r.contact_left("x") == []
    with pytest.raises(LookupError, match="no agent 'nobody' is known to routing"):
        r.agent("nobody")


# ------------------------------------------------------------------ the queue


def test_free_agents_go_to_the_oldest_waiting_contact_first() -> None:
    r = router(wrap_up=0)
    a = phone("a")
    signed_in(r, (a, 0))
    assert r.contact_waiting(voice("x", 1)) == [Offer(voice("x", 1), a)]
    assert r.offer_answered("x", "a") == []
    assert r.contact_waiting(voice("y", 2)) == [QueuePositions({"y": 1})]
    assert r.contact_waiting(voice("z", 3)) == [QueuePositions({"z": 2})]
    assert r.call_ended("a", t(4)) == [Offer(voice("y", 2), a), QueuePositions({"z": 1})]
    assert r.agent("a").idle_since == t(4)
    assert r.queue == ["z"]


def test_a_contact_queued_earlier_goes_before_later_ones_whatever_the_arrival_order() -> None:
    r = router()
    r.contact_waiting(voice("late", 5))
    assert r.contact_waiting(voice("early", 3)) == [QueuePositions({"early": 1, "late": 2})]
    r.contact_waiting(voice("same", 5))
    assert r.queue == ["early", "late", "same"]


def test_positions_are_pushed_only_for_contacts_whose_position_changed() -> None:
    r = router()
    for i, name in enumerate("vwxyz"):
        assert r.contact_waiting(voice(name, i)) == [QueuePositions({name: i + 1})]
    assert r.contact_left("x") == [QueuePositions({"y": 3, "z": 4})]
    assert r.contact_left("z") == []
    assert r.contact_left("z") == []
    assert r.agent_state(phone("a"), AVAILABLE, t(10)) == [
        Offer(voice("v", 0), phone("a")),
        QueuePositions({"w": 1, "y": 2}),
    ]
    assert r.contact_waiting(voice("n", 11)) == [QueuePositions({"n": 3})]
    assert r.queue == ["w", "y", "n"]


def test_a_contact_cannot_wait_twice() -> None:
    r = router()
    r.contact_waiting(voice("x", 0))
    with pytest.raises(ValueError, match="contact 'x' is already waiting"):
        r.contact_waiting(voice("x", 1))


# ------------------------------------------------------------- declined offers


def test_a_declined_contact_goes_back_to_the_front_and_to_the_next_agent() -> None:
    r = router()
    a, b = phone("a"), phone("b")
    signed_in(r, (a, 0))
    assert r.contact_waiting(voice("x", 1)) == [Offer(voice("x", 1), a)]
    r.contact_waiting(voice("y", 2))
    r.contact_waiting(voice("z", 3))
    assert r.queue == ["y", "z"]
    assert r.offer_declined("x", "a", t(4)) == [
        Offer(voice("y", 2), a),
        QueuePositions({"x": 1}),  # z stays second
    ]
    assert r.agent_state(b, AVAILABLE, t(5)) == [
        Offer(voice("x", 1), b),
        QueuePositions({"z": 1}),
    ]


def test_a_declined_contact_is_not_offered_to_that_agent_until_the_exclusion_ends() -> None:
    r = router(exclusion=20)
    a = phone("a")
    signed_in(r, (a, 0))
    r.contact_waiting(voice("x", 1))
    assert r.offer_declined("x", "a", t(10)) == [QueuePositions({"x": 1})]
    assert r.agent("a").state is AVAILABLE
    assert r.next_deadline() == t(30)
    assert r.tick(t(29.999)) == []
    assert r.tick(t(30)) == [Offer(voice("x", 1), a)]
    assert r.next_deadline() is None


def test_a_declining_agent_is_idle_from_the_decline_behind_its_colleagues() -> None:
    r = router()
    a, b, c = phone("a"), phone("b"), phone("c")
    signed_in(r, (a, 0), (b, 5), (c, 6))
    r.contact_waiting(voice("x", 7))
    assert r.offer_declined("x", "a", t(10)) == [Offer(voice("x", 7), b)]
    assert r.agent("a").idle_since == t(10)
    assert r.contact_waiting(voice("y", 11)) == [Offer(voice("y", 11), c)]
    assert r.contact_waiting(voice("z", 12)) == [Offer(voice("z", 12), a)]


def test_an_excluded_oldest_contact_lets_the_next_one_have_the_agent() -> None:
    r = router()
    a = phone("a")
    signed_in(r, (a, 0))
    r.contact_waiting(voice("x", 1))
    r.contact_waiting(voice("y", 2))
    assert r.offer_declined("x", "a", t(3)) == [
        Offer(voice("y", 2), a),
        QueuePositions({"x": 1}),
    ]


def test_late_events_about_an_ended_offer_are_ignored() -> None:
    r = router()
    signed_in(r, (phone("a"), 0))
    r.contact_waiting(voice("x", 1))
    assert r.offer_declined("x", "someone-else", t(2)) == []
    assert r.offer_answered("x", "someone-else") == []
    assert r.contact_left("x") == [OfferWithdrawn(voice("x", 1), phone("a"))]
    assert r.offer_declined("x", "a", t(3)) == []
    assert r.offer_answered("x", "a") == []
    assert r.agent("a").state is AVAILABLE


def test_a_caller_hanging_up_while_ringing_leaves_the_agent_its_idle_time() -> None:
    r = router()
    a, b = phone("a"), phone("b")
    signed_in(r, (a, 0), (b, 1))
    r.contact_waiting(voice("x", 2))
    assert r.contact_left("x") == [OfferWithdrawn(voice("x", 2), a)]
    assert (r.agent("a").state, r.agent("a").idle_since) == (AVAILABLE, t(0))
    assert r.contact_waiting(voice("y", 3)) == [Offer(voice("y", 3), a)]


def test_an_agent_leaving_while_ringing_puts_the_contact_back_at_its_place() -> None:
    r = router()
    a = phone("a")
    signed_in(r, (a, 0))
    r.contact_waiting(voice("x", 1))
    r.contact_waiting(voice("y", 2))
    assert r.agent_state(a, BUSY, t(3)) == []  # busy already: ringing
    assert r.agent_state(a, OFFLINE, t(4)) == [
        OfferWithdrawn(voice("x", 1), a),
        QueuePositions({"x": 1, "y": 2}),
    ]
    assert r.agent_state(a, AVAILABLE, t(5)) == [Offer(voice("y", 2), a)]  # x stays first
    assert r.queue == ["x"]


# -------------------------------------------------------------------- wrap-up


def test_an_agent_wraps_up_for_the_configured_time_after_a_call() -> None:
    r = router(wrap_up=20)
    a = phone("a")
    signed_in(r, (a, 0))
    r.contact_waiting(voice("x", 1))
    assert r.offer_answered("x", "a") == []
    assert r.agent("a").state is BUSY and r.agent("a").offer is None
    assert r.call_ended("a", t(100)) == []
    assert (r.agent("a").state, r.agent("a").wrap_up_until) == (WRAP_UP, t(120))
    assert r.next_deadline() == t(120)
    assert r.contact_waiting(voice("y", 105)) == [QueuePositions({"y": 1})]
    assert r.tick(t(119.5)) == []
    assert r.tick(t(121)) == [Offer(voice("y", 105), a)]
    assert r.agent("a").idle_since == t(120)  # the end of wrap-up, not the late tick


def test_the_agent_idle_since_its_wrap_up_ended_is_behind_one_idle_longer() -> None:
    r = router(wrap_up=10)
    a, b = phone("a"), phone("b")
    signed_in(r, (a, 0))
    r.contact_waiting(voice("x", 1))
    r.offer_answered("x", "a")
    r.call_ended("a", t(2))
    signed_in(r, (b, 5))
    assert r.tick(t(30)) == []
    assert (r.agent("a").idle_since, r.agent("b").idle_since) == (t(12), t(5))
    assert r.contact_waiting(voice("y", 31)) == [Offer(voice("y", 31), b)]


def test_no_wrap_up_makes_the_agent_available_when_the_call_ends() -> None:
    r = router(wrap_up=0)
    a = phone("a")
    signed_in(r, (a, 0))
    r.contact_waiting(voice("x", 1))
    r.offer_answered("x", "a")
    r.contact_waiting(voice("y", 2))
    assert r.call_ended("a", t(3)) == [Offer(voice("y", 2), a)]


def test_an_agent_can_end_wrap_up_early_or_go_offline_from_it() -> None:
    r = router(wrap_up=60)
    a = phone("a")
    signed_in(r, (a, 0))
    assert r.agent_state(a, WRAP_UP, t(1)) == []
    assert r.agent_state(a, WRAP_UP, t(30)) == []  # the deadline stays
    assert r.agent("a").wrap_up_until == t(61)
    assert r.agent_state(a, OFFLINE, t(40)) == []
    assert r.agent("a").wrap_up_until is None
    assert r.tick(t(100)) == []
    assert r.agent("a").state is OFFLINE
    assert r.call_ended("a", t(101)) == []  # not busy: nothing to wrap up


# ---------------------------------------------------------------------- video


def test_video_goes_to_a_console_agent_even_when_a_phone_agent_idled_longer() -> None:
    r = router()
    signed_in(r, (phone("p"), 0), (console("c2"), 2), (console("c1"), 1))
    assert r.contact_waiting(video("v", 5)) == [Offer(video("v", 5), console("c1"))]
    assert r.contact_waiting(voice("x", 6)) == [Offer(voice("x", 6), phone("p"))]


def test_video_goes_on_as_voice_to_a_phone_agent_when_no_console_agent_is_free() -> None:
    r = router()
    signed_in(r, (phone("p"), 0), (console("c"), 1))
    assert r.agent_state(console("c"), BUSY, t(2)) == []
    assert r.contact_waiting(video("v", 5)) == [
        Offer(video("v", 5), phone("p")),
        VideoUnavailable(video("v", 5)),
    ]


def test_voice_follows_the_longest_idle_rule_whatever_the_agent_works_in() -> None:
    r = router()
    signed_in(r, (console("c"), 0), (phone("p"), 1))
    assert r.contact_waiting(voice("x", 2)) == [Offer(voice("x", 2), console("c"))]
    assert console("c").takes_video and not phone("p").takes_video


# ------------------------------------------------------------------ the rules


def test_naive_times_and_negative_durations_are_refused() -> None:
    with pytest.raises(ValueError, match="times must be timezone-aware"):
        router().tick(datetime.datetime(2025, 1, 1))
    with pytest.raises(ValueError, match="wrap_up and exclusion must not be negative"):
        router(wrap_up=-1)


def test_agent_states_are_the_ones_stored_in_the_agent_table() -> None:
    assert {s.value for s in AgentState} == {s.value for s in agents.AgentState}
    sql = Path(agents.__file__).parent.parent / "store/migrations/0002_agent.sql"
    stored = re.search(r"state IN \(([^)]*)\)", sql.read_text())
    assert stored is not None
    assert {s.strip(" '") for s in stored.group(1).split(",")} == {s.value for s in AgentState}


def test_routing_is_sans_io() -> None:
    path = Path(assistline.queue.routing.__file__)
    imported: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            imported |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            imported.add(node.module)
    assert imported <= {"__future__", "bisect", "dataclasses", "datetime", "enum", "itertools"} | {
        "collections.abc"
    }


# ------------------------------------------------------------ many at random

AGENTS = [phone("a0"), phone("a1"), console("a2"), console("a3")]
WRAP_UP_S, EXCLUSION_S = 15, 10
_op = st.tuples(
    st.sampled_from(["arrive"] * 3 + ["state"] * 3 + ["decline", "answer", "leave", "end", "tick"]),
    st.integers(0, 15),
    st.integers(0, 6),
)
_STATES = [AVAILABLE, AVAILABLE, OFFLINE, BUSY, AVAILABLE, WRAP_UP, AVAILABLE]


@settings(max_examples=300, deadline=None)
@given(ops=st.lists(_op, max_size=100))
def test_random_traffic_keeps_the_invariants(ops: list[tuple[str, int, int]]) -> None:
    """No agent holds two offers, offers go to available agents, the queue is FIFO."""
    r = router(wrap_up=WRAP_UP_S, exclusion=EXCLUSION_S)
    clock = seen = 0  # seen: the router's time, which untimed events leave as it was
    created: list[Contact] = []
    active: dict[str, str] = {}  # agent -> contact, from the effects
    excluded: dict[tuple[str, str], float] = {}  # (contact, agent) -> until
    shown: dict[str, int] = {}
    order = {}  # contact -> (queued_at, arrival)
    for kind, n, step in ops:
        clock += step
        now = t(clock)
        before = {a.id: r.agent(a.id) for a in AGENTS if a.id in _known(r)}
        releasing: set[str] = set()
        timed = kind not in ("answer", "leave")
        effects: list[Effect]
        if kind == "arrive":
            contact = Contact(f"c{len(created)}", now, Media.VIDEO if n % 3 == 0 else Media.VOICE)
            order[contact.id] = (clock, len(created))
            created.append(contact)
            effects = r.contact_waiting(contact)
        elif kind == "state":
            agent, state = AGENTS[n % 4], _STATES[(n + step) % 7]
            if state is AVAILABLE:
                releasing.add(agent.id)
            effects = r.agent_state(agent, state, now)
            if state is not BUSY and agent.id in active:
                assert effects[0] == OfferWithdrawn(_contact(created, active[agent.id]), agent)
                excluded[(active.pop(agent.id), agent.id)] = clock + EXCLUSION_S
        elif kind in ("decline", "answer"):
            if not active:  # a late decline: nothing but time moves on
                effects = r.offer_declined("gone", "a0", now)
                assert not any(isinstance(e, OfferWithdrawn) for e in effects)
                timed = True
            elif kind == "decline":
                agent_id, contact_id = sorted(active.items())[n % len(active)]
                del active[agent_id]
                releasing.add(agent_id)
                excluded[(contact_id, agent_id)] = clock + EXCLUSION_S
                effects = r.offer_declined(contact_id, agent_id, now)
            else:
                agent_id, contact_id = sorted(active.items())[n % len(active)]
                del active[agent_id]
                effects = r.offer_answered(contact_id, agent_id)
                assert effects == [] and r.agent(agent_id).state is BUSY
        elif kind == "leave":
            if not created:
                continue
            contact = created[n % len(created)]
            holder = next((a for a, c in active.items() if c == contact.id), None)
            effects = r.contact_left(contact.id)
            if holder is not None:
                releasing.add(holder)
                del active[holder]
                assert effects[0] == OfferWithdrawn(contact, _agent(holder))
        elif kind == "end":
            effects = r.call_ended(AGENTS[n % 4].id, now)
        else:
            effects = r.tick(now)
        if timed:
            seen = clock
            releasing |= {
                a
                for a, s in before.items()
                if s.state is WRAP_UP and s.wrap_up_until is not None and s.wrap_up_until <= now
            }
        for index, effect in enumerate(effects):
            if isinstance(effect, Offer):
                agent_id, contact_id = effect.agent.id, effect.contact.id
                assert agent_id not in active, "an agent holds two offers"
                assert contact_id not in active.values(), "a contact is offered twice"
                was = before.get(agent_id)
                assert agent_id in releasing or (was is not None and was.state is AVAILABLE)
                assert excluded.get((contact_id, agent_id), -1) <= seen
                active[agent_id] = contact_id
                shown.pop(contact_id, None)
                is_voice_for_video = effect.contact.media is Media.VIDEO and (
                    not effect.agent.takes_video
                )
                follows = effects[index + 1 : index + 2]
                assert (follows == [VideoUnavailable(effect.contact)]) == is_voice_for_video
            elif isinstance(effect, QueuePositions):
                assert index == len(effects) - 1
                for contact_id, position in effect.positions.items():
                    assert shown.get(contact_id) != position, "an unchanged position was pushed"
                shown.update(effect.positions)
        assert r.offers == active
        queue = r.queue
        assert queue == sorted(queue, key=order.__getitem__), "the queue is not FIFO"
        shown = {c: p for c, p in shown.items() if c in queue}
        assert shown == {c: i for i, c in enumerate(queue, start=1)}
        free = [a for a in _known(r) if r.agent(a).state is AVAILABLE]
        for contact_id in queue:
            for agent_id in free:
                assert excluded.get((contact_id, agent_id), -1) > seen, "a free agent idles"
        for offer in (e for e in effects if isinstance(e, Offer)):  # agents it passed over
            chosen = r.agent(offer.agent.id)
            for other in (r.agent(a) for a in free):
                if excluded.get((offer.contact.id, other.agent.id), -1) > seen:
                    continue
                if offer.contact.media is Media.VIDEO:
                    assert offer.agent.takes_video or not other.agent.takes_video
                    if offer.agent.takes_video and not other.agent.takes_video:
                        continue
                assert (chosen.idle_since, offer.agent.id) < (other.idle_since, other.agent.id)


def _known(r: Router) -> set[str]:
    known = set()
    for agent in AGENTS:
        try:
            r.agent(agent.id)
        except LookupError:
            continue
        known.add(agent.id)
    return known


def _contact(created: list[Contact], contact_id: str) -> Contact:
    return next(c for c in created if c.id == contact_id)


def _agent(agent_id: str) -> QueueAgent:
    return next(a for a in AGENTS if a.id == agent_id)
