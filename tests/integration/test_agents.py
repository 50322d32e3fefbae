from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator

import asyncpg
import pytest

from assistline.queue.agents import (
    AgentDirectory,
    AgentError,
    AgentExistsError,
    AgentNotFoundError,
    AgentState,
    sip_ha1,
)

PASSWORD = "correct horse battery"


@pytest.fixture
async def directory(database_url: str) -> AsyncIterator[AgentDirectory]:
    pool = await asyncpg.create_pool(database_url, min_size=1, max_size=2)
    try:
        yield AgentDirectory(pool, realm="assistline")
    finally:
        await pool.close()


def test_ha1_is_the_rfc_2617_digest() -> None:
    # RFC 2617 section 3.5: Mufasa / testrealm@host.com / Circle Of Life.
    assert sip_ha1("Mufasa", "testrealm@host.com", "Circle Of Life") == (
        "939e7578ed9e3c518a452acee763bce9"
    )


async def test_create_get_list_and_state(directory: AgentDirectory) -> None:
    created = await directory.create("a-1", "Ada Agent", "ada", PASSWORD)
    assert (created.id, created.name, created.sip_username) == ("a-1", "Ada Agent", "ada")
    assert created.state is AgentState.OFFLINE
    await directory.create("a-2", "Bo Agent", "bo", PASSWORD)
    assert [a.id for a in await directory.all()] == ["a-1", "a-2"]
    available = await directory.set_state("a-1", AgentState.AVAILABLE)
    assert available.state is AgentState.AVAILABLE
    assert available.state_since >= created.state_since
    assert (await directory.get("a-1")).state is AgentState.AVAILABLE


async def test_only_the_ha1_is_stored(directory: AgentDirectory, database_url: str) -> None:
    await directory.create("a-1", "Ada Agent", "ada", PASSWORD)
    expected = hashlib.md5(f"ada:assistline:{PASSWORD}".encode()).hexdigest()
    assert await directory.credentials() == [("ada", expected)]
    connection = await asyncpg.connect(database_url)
    try:
        row = await connection.fetchrow("SELECT * FROM agent")
    finally:
        await connection.close()
    assert row is not None
    assert PASSWORD not in " ".join(str(value) for value in row.values())
    await directory.set_password("a-1", "another long password")
    assert await directory.credentials() == [
        ("ada", sip_ha1("ada", "assistline", "another long password"))
    ]


async def test_bad_input_names_the_field(directory: AgentDirectory) -> None:
    with pytest.raises(AgentError, match="^id must be"):
        await directory.create("bad id", "Ada", "ada", PASSWORD)
    with pytest.raises(AgentError, match="^sip_username must be"):
        await directory.create("a-1", "Ada", "ada@example", PASSWORD)
    with pytest.raises(AgentError, match="^password must be at least 12 characters$"):
        await directory.create("a-1", "Ada", "ada", "short")
    with pytest.raises(AgentError, match="^name must be"):
        await directory.create("a-1", "", "ada", PASSWORD)
    assert await directory.all() == []


async def test_duplicates_and_unknown_agents(directory: AgentDirectory) -> None:
    await directory.create("a-1", "Ada", "ada", PASSWORD)
    with pytest.raises(AgentExistsError):
        await directory.create("a-1", "Other", "other", PASSWORD)
    with pytest.raises(AgentExistsError):
        await directory.create("a-2", "Other", "ada", PASSWORD)
    with pytest.raises(AgentNotFoundError, match="no agent has id 'nobody'"):
        await directory.get("nobody")
    with pytest.raises(AgentNotFoundError):
        await directory.set_state("nobody", AgentState.BUSY)
