"""Child processes that die with the server, even when it is killed with ``kill -9``.

Linux's parent-death signal (``prctl(PR_SET_PDEATHSIG)``) is armed in the
child between fork and exec (:func:`die_with_parent`), or by our own Python
children first thing after it (:func:`arm_parent_death`). It fires when the *thread* that forked the
child exits, so children must be started from a thread that lives as long
as the server: the event loop's. A child that changes its user id itself
(Kamailio's ``-u``) loses the signal, so its owner also clears leftovers at
the next start.
"""

from __future__ import annotations

import ctypes
import os
import signal
from collections.abc import Callable

_PR_SET_PDEATHSIG = 1


def die_with_parent(sig: signal.Signals = signal.SIGTERM) -> Callable[[], None]:
    """A ``preexec_fn`` that has the child receive ``sig`` when this process dies."""
    parent = os.getpid()

    def arm() -> None:
        arm_parent_death(parent, sig)

    return arm


def arm_parent_death(parent: int, sig: signal.Signals = signal.SIGTERM) -> None:
    """In the child itself: receive ``sig`` when ``parent`` dies; exit now if it has.

    For children that are Python programs of ours (media workers): arming
    it after exec lets the server start them without a ``preexec_fn``, so
    Python uses vfork and the server's event loop does not wait, fork by
    fork, for a busy core to run each child up to its exec (measured: a
    4.5 s stall starting one worker with 52 running).
    """
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(_PR_SET_PDEATHSIG, int(sig))
    if os.getppid() != parent:  # the parent died before the signal was armed
        os._exit(1)
