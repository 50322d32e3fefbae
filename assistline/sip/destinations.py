"""Where an outbound call may go: validated numbers, agents, and trunk capacity.

Every outbound call (a callback, a notification, an agent leg) names its
destination as text. :func:`resolve` turns it into a SIP URI or refuses it
with :class:`DestinationRefusedError` naming why, before any INVITE is
sent: a phone number must be a valid E.164 number (parsed with
``phonenumbers`` in the home region), premium-rate numbers and numbers
outside the home region are refused unless the dial policy allows them,
and an agent must be one the directory knows. :class:`TrunkGate` caps the
calls in progress on a trunk. Both are sans-IO.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping

import phonenumbers

from assistline.errors import AssistlineError

_AGENT = re.compile(r"^agent:([A-Za-z0-9._-]{1,64})$")


class DestinationRefusedError(AssistlineError, ValueError):
    """The call was not placed: its destination is not allowed; the message says why."""


class TrunkBusyError(AssistlineError):
    """The trunk carries as many calls as it may; try again when one ends."""


@dataclasses.dataclass(frozen=True, slots=True)
class DialPolicy:
    """What outbound calls may reach."""

    home_region: str = "US"
    allow_international: bool = False
    allow_premium_rate: bool = False
    trunk_host: str = "127.0.0.1"


@dataclasses.dataclass(frozen=True, slots=True)
class Destination:
    """A destination that passed the checks."""

    uri: str
    e164: str | None = None
    agent: str | None = None


def resolve(text: str, policy: DialPolicy, agents: Mapping[str, str]) -> Destination:
    """Check ``text`` (a phone number or ``agent:<id>``) and give its SIP URI.

    ``agents`` maps agent ids to the SIP URI their phone registered from.
    """
    agent = _AGENT.match(text.strip())
    if agent is not None:
        agent_id = agent.group(1)
        if agent_id not in agents:
            raise DestinationRefusedError(f"no agent has id {agent_id!r}")
        return Destination(uri=agents[agent_id], agent=agent_id)
    try:
        number = phonenumbers.parse(text, policy.home_region)
    except phonenumbers.NumberParseException:
        raise DestinationRefusedError(
            "destination is neither a phone number nor agent:<id>"
        ) from None
    if not phonenumbers.is_valid_number(number):
        raise DestinationRefusedError("destination is not a valid phone number")
    region = phonenumbers.region_code_for_number(number)
    if region != policy.home_region and not policy.allow_international:
        raise DestinationRefusedError(
            f"international destinations ({region or 'non-geographic'}) are not allowed"
        )
    if (
        phonenumbers.number_type(number) == phonenumbers.PhoneNumberType.PREMIUM_RATE
        and not policy.allow_premium_rate
    ):
        raise DestinationRefusedError("premium-rate destinations are not allowed")
    e164 = phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)
    return Destination(uri=f"sip:{e164}@{policy.trunk_host}", e164=e164)


class TrunkGate:
    """Counts the calls in progress on one trunk and refuses past its cap."""

    def __init__(self, max_calls: int) -> None:
        if max_calls < 1:
            raise ValueError(f"a trunk must allow at least one call, not {max_calls}")
        self.max_calls = max_calls
        self._calls: set[str] = set()

    @property
    def in_progress(self) -> int:
        """Calls holding a place now."""
        return len(self._calls)

    def acquire(self, call: str) -> None:
        """Take a place for ``call``; raises :class:`TrunkBusyError` when full."""
        if call in self._calls:
            return
        if len(self._calls) >= self.max_calls:
            raise TrunkBusyError(f"the trunk carries {self.max_calls} calls already")
        self._calls.add(call)

    def release(self, call: str) -> None:
        """Give back ``call``'s place (a no-op when it held none)."""
        self._calls.discard(call)
