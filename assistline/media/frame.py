"""The one audio frame of the media model.

Inside a media worker every piece of audio is an :class:`AudioFrame`: 20 ms
of signed 16-bit mono PCM at :data:`INTERNAL_RATE`, with the timestamp of
its first sample in samples at that rate.

Why 16 kHz: SIP legs arrive at 8 kHz (G.711) or 16 kHz (G.722) and WebRTC
legs at 48 kHz (Opus). 16 kHz keeps G.722's wideband speech whole, converts
to and from 8 kHz by an integer factor of 2 and from 48 kHz by 3, and costs a
third of 48 kHz in every tap (DTMF detector, recorder, VAD, transcriber,
which all work at 8 or 16 kHz anyway). Opus voice above 8 kHz of audio
bandwidth carries nothing an agent or a recognizer needs.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import numpy.typing as npt

INTERNAL_RATE = 16_000
FRAME_MS = 20
FRAME_SAMPLES = INTERNAL_RATE * FRAME_MS // 1000

Samples = npt.NDArray[np.int16]


def samples_per_frame(rate: int) -> int:
    """How many samples 20 ms holds at ``rate`` Hz."""
    if rate <= 0 or rate * FRAME_MS % 1000:
        raise ValueError(f"a 20 ms frame needs a rate that is a multiple of 50 Hz, not {rate}")
    return rate * FRAME_MS // 1000


@dataclasses.dataclass(frozen=True, slots=True)
class AudioFrame:
    """20 ms of signed 16-bit mono PCM at the internal rate.

    ``timestamp`` counts samples at :data:`INTERNAL_RATE` since the start of
    the stream the frame belongs to, so consecutive frames differ by
    :data:`FRAME_SAMPLES`.
    """

    samples: Samples
    timestamp: int

    def __post_init__(self) -> None:
        if self.samples.dtype != np.int16 or self.samples.shape != (FRAME_SAMPLES,):
            raise ValueError(
                f"an audio frame is {FRAME_SAMPLES} int16 samples, not "
                f"{self.samples.shape} {self.samples.dtype}"
            )

    @classmethod
    def silence(cls, timestamp: int) -> AudioFrame:
        """A frame of digital silence."""
        return cls(np.zeros(FRAME_SAMPLES, dtype=np.int16), timestamp)

    @property
    def duration_ms(self) -> int:
        """Always 20."""
        return FRAME_MS

    @property
    def next_timestamp(self) -> int:
        """The timestamp of the frame that follows this one."""
        return self.timestamp + FRAME_SAMPLES
