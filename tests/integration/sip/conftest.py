"""SIP integration tests need real peers: missing ones fail the run, never skip it.

``make test`` installs them (scripts/debian-test-packages.txt); a test that
quietly skipped would let a broken SIP side pass CI.
"""

from __future__ import annotations

import shutil
from collections.abc import AsyncIterator

import pytest

from tests.integration.sip.worker_peers import Control, short_dir

REQUIRED = {
    "sipp": "sip-tester",
    "kamailio": "kamailio",
    "baresip": "baresip",
}


@pytest.fixture(autouse=True, scope="session")
def _real_sip_peers_installed() -> None:
    missing = [
        f"{program} (Debian package {package})"
        for program, package in REQUIRED.items()
        if shutil.which(program, path="/usr/sbin:/usr/bin:/usr/local/bin") is None
    ]
    if missing:
        pytest.fail("SIP tests need " + ", ".join(missing) + "; run `make test` to install them")


@pytest.fixture
async def control() -> AsyncIterator[Control]:
    """The control process's side of a worker's socket, played by the test."""
    directory = short_dir()
    server = Control(directory / "control.sock")
    await server.start()
    try:
        yield server
    finally:
        await server.close()
        (directory / "control.sock").unlink(missing_ok=True)
        directory.rmdir()
