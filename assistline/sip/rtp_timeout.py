"""Hanging up legs whose far end has gone silent: no RTP for ``media_timeout``.

A phone that loses power or network, or a load generator that aborts a
call, never sends a BYE; without a watchdog the leg (and the agent leg
bridged to it, and its recording) would stay up for ever, holding one of
the worker's four call slots. Every quarter of the timeout the worker
reads each answered leg's received-packet count from its audio stream
(on the pjsua2 thread) and :class:`RtpSilence` says which legs have not
received a packet for the whole timeout; those are hung up with cause 408.
A leg the far end has put on hold is never counted (it may rightly send
nothing), nor is a leg without an audio stream yet.

:class:`RtpSilence` is sans-IO: counts and times in, leg ids out;
:func:`watch_rtp` is the worker's loop around it.
"""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import logging
from collections.abc import Awaitable, Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from assistline.sip.leg import SipLeg
    from assistline.sip.pjthread import PjThread

logger = logging.getLogger(__name__)

#: Seconds without a received RTP packet before a leg is hung up (sip.media_timeout).
DEFAULT_TIMEOUT = 60.0


@dataclasses.dataclass
class RtpSilence:
    """Tracks each leg's received-packet count and when it last moved."""

    timeout: float = DEFAULT_TIMEOUT
    _last: dict[str, tuple[int, float]] = dataclasses.field(default_factory=dict)

    def check(self, counts: Iterable[tuple[str, int | None]], now: float) -> list[str]:
        """Legs silent for ``timeout`` at ``now``, given (leg, packets or None) for every leg.

        None means "not counted now" (no stream, or on hold): the leg's clock
        starts again when it is counted. Legs not listed are forgotten.
        """
        silent: list[str] = []
        seen: dict[str, tuple[int, float]] = {}
        for leg, count in counts:
            if count is None:
                continue
            previous = self._last.get(leg)
            if previous is None or previous[0] != count:
                seen[leg] = (count, now)
            elif now - previous[1] >= self.timeout:
                silent.append(leg)
            else:
                seen[leg] = previous
        self._last = seen
        return silent


async def watch_rtp(
    pjt: PjThread,
    legs: Mapping[str, SipLeg],
    run: Callable[[Callable[[], Any]], Awaitable[None]],
    timeout: float,
) -> None:
    """Every ``timeout / 4``: hang up (cause 408) the legs silent for ``timeout``.

    ``run`` runs a callable on the pjsua2 thread, reporting failures itself.
    """
    silence = RtpSilence(timeout)
    loop = asyncio.get_running_loop()
    while True:
        await asyncio.sleep(timeout / 4)
        try:
            counts = await pjt.run(functools.partial(_pj_rx_counts, list(legs.values())))
        except Exception:
            logger.exception("reading the legs' RTP counts failed")
            continue
        for leg in (legs.get(leg_id) for leg_id in silence.check(counts, loop.time())):
            if leg is not None:
                logger.warning("leg %s: no RTP for %.0f s, hanging up", leg.id, timeout)
                await run(functools.partial(leg.pj_hangup, 408, "RTP Timeout"))


def _pj_rx_counts(legs: list[SipLeg]) -> list[tuple[str, int | None]]:
    return [(leg.id, leg.pj_rx_packets()) for leg in legs]
