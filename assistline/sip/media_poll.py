"""pjmedia's RTP I/O queue, polled from a C thread of our own and less often.

pjsua gives its media endpoint one thread (``medConfig.threadCnt = 1``)
that polls the RTP sockets with a timeout of 10 ms fixed in pjmedia: 100
wake-ups a second in every media worker, busy or idle. With dozens of
workers on a core that is a cost of its own (measured: 29 idle workers,
their media threads 5.2 % of the core, a third of the workers' idle cost).
pjmedia offers no knob for the timeout, and pjsua turns ``threadCnt = 0``
into 1. So once pjsua has started, ``_media_poll.c`` stops pjmedia's thread
(``pjmedia_endpt_stop_threads``, pjmedia's own call) and polls the same
queue from a thread of its own, in C so that it never takes the GIL (the
poll's callbacks are pjmedia's), with :data:`POLL_MS`.

What the longer wait costs: pjlib's select-based queue copies its socket
set when a poll begins, so a call's RTP socket created during a wait is
first read when that wait ends, at most :data:`POLL_MS` later. That delays
only a call's first packets (its jitter buffer is filling then anyway);
sending never waits for the poll.

Where the extension was not compiled, pjmedia's own thread does the work,
as before. Where it was and cannot start (pjlib refuses its thread), the
worker does not start: nobody would read its RTP.
"""

from __future__ import annotations

from types import ModuleType

import pjsua2 as pj

#: How long one poll waits for a packet (pjmedia's own thread: 10 ms).
POLL_MS = 50

_native: ModuleType | None
try:
    from assistline.sip import _media_poll as _native
except ImportError:  # not compiled: pjmedia's own thread polls
    _native = None


def available() -> bool:
    """Whether the C poller was compiled (else keep pjmedia's media thread)."""
    return _native is not None


def start(poll_ms: int = POLL_MS) -> None:
    """Take over polling pjmedia's I/O queue (pjsua2 thread, after ``libStart``)."""
    assert _native is not None
    _native.start(pj._pjsua2.__file__, poll_ms)


def stop() -> None:
    """End the poller and wait for it (pjsua2 thread, before ``libDestroy``)."""
    if _native is not None:
        _native.stop()
