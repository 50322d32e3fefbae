"""A non-editable install carries the web client, and serves it from the package."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

REPOSITORY = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.slow


def test_the_wheel_carries_the_web_client_and_finds_it(tmp_path: Path) -> None:
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--quiet",
            "--no-deps",
            "--no-build-isolation",
            "--wheel-dir",
            str(tmp_path),
            str(REPOSITORY),
        ],
        check=True,
        capture_output=True,
    )
    (wheel,) = tmp_path.glob("assistline-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    for page in ("index.html", "agent.html", "status.js", "style.css"):
        assert f"assistline/web_client/{page}" in names
    assert "assistline/store/migrations/0001_audit_event.sql" in names
    assert "assistline/store/queries.sql" in names
    # The C accelerators are compiled into the wheel, which is then platform-specific.
    for module in ("_g711", "_dtmf"):
        assert any(n.startswith(f"assistline/media/{module}.") and n.endswith(".so") for n in names)
    assert "-py3-none-any" not in wheel.name

    target = tmp_path / "site"
    zipfile.ZipFile(wheel).extractall(target)
    found = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys; sys.path.insert(0, sys.argv[1]);"
            "from assistline.signalling.web_client import web_client_dir;"
            "print(web_client_dir())",
            str(target),
        ],
        check=True,
        capture_output=True,
        text=True,
        cwd=tmp_path,
    )
    assert Path(found.stdout.strip()) == target / "assistline" / "web_client"
