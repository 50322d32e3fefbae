"""Live receive quality: each leg's ``media_stats`` every ``sip.quality_interval``.

A leg's audio stream reports what it received (RTP packets, loss, jitter,
frames its jitter buffer lost or discarded) as differences since its
previous report, and once more when the stream ends
(:meth:`SipLeg.pj_report_quality <assistline.sip.leg.SipLeg.pj_report_quality>`);
the control process adds them up in the leg's ``call_record``. So the
record shows a call's quality while it is up, a worker killed mid-call
loses at most one interval of figures, and ``bench/sip.py`` can tell the
losses of the window it measures from those of the rest of the call.
A report costs one ``getStreamStat`` per leg on the pjsua2 thread, and
is sent only when something changed.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import Mapping

from assistline.sip.leg import SipLeg
from assistline.sip.pjthread import PjsuaStoppedError, PjThread

logger = logging.getLogger(__name__)

#: Seconds between reports (sip.quality_interval).
DEFAULT_INTERVAL = 10.0


async def report_quality(pjt: PjThread, legs: Mapping[str, SipLeg], interval: float) -> None:
    """Every ``interval`` seconds, each leg up reports what it received since last time."""
    while True:
        await asyncio.sleep(interval)
        try:
            await pjt.run(functools.partial(_pj_report, list(legs.values())))
        except PjsuaStoppedError:
            return
        except Exception:
            logger.exception("reporting the legs' receive quality failed")


def _pj_report(legs: list[SipLeg]) -> None:
    for leg in legs:
        if not leg.ended:
            leg.pj_report_quality()
