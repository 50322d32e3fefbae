"""``assistline agent add`` / ``list`` against a real database."""

from __future__ import annotations

import asyncio
import io

import asyncpg
import pytest

from assistline.__main__ import main
from assistline.queue.agents import sip_ha1

PASSWORD = "phone-secret-1234"


def _add(
    monkeypatch: pytest.MonkeyPatch, environ: dict[str, str], password: str, *args: str
) -> int:
    """``assistline agent add ARGS`` with ``password`` typed on standard input."""
    monkeypatch.setattr("sys.stdin", io.StringIO(password + "\n"))
    return main(["agent", "add", *args], environ)


def test_agent_add_stores_only_the_digest_and_list_shows_it(
    database_url: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    environ = {"DATABASE_URL": database_url}
    assert (
        _add(monkeypatch, environ, PASSWORD, "ada", "--name", "Ada L", "--sip-username", "ada") == 0
    )
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

    rows = asyncio.run(stored())
    assert len(rows) == 1
    assert rows[0]["sip_ha1"] == sip_ha1("ada", "assistline", PASSWORD)
    assert PASSWORD not in repr(dict(rows[0]))


def test_agent_add_refuses_a_duplicate_and_a_short_password(
    database_url: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    environ = {"DATABASE_URL": database_url}
    assert _add(monkeypatch, environ, PASSWORD, "bo", "--name", "Bo", "--sip-username", "bo") == 0
    assert _add(monkeypatch, environ, PASSWORD, "bo", "--name", "Bo", "--sip-username", "bo2") == 1
    assert _add(monkeypatch, environ, "short", "cy", "--name", "Cy", "--sip-username", "cy") == 1
    capsys.readouterr()
    assert main(["agent", "list"], environ) == 0
    assert capsys.readouterr().out == "bo\tbo\toffline\tBo\n"
