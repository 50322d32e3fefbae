from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import asyncpg
import pytest

from assistline.__main__ import main
from assistline.store import migrations

LATEST = migrations.discover()[-1].version


@pytest.fixture(autouse=True)
def _restore_logging() -> Iterator[None]:
    root = logging.getLogger()
    before = list(root.handlers)
    yield
    for handler in list(root.handlers):
        if handler not in before:
            root.removeHandler(handler)


def test_db_status_and_migrate_against_a_url(
    database_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["db", "status"], {"DATABASE_URL": database_url}) == 0
    out = capsys.readouterr().out
    assert "applied  0001_audit_event" in out
    assert out.rstrip().endswith(f"schema at version {LATEST:04d}, 0 pending")
    assert main(["db", "migrate"], {"DATABASE_URL": database_url}) == 0
    assert capsys.readouterr().out == f"schema at version {LATEST:04d}; nothing pending\n"


async def _reset(database_url: str) -> None:
    connection = await asyncpg.connect(database_url)
    try:
        # The whole schema, so a new migration's tables need no mention here.
        await connection.execute("DROP SCHEMA public CASCADE; CREATE SCHEMA public")
    finally:
        await connection.close()


def test_db_status_lists_pending_then_migrate_applies(
    database_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    import asyncio

    asyncio.run(_reset(database_url))
    assert main(["db", "status"], {"DATABASE_URL": database_url}) == 0
    out = capsys.readouterr().out
    assert "pending  0001_audit_event" in out
    assert main(["db", "migrate"], {"DATABASE_URL": database_url}) == 0
    assert capsys.readouterr().out.splitlines() == [
        *(f"applied {m.version:04d}_{m.name}" for m in migrations.discover()),
        f"schema at version {LATEST:04d}; nothing pending",
    ]


@pytest.mark.slow
def test_db_migrate_on_the_embedded_server_starts_and_stops_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    environ = {"ASSISTLINE_STORE_DATA_DIR": str(tmp_path / "data")}
    assert main(["db", "migrate"], environ) == 0
    assert "applied 0001_audit_event" in capsys.readouterr().out
    assert not (tmp_path / "data" / "postgres" / "postmaster.pid").exists()
    assert main(["db", "status"], environ) == 0
    assert f"schema at version {LATEST:04d}, 0 pending" in capsys.readouterr().out


def test_unreachable_database_exits_1(capsys: pytest.CaptureFixture[str]) -> None:
    environ = {
        "DATABASE_URL": "postgresql://x:pw@127.0.0.1:1/x",
        "ASSISTLINE_STORE_CONNECT_TIMEOUT": "0.3",
    }
    assert main(["db", "status"], environ) == 1
    err = capsys.readouterr().err
    assert "could not reach the database at postgresql://x:***@127.0.0.1:1/x" in err
