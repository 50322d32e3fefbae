"""The SIP trunk inside a media worker: pjsua2 accounts for its calls and registration.

The control process sends every worker a ``trunk`` command (see
:mod:`assistline.sip.protocol`) right after its ``hello``: the trunk's
address, the digest credentials (over the control socket, so the password
is never on a command line or in a log), the outbound proxy and, for one
worker, a registration. :class:`TrunkAccounts` turns it into pjsua2
accounts on the worker's pjsua2 thread:

- a **calls** account in every worker: identity ``sip:<username>@<trunk
  host>``, the digest credentials (realm ``*``: pjsua2 answers a 401 or 407
  from whatever realm the trunk names) and the SIP edge as outbound proxy
  (a preloaded ``Route``): workers bind loopback and only the edge faces the
  network. ``place_call`` uses it for every destination at the trunk's
  address (:meth:`TrunkAccounts.pj_account_for`), the worker's own account
  for the rest (agents behind the edge, other workers);
- a **registration** account in one worker only, the one the control
  process gives a ``register_expiry``: worker ``w1``
  (:data:`assistline.sip.outbound.REGISTERING_WORKER`). A trunk keeps one
  binding per AOR here, and every worker registering would only make the
  workers overwrite each other's Contact; what matters is that the Contact
  it holds is the edge (``contact``, forced), so calls from the trunk reach
  Kamailio, which dispatches them to any worker by load. The pool restarts
  a dead ``w1`` with the same id, so the registration comes back with it;
  until then the binding at the trunk stays valid (it points at the edge,
  not at the dead worker). The registration gets an account of its own
  because a forced Contact would also be the Contact of its calls' dialogs,
  and the trunk's in-dialog requests would then be sent to the edge's own
  address instead of to the worker carrying the call.

At start-up the workers come up before Kamailio (the service starts the
pool first), so ``w1``'s first REGISTER may reach the edge's port before
anything listens there; SIP's own retransmissions over UDP (0.5 s, 1 s,
2 s…) carry it once Kamailio is up (measured here: registered 0.5 s after
the worker set up the account).

NAT-related rewriting (Contact and Via from the registrar's ``received``,
SDP), SIP outbound (RFC 5626) and UDP keep-alives are off: on loopback
behind the edge they would only rewrite addresses that are right already.
"""

from __future__ import annotations

import logging
import re
import weakref
from collections.abc import Callable
from typing import Any

import pjsua2 as pj

from assistline.settings import split_address
from assistline.sip import protocol
from assistline.sip.pjsua_c import no_object
from assistline.sip.pjthread import PjThread, guarded

logger = logging.getLogger(__name__)

#: Seconds between registration attempts after a failure (pjsua2's default is 300).
RETRY_INTERVAL = 30
_URI_HOST = re.compile(r"^sips?:(?:[^@;>]*@)?(\[[0-9A-Fa-f:.]+\]|[^:;>?]+)(?::([0-9]{1,5}))?")

IncomingHandler = Callable[[Any, Any], None]


class TrunkSetupError(ValueError):
    """The ``trunk`` command cannot be carried out; ``code`` is its protocol error code."""

    def __init__(self, code: int, text: str) -> None:
        super().__init__(text)
        self.code = code


def uri_target(uri: str) -> tuple[str, int] | None:
    """The (lowercased host, port) a SIP URI points at (port 5060 unless given)."""
    inner = uri.split("<", 1)[1].split(">", 1)[0] if "<" in uri else uri
    match = _URI_HOST.match(inner.strip())
    if match is None:
        return None
    return match.group(1).lower(), int(match.group(2) or 5060)


def aor(command: protocol.Trunk) -> str:
    """Our address of record at the trunk: ``sip:<username>@<trunk host>``."""
    host, _ = split_address(command.address)
    return f"sip:{command.username or 'assistline'}@{host}"


class _TrunkAccount(pj.Account):  # type: ignore[misc]  # pjsua2 has no stubs
    def __init__(self, address: str, on_incoming: IncomingHandler) -> None:
        super().__init__()
        self.address = address
        self.on_incoming = on_incoming

    @guarded
    def onIncomingCall(self, prm: Any) -> None:  # noqa: N802 - pjsua2's name
        # A call to our AOR arriving straight here (not through the edge).
        self.on_incoming(self, prm)

    @guarded
    def onRegState(self, prm: Any) -> None:  # noqa: N802 - pjsua2's name
        code, reason, expiry = int(prm.code), str(prm.reason), int(prm.expiration)
        if 200 <= code < 300:
            logger.info(
                "trunk registration at %s: %d %s (%d s)", self.address, code, reason, expiry
            )
        else:
            logger.warning("trunk registration at %s failed: %d %s", self.address, code, reason)


class TrunkAccounts:
    """The trunk's pjsua2 accounts in one worker; ``pj_*`` methods run on the pjsua2 thread."""

    def __init__(
        self,
        pjt: PjThread,
        on_incoming: IncomingHandler,
        bind_address: str = "127.0.0.1",
        rtp_ports: tuple[int, int] = (20000, 30000),
        public_address: str = "",
    ) -> None:
        self._pjt = pjt
        self._on_incoming = on_incoming
        self._bind_address = bind_address
        self._rtp = rtp_ports
        self._public_address = public_address
        self._target: tuple[str, int] | None = None
        # Weak: the PjThread's registry is the only owner of pjsua2 objects.
        self._calls: Callable[[], Any] = no_object
        self._registration: Callable[[], Any] = no_object

    def pj_configure(self, command: protocol.Trunk) -> None:
        """Create the calls account, and the registration account when asked."""
        if self._target is not None:
            raise TrunkSetupError(409, "the trunk is set up already")
        try:
            host, port = split_address(command.address)
        except ValueError as error:
            raise TrunkSetupError(400, f"trunk address: {error}") from None
        if command.register_expiry < 0:
            raise TrunkSetupError(400, "register_expiry must be 0 (none) or positive")
        calls = self._pjt.hold(_TrunkAccount(command.address, self._on_incoming))
        calls.create(self._config(command, register=False), False)
        self._calls = weakref.ref(calls)
        self._target = (host.lower(), port)
        if command.register_expiry:
            registration = self._pjt.hold(_TrunkAccount(command.address, self._on_incoming))
            registration.create(self._config(command, register=True), False)
            self._registration = weakref.ref(registration)
        logger.info(
            "trunk %s set up for calls%s",
            command.address,
            f", registering every {command.register_expiry} s" if command.register_expiry else "",
        )

    def pj_account_for(self, destination: str) -> Any | None:
        """The calls account when ``destination`` is at the trunk, else None."""
        if self._target is None or uri_target(destination) != self._target:
            return None
        return self._calls()

    def _config(self, command: protocol.Trunk, *, register: bool) -> Any:
        config = pj.AccountConfig()
        config.idUri = aor(command)
        if command.username:
            config.sipConfig.authCreds.append(
                pj.AuthCredInfo("digest", "*", command.username, 0, command.password)
            )
        if command.proxy:
            config.sipConfig.proxies.append(command.proxy)
        if register:
            config.regConfig.registrarUri = f"sip:{command.address}"
            config.regConfig.registerOnAdd = True
            config.regConfig.timeoutSec = command.register_expiry
            config.regConfig.retryIntervalSec = RETRY_INTERVAL
            if command.contact:
                config.sipConfig.contactForced = f"<{command.contact}>"
        else:
            config.regConfig.registerOnAdd = False
        nat = config.natConfig
        nat.contactRewriteUse = 0
        nat.viaRewriteUse = 0
        nat.sdpNatRewriteUse = 0
        nat.sipOutboundUse = 0
        nat.udpKaIntervalSec = 0
        # pjsua2 counts RTP ports per account from its first port; the worker's
        # own account starts at the bottom of the worker's range, so this one
        # starts half-way up. (A port in use is skipped either way, measured
        # here, but with a bind error printed each time.)
        low, high = self._rtp
        media = config.mediaConfig.transportConfig
        media.port = low + (high - low) // 4 * 2
        media.portRange = high - media.port
        media.boundAddress = self._bind_address
        if self._public_address:
            media.publicAddress = self._public_address
        return config
