"""The worker pool's configuration from the [sip] settings (no process started)."""

from __future__ import annotations

from pathlib import Path

from assistline.settings import SipSettings, WebRtcSettings
from assistline.sip import protocol
from assistline.sip.pool import Worker, WorkerPool
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
        jitter_discard="static",
        jitter_max_ms=300,
    )
    webrtc = WebRtcSettings(ice_host_addresses=("192.0.2.10",), consent_timeout=20.0)
    tasks = TaskRegistry()
    pool = WorkerPool.from_settings(settings, Path("/run/x.sock"), _ignore, tasks, webrtc)
    assert (pool.max_workers, pool.base_port, pool.free) == (5, 6000, 0)
    assert pool._initial == 3
    assert pool.worker_args == (
        *("--codecs", "G722,PCMA", "--media-timeout", "60.0", "--bridge-rate", "8000"),
        *("--quality-interval", "10.0", "--jitter-discard", "static", "--jitter-max-ms", "300"),
        *("--consent-timeout", "20.0", "--ice-host-addresses", "192.0.2.10"),
        *("--public-address", "203.0.113.7"),
    )
    assert pool.rtp_ports == (31000, 32000)


def test_each_worker_slot_gets_its_own_rtp_ports() -> None:
    settings = SipSettings(
        workers=1, max_workers=4, worker_base_port=6000, rtp_port_min=20000, rtp_port_max=29999
    )
    pool = WorkerPool.from_settings(settings, Path("/run/x.sock"), _ignore, TaskRegistry())
    slices = [pool._rtp_args(Worker(f"w{i + 1}", 6000 + i)) for i in range(4)]
    assert slices == [
        ["--rtp-min", "20000", "--rtp-max", "22499"],
        ["--rtp-min", "22500", "--rtp-max", "24999"],
        ["--rtp-min", "25000", "--rtp-max", "27499"],
        ["--rtp-min", "27500", "--rtp-max", "29999"],
    ]
