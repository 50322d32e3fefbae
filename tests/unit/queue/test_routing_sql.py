"""Routing's SQL: its named queries load beside the store's, under names of their own."""

from __future__ import annotations

from assistline.store.migrations import discover
from assistline.store.queries import QUERIES, load_queries


def test_routing_queries_load_without_clashing_with_the_store_queries() -> None:
    routing = load_queries("assistline.store", "routing.sql")
    assert set(routing) & set(QUERIES) == set()
    assert "FOR UPDATE SKIP LOCKED" in routing["offer_oldest_waiting_contact"]
    assert "FOR UPDATE SKIP LOCKED" in routing["claim_longest_idle_agent"]


def test_the_routing_migration_adds_where_agents_work_and_since_when_they_are_idle() -> None:
    sql = next(m.sql for m in discover() if m.name == "routing")
    assert "works_in" in sql and "idle_since" in sql
