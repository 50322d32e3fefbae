"""G.711 companding: μ-law (PCMU) and A-law (PCMA) over numpy arrays.

SIP legs carry G.711 at 8 kHz, one byte per sample. This module turns
signed 16-bit samples into codes and back, bit-exact with the reference
every telephony stack agrees on (ITU-T G.711 as implemented by the Sun
reference code and Python's ``audioop``): μ-law companding uses the top 14
bits of a sample and A-law the top 13, so the low bits are dropped, not
rounded. The tests check all 65,536 samples and all 256 codes against
``audioop``.

Why lookup tables: each direction is one table look-up, a 64K-entry
``uint8`` table indexed by the sample's 16-bit pattern to encode, a
256-entry ``int16`` table to decode, computed once at import from the
formulas in G.711 (about 2 ms). Negative samples index the table from its
end (``-1`` is entry 65535), which is the sample reinterpreted as
``uint16`` without a view.

Why a C loop beside them: numpy spends about 0.3 µs of overhead per call,
more than a 160-sample look-up costs, so through numpy alone a frame took
1–6 times ``audioop``'s time (decoding 0.82 µs against 0.15 µs). The
optional accelerator ``_g711`` (``_g711.c``, compiled at install when a C
compiler is present, as aiohttp does) runs the same tables in one C loop
over the caller's buffers; without it, the numpy look-ups below are used and
give the same results. ``bench/_media_codecs.py`` measures both paths
against ``audioop`` doing the same work: an RTP payload to the int16 array
the media core uses, and back.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from assistline.media.frame import Samples

try:
    from assistline.media import _g711

    ACCELERATED = True
except ImportError:  # built without a C compiler: the numpy look-ups are used
    ACCELERATED = False

Codes = npt.NDArray[np.uint8]

_INT16 = np.dtype(np.int16)
_UINT8 = np.dtype(np.uint8)


def _bit_length(values: npt.NDArray[np.int64]) -> npt.NDArray[np.int64]:
    """The number of bits needed for each non-negative value (0 for 0)."""
    return np.frexp(values.astype(np.float64))[1].astype(np.int64)


def _ulaw_encode_table() -> Codes:
    # Every 16-bit pattern, in uint16 order, as its signed value.
    linear = np.arange(65536, dtype=np.uint16).view(np.int16).astype(np.int64)
    value = linear >> 2  # μ-law companding works on 14 bits
    mask = np.where(value < 0, 0x7F, 0xFF)
    magnitude = np.minimum(np.abs(value), 8159) + 0x21  # clip, then add the bias (33)
    segment = np.maximum(_bit_length(magnitude) - 6, 0)
    mantissa = (magnitude >> np.minimum(segment + 1, 8)) & 0x0F
    # Clipping leaves 8192 for the loudest samples, past segment 7: that is the extreme code.
    code = np.where(segment >= 8, 0x7F, (np.minimum(segment, 7) << 4) | mantissa)
    return (code ^ mask).astype(np.uint8)


def _ulaw_decode_table() -> Samples:
    code = ~np.arange(256, dtype=np.int64) & 0xFF
    magnitude = (((code & 0x0F) << 3) + 0x84) << ((code & 0x70) >> 4)
    return np.where(code & 0x80, 0x84 - magnitude, magnitude - 0x84).astype(np.int16)


def _alaw_encode_table() -> Codes:
    linear = np.arange(65536, dtype=np.uint16).view(np.int16).astype(np.int64)
    value = linear >> 3  # A-law companding works on 13 bits
    negative = value < 0
    mask = np.where(negative, 0x55, 0xD5)
    magnitude = np.where(negative, -value - 1, value)
    # 13-bit input keeps magnitude below 4096, so the segment never exceeds 7.
    segment = np.maximum(_bit_length(magnitude) - 5, 0)
    mantissa = (magnitude >> np.maximum(segment, 1)) & 0x0F
    return (((segment << 4) | mantissa) ^ mask).astype(np.uint8)


def _alaw_decode_table() -> Samples:
    code = np.arange(256, dtype=np.int64) ^ 0x55
    segment = (code & 0x70) >> 4
    magnitude = ((code & 0x0F) << 4) + np.where(segment == 0, 8, 0x108)
    magnitude = magnitude << np.maximum(segment - 1, 0)
    table: Samples = np.where(code & 0x80, magnitude, -magnitude).astype(np.int16)
    return table


_ULAW_ENCODE = _ulaw_encode_table()
_ULAW_DECODE = _ulaw_decode_table()
_ALAW_ENCODE = _alaw_encode_table()
_ALAW_DECODE = _alaw_decode_table()
if ACCELERATED:
    _g711.set_tables(_ULAW_ENCODE, _ULAW_DECODE, _ALAW_ENCODE, _ALAW_DECODE)


def _check(array: object, dtype: np.dtype[np.generic], operation: str) -> None:
    """Raise the ValueError that says what is wrong with ``array``, if anything is."""
    accepted = "int16 samples" if dtype == _INT16 else "uint8 codes or bytes"
    if not isinstance(array, np.ndarray):
        raise ValueError(f"G.711 {operation} takes {accepted}, not {type(array).__name__}")
    if array.dtype != dtype:
        raise ValueError(f"G.711 {operation} takes {accepted}, not {array.dtype}")
    if array.ndim != 1:
        raise ValueError(f"G.711 {operation} takes one-dimensional arrays, not shape {array.shape}")


# Each function checks its input inline with identity tests: a helper call, an
# isinstance or a dtype equality each cost a tenth of the look-up. On the numpy path
# indexing with intp is twice as fast as with the int16 array itself, and negative
# samples then index from the table's end, exactly as their uint16 patterns do.


def encode_ulaw(samples: Samples) -> Codes:
    """μ-law codes (PCMU payload bytes) for int16 samples, one code per sample."""
    if type(samples) is not np.ndarray or samples.dtype is not _INT16 or samples.ndim != 1:
        _check(samples, _INT16, "encoding")
    if ACCELERATED and samples.flags.c_contiguous:  # a strided view goes through numpy
        return _g711.ulaw_encode(samples)
    return _ULAW_ENCODE[samples.astype(np.intp)]


def decode_ulaw(codes: Codes | bytes) -> Samples:
    """int16 samples for μ-law codes, given as a uint8 array or a PCMU payload."""
    if type(codes) is not bytes and (
        type(codes) is not np.ndarray or codes.dtype is not _UINT8 or codes.ndim != 1
    ):
        _check(codes, _UINT8, "decoding")
    if ACCELERATED:
        return _g711.ulaw_decode(codes)
    return _ULAW_DECODE[np.frombuffer(codes, _UINT8).astype(np.intp)]


def encode_alaw(samples: Samples) -> Codes:
    """A-law codes (PCMA payload bytes) for int16 samples, one code per sample."""
    if type(samples) is not np.ndarray or samples.dtype is not _INT16 or samples.ndim != 1:
        _check(samples, _INT16, "encoding")
    if ACCELERATED and samples.flags.c_contiguous:  # a strided view goes through numpy
        return _g711.alaw_encode(samples)
    return _ALAW_ENCODE[samples.astype(np.intp)]


def decode_alaw(codes: Codes | bytes) -> Samples:
    """int16 samples for A-law codes, given as a uint8 array or a PCMA payload."""
    if type(codes) is not bytes and (
        type(codes) is not np.ndarray or codes.dtype is not _UINT8 or codes.ndim != 1
    ):
        _check(codes, _UINT8, "decoding")
    if ACCELERATED:
        return _g711.alaw_decode(codes)
    return _ALAW_DECODE[np.frombuffer(codes, _UINT8).astype(np.intp)]
