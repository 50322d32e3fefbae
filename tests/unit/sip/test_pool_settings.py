"""The worker pool's configuration from the [sip] settings (no process started)."""

from __future__ import annotations

from pathlib import Path

from assistline.settings import SipSettings
from assistline.sip import protocol
from assistline.sip.pool import WorkerPool
from assistline.tasks import TaskRegistry


def _ignore(worker: str, event: protocol.Event) -> None:
    del worker, event


def test_pool_from_settings() -> None:
    settings = SipSettings(
        workers=3,
        max_workers=5,
        worker_base_port=6000,
        rtp_port_min=31000,
        rtp_port_max=32000,
        public_address="203.0.113.7",
        codecs=("G722", "PCMA"),
    )
    pool = WorkerPool.from_settings(settings, Path("/run/x.sock"), _ignore, TaskRegistry())
    assert (pool.max_workers, pool.base_port, pool.free) == (5, 6000, 0)
    assert pool._initial == 3
    assert pool._worker_args == (
        *("--codecs", "G722,PCMA", "--rtp-min", "31000", "--rtp-max", "32000"),
        *("--public-address", "203.0.113.7"),
    )
