"""SIP integration tests need real peers: missing ones fail the run, never skip it.

``make test`` installs them (scripts/debian-test-packages.txt); a test that
quietly skipped would let a broken SIP side pass CI.
"""

from __future__ import annotations

import shutil

import pytest

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
