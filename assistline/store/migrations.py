"""Numbered schema migrations, applied in order at start-up.

Migrations are ``migrations/NNNN_name.sql`` files numbered from 0001 without
gaps. Each runs in its own transaction together with its row in
``schema_migration``, under an advisory lock so that several nodes starting
at once apply each migration exactly once. A database that has a migration
this code does not know was migrated by a newer assistline: we refuse to
start rather than run old code on a new schema.
"""

from __future__ import annotations

import dataclasses
import datetime
import logging
import re
from importlib import resources

import asyncpg

from assistline.errors import MigrationError, SchemaTooNewError
from assistline.store.queries import QUERIES

logger = logging.getLogger(__name__)
_FILENAME = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")


@dataclasses.dataclass(frozen=True, slots=True)
class Migration:
    """One schema change: its number, name and SQL."""

    version: int
    name: str
    sql: str


@dataclasses.dataclass(frozen=True, slots=True)
class AppliedMigration:
    """A migration recorded in the database."""

    version: int
    name: str
    applied_at: datetime.datetime


@dataclasses.dataclass(frozen=True, slots=True)
class MigrationStatus:
    """What the database has and what this code would still apply."""

    applied: list[AppliedMigration]
    pending: list[Migration]

    @property
    def current(self) -> int:
        """The highest applied version, 0 for an empty database."""
        return max((m.version for m in self.applied), default=0)


def discover() -> list[Migration]:
    """The migrations shipped with this code, checked to be numbered 1, 2, 3 and on."""
    folder = resources.files("assistline.store").joinpath("migrations")
    found: list[Migration] = []
    for entry in folder.iterdir():
        match = _FILENAME.match(entry.name)
        if match is None:
            if entry.name.endswith(".sql"):
                raise MigrationError(f"migration file {entry.name} is not named NNNN_name.sql")
            continue
        found.append(Migration(int(match.group(1)), match.group(2), entry.read_text("utf-8")))
    found.sort(key=lambda m: m.version)
    for expected, migration in enumerate(found, start=1):
        if migration.version != expected:
            raise MigrationError(
                f"migrations must be numbered without gaps: expected {expected:04d}, "
                f"found {migration.version:04d}_{migration.name}.sql"
            )
    return found


async def status(
    connection: asyncpg.Connection, known: list[Migration] | None = None
) -> MigrationStatus:
    """Compare the database's migrations with the known ones; raises if it is newer."""
    known = discover() if known is None else known
    await connection.execute(QUERIES["create_migration_table"])
    rows = await connection.fetch(QUERIES["applied_migrations"])
    applied = [AppliedMigration(r["version"], r["name"], r["applied_at"]) for r in rows]
    by_version = {m.version: m for m in known}
    for row in applied:
        if row.version not in by_version:
            raise SchemaTooNewError(
                f"the database has migration {row.version:04d}_{row.name}, which this "
                f"assistline does not know (it knows up to {len(known):04d}); "
                "upgrade assistline, never downgrade data"
            )
        if by_version[row.version].name != row.name:
            raise MigrationError(
                f"migration {row.version:04d} is {row.name!r} in the database but "
                f"{by_version[row.version].name!r} in the code; migrations must never be renamed"
            )
    done = {row.version for row in applied}
    return MigrationStatus(applied, [m for m in known if m.version not in done])


async def migrate(
    connection: asyncpg.Connection, known: list[Migration] | None = None
) -> list[Migration]:
    """Apply every pending migration, each in its own transaction; returns those applied."""
    known = discover() if known is None else known
    applied: list[Migration] = []
    while True:
        async with connection.transaction():
            await connection.execute(QUERIES["lock_migrations"])
            pending = (await status(connection, known)).pending
            if not pending:
                return applied
            migration = pending[0]
            logger.info("applying migration %04d_%s", migration.version, migration.name)
            try:
                await connection.execute(migration.sql)
            except asyncpg.PostgresError as error:
                raise MigrationError(
                    f"migration {migration.version:04d}_{migration.name} failed and was "
                    f"rolled back: {error}"
                ) from error
            await connection.execute(QUERIES["record_migration"], migration.version, migration.name)
        applied.append(migration)
