"""The media worker's command line: ``python -m assistline.sip.worker --help``.

Kept apart from :mod:`assistline.sip.worker` so that module holds the
worker itself. :func:`main` sets the GIL switch interval the worker's
media callbacks need (see that module's docstring), configures logging to
stderr and runs one :class:`~assistline.sip.worker.MediaWorker` until it
is stopped by SIGTERM/SIGINT, a ``stop`` command or the control socket
closing.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys
from collections.abc import Sequence

from assistline.children import arm_parent_death
from assistline.sip.pjsua_c import JITTER_DISCARD, JitterBuffer
from assistline.sip.worker import SWITCH_INTERVAL, MediaWorker


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """The worker's command line."""
    parser = argparse.ArgumentParser(
        prog="python -m assistline.sip.worker", description="assistline media worker"
    )
    parser.add_argument("--id", default="w1", help="worker id used in leg ids and logs")
    parser.add_argument("--port", type=int, required=True, help="loopback SIP UDP port")
    parser.add_argument("--control", help="Unix socket of the control process")
    parser.add_argument("--bind", default="127.0.0.1", help="address for SIP and RTP")
    parser.add_argument("--codecs", default="PCMU,PCMA,G722", help="codecs in preference order")
    parser.add_argument("--rtp-min", type=int, default=20000, help="lowest RTP port")
    parser.add_argument("--rtp-max", type=int, default=30000, help="highest RTP port")
    parser.add_argument("--public-address", default="", help="address put in SDP (NAT)")
    parser.add_argument(
        "--media-timeout", type=float, default=60.0, help="hang up after this many s without RTP"
    )
    parser.add_argument(
        "--bridge-rate", type=int, choices=(8000, 16000), default=8000, help="bridge's rate (Hz)"
    )
    parser.add_argument(
        "--jitter-discard", choices=tuple(JITTER_DISCARD), default="none", help="see settings"
    )
    parser.add_argument("--jitter-max-ms", type=int, default=200, help="jitter buffer's most (ms)")
    parser.add_argument(
        "--quality-interval", type=float, default=10.0, help="s between quality reports; 0: at end"
    )
    parser.add_argument(
        "--ice-host-addresses", default="", help="addresses of WebRTC host candidates (comma)"
    )
    parser.add_argument(
        "--consent-timeout", type=float, help="end WebRTC legs after this many s without consent"
    )
    parser.add_argument(
        "--parent", type=int, default=0, help="exit when this process (the server) dies"
    )
    return parser.parse_args(argv)


async def _main(args: argparse.Namespace) -> None:
    worker = MediaWorker(
        args.id,
        args.port,
        control_path=args.control,
        bind_address=args.bind,
        codecs=tuple(c.strip() for c in args.codecs.split(",") if c.strip()),
        rtp_port_min=args.rtp_min,
        rtp_port_max=args.rtp_max,
        public_address=args.public_address,
        media_timeout=args.media_timeout,
        bridge_rate=args.bridge_rate,
        quality_interval=args.quality_interval,
        jitter=JitterBuffer(args.jitter_discard, args.jitter_max_ms),
        ice_host_addresses=[a.strip() for a in args.ice_host_addresses.split(",") if a.strip()],
        consent_timeout=args.consent_timeout,
    )
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, worker.stop)
    await worker.run()


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``python -m assistline.sip.worker``."""
    args = parse_args(argv)
    if args.parent:
        arm_parent_death(args.parent)
    # pjmedia's clock thread needs the GIL every 20 ms (see the module docstring).
    sys.setswitchinterval(SWITCH_INTERVAL)
    logging.basicConfig(
        level=logging.INFO, stream=sys.stderr, format=f"%(asctime)s worker {args.id} %(message)s"
    )
    asyncio.run(_main(args))
    return 0
