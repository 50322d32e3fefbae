"""``assistline agent add`` / ``list`` against a real database."""

from __future__ import annotations

import io

import asyncpg
import pytest

from assistline.__main__ import main
from assistline.queue.agents import sip_ha1

PASSWORD = "phone-secret-1234"


def test_agent_add_stores_only_the_digest_and_list_shows_it(
    database_url: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    environ = {"DATABASE_URL": database_url}
    monkeypatch.setattr("sys.stdin", io.StringIO(PASSWORD + "\n"))
    assert main(["agent", "add", "ada", "--name", "Ada L", "--sip-username", "ada"], environ) == 0
    out = capsys.readouterr().out
    assert out.startswith("added agent ada (ada)") and PASSWORD not in out
    assert main(["agent", "list"], environ) == 0
    assert capsys.readouterr().out == "ada\tada\toffline\tAda L\n"

    async def stored() -> list[asyncpg.Record]:
        connection = await asyncpg.connect(database_url)
        try:
            return list(await connection.fetch("SELECT * FROM agent"))
        finally:
            await connection.close()

    import asyncio

    rows = asyncio.run(stored())
    assert len(rows) == 1
    assert rows[0]["sip_ha1"] == sip_ha1("ada", "assistline", PASSWORD)
    assert PASSWORD not in repr(dict(rows[0]))


def test_agent_add_refuses_a_duplicate_and_a_short_password(
    database_url: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    environ = {"DATABASE_URL": database_url}
    monkeypatch.setattr("sys.stdin", io.StringIO(PASSWORD + "\n"))
    assert main(["agent", "add", "bo", "--name", "Bo", "--sip-username", "bo"], environ) == 0
    monkeypatch.setattr("sys.stdin", io.StringIO(PASSWORD + "\n"))
    assert main(["agent", "add", "bo", "--name", "Bo", "--sip-username", "bo2"], environ) == 1
    monkeypatch.setattr("sys.stdin", io.StringIO("short\n"))
    assert main(["agent", "add", "cy", "--name", "Cy", "--sip-username", "cy"], environ) == 1
    capsys.readouterr()
    assert main(["agent", "list"], environ) == 0
    assert capsys.readouterr().out == "bo\tbo\toffline\tBo\n"
