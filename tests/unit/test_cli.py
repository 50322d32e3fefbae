from __future__ import annotations

import re
from pathlib import Path

import pytest

from assistline.__main__ import main
from assistline.settings import describe, load_settings


def test_config_prints_effective_settings_with_secrets_masked(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    config = tmp_path / "a.toml"
    config.write_text("[http]\nport = 9443\n")
    status = main(
        ["--config", str(config), "config"],
        {"DATABASE_URL": "postgresql://app:hunter2@db/x", "ASSISTLINE_LOG_FORMAT": "json"},
    )
    out = capsys.readouterr().out
    assert status == 0
    assert "hunter2" not in out
    assert 'database_url = "postgresql://app:***@db/x"  # ASSISTLINE_STORE_DATABASE_URL' in out
    assert "port = 9443  # ASSISTLINE_HTTP_PORT" in out
    assert 'format = "json"  # ASSISTLINE_LOG_FORMAT' in out


def test_config_file_from_the_environment(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    config = tmp_path / "a.toml"
    config.write_text("[http]\nport = 9444\n")
    assert main(["config"], {"ASSISTLINE_CONFIG": str(config)}) == 0
    assert "port = 9444" in capsys.readouterr().out


def test_serve_help_lists_every_variable_with_its_default(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["serve", "--help"], {})
    assert exited.value.code == 0
    out = capsys.readouterr().out
    assert "ASSISTLINE_CONFIG" in out
    for info in describe(load_settings()):
        assert info.env in out
        assert re.search(re.escape(info.env) + r".*\n.*\(default: ", out), info.env
    assert "DATABASE_URL" in out


def test_bad_configuration_exits_2_naming_the_variable(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["config"], {"ASSISTLINE_HTTP_PORT": "x"}) == 2
    assert "ASSISTLINE_HTTP_PORT must be a number" in capsys.readouterr().err
