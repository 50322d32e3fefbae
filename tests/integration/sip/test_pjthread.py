"""The pjsua2 thread with a real endpoint: conference ports leave the bridge when retired.

And the jitter-buffer settings reach pjsua's media config through the wheel's
opaque enum.
"""

from __future__ import annotations

import asyncio
import ctypes
import threading
import weakref
from pathlib import Path
from typing import Any

import pjsua2 as pj
import pytest

from assistline.sip.leg_port import (
    FRAME_BYTES,
    FramePort,
    FrameRings,
    LegPort,
    RingPort,
    new_port,
)
from assistline.sip.pjsua_c import JITTER_DISCARD, JitterBuffer
from assistline.sip.pjthread import PjThread


class CountingPort(FramePort):
    """Counts the clock's calls: an idle port still gets a NULL frame every tick."""

    def __init__(self) -> None:
        super().__init__("counting")
        self.calls = 0
        self.lock = threading.Lock()

    def onFrameReceived(self, frame: Any) -> None:  # noqa: N802 - pjsua2's name
        with self.lock:
            self.calls += 1


def _live(port: weakref.ref[CountingPort]) -> CountingPort:
    alive = port()
    assert alive is not None
    return alive


def _bridge_slots() -> list[int]:
    return [int(media.getPortId()) for media in pj.Endpoint.instance().mediaEnumPorts2()]


def _calls(port: weakref.ref[CountingPort]) -> int:
    """Calls counted so far, or -1 once the port is deleted."""
    alive = port()
    if alive is None:
        return -1
    with alive.lock:
        return alive.calls


async def test_a_retired_port_gets_no_more_frames_and_is_deleted() -> None:
    pjt = PjThread(lambda endpoint: None)
    await pjt.start()
    try:

        def create() -> CountingPort:
            return pjt.hold(CountingPort())

        # Only the thread may own (and so delete) a pjsua2 object: the test keeps a weak reference.
        port = weakref.ref(await pjt.run(create))
        await asyncio.sleep(0.3)
        assert _calls(port) >= 5  # heart-beats: ~15 in 300 ms, nothing connected

        slot = await pjt.run(lambda: _live(port).getPortId())
        await pjt.run(lambda: pjt.retire(_live(port)))
        await asyncio.sleep(0.1)  # past the clock tick that removes it
        calls = _calls(port)
        await asyncio.sleep(0.3)
        assert _calls(port) in (calls, -1)  # no more frames (or deleted already)

        for _ in range(20):  # the thread's next loop turns delete it
            if port() is None:
                break
            await asyncio.sleep(0.05)
        assert port() is None
        assert slot not in await pjt.run(_bridge_slots)
    finally:
        await pjt.stop()


def _port(kind: str, name: str) -> LegPort:
    if kind == "python":
        return FramePort(name)
    port = new_port(name)
    assert isinstance(port, RingPort)  # the C port, compiled by make
    return port


def _connected_pair(pjt: PjThread, kind: str) -> tuple[FrameRings, FrameRings, list[int]]:
    """Two ports transmitting to each other; the event loop gets only their rings and slots."""
    first, second = _port(kind, "first"), _port(kind, "second")
    first.connect(second)  # a leg's port has a slot like a call's audio
    pjt.hold(first)
    pjt.hold(second)
    return first.rings, second.rings, [first.getPortId(), second.getPortId()]


def _retire_slots(pjt: PjThread, slots: list[int]) -> None:
    for port in [port for port in pjt.keep.values() if port.getPortId() in slots]:
        pjt.retire(port)


def _read_all(rings: FrameRings) -> list[bytes]:
    frames = []
    while (frame := rings.read()) is not None:
        frames.append(frame)
    return frames


@pytest.mark.parametrize("kind", ["c", "python"])
async def test_leg_ports_carry_frames_through_the_bridge_and_leave_it(kind: str) -> None:
    pjt = PjThread(lambda endpoint: None)
    await pjt.start()
    try:
        first, second, slots = await pjt.run(lambda: _connected_pair(pjt, kind))
        frame = bytes(range(256)) * 2 + bytes(128)
        assert len(frame) == FRAME_BYTES
        _read_all(second)
        first.write(frame)
        assert first.queued() == 1
        heard: list[bytes] = []
        for _ in range(20):
            await asyncio.sleep(0.02)
            heard += _read_all(second)
            if frame in heard:
                break
        assert frame in heard  # the clock took it from one ring and put it in the other
        assert first.queued() == 0
        assert all(other == bytes(FRAME_BYTES) for other in heard if other != frame)

        for _ in range(15):  # a full ring keeps the newest frames
            first.write(frame)
        assert first.queued() == 10
        if kind == "c":
            with pytest.raises(ValueError, match="640 bytes"):
                first.write(b"short")

        await pjt.run(lambda: _retire_slots(pjt, slots))
        for _ in range(20):
            if not set(slots) & set(await pjt.run(_bridge_slots)):
                break
            await asyncio.sleep(0.05)
        assert not set(slots) & set(await pjt.run(_bridge_slots))
    finally:
        await pjt.stop()


@pytest.mark.parametrize(("discard", "value"), [("none", 0), ("static", 1), ("progressive", 2)])
def test_jitter_buffer_settings_reach_the_media_config(discard: str, value: int) -> None:
    config = pj.EpConfig()
    assert ctypes.c_int.from_address(int(config.medConfig.jbDiscardAlgo)).value == 2  # pjmedia's
    JitterBuffer(discard, 160).apply(config)
    # The getter returns a fresh copy of the stored enum: the value was set, not the copy.
    assert ctypes.c_int.from_address(int(config.medConfig.jbDiscardAlgo)).value == value
    assert JITTER_DISCARD[discard] == value
    assert config.medConfig.jbMax == 160


def _thread_names() -> list[str]:
    """Names of the process's threads that Python did not start (pjlib's and pjmedia's)."""
    python = {thread.native_id for thread in threading.enumerate()}
    tasks = Path("/proc/self/task").iterdir()
    return sorted(
        (task / "comm").read_text().strip() for task in tasks if int(task.name) not in python
    )


def _process_name() -> str:
    return Path("/proc/self/comm").read_text().strip()


async def test_our_poller_replaces_pjmedias_media_thread_and_stops_with_pjsua() -> None:
    # pjmedia names its I/O queue thread "media"; ours keeps the process's name. Python's
    # own threads (pjsua2's, and the executor's, which load may add) are not counted.
    own = _process_name()
    before = _thread_names()
    pjt = PjThread(lambda endpoint: None)
    await pjt.start()
    try:
        running = _thread_names()
        assert "media" not in running
        assert running.count(own) == before.count(own) + 1  # the poller
    finally:
        await pjt.stop()
    assert _thread_names().count(own) == before.count(own)
