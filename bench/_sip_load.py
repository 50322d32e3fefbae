"""sipp on the load core, and the agents' phone: one sipp UAS registered for every agent.

Shared by bench/sip.py and bench/webrtc.py. The phone (``agent.xml``)
answers every INVITE it gets, for any of the agents registered to it,
streams a looped 1 kHz G.711 μ-law tone (``agent.wav``) and waits for the
BYE. Each agent ``agent<i>`` registers at the edge with digest
authentication, its Contact the phone's port.
"""

from __future__ import annotations

import contextlib
import struct
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from _server import LOAD_CORE, free_port, on_core

from assistline.media import g711

SCENARIOS = Path(__file__).parent / "sip_scenarios"
PASSWORD = "bench-agent-secret"
REALM = "assistline"


def mulaw_wav(path: Path, hertz: float, seconds: int = 4) -> None:
    """A looping G.711 μ-law tone in the WAV form sipp's rtp_stream plays."""
    t = np.arange(8000 * seconds) / 8000
    data = g711.encode_ulaw((np.sin(2 * np.pi * hertz * t) * 8000).astype(np.int16)).tobytes()
    fmt = struct.pack("<HHIIHH", 7, 1, 8000, 8000, 1, 8)
    body = b"WAVE" + b"fmt " + struct.pack("<I", len(fmt)) + fmt
    body += b"data" + struct.pack("<I", len(data)) + data
    path.write_bytes(b"RIFF" + struct.pack("<I", len(body)) + body)


def sipp(args: Sequence[str], directory: Path) -> subprocess.Popen[bytes]:
    """sipp on the load core, quiet, in ``directory`` (where rtp_stream finds its WAV)."""
    return subprocess.Popen(
        ["sipp", "-nostdin", "-i", "127.0.0.1", *args],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        preexec_fn=on_core(LOAD_CORE),
        cwd=directory,
    )


@dataclass
class AgentPhone:
    """The agents' phone (one sipp UAS answering for ``agents`` agents)."""

    directory: Path
    edge_port: int
    agents: int
    agent_port: int = field(default_factory=free_port)
    phone: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        """Answer agent legs, and register every agent at the edge with its contact."""
        mulaw_wav(self.directory / "agent.wav", 1000)
        self.phone = sipp(
            ["-sf", str(SCENARIOS / "agent.xml"), "-p", str(self.agent_port)], self.directory
        )
        for index in range(self.agents):
            register = sipp(
                [
                    *("-sf", str(SCENARIOS / "register.xml"), "-m", "1"),
                    *("-s", f"agent{index}", "-au", f"agent{index}", "-ap", PASSWORD),
                    *("-key", "phone", f"127.0.0.1:{self.agent_port}"),
                    f"127.0.0.1:{self.edge_port}",
                ],
                self.directory,
            )
            try:
                _, errors = register.communicate(timeout=30)
            except subprocess.TimeoutExpired:
                register.kill()
                register.wait()
                raise RuntimeError(f"agent{index} did not register in 30 s") from None
            if register.returncode != 0:
                raise RuntimeError(f"agent{index} did not register: {errors.decode()[-500:]}")

    def stop(self) -> None:
        """Stop the agents' phone."""
        if self.phone is not None:
            self.phone.terminate()
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.phone.wait(10)
            if self.phone.poll() is None:
                self.phone.kill()
                self.phone.wait()
