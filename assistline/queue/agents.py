"""The agent directory: agents, their phones' credentials and their states.

Agents are rows in PostgreSQL (``agent``, migration 0002). A phone signs in
to the SIP edge with the agent's SIP username and password; SIP digest
authentication can only check a password against HA1 =
md5(username:realm:password), so HA1 is all that is stored, and the edge
is handed (username, HA1) pairs. States (offline, available, busy,
wrap-up) drive routing; each change records when it happened, so routing
can pick the longest-idle agent.
"""

from __future__ import annotations

import dataclasses
import datetime
import enum
import hashlib
import re
from typing import Literal

import asyncpg

from assistline.errors import AssistlineError
from assistline.store.queries import QUERIES

_IDENTIFIER = re.compile(r"^[A-Za-z0-9._-]{1,64}$")


class AgentState(enum.StrEnum):
    """Where an agent is, as routing sees it."""

    OFFLINE = "offline"
    AVAILABLE = "available"
    BUSY = "busy"
    WRAP_UP = "wrap_up"


class AgentError(AssistlineError, ValueError):
    """The agent request is invalid; the message names the field."""


class AgentNotFoundError(AssistlineError, LookupError):
    """No agent has that id."""


class AgentExistsError(AssistlineError):
    """An agent with that id or SIP username exists already."""


WorksIn = Literal["sip", "console"]


@dataclasses.dataclass(frozen=True, slots=True)
class Agent:
    """An agent as the rest of the product sees it: never with credentials."""

    id: str
    name: str
    sip_username: str
    state: AgentState
    state_since: datetime.datetime
    #: Where the agent takes contacts: "sip" (the phone) or "console" (the browser).
    works_in: WorksIn = "sip"


def sip_ha1(username: str, realm: str, password: str) -> str:
    """HA1 of SIP digest authentication (RFC 2617/3261): md5(username:realm:password)."""
    return hashlib.md5(f"{username}:{realm}:{password}".encode(), usedforsecurity=False).hexdigest()


def _agent(row: asyncpg.Record) -> Agent:
    return Agent(
        id=row["id"],
        name=row["name"],
        sip_username=row["sip_username"],
        state=AgentState(row["state"]),
        state_since=row["state_since"],
        works_in=row["works_in"],
    )


def _check(agent_id: str, name: str, sip_username: str, password: str) -> None:
    if not _IDENTIFIER.match(agent_id):
        raise AgentError("id must be 1-64 letters, digits, '.', '_' or '-'")
    if not 1 <= len(name) <= 200:
        raise AgentError("name must be 1-200 characters")
    if not _IDENTIFIER.match(sip_username):
        raise AgentError("sip_username must be 1-64 letters, digits, '.', '_' or '-'")
    if len(password) < 12:
        raise AgentError("password must be at least 12 characters")


class AgentDirectory:
    """Agents in PostgreSQL, through a connection pool."""

    def __init__(self, pool: asyncpg.Pool, realm: str) -> None:
        self.pool = pool
        self.realm = realm

    async def create(self, agent_id: str, name: str, sip_username: str, password: str) -> Agent:
        """Add an agent whose phone signs in with ``sip_username`` and ``password``."""
        _check(agent_id, name, sip_username, password)
        try:
            row = await self.pool.fetchrow(
                QUERIES["insert_agent"],
                agent_id,
                name,
                sip_username,
                self.realm,
                sip_ha1(sip_username, self.realm, password),
            )
        except asyncpg.UniqueViolationError:
            raise AgentExistsError(
                f"an agent with id {agent_id!r} or SIP username {sip_username!r} exists already"
            ) from None
        assert row is not None
        return _agent(row)

    async def get(self, agent_id: str) -> Agent:
        """The agent with this id."""
        row = await self.pool.fetchrow(QUERIES["get_agent"], agent_id)
        if row is None:
            raise AgentNotFoundError(f"no agent has id {agent_id!r}")
        return _agent(row)

    async def all(self) -> list[Agent]:
        """Every agent, by id."""
        return [_agent(row) for row in await self.pool.fetch(QUERIES["list_agents"])]

    async def set_state(
        self, agent_id: str, state: AgentState, works_in: WorksIn | None = None
    ) -> Agent:
        """Change an agent's state (and where it works), stamping when it changed."""
        row = await self.pool.fetchrow(QUERIES["set_agent_state"], agent_id, state.value, works_in)
        if row is None:
            raise AgentNotFoundError(f"no agent has id {agent_id!r}")
        return _agent(row)

    async def set_password(self, agent_id: str, password: str) -> None:
        """Give an agent's phone a new password (stored as HA1 only)."""
        agent = await self.get(agent_id)
        if len(password) < 12:
            raise AgentError("password must be at least 12 characters")
        await self.pool.execute(
            QUERIES["set_agent_password"],
            agent_id,
            self.realm,
            sip_ha1(agent.sip_username, self.realm, password),
        )

    async def credentials(self) -> list[tuple[str, str]]:
        """(SIP username, HA1) of every agent in this realm, for the SIP edge."""
        rows = await self.pool.fetch(QUERIES["agent_credentials"], self.realm)
        return [(row["sip_username"], row["sip_ha1"]) for row in rows]
