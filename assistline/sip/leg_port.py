"""A leg's port in pjmedia's conference bridge: how its frames reach the event loop.

A SIP leg whose audio passes through Python has one port in the bridge,
connected both ways to the call's audio. The port runs at the internal rate
(16 kHz, 20 ms), so it sees exactly
:class:`~assistline.media.frame.AudioFrame`-sized buffers; pjmedia does the
G.711/G.722 coding and any resampling. pjmedia's *clock thread* hands the
port a frame from the call and asks it for one to send every 20 ms; the
event loop reads and writes frames through the port's
:class:`FrameRings`: two bounded rings of frames (a full ring drops its
oldest frame, so a stalled reader never grows memory; an empty send ring
gives the call silence).

Two ports, one contract (:class:`LegPort`):

- :class:`RingPort` (``_ring_port.c``, built at install like the G.711
  loop): the clock thread copies frames into and out of rings in C and never
  takes the GIL. Measured (``bench/ivr.py``, 30 payment calls in 17
  workers, the media task still every 10 ms): 94.8 % of the core with
  FramePorts, 65.3 % with RingPorts; the clock threads went from about
  30 % of the core to about 10 %.
- :class:`FramePort`, where the extension was not compiled or pjmedia's
  layout is not the one it was written for: a pjsua2 ``AudioMediaPort``
  whose ``onFrameReceived``/``onFrameRequested`` run in Python on the clock
  thread (twice per frame it takes the GIL, beside the worker's event
  loop), with ``collections.deque(maxlen=…)`` rings (appends and pops of a
  deque are atomic under the GIL).

FramePort frame copies. pjsua2 hands frames over as a SWIG ``ByteVector``
(a C++ ``std::vector<unsigned char>``), which Python can only walk element
by element: measured here (pjsua2-python 2.15.1), copying 640 bytes out
costs ~600 µs through ``tuple()`` (~1.2 ms through ``bytes()``) and building
one from ``bytes`` ~23 µs: 3 % of a core per leg for reading alone. So the
port copies through the vector's data pointer instead (:func:`vector_bytes`
and :func:`fill_frame`, ~1.5 µs and ~4.5 µs): the pointer is the first word
of a libstdc++ vector, which :func:`_vector_layout_ok` checks once on a
vector of known contents; where the layout differs the slow copies are used
and a warning says so.

Lifetimes. Ports are made, connected and taken out of the bridge on the
pjsua2 thread (:meth:`~.pjthread.PjThread.retire`); pjmedia removes a slot
on its next clock tick, so a port is freed only once its slot is empty
(:meth:`LegPort.let_go`). The event loop holds only a port's rings: a
RingPort's rings are the C port itself, which frees nothing until let go; a
FramePort's are plain deques, so no pjsua2 object is ever deleted off its
thread through them.
"""

from __future__ import annotations

import collections
import ctypes
import logging
from typing import Any, Protocol

import pjsua2 as pj

from assistline.media.frame import FRAME_SAMPLES, INTERNAL_RATE
from assistline.sip.pjsua_c import keep_thread_state, pjsua
from assistline.sip.pjthread import guarded

logger = logging.getLogger(__name__)

#: Frames each audio ring holds: 200 ms.
RING_FRAMES = 10
FRAME_BYTES = FRAME_SAMPLES * 2
_SILENCE = bytes(FRAME_BYTES)

try:
    from assistline.sip import _ring_port
except ImportError:  # not compiled: FramePorts carry the frames
    _ring_port = None  # type: ignore[assignment]


class FrameRings(Protocol):
    """A port's two rings, as the event loop uses them (any thread)."""

    def read(self) -> bytes | None:
        """The oldest frame from the call, or None."""

    def write(self, data: bytes, /) -> None:
        """Queue one frame to the call (the oldest is dropped when the ring is full)."""

    def queued(self) -> int:
        """Frames waiting to be sent."""

    def clear(self) -> None:
        """Drop every frame in both rings."""


class LegPort(Protocol):
    """A port in the conference bridge (pjsua2 thread)."""

    @property
    def rings(self) -> FrameRings:
        """The port's rings, which the event loop uses."""

    def connect(self, audio: Any) -> None:
        """Frames both ways between the port and a call's audio (a pjsua2 ``AudioMedia``)."""

    def disconnect(self, audio: Any) -> None:
        """Stop frames both ways between the port and a call's audio."""

    def getPortId(self) -> int:  # noqa: N802 - pjsua2's name, shared with its ports
        """The port's bridge slot."""

    def remove_from_bridge(self) -> None:
        """Queue the port's removal: pjmedia takes it out on its next clock tick."""

    def let_go(self) -> None:
        """The bridge has emptied the port's slot: the port may now be freed."""


class _NoRings:
    """The rings of a leg with no port: nothing to read, writes dropped."""

    def read(self) -> bytes | None:
        return None

    def write(self, data: bytes, /) -> None:
        return None

    def queued(self) -> int:
        return 0

    def clear(self) -> None:
        return None


#: A leg's rings while its frames do not pass through Python.
NO_RINGS: FrameRings = _NoRings()


class RingPort:
    """A leg's port whose clock-thread side is C (``_ring_port.c``)."""

    def __init__(self, port: _ring_port.Port) -> None:
        self.rings = port
        port.add()

    def connect(self, audio: Any) -> None:
        """Frames both ways with ``audio``, slot to slot."""
        self.rings.connect(int(audio.getPortId()))

    def disconnect(self, audio: Any) -> None:
        """Stop frames both ways with ``audio``."""
        self.rings.disconnect(int(audio.getPortId()))

    def getPortId(self) -> int:  # noqa: N802 - pjsua2's name, shared with its ports
        """The port's bridge slot."""
        return self.rings.getPortId()

    def remove_from_bridge(self) -> None:
        """The port's bridge slot."""
        self.rings.remove()

    def let_go(self) -> None:
        """The slot is empty: the C port is freed with its last reference."""
        self.rings.let_go()


def _data_pointer(vector: Any) -> int:
    """The address of a ``std::vector``'s first element (libstdc++: its first word)."""
    return ctypes.c_void_p.from_address(int(vector.this)).value or 0


def _vector_layout_ok() -> bool:
    probe = bytes(range(256)) * 2 + bytes(range(128))
    vector = pj.ByteVector(probe)
    try:
        return ctypes.string_at(_data_pointer(vector), len(probe)) == probe
    except (TypeError, ValueError, OSError):
        return False


_FAST_COPY = _vector_layout_ok()
if not _FAST_COPY:
    logger.warning("pjsua2's ByteVector layout is unknown: frames are copied the slow way")


def vector_bytes(vector: Any, size: int) -> bytes:
    """The first ``size`` bytes of a ``ByteVector`` (which holds at least ``size``)."""
    if _FAST_COPY:
        return ctypes.string_at(_data_pointer(vector), size)
    return bytes(tuple(vector)[:size])


def fill_frame(frame: Any, data: bytes) -> None:
    """Put ``data`` in a ``MediaFrame``'s buffer (``frame.buf`` is the member itself)."""
    if not _FAST_COPY:
        frame.buf = pj.ByteVector(data)
        return
    vector = frame.buf
    if len(vector) != len(data):
        vector.resize(len(data))
    ctypes.memmove(_data_pointer(vector), data, len(data))


class DequeRings:
    """A FramePort's rings: bounded deques (atomic appends and pops under the GIL)."""

    def __init__(self) -> None:
        self.received: collections.deque[bytes] = collections.deque(maxlen=RING_FRAMES)
        self.to_send: collections.deque[bytes] = collections.deque(maxlen=RING_FRAMES)

    def read(self) -> bytes | None:
        """The oldest frame from the call, or None."""
        try:
            return self.received.popleft()
        except IndexError:
            return None

    def write(self, data: bytes, /) -> None:
        """Queue one frame to the call."""
        self.to_send.append(data)

    def queued(self) -> int:
        """Frames waiting to be sent."""
        return len(self.to_send)

    def clear(self) -> None:
        """Drop every frame in both rings."""
        self.received.clear()
        self.to_send.clear()


class FramePort(pj.AudioMediaPort):  # type: ignore[misc]  # pjsua2 has no stubs
    """An ``AudioMediaPort`` passing 20 ms 16 kHz frames through deques, in Python."""

    def __init__(self, name: str) -> None:
        super().__init__()
        self.rings = DequeRings()
        fmt = pj.MediaFormatAudio()
        fmt.init(pj.PJMEDIA_FORMAT_PCM, INTERNAL_RATE, 1, 20_000, 16)
        self.createPort(name, fmt)

    def connect(self, audio: Any) -> None:
        """Frames both ways with ``audio`` (pjsua2's own transmit calls)."""
        audio.startTransmit(self)
        self.startTransmit(audio)

    def disconnect(self, audio: Any) -> None:
        """Stop frames both ways with ``audio``."""
        audio.stopTransmit(self)
        self.stopTransmit(audio)

    def remove_from_bridge(self) -> None:
        """Queue the removal through pjsua's C call (pjsua2 has none that keeps the port)."""
        pjsua.remove(int(self.getPortId()))

    def let_go(self) -> None:
        """Nothing to do: deleting the pjsua2 object frees it."""

    @guarded
    def onFrameReceived(self, frame: Any) -> None:  # noqa: N802 - pjsua2's name
        """Clock thread: audio from the call."""
        keep_thread_state()
        if frame.type == pj.PJMEDIA_FRAME_TYPE_AUDIO and frame.size == FRAME_BYTES:
            self.rings.received.append(vector_bytes(frame.buf, FRAME_BYTES))

    @guarded
    def onFrameRequested(self, frame: Any) -> None:  # noqa: N802 - pjsua2's name
        """Clock thread: audio to the call (silence when nothing is queued)."""
        keep_thread_state()
        try:
            data = self.rings.to_send.popleft()
        except IndexError:
            data = _SILENCE
        frame.type = pj.PJMEDIA_FRAME_TYPE_AUDIO
        fill_frame(frame, data)
        frame.size = FRAME_BYTES


_c_ports = _ring_port is not None
if _c_ports and _ring_port.FRAME_BYTES != FRAME_BYTES:
    _c_ports = False  # the C port's frame is fixed when it is built


def new_port(name: str) -> LegPort:
    """A port for a leg, added to the bridge: a RingPort where it can be (pjsua2 thread)."""
    global _c_ports
    if _c_ports:
        try:
            port = _ring_port.Port(pj._pjsua2.__file__, name, RING_FRAMES)
        except RuntimeError as error:  # the same for every port: pjmedia is not as built for
            _c_ports = False
            logger.warning("the C leg port is unusable, frames pass through Python: %s", error)
        else:
            return RingPort(port)
    return FramePort(name)
