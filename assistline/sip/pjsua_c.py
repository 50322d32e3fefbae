"""pjsua's C calls that pjsua2 does not wrap, and settings pjsua2 cannot write.

The wheel exports pjsua's C API from its extension module, so a few calls
pjsua2 leaves out are reached through :mod:`ctypes`: removing a conference
port without deleting it, asking whether a bridge slot is taken, and
counting the call slots pjsua holds. All of them run on the pjsua2 thread
(:mod:`assistline.sip.pjthread`), like every other pjsua2 call.
"""

from __future__ import annotations

import ctypes
import dataclasses
import logging
import threading
import weakref
from collections.abc import Iterable
from typing import Any

import pjsua2 as pj

logger = logging.getLogger(__name__)


class Pjsua:
    """pjsua's C calls that pjsua2 does not wrap (the library exports them)."""

    def __init__(self) -> None:
        library = ctypes.CDLL(pj._pjsua2.__file__)
        self._remove = library.pjsua_conf_remove_port
        self._remove.argtypes = [ctypes.c_int]
        self._remove.restype = ctypes.c_int
        self._info = library.pjsua_conf_get_port_info
        self._info.argtypes = [ctypes.c_int, ctypes.c_void_p]
        self._info.restype = ctypes.c_int
        self._calls = library.pjsua_call_get_count
        self._calls.argtypes = []
        self._calls.restype = ctypes.c_uint
        # pjsua_conf_port_info is ~1 KB (a listener table of PJSUA_MAX_CONF_PORTS);
        # only the status is read, so the buffer is simply far larger.
        self._scratch = ctypes.create_string_buffer(65536)

    def remove(self, slot: int) -> None:
        """Queue ``slot``'s removal (pjmedia does it on its next clock tick)."""
        self._remove(slot)

    def occupied(self, slot: int) -> bool:
        """True while a port holds ``slot`` (pjsua2 thread: the scratch buffer is shared)."""
        return int(self._info(slot, self._scratch)) == 0

    def calls(self) -> int:
        """Call slots pjsua holds, counting calls hung up whose BYE is still unanswered."""
        return int(self._calls())


pjsua = Pjsua()


#: pjmedia's jitter-buffer discard algorithms (``pjmedia_jb_discard_algo``).
JITTER_DISCARD = {"none": 0, "static": 1, "progressive": 2}


@dataclasses.dataclass(frozen=True, slots=True)
class JitterBuffer:
    """How every call's jitter buffer trades delay against dropped frames.

    pjmedia's default, progressive discard, drops frames to bring the delay
    back to the measured burst level. In ``bench/sip.py`` (loopback, 50
    recorded calls, one core) it dropped 0–71 frames in a 10 s window, each
    a 20 ms hole in the audio, which can also split or hide an in-band DTMF
    tone; with ``none`` no frame was dropped at 50, 75 and 100 calls and the
    buffers' average delay went from 24 to 31 ms. ``max_ms`` bounds what a
    burst can add: beyond it the oldest frames are dropped (and counted).
    """

    discard: str = "none"
    max_ms: int = 200

    def apply(self, config: Any) -> None:
        """Write this into an ``EpConfig`` before ``libInit``.

        The wheel's SWIG layer does not export ``pjmedia_jb_discard_algo``:
        reading ``jbDiscardAlgo`` gives a pointer to a heap copy of the enum,
        so the value is written through it and the copy assigned back.
        """
        algo = config.medConfig.jbDiscardAlgo
        ctypes.c_int.from_address(int(algo)).value = JITTER_DISCARD[self.discard]
        config.medConfig.jbDiscardAlgo = algo
        algo.disown()  # SWIG knows no destructor: 4 bytes kept, and no leak warning
        config.medConfig.jbMax = self.max_ms


DEFAULT_JITTER = JitterBuffer()


def pjsua_call_slots() -> int:
    """Call slots pjsua holds now (pjsua2 thread), see :meth:`Pjsua.calls`."""
    return pjsua.calls()


def no_object() -> None:
    """The default of a weak reference to a pjsua2 object not made yet (or let go)."""
    return None


def disown_survivors(objects: Iterable[weakref.ref[Any]]) -> None:
    """Leave undeleted the pjsua2 objects still alive once the registry let go.

    At shutdown every pjsua2 object must be deleted before ``libDestroy``:
    one deleted after it (by the garbage collector, on any thread, or at
    exit) calls into a destroyed library and pjlib aborts the process
    (``pjmedia_conf_remove_port`` and ``pjsua_call_set_user_data``
    assertions, seen at the end of ``bench/sip.py`` runs). An object that
    something besides the registry still references is a bug, logged here;
    its C++ side is disowned so that Python never deletes it (``libDestroy``
    frees what pjsua holds for it, and the process is ending).
    """
    for ref in objects:
        obj = ref()
        if obj is not None:
            logger.warning("a %s outlived the pjsua2 thread; left undeleted", type(obj).__name__)
            obj.thisown = False


#: Threads pjmedia started whose Python thread state is kept (their idents).
_kept_thread_states: set[int] = set()


def keep_thread_state() -> None:
    """Keep this thread's Python thread state between pjsua2 callbacks.

    pjmedia's clock thread calls into Python through SWIG, which takes the
    GIL with ``PyGILState_Ensure``. A thread Python did not start gets a new
    thread state there, freed again by ``PyGILState_Release``: 100 times a
    second per leg, with its 16 KB frame stack mapped and unmapped each time
    (measured at 20 payment calls: the clock threads' kernel time, mostly
    those page faults and ``mmap``, was a third of their time). One more
    ``Ensure`` that is never released keeps the state for the thread's
    life; Python frees it when the interpreter ends.
    """
    ident = threading.get_ident()
    if ident not in _kept_thread_states:
        _kept_thread_states.add(ident)
        ctypes.pythonapi.PyGILState_Ensure()
