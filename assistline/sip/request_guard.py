"""Requests pjsip reads only in part are refused, not answered as if whole.

pjsip (pjsua2-python 2.15.1) reads each UDP datagram into a 4,000-byte
buffer and parses what it holds; three kinds of request then pass as valid
and get a call set up or a ``200 OK`` (measured in
``tests/integration/sip/test_malformed.py``, sent straight at a worker):

- a datagram over 4,000 bytes, cut off unseen: an INVITE whose SDP offer was
  cut off was answered as an offerless INVITE, with our own offer;
- a ``Content-Length`` longer than the body that came (RFC 3261 18.3);
- a ``CSeq`` naming another method than the request line (RFC 3261 8.1.1.5).

``_request_guard.c`` is a pjsip module just ahead of the transaction layer
that answers these ``513 Message Too Large``, ``400 Body Shorter Than
Content-Length`` and ``400 CSeq Method Mismatch`` (an ACK is dropped), so no
transaction, dialog or call starts. A *response* that filled the buffer is
dropped, as if lost on the way: its transaction times out instead of going
on with a message that was never sent (a ``200 OK`` missing its SDP).
Workers sit behind the edge, which refuses these requests itself; the guard
is for what reaches a worker's port anyway. The worker logs what it refused
once a second, as counts (:func:`describe_refusals`; the messages
themselves are never logged: they may carry anything).

A datagram of exactly 4,000 bytes is refused too: it cannot be told from a
longer one cut to that length. Workers speak UDP only, the one transport
the check is right for.

The module reads pjsip's ``pjsip_rx_data`` through declarations of its own
(the wheel ships no headers). :func:`install` checks them against pjsip's
parser first and refuses to register when they do not match; the worker then
runs without the guard and logs why.
"""

from __future__ import annotations

import logging
from types import ModuleType

import pjsua2 as pj

logger = logging.getLogger(__name__)

_native: ModuleType | None
try:
    from assistline.sip import _request_guard as _native
except ImportError:  # not compiled: pjsip answers these requests as it parsed them
    _native = None


def install() -> bool:
    """Register the guard with pjsua's SIP endpoint (pjsua2 thread, after ``libInit``).

    Returns whether it is on; when it is not, the log says why.
    """
    if _native is None:
        logger.warning(
            "the SIP request guard was not compiled: requests cut at 4,000 bytes or "
            "shorter than their Content-Length are answered as if whole"
        )
        return False
    try:
        _native.install(pj._pjsua2.__file__)
    except RuntimeError as error:
        logger.warning("the SIP request guard is off: %s", error)
        return False
    return True


#: What each count of :func:`stats` is, as the worker's log says it.
REASONS = {
    "truncated": "refused {} filling the 4,000-byte read buffer (513)",
    "body_short": "refused {} shorter than their Content-Length (400)",
    "cseq_mismatch": "refused {} whose CSeq names another method (400)",
    "truncated_responses": "dropped {} responses filling the 4,000-byte read buffer (as lost)",
    "unchecked": "passed {} unchecked (pjsip's fields did not read back as laid out)",
}


def describe_refusals(before: dict[str, int], after: dict[str, int]) -> str:
    """What the guard did between two :func:`stats` readings, or "" for nothing."""
    parts = [
        reason.format(after.get(key, 0) - before.get(key, 0))
        for key, reason in REASONS.items()
        if after.get(key, 0) > before.get(key, 0)
    ]
    return "SIP request guard: " + ", ".join(parts) if parts else ""


def stats() -> dict[str, int]:
    """Requests refused and responses dropped since start, by reason, and those left unchecked.

    Keys: ``truncated``, ``cseq_mismatch``, ``body_short``,
    ``truncated_responses``, and ``unchecked`` (messages whose fields did not
    read back as laid out).
    """
    return dict(_native.stats()) if _native is not None else {}
