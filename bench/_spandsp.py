"""ctypes binding to spandsp's DTMF receiver, the benchmark's reference detector.

spandsp (Debian ``libspandsp2``, API 0.0.6) is loaded here and only here: it
is a reference to measure against, never a runtime dependency of assistline.
Signatures follow ``/usr/include/spandsp/dtmf.h``:

- ``dtmf_rx_state_t *dtmf_rx_init(dtmf_rx_state_t *s, digits_rx_callback_t cb, void *user)``
- ``void dtmf_rx_parms(dtmf_rx_state_t *s, int filter_dialtone, int twist,
  int reverse_twist, int threshold)``
- ``int dtmf_rx(dtmf_rx_state_t *s, const int16_t amp[], int samples)``
- ``size_t dtmf_rx_get(dtmf_rx_state_t *s, char *digits, int max)``
- ``int dtmf_rx_status(dtmf_rx_state_t *s)``
- ``int dtmf_rx_free(dtmf_rx_state_t *s)``

spandsp works at 8 kHz only. Digits are collected through the receiver's own
buffer (``dtmf_rx_get``), so no Python callback runs inside the C code and the
timed cost is spandsp's plus one ctypes call per frame.
"""

from __future__ import annotations

import ctypes
import ctypes.util
from typing import Final

import numpy as np
import numpy.typing as npt

RATE: Final = 8000
_MAX_DIGITS: Final = 128  # MAX_DTMF_DIGITS in dtmf.h


class SpandspUnavailable(RuntimeError):
    """libspandsp.so.2 is not installed: run `apt-get install libspandsp2`."""


def _load() -> ctypes.CDLL:
    for name in ("libspandsp.so.2", ctypes.util.find_library("spandsp")):
        if not name:
            continue
        try:
            lib = ctypes.CDLL(name)
        except OSError:
            continue
        lib.dtmf_rx_init.restype = ctypes.c_void_p
        lib.dtmf_rx_init.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p]
        lib.dtmf_rx_parms.restype = None
        lib.dtmf_rx_parms.argtypes = [ctypes.c_void_p] + [ctypes.c_int] * 4
        lib.dtmf_rx.restype = ctypes.c_int
        lib.dtmf_rx.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int]
        lib.dtmf_rx_get.restype = ctypes.c_size_t
        lib.dtmf_rx_get.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_int]
        lib.dtmf_rx_status.restype = ctypes.c_int
        lib.dtmf_rx_status.argtypes = [ctypes.c_void_p]
        lib.dtmf_rx_free.restype = ctypes.c_int
        lib.dtmf_rx_free.argtypes = [ctypes.c_void_p]
        return lib
    raise SpandspUnavailable(SpandspUnavailable.__doc__)


_lib: ctypes.CDLL | None = None


def library() -> ctypes.CDLL:
    """The loaded libspandsp, loading it on first use."""
    global _lib
    if _lib is None:
        _lib = _load()
    return _lib


class SpandspDtmf:
    """One spandsp DTMF receiver with its default parameters (8 kHz only)."""

    def __init__(self) -> None:
        self._lib = library()
        state = self._lib.dtmf_rx_init(None, None, None)
        if not state:
            raise SpandspUnavailable("dtmf_rx_init returned NULL")
        self._state: int = state
        self._out = ctypes.create_string_buffer(_MAX_DIGITS + 1)
        self._rx = self._lib.dtmf_rx
        self._get = self._lib.dtmf_rx_get

    def parms(
        self,
        filter_dialtone: int = -1,
        twist: int = -1,
        reverse_twist: int = -1,
        threshold: int = -99,
    ) -> None:
        """Adjust the receiver (negative / -99 values leave a parameter unchanged)."""
        self._lib.dtmf_rx_parms(self._state, filter_dialtone, twist, reverse_twist, threshold)

    def feed(self, samples: npt.NDArray[np.int16]) -> None:
        """Run the receiver over contiguous int16 samples at 8 kHz."""
        self._rx(self._state, samples.ctypes.data, samples.shape[0])

    def digits(self) -> str:
        """Digits detected since the last call (spandsp buffers up to 128)."""
        count = self._get(self._state, self._out, _MAX_DIGITS)
        return self._out.raw[:count].decode("ascii")

    def status(self) -> str:
        """The digit being received now, or '' (spandsp's ``dtmf_rx_status``)."""
        code = self._lib.dtmf_rx_status(self._state)
        return chr(code) if code not in (0, ord("x")) else ""

    def close(self) -> None:
        """Free the receiver."""
        if self._state:
            self._lib.dtmf_rx_free(self._state)
            self._state = 0

    def __del__(self) -> None:
        self.close()


def detect(signal: npt.NDArray[np.int16], frame: int = 160) -> str:
    """All digits spandsp reports over ``signal`` fed in ``frame``-sample pieces."""
    rx = SpandspDtmf()
    try:
        samples = np.ascontiguousarray(signal, dtype=np.int16)
        found: list[str] = []
        for start in range(0, samples.shape[0], frame):
            rx.feed(samples[start : start + frame])
            if start % (frame * 32) == 0:
                found.append(rx.digits())
        found.append(rx.digits())
        return "".join(found)
    finally:
        rx.close()
