from __future__ import annotations

import pytest

from assistline.store.migrations import discover
from assistline.store.queries import QUERIES, parse_queries


def test_parse_queries_splits_named_blocks() -> None:
    text = "-- header\n\n-- name: one\nSELECT 1;\n\n-- name: two\n-- a comment\nSELECT $1;\n"
    assert parse_queries(text) == {"one": "SELECT 1;", "two": "-- a comment\nSELECT $1;"}


def test_duplicate_and_empty_queries_are_refused() -> None:
    with pytest.raises(ValueError, match="query 'a' is defined twice"):
        parse_queries("-- name: a\nSELECT 1;\n-- name: a\nSELECT 2;\n")
    with pytest.raises(ValueError, match="query 'b' is empty"):
        parse_queries("-- name: b\n\n")


def test_shipped_queries_load() -> None:
    assert QUERIES["ping"] == "SELECT 1;"
    assert "FROM schema_migration" in QUERIES["applied_migrations"]


def test_shipped_migrations_are_numbered_from_one_without_gaps() -> None:
    migrations = discover()
    assert [m.version for m in migrations] == list(range(1, len(migrations) + 1))
    assert [m.name for m in migrations[:2]] == ["audit_event", "agent"]
    assert all(m.sql.strip() for m in migrations)
