"""Video between two WebRTC legs in one worker: a customer and an agent's browser.

Each leg reads the video its browser sends (aiortc decodes it, VP8 or
H.264) in a task of its own, :func:`read_video`, and hands every frame to
whatever the leg is bridged to: the other leg's :class:`ForwardedVideo`,
the track aiortc sends to that browser (aiortc encodes it again). A leg
nobody is bridged to drops its frames as they come: aiortc's receiving
track queues decoded frames without bound, so they must be read even when
nobody watches.

Why decode and encode again rather than forward RTP: aiortc hands a
receiver's frames out decoded only (its RTP packets stay inside
``RTCRtpReceiver``), and re-encoding lets each side get keyframes and a
bit rate of its own (aiortc's encoder answers the receiving browser's
PLIs and REMB). It costs CPU. Measured on the 2-core development machine
(worker process, a customer and a browser agent bridged, both sending
video, against the same call with audio only): 320×240 frames of one
colour at 15 frames/s added 4 % of a core for both directions; 640×480
frames of random noise at 30 frames/s (the worst case: nothing compresses)
added 55 %, and the pages got 21–24 of the 30 frames/s. A camera's image
lies between the two. A video call is rarer than a voice one; forwarding
RTP between the two DTLS-SRTP sessions (a media path in C) is the way to
cheaper video.

Codecs answered, in order: VP8, then H.264 (both in every browser);
aiortc's RTX and its feedback stay on.
"""

from __future__ import annotations

import asyncio
import collections
from typing import Final

import av
from aiortc import RTCRtpCodecCapability, RTCRtpSender
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack

#: Frames a forwarded track holds before dropping its oldest: a browser
#: briefly slower than its peer loses frames rather than gaining delay.
QUEUE_FRAMES: Final = 3
VIDEO_CODECS: Final = ("video/vp8", "video/h264")


def video_codecs() -> list[RTCRtpCodecCapability]:
    """The video codecs aiortc has, in the order answered: VP8, H.264, then RTX."""
    capabilities = RTCRtpSender.getCapabilities("video").codecs

    def rank(codec: RTCRtpCodecCapability) -> int:
        mime = codec.mimeType.lower()
        return VIDEO_CODECS.index(mime) if mime in VIDEO_CODECS else len(VIDEO_CODECS)

    return sorted(capabilities, key=rank)


class ForwardedVideo(MediaStreamTrack):
    """The video a leg sends its browser: frames pushed from the leg it is bridged to."""

    kind = "video"

    def __init__(self) -> None:
        super().__init__()
        self._frames: collections.deque[av.VideoFrame] = collections.deque(maxlen=QUEUE_FRAMES)
        self._arrived = asyncio.Event()
        #: Frames pushed, and frames dropped because the browser's sender fell behind.
        self.pushed = 0
        self.dropped = 0

    def push(self, frame: av.VideoFrame) -> None:
        """Queue a frame for the browser (the oldest is dropped when full)."""
        if len(self._frames) == self._frames.maxlen:
            self.dropped += 1
        self._frames.append(frame)
        self.pushed += 1
        self._arrived.set()

    async def recv(self) -> av.VideoFrame:
        """The next frame pushed; waits while none is (aiortc then sends nothing)."""
        while True:
            if self.readyState != "live":
                raise MediaStreamError
            if self._frames:
                return self._frames.popleft()
            self._arrived.clear()
            await self._arrived.wait()

    def stop(self) -> None:
        """End the track; a waiting :meth:`recv` raises ``MediaStreamError``."""
        super().stop()
        self._arrived.set()


class VideoReader:
    """Reads a leg's incoming video and hands each frame to :attr:`target`, or drops it."""

    def __init__(self) -> None:
        self.target: ForwardedVideo | None = None
        self.frames = 0

    async def run(self, track: MediaStreamTrack) -> None:
        """Until the track ends."""
        while True:
            try:
                frame = await track.recv()
            except MediaStreamError:
                return
            if not isinstance(frame, av.VideoFrame):
                continue
            self.frames += 1
            if self.target is not None:
                self.target.push(frame)
