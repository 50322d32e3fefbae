"""The media task's secure-capture path: keypad tones never reach whoever hears the leg.

The legs here are the pump's own view of a leg (frames in, frames out), not
pjsua2 calls; the integration tests run the same path with real calls.
"""

from __future__ import annotations

import collections
from typing import cast

import numpy as np

from assistline.media.dtmf import DtmfDetector
from assistline.media.dtmf_suppression import DtmfSuppressor
from assistline.media.frame import FRAME_SAMPLES, INTERNAL_RATE, AudioFrame
from assistline.media.tones import dtmf
from assistline.sip import protocol
from assistline.sip.leg import SipLeg
from assistline.sip.worker_pump import MediaPump
from assistline.sip.worker_recording import WorkerRecordings
from assistline.webrtc.leg import WebRtcLeg


class PumpLeg:
    """A leg as the pump sees it: frames it sends us, frames queued toward it."""

    def __init__(self, leg_id: str) -> None:
        self.id = leg_id
        self.incoming: collections.deque[AudioFrame] = collections.deque()
        self.sent: list[AudioFrame] = []
        self._detector = DtmfDetector(INTERNAL_RATE)

    def read_frame(self) -> AudioFrame | None:
        return self.incoming.popleft() if self.incoming else None

    def inband_digits(self, frame: AudioFrame) -> list[str]:
        return [event.digit for event in self._detector.feed(frame.samples)]

    def queued(self) -> int:
        return 0

    def write_frame(self, frame: AudioFrame) -> None:
        self.sent.append(frame)


class NoRecordings:
    paired: dict[str, object] = {}

    def write(self, now: float) -> None:
        pass


def keyed(keys: str) -> list[AudioFrame]:
    """The caller keying ``keys`` in band, in 20 ms frames."""
    samples = dtmf(keys, INTERNAL_RATE, on_ms=80, off_ms=80)
    samples = np.concatenate([samples, np.zeros(-len(samples) % FRAME_SAMPLES, np.int16)])
    return [
        AudioFrame(samples[start : start + FRAME_SAMPLES], start)
        for start in range(0, len(samples), FRAME_SAMPLES)
    ]


def pump_with(
    caller: PumpLeg, agent: PumpLeg, bridged: dict[str, str]
) -> tuple[MediaPump, list[protocol.Event]]:
    events: list[protocol.Event] = []
    pump = MediaPump(
        cast(dict[str, SipLeg], {caller.id: caller, agent.id: agent}),
        cast(dict[str, WebRtcLeg], {}),
        bridged,
        set(),
        set(),
        cast(WorkerRecordings, NoRecordings()),
        events.append,
    )
    return pump, events


def test_a_caller_nobody_hears_keys_digits_without_feeding_the_suppressor() -> None:
    caller, agent = PumpLeg("caller"), PumpLeg("agent")
    pump, events = pump_with(caller, agent, {})
    pump.secure[caller.id] = DtmfSuppressor()
    caller.incoming.extend(keyed("4242"))
    pump.tick(0.0)
    assert [event.digit for event in events if isinstance(event, protocol.Digit)] == list("4242")
    assert not pump.secure[caller.id].started
    assert agent.sent == []


def test_a_suppressor_fed_again_after_a_gap_starts_afresh_and_mutes_every_tone() -> None:
    caller, agent = PumpLeg("caller"), PumpLeg("agent")
    bridged = {caller.id: agent.id, agent.id: caller.id}
    pump, _ = pump_with(caller, agent, bridged)
    first = DtmfSuppressor()
    pump.secure[caller.id] = first
    frames = keyed("1234")
    caller.incoming.extend(frames[:6])
    pump.tick(0.0)
    assert first.started
    # The agent leaves for a while: nothing hears the caller, then the bridge is back.
    del bridged[caller.id]
    caller.incoming.extend(frames[6:12])
    pump.tick(0.01)
    assert pump.secure[caller.id] is not first
    assert not pump.secure[caller.id].started
    bridged[caller.id] = agent.id
    caller.incoming.extend(frames[12:])
    pump.tick(0.02)
    heard = np.concatenate([frame.samples for frame in agent.sent])
    assert DtmfDetector(INTERNAL_RATE).feed(heard) == []
    assert len(agent.sent) == len(frames) - 6
