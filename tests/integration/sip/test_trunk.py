"""Calls out through a SIP trunk: real Kamailio, real media workers, sipp as the trunk.

sipp (``trunk_uas.xml``) challenges a REGISTER with 401 and checks the
answer with ``verifyauth``, challenges an INVITE with 407 (the test checks
that digest from sipp's message log: sipp's ``verifyauth`` reads only
``Authorization``), then answers and waits for the BYE. Everything the
trunk sees has passed through the edge.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
from collections.abc import AsyncIterator

import pytest

from assistline.settings import TrunkSettings
from assistline.sip import protocol
from assistline.sip.destinations import DestinationRefusedError, TrunkBusyError
from assistline.sip.outbound import CallRequestError
from assistline.sip.service import SipService
from tests.integration.sip.test_edge import (
    EdgeFactory,
    edge_port,
    fake_worker,
    free_port,
    make_edge,
    sipp,
    wait_for_worker_state,
)
from tests.integration.sip.trunk_peers import (
    HOST,
    SipMessage,
    SippServer,
    data_directory,
    digest_matches,
    digest_params,
    processes_naming,
    sip_settings,
    sip_side,
    sipp_server,
)
from tests.integration.sip.worker_peers import SCENARIOS, until

__all__ = ["make_edge"]  # the edge tests' fixture, used here too

USER, PASSWORD = "acme-collections", "tr7nk-s3cret"
NUMBER = "+12025550123"
CALLER_ID = "+12025551000"


@pytest.fixture
async def trunk() -> AsyncIterator[SippServer]:
    async with sipp_server("trunk_uas.xml", keys=(("user", USER), ("password", PASSWORD))) as sipp:
        yield sipp


def trunk_settings(
    trunk: SippServer, *, register: bool = False, register_expiry: int = 300, max_calls: int = 10
) -> TrunkSettings:
    return TrunkSettings(
        address=f"{HOST}:{trunk.port}",
        username=USER,
        password=PASSWORD,
        caller_id=CALLER_ID,
        register=register,
        register_expiry=register_expiry,
        max_calls=max_calls,
    )


def dialogs(messages: list[SipMessage], method: str) -> dict[str, list[SipMessage]]:
    """Requests of ``method`` sipp received, by Call-ID."""
    found: dict[str, list[SipMessage]] = {}
    for message in messages:
        if message.received and message.method == method:
            found.setdefault(message.header("Call-ID") or "", []).append(message)
    return found


def uri_of(value: str | None) -> str:
    """The URI of a From or To value, with or without angle brackets."""
    assert value is not None
    return value.split(";tag=")[0].strip().strip("<>")


async def hang_up(service: SipService, leg: str) -> None:
    worker = leg.split("-", 1)[0]
    await service.pool.command(worker, lambda request: protocol.Hangup(request, leg))


async def answered(trunk: SippServer, calls: int) -> None:
    """Wait until sipp has the ACKs of ``calls`` answered INVITEs (one for the 407, one for 200)."""
    await trunk.wait_for(
        lambda messages: len([a for a in dialogs(messages, "ACK").values() if len(a) == 2]) >= calls
    )


async def test_one_worker_registers_and_a_call_reaches_the_trunk_authenticated(
    trunk: SippServer,
    database_url: str,
    capfd: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    async with data_directory() as data:
        settings = sip_settings(
            data, database_url, trunk_settings(trunk, register=True, register_expiry=120), workers=2
        )
        edge = f"{HOST}:{settings.sip.edge_port}"
        async with sip_side(settings) as service:
            # The password reaches workers over the control socket, never on a command line.
            command_lines = processes_naming(data)
            assert len(command_lines) >= 3  # two workers and Kamailio
            assert not [line for line in command_lines if PASSWORD in line]
            # REGISTER: challenged, answered with our credentials, accepted (sipp's verifyauth).
            messages = await trunk.wait_for(
                lambda messages: any(m.status == 200 and not m.received for m in messages)
            )
            registers = dialogs(messages, "REGISTER")
            assert len(registers) == 1, "only one worker registers"
            first, second = next(iter(registers.values()))
            assert first.uri == second.uri == f"sip:{HOST}:{trunk.port}"
            assert first.header("Authorization") is None
            assert first.header("To") == f"<sip:{USER}@{HOST}>"
            # The trunk is told to send calls to the edge, and the request came through it.
            assert second.header("Contact") == f"<sip:{USER}@{edge}>"
            assert second.value("Via").startswith(f"SIP/2.0/UDP {edge};")
            assert second.header("Route") is None
            authorization = second.header("Authorization")
            assert authorization is not None
            assert digest_params(authorization)["username"] == USER
            assert digest_matches(authorization, "REGISTER", PASSWORD)
            assert [m.status for m in messages if not m.received] == [401, 200]

            leg = await service.outbound.place_call(
                "(202) 555-0123", headers=[("X-Assistline-Contact", "contact-42")]
            )
            await answered(trunk, 1)
            assert service.outbound.gate.in_progress == 1
            invites = dialogs(trunk.messages(), "INVITE")
            assert len(invites) == 1
            challenged, authenticated = next(iter(invites.values()))
            for invite in (challenged, authenticated):
                assert invite.uri == f"sip:{NUMBER}@{HOST}:{trunk.port}"
                assert uri_of(invite.header("From")) == f"sip:{CALLER_ID}@{HOST}"
                # pjsip prints From/To URIs without the port (the Request-URI has it).
                assert uri_of(invite.header("To")) == f"sip:{NUMBER}@{HOST}"
                assert invite.header("X-Assistline-Contact") == "contact-42"
                assert invite.value("Via").startswith(f"SIP/2.0/UDP {edge};")
                assert invite.value("Record-Route").startswith(f"<sip:{edge};lr")
                assert invite.header("Route") is None
            assert challenged.header("Proxy-Authorization") is None
            credentials = authenticated.header("Proxy-Authorization")
            assert credentials is not None
            assert digest_params(credentials)["realm"] == "trunk.test"
            assert digest_matches(credentials, "INVITE", PASSWORD)
            assert not digest_matches(credentials, "INVITE", "not-the-password")

            await hang_up(service, leg)
            await trunk.wait_for(lambda messages: bool(dialogs(messages, "BYE")))
            # The leg's hangup event gives its place on the trunk back.
            await until(lambda: service.outbound.gate.in_progress == 0, 5)
            kamailio_log = (data / "sip" / "edge" / "kamailio.log").read_text()
    # Nothing logged it: not the control process, the workers or Kamailio.
    out, err = capfd.readouterr()
    assert "trunk registration at" in err  # the workers' log is here
    assert PASSWORD not in out + err + caplog.text + kamailio_log


async def test_a_restarted_first_worker_registers_again(
    trunk: SippServer, database_url: str
) -> None:
    async with data_directory() as data:
        settings = sip_settings(data, database_url, trunk_settings(trunk, register=True))

        def registered(messages: list[SipMessage]) -> int:
            return len([m for m in messages if not m.received and m.status == 200])

        async with sip_side(settings) as service:
            await trunk.wait_for(lambda messages: registered(messages) == 1)
            w1 = service.pool.workers["w1"]
            old = w1.pid
            os.kill(old, signal.SIGKILL)
            await trunk.wait_for(lambda messages: registered(messages) == 2, 15)
            assert w1.pid != old
            assert len(dialogs(trunk.messages(), "REGISTER")) == 2  # a new registration


REFUSED = [
    ("+19005550123", DestinationRefusedError, "premium-rate destinations are not allowed"),
    ("+442079460000", DestinationRefusedError, "international destinations (GB) are not allowed"),
    (
        "call me maybe",
        DestinationRefusedError,
        "destination is neither a phone number nor agent:<id>",
    ),
    ("+1202555012345678", DestinationRefusedError, "destination is not a valid phone number"),
    ("+1202555012", DestinationRefusedError, "destination is not a valid phone number"),
    ("agent:nobody", DestinationRefusedError, "no agent has id 'nobody'"),
]


async def test_refused_destinations_raise_why_and_send_no_invite(
    trunk: SippServer, database_url: str
) -> None:
    async with data_directory() as data:
        settings = sip_settings(data, database_url, trunk_settings(trunk))
        async with sip_side(settings) as service:
            outbound = service.outbound
            for destination, kind, message in REFUSED:
                with pytest.raises(kind) as refused:
                    await outbound.place_call(destination)
                assert str(refused.value) == message, destination
            with pytest.raises(CallRequestError, match="headers: 'Via' is not an X- header name"):
                await outbound.place_call(NUMBER, headers=[("Via", "SIP/2.0/UDP evil")])
            with pytest.raises(CallRequestError, match="headers: X-Note must be printable ASCII"):
                await outbound.place_call(NUMBER, headers=[("X-Note", "a\r\nVia: x")])
            with pytest.raises(CallRequestError, match="caller_id must be an E.164 number"):
                await outbound.place_call(NUMBER, caller_id="<sip:x>")
            assert outbound.gate.in_progress == 0
            # Nothing reached the trunk; a valid call placed now is the first INVITE it sees.
            await asyncio.sleep(0.5)
            assert trunk.messages() == []
            leg = await outbound.place_call(NUMBER)
            await answered(trunk, 1)
            assert [m[0].uri for m in dialogs(trunk.messages(), "INVITE").values()] == [
                f"sip:{NUMBER}@{HOST}:{trunk.port}"
            ]
            await hang_up(service, leg)
            await until(lambda: outbound.gate.in_progress == 0, 5)


async def test_the_trunk_cap_refuses_one_call_too_many_until_one_ends(
    trunk: SippServer, database_url: str
) -> None:
    async with data_directory() as data:
        settings = sip_settings(data, database_url, trunk_settings(trunk, max_calls=2))
        async with sip_side(settings) as service:
            outbound = service.outbound
            legs = [await outbound.place_call(NUMBER) for _ in range(2)]
            with pytest.raises(TrunkBusyError, match="the trunk carries 2 calls already"):
                await outbound.place_call("+12025550124")
            await answered(trunk, 2)
            assert len(dialogs(trunk.messages(), "INVITE")) == 2
            assert not any("+12025550124" in m.uri for m in trunk.requests("INVITE"))
            # A call ending frees its place, at its hangup event.
            await hang_up(service, legs[0])
            await until(lambda: outbound.gate.in_progress == 1, 5)
            legs.append(await outbound.place_call("+12025550124"))
            await answered(trunk, 3)
            for leg in legs[1:]:
                await hang_up(service, leg)
            await until(lambda: outbound.gate.in_progress == 0, 5)


async def test_only_dispatched_calls_release_a_worker_load_at_bye(make_edge: EdgeFactory) -> None:
    # Calls out (to the trunk, to agents) carry no dispatcher load; the edge
    # tells the two kinds apart by a Record-Route parameter. Were the load of
    # a dispatched call not released at its BYE, the 3rd call in a row would
    # find the worker full (maxload 2) and get 503.
    worker_port = free_port()
    async with fake_worker(worker_port):
        edge = await make_edge(workers=((HOST, worker_port),))
        await wait_for_worker_state(edge, "AP")
        target = f"{HOST}:{edge_port(edge)}"
        call = str(SCENARIOS / "edge_call.xml")
        assert [await sipp(target, "-sf", call, "-s", "ivr") for _ in range(6)] == [0] * 6
        assert "cannot find load" not in edge.log_file.read_text()
