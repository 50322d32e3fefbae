"""A stand-in browser for WebRTC leg tests: an aiortc peer on loopback, with tone tracks.

The browser sends a sine (:class:`SineTrack`) and records what it receives
(:class:`Recorder`); its host candidates are gathered on 127.0.0.1 only and
it asks no ICE server. ``python -m tests.integration.webrtc.peers`` runs one
in a process of its own, for tests that make it vanish (see :func:`main`).
"""

from __future__ import annotations

import asyncio
import fractions
import json
import sys
from collections.abc import Callable

import av
import numpy as np
import numpy.typing as npt
from aiortc import RTCPeerConnection, RTCSessionDescription
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack

from assistline.webrtc.ice import gathering_on, rtc_configuration

LOOPBACK = "127.0.0.1"
RATE = 48_000
SAMPLES = 960  # 20 ms at 48 kHz


class SineTrack(MediaStreamTrack):
    """A 48 kHz mono sine, paced at one 20 ms frame per 20 ms."""

    kind = "audio"

    def __init__(self, frequency: float, amplitude: float = 8000.0) -> None:
        super().__init__()
        self._frequency = frequency
        self._amplitude = amplitude
        self._count = 0
        self._start: float | None = None

    async def recv(self) -> av.AudioFrame:
        if self.readyState != "live":
            raise MediaStreamError
        loop = asyncio.get_running_loop()
        if self._start is None:
            self._start = loop.time()
        delay = self._start + self._count * 0.02 - loop.time()
        if delay > 0:
            await asyncio.sleep(delay)
        n = np.arange(self._count * SAMPLES, (self._count + 1) * SAMPLES)
        samples = np.rint(self._amplitude * np.sin(2 * np.pi * self._frequency * n / RATE))
        frame = av.AudioFrame.from_ndarray(
            samples.astype(np.int16).reshape(1, -1), format="s16", layout="mono"
        )
        frame.sample_rate = RATE
        frame.pts = self._count * SAMPLES
        frame.time_base = fractions.Fraction(1, RATE)
        self._count += 1
        return frame


class ColourTrack(MediaStreamTrack):
    """320×240 frames of one RGB colour, 15 per second: who sent them shows in their colour."""

    kind = "video"

    def __init__(self, rgb: tuple[int, int, int]) -> None:
        super().__init__()
        self._image = np.empty((240, 320, 3), dtype=np.uint8)
        self._image[:] = rgb
        self._count = 0
        self._start: float | None = None

    async def recv(self) -> av.VideoFrame:
        if self.readyState != "live":
            raise MediaStreamError
        loop = asyncio.get_running_loop()
        if self._start is None:
            self._start = loop.time()
        delay = self._start + self._count / 15 - loop.time()
        if delay > 0:
            await asyncio.sleep(delay)
        frame = av.VideoFrame.from_ndarray(self._image, format="rgb24")
        frame.pts = self._count * 6000  # a 90 kHz clock
        frame.time_base = fractions.Fraction(1, 90_000)
        self._count += 1
        return frame


class VideoWatcher:
    """Counts the video frames a track delivers (decoded) and keeps the last one's mean colour."""

    def __init__(self) -> None:
        self.frames = 0
        self.colour: tuple[int, int, int] | None = None
        self.first = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    @property
    def started(self) -> bool:
        """Whether a track is being watched."""
        return self._task is not None

    def start(self, track: MediaStreamTrack) -> None:
        """Watch ``track`` from now on."""
        self._task = asyncio.get_running_loop().create_task(self._run(track))

    async def _run(self, track: MediaStreamTrack) -> None:
        while True:
            try:
                frame = await track.recv()
            except MediaStreamError:
                return
            assert isinstance(frame, av.VideoFrame)
            image = frame.to_ndarray(format="rgb24")
            mean = image.reshape(-1, 3).mean(axis=0)
            self.colour = (int(mean[0]), int(mean[1]), int(mean[2]))
            self.frames += 1
            self.first.set()

    async def stop(self) -> None:
        """Stop watching."""
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass


class Recorder:
    """Keeps every frame of a received track, until the track ends or :meth:`stop`."""

    def __init__(self) -> None:
        self.frames: list[av.AudioFrame] = []
        self._task: asyncio.Task[None] | None = None

    def start(self, track: MediaStreamTrack) -> None:
        """Record ``track`` from now on."""
        self._task = asyncio.get_running_loop().create_task(self._run(track))

    async def _run(self, track: MediaStreamTrack) -> None:
        while True:
            try:
                frame = await track.recv()
            except MediaStreamError:
                return
            assert isinstance(frame, av.AudioFrame)
            self.frames.append(frame)

    async def stop(self) -> None:
        """Stop recording (a no-op when the track has ended)."""
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass

    def mono(self) -> npt.NDArray[np.int16]:
        """The first channel of everything recorded (frames are packed s16)."""
        channels = [
            frame.to_ndarray().reshape(-1, len(frame.layout.channels))[:, 0]
            for frame in self.frames
        ]
        return np.concatenate(channels).astype(np.int16)


class Browser:
    """An aiortc peer playing a browser: offers audio with a tone, records what it hears."""

    def __init__(self, frequency: float) -> None:
        self.pc = RTCPeerConnection(rtc_configuration([]))
        self.pc.addTransceiver(SineTrack(frequency), direction="sendrecv")
        self.recorder = Recorder()
        self.video = VideoWatcher()
        self.connected = asyncio.Event()
        self.pc.on("connectionstatechange", self._on_state)

    def _on_state(self) -> None:
        if self.pc.connectionState == "connected":
            self.connected.set()

    async def offer(self) -> str:
        """The offer, with its candidates, gathered on loopback only."""
        await self.pc.setLocalDescription(await self.pc.createOffer())
        return str(self.pc.localDescription.sdp)

    def add_video(self, rgb: tuple[int, int, int]) -> None:
        """Send video of one colour from the next offer on (a renegotiation once connected)."""
        self.pc.addTransceiver(ColourTrack(rgb), direction="sendrecv")

    async def take_answer(self, sdp: str) -> None:
        """Apply the leg's answer and start recording (and watching) what the leg sends."""
        first = self.pc.remoteDescription is None
        await self.pc.setRemoteDescription(RTCSessionDescription(sdp=sdp, type="answer"))
        transceivers = self.pc.getTransceivers()
        if first:
            track = transceivers[0].receiver.track
            assert track is not None
            self.recorder.start(track)
        video = [t for t in transceivers if t.kind == "video"]
        if video and not self.video.started:
            self.video.start(video[0].receiver.track)

    async def close(self) -> None:
        """Close the peer (sending DTLS close_notify) and stop recording."""
        await self.pc.close()
        await self.recorder.stop()
        await self.video.stop()


async def new_offer(browser: Browser) -> str:
    """``browser``'s offer, its candidates gathered on loopback only."""
    with gathering_on([LOOPBACK]):
        return await browser.offer()


def dominant_frequency(samples: npt.NDArray[np.int16], rate: int) -> float:
    """The frequency of the strongest FFT bin of ``samples`` (Hann-windowed), in Hz."""
    signal = samples.astype(np.float64)
    spectrum = np.abs(np.fft.rfft(signal * np.hanning(len(signal))))
    spectrum[0] = 0.0
    return float(np.argmax(spectrum)) * rate / len(signal)


def split_candidates(sdp: str) -> tuple[str, list[str]]:
    """``sdp`` without its candidate lines (nor end-of-candidates), and those candidates."""
    kept, candidates = [], []
    for line in sdp.splitlines():
        if line.startswith("a=candidate:"):
            candidates.append(line.removeprefix("a="))
        elif line != "a=end-of-candidates":
            kept.append(line)
    return "\r\n".join(kept) + "\r\n", candidates


def candidate_lines(sdp: str) -> list[str]:
    """The ``a=candidate`` lines of ``sdp``, without ``a=``."""
    return split_candidates(sdp)[1]


async def _read_line(read: Callable[[], str]) -> str:
    return await asyncio.get_running_loop().run_in_executor(None, read)


async def _serve(frequency: float) -> None:
    browser = Browser(frequency)
    sys.stdout.write(json.dumps({"offer": await new_offer(browser)}) + "\n")
    sys.stdout.flush()
    answer = json.loads(await _read_line(sys.stdin.readline))["answer"]
    await browser.take_answer(answer)
    await browser.connected.wait()
    sys.stdout.write(json.dumps({"state": "connected"}) + "\n")
    sys.stdout.flush()
    # Until killed (the test's point) or stdin closes.
    await _read_line(sys.stdin.readline)
    await browser.close()


def main() -> None:
    """A browser in a process of its own: offer on stdout, answer on stdin, then connected."""
    asyncio.run(_serve(float(sys.argv[1]) if len(sys.argv) > 1 else 1000.0))


if __name__ == "__main__":
    main()
