"""The SIP edge against real Kamailio and real sipp on loopback.

Each test starts its own Kamailio on free ports and stops it; the fixture
checks that no process of its group is left. Wire cases (keepalives, ACL,
scanners, floods, malformed requests) go over a raw UDP socket; digest
registration and calls through the dispatcher use sipp.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import socket
import ssl
import subprocess
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import cast

import pytest

from assistline.settings import Settings, SipSettings, StoreSettings
from assistline.sip import edge_config
from assistline.sip.edge import SipEdge, describe_check_failure, find_kamailio, group_alive
from assistline.sip.edge_config import EdgeLimits
from assistline.tasks import TaskRegistry
from tests.integration.sip.worker_peers import sip_response

SCENARIOS = Path(__file__).parent / "scenarios"
HOST = "127.0.0.1"


def free_port() -> int:
    """A port free for both UDP and TCP on the loopback address."""
    while True:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
            udp.bind((HOST, 0))
            port = int(udp.getsockname()[1])
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as tcp:
                try:
                    tcp.bind((HOST, port))
                except OSError:
                    continue
                return port


EdgeFactory = Callable[..., Awaitable[SipEdge]]


@pytest.fixture
async def make_edge(tmp_path: Path) -> AsyncIterator[EdgeFactory]:
    """Start SipEdges with settings overrides; stop them all and check nothing is left."""
    tasks = TaskRegistry()
    edges: list[SipEdge] = []
    pgids: list[int] = []

    async def start(
        workers: tuple[tuple[str, int], ...] = (),
        credentials: tuple[tuple[str, str], ...] = (),
        limits: EdgeLimits | None = None,
        tls: tuple[Path, Path, int] | None = None,
        **sip: object,
    ) -> SipEdge:
        settings = Settings(
            store=StoreSettings(data_dir=tmp_path / f"data{len(edges)}"),
            sip=SipSettings(edge_host=HOST, edge_port=free_port(), **sip),  # type: ignore[arg-type]
        )
        executable = find_kamailio(settings)
        assert executable is not None
        edge = SipEdge(
            settings,
            executable,
            tasks,
            workers or ((HOST, free_port()),),
            limits=limits,
            tls_certificate=tls[0] if tls else None,
            tls_private_key=tls[1] if tls else None,
            tls_port=tls[2] if tls else 5061,
        )
        edges.append(edge)
        await edge.start(credentials)
        assert edge.pid is not None
        pgids.append(edge.pid)
        return edge

    try:
        yield start
    finally:
        for edge in edges:
            await edge.stop()
        await tasks.close()
        assert not [pgid for pgid in pgids if group_alive(pgid)]


def request(
    method: str,
    port: int,
    *,
    user_agent: str = "assistline-test",
    headers: str = "",
    body: str = "",
    call_id: str | None = None,
) -> bytes:
    """A SIP request from a raw socket, with the given extra headers and body."""
    call_id = call_id or uuid.uuid4().hex
    lines = [
        f"{method} sip:service@{HOST}:{port} SIP/2.0",
        f"Via: SIP/2.0/UDP {HOST}:9;branch=z9hG4bK{uuid.uuid4().hex[:12]}",
        "Max-Forwards: 70",
        f"From: <sip:test@{HOST}>;tag={uuid.uuid4().hex[:8]}",
        f"To: <sip:service@{HOST}:{port}>",
        f"Call-ID: {call_id}",
        f"CSeq: 1 {method}",
        f"Contact: <sip:test@{HOST}:9>",
        f"User-Agent: {user_agent}",
    ]
    text = "\r\n".join(lines) + "\r\n" + headers
    if body:
        text += "Content-Type: application/sdp\r\n"
    text += f"Content-Length: {len(body.encode())}\r\n\r\n{body}"
    return text.encode()


def exchange(port: int, data: bytes, timeout: float = 1.0) -> str | None:
    """Send one datagram to the edge; the status line of the final reply, or None."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind((HOST, 0))
        local = sock.getsockname()[1]
        # The Via and Contact must name where replies go.
        data = data.replace(f"{HOST}:9".encode(), f"{HOST}:{local}".encode())
        sock.sendto(data, (HOST, port))
        deadline = time.monotonic() + timeout
        while (left := deadline - time.monotonic()) > 0:
            sock.settimeout(left)
            try:
                reply = sock.recv(65535)
            except TimeoutError:
                return None
            status = reply.split(b"\r\n", 1)[0].decode(errors="replace")
            if not status.startswith("SIP/2.0 1"):
                return status
        return None


async def send(port: int, data: bytes, timeout: float = 1.0) -> str | None:
    """:func:`exchange` off the event loop."""
    return await asyncio.to_thread(exchange, port, data, timeout)


async def wait_for_log(edge: SipEdge, text: str, timeout: float = 5.0) -> None:
    """Wait until Kamailio's log file holds ``text``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if edge.log_file.exists() and text in edge.log_file.read_text():
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"{text!r} not in Kamailio's log within {timeout} s")


async def sipp(*args: str, timeout: float = 30.0) -> int:
    """Run sipp to completion; its exit status (0: every call succeeded)."""
    process = await asyncio.create_subprocess_exec(
        "sipp",
        "-nostdin",
        "-i",
        HOST,
        "-p",
        str(free_port()),
        "-mp",
        str(free_port()),
        "-m",
        "1",
        "-timeout",
        f"{int(timeout)}s",
        "-timeout_error",
        *args,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
    )
    try:
        return await asyncio.wait_for(process.wait(), timeout + 5)
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()


def edge_port(edge: SipEdge) -> int:
    """The UDP port the edge listens on."""
    text = edge.runtime.config_file.read_text()
    return int(text.split(f"listen=udp:{HOST}:")[1].split("\n")[0])


async def test_options_answered_and_nothing_left_after_stop(make_edge: EdgeFactory) -> None:
    edge = await make_edge()
    port = edge_port(edge)
    assert await send(port, request("OPTIONS", port)) == "SIP/2.0 200 OK"
    pid = edge.pid
    assert pid is not None
    await edge.stop()
    assert not group_alive(pid)
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as tcp:
        tcp.bind((HOST, port))  # the port is free again
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
        udp.bind((HOST, port))


async def test_invite_from_outside_networks_gets_403(make_edge: EdgeFactory) -> None:
    edge = await make_edge(agent_networks=("10.0.0.0/8",), trunk_networks=("::1/128",))
    port = edge_port(edge)
    assert await send(port, request("INVITE", port)) == "SIP/2.0 403 Forbidden"
    assert await send(port, request("REGISTER", port)) == "SIP/2.0 403 Forbidden"
    await wait_for_log(edge, f"assistline-edge: call refused from {HOST}")


async def test_scanner_dropped_and_logged(make_edge: EdgeFactory) -> None:
    edge = await make_edge()
    port = edge_port(edge)
    for agent in ("friendly-scanner", "SIPVicious 0.3", "sipcli/v1.8", "VaxSIPUserAgent/3.1"):
        assert await send(port, request("OPTIONS", port, user_agent=agent), 0.5) is None
    await wait_for_log(edge, f"assistline-edge: scanner from {HOST}")
    assert await send(port, request("OPTIONS", port)) == "SIP/2.0 200 OK"


async def test_flood_bans_the_source(make_edge: EdgeFactory) -> None:
    # Loopback is no trunk here: trunks are never rate-limited.
    edge = await make_edge(trunk_networks=("10.0.0.0/8",))
    port = edge_port(edge)
    assert "> 16 ||" in edge.runtime.config_file.read_text()
    assert "ban=>size=8;autoexpire=300" in edge.runtime.config_file.read_text()
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind((HOST, 0))
        for _ in range(40):
            sock.sendto(request("OPTIONS", port), (HOST, port))
    await wait_for_log(edge, f"assistline-edge: flood from {HOST}")
    assert await send(port, request("OPTIONS", port), 0.5) is None


async def test_register_with_digest(make_edge: EdgeFactory) -> None:
    realm = SipSettings().realm
    edge = await make_edge(credentials=(("alice", edge_config.ha1("alice", realm, "s3cret")),))
    port = edge_port(edge)
    target = f"{HOST}:{port}"
    register = str(SCENARIOS / "edge_register.xml")
    refused = str(SCENARIOS / "edge_register_refused.xml")
    assert await sipp(target, "-sf", register, "-s", "alice", "-au", "alice", "-ap", "s3cret") == 0
    assert await sipp(target, "-sf", refused, "-s", "alice", "-au", "alice", "-ap", "wrong") == 0
    await wait_for_log(edge, f"assistline-edge: authentication failed from {HOST}")
    # Credentials change at run time: bob now, alice no more.
    await edge.set_credentials([("bob", edge_config.ha1("bob", realm, "pa55"))])
    assert await sipp(target, "-sf", register, "-s", "bob", "-au", "bob", "-ap", "pa55") == 0
    assert await sipp(target, "-sf", refused, "-s", "alice", "-au", "alice", "-ap", "s3cret") == 0


async def wait_for_worker_state(edge: SipEdge, flag: str, timeout: float = 15.0) -> None:
    """Wait until the dispatcher shows the (only) worker with state ``flag`` (A or I)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        listing = await edge.rpc("dispatcher.list")
        if f"FLAGS: {flag}" in listing:
            return
        await asyncio.sleep(0.2)
    raise AssertionError(f"worker never reached state {flag}: {listing}")


@contextlib.asynccontextmanager
async def fake_worker(port: int) -> AsyncIterator[None]:
    """sipp on ``port`` standing in for a media worker (answers OPTIONS and calls)."""
    worker = await asyncio.create_subprocess_exec(
        *["sipp", "-nostdin", "-sf", str(SCENARIOS / "edge_worker.xml"), "-aa"],
        *["-i", HOST, "-p", str(port), "-mp", str(free_port())],
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
    )
    try:
        yield
    finally:
        worker.terminate()
        await worker.wait()


async def test_call_dispatched_to_worker_then_503_when_it_is_gone(
    make_edge: EdgeFactory,
) -> None:
    worker_port = free_port()
    async with fake_worker(worker_port):
        edge = await make_edge(workers=((HOST, worker_port),))
        await wait_for_worker_state(edge, "AP")
        port = edge_port(edge)
        call = str(SCENARIOS / "edge_call.xml")
        assert await sipp(f"{HOST}:{port}", "-sf", call, "-s", "ivr") == 0
    await wait_for_worker_state(edge, "IP")
    sdp = f"v=0\r\no=- 1 1 IN IP4 {HOST}\r\ns=-\r\nc=IN IP4 {HOST}\r\nt=0 0\r\n"
    sdp += "m=audio 4000 RTP/AVP 0\r\n"
    reply = await send(port, request("INVITE", port, body=sdp), 3.0)
    assert reply == "SIP/2.0 503 Service Unavailable"


async def dispatcher_flags(edge: SipEdge) -> dict[str, str]:
    """The dispatcher's state flags (A/I, then P when probing) of each address."""
    flags: dict[str, str] = {}
    uri = ""
    for line in (await edge.rpc("dispatcher.list")).splitlines():
        key, _, value = line.strip().partition(": ")
        if key == "URI":
            uri = value
        elif key == "FLAGS":
            flags[uri] = value
    return flags


async def test_address_without_worker_is_never_chosen_and_failover_keeps_the_call(
    make_edge: EdgeFactory,
) -> None:
    worker_port, nobody_port = free_port(), free_port()
    async with fake_worker(worker_port):
        # No pings during the test (the first is due after 60 s): states change
        # only as the test and the routing script set them. Loads being equal,
        # algorithm 10 takes the first address dispatcher.list shows: the
        # last one in the file, nobody's.
        edge = await make_edge(
            workers=((HOST, worker_port), (HOST, nobody_port)),
            limits=EdgeLimits(ping_interval=60, fr_timer_ms=500),
        )
        worker_uri, nobody_uri = f"sip:{HOST}:{worker_port}", f"sip:{HOST}:{nobody_port}"
        assert await dispatcher_flags(edge) == {nobody_uri: "IP", worker_uri: "IP"}
        await edge.rpc("dispatcher.set_state", "ap", "1", worker_uri)
        port = edge_port(edge)
        call = str(SCENARIOS / "edge_call.xml")
        # Inactive from the start, nobody's address is passed over.
        assert await sipp(f"{HOST}:{port}", "-sf", call, "-s", "ivr") == 0
        assert await dispatcher_flags(edge) == {nobody_uri: "IP", worker_uri: "AP"}
        # Believed active, it gets the call, which times out there and moves,
        # with its load, to the worker; the dead address is marked inactive.
        await edge.rpc("dispatcher.set_state", "a", "1", nobody_uri)
        assert await sipp(f"{HOST}:{port}", "-sf", call, "-s", "ivr") == 0
        assert await dispatcher_flags(edge) == {nobody_uri: "IP", worker_uri: "AP"}
    assert "cannot update load" not in edge.log_file.read_text()


MALFORMED: dict[str, Callable[[int], bytes]] = {
    "bad Via": lambda port: request("OPTIONS", port).replace(
        b"Via: SIP/2.0/UDP", b"Via: SIP/9.9/XYZ garbage;;;"
    ),
    "no Call-ID": lambda port: b"\r\n".join(
        line for line in request("OPTIONS", port).split(b"\r\n") if not line.startswith(b"Call-ID")
    ),
    "garbage SDP": lambda port: request("INVITE", port, body="\x7f\x01garbage=\r\nnot sdp\r\n"),
    "oversized header": lambda port: request(
        "OPTIONS", port, headers="X-Padding: " + "a" * 9000 + "\r\n"
    ),
    "NUL bytes": lambda port: request("OPTIONS", port).replace(
        b"Max-Forwards: 70", b"Max-\x00F: \x00"
    ),
}


async def test_an_invite_a_worker_would_cut_short_is_refused_too_large(
    make_edge: EdgeFactory,
) -> None:
    # Media workers cut datagrams at 4,000 bytes and act on the rest
    # (test_malformed.py): the edge refuses what they could not read whole.
    edge = await make_edge()
    port = edge_port(edge)
    invite = request("INVITE", port, headers="X-Padding: " + "a" * 4000 + "\r\n")
    assert 4000 < len(invite) < 8192
    assert await send(port, invite) == "SIP/2.0 513 Message Too Large"


async def test_malformed_requests_rejected_and_options_still_answered(
    make_edge: EdgeFactory,
) -> None:
    edge = await make_edge()
    port = edge_port(edge)
    for name, build in MALFORMED.items():
        reply = await send(port, build(port), 0.5)
        assert reply is None or reply.split()[1][0] in "45", f"{name}: {reply}"
        assert await send(port, request("OPTIONS", port)) == "SIP/2.0 200 OK", name


async def test_killed_kamailio_is_started_again(make_edge: EdgeFactory) -> None:
    edge = await make_edge()
    port = edge_port(edge)
    first = edge.pid
    assert first is not None
    os.kill(first, signal.SIGKILL)
    deadline = time.monotonic() + 15.0
    while edge.restarts == 0 and time.monotonic() < deadline:  # noqa: ASYNC110 - polls a counter
        await asyncio.sleep(0.05)
    assert edge.restarts == 1 and edge.pid not in (None, first)
    assert not group_alive(first)
    assert await send(port, request("OPTIONS", port)) == "SIP/2.0 200 OK"


async def test_a_config_error_names_the_line(tmp_path: Path) -> None:
    config = tmp_path / "bad.cfg"
    config.write_text("#!KAMAILIO\nchildren=2\nno_such_setting=yes\n")
    process = await asyncio.create_subprocess_exec(
        "/usr/sbin/kamailio",
        "-c",
        "-f",
        str(config),
        "-Y",
        str(tmp_path),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    output, _ = await process.communicate()
    assert process.returncode != 0
    message = describe_check_failure(output.decode())
    assert message.startswith("Kamailio rejects its configuration:")
    assert message.endswith("(line 3: no_such_setting=yes)")


def self_signed(directory: Path) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1 and its key, as PEM files."""
    import datetime
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "assistline test edge")])
    now = datetime.datetime.now(datetime.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address(HOST))]),
            critical=False,
        )
        .sign(key, hashes.SHA256())
    )
    cert_file, key_file = directory / "edge.crt", directory / "edge.key"
    cert_file.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_file, key_file


async def test_options_over_tls(make_edge: EdgeFactory, tmp_path: Path) -> None:
    cert_file, key_file = self_signed(tmp_path)
    tls_port = free_port()
    edge = await make_edge(tls=(cert_file, key_file, tls_port))
    assert f"listen=tls:{HOST}:{tls_port}" in edge.runtime.config_file.read_text()
    context = ssl.create_default_context(cafile=str(cert_file))
    reader, writer = await asyncio.open_connection(HOST, tls_port, ssl=context)
    try:
        local_port = writer.get_extra_info("sockname")[1]
        message = request("OPTIONS", tls_port).replace(b"SIP/2.0/UDP", b"SIP/2.0/TLS")
        writer.write(message.replace(f"{HOST}:9".encode(), f"{HOST}:{local_port}".encode()))
        await writer.drain()
        status = await asyncio.wait_for(reader.readline(), 5.0)
        assert status == b"SIP/2.0 200 OK\r\n"
    finally:
        writer.close()
        await writer.wait_closed()


# ---------------------------------------------------------------- full workers
# A worker's pjsua refuses an INVITE with a stateless "486 Busy Here" when all
# four call slots are taken (a hung-up leg keeps its slot until its BYE is
# answered, so the dispatcher's load count lags under churn): the edge moves the
# call on, as for "503 Worker Full". assistline's own busy says "486 Agent Busy".
class _Refuser(asyncio.DatagramProtocol):
    """A worker that answers OPTIONS and refuses every INVITE with ``486 <reason>``."""

    def __init__(self, reason: str) -> None:
        self.reason = reason
        self.invites = 0
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.DatagramTransport, transport)

    def datagram_received(self, data: bytes, addr: tuple[str | int, ...]) -> None:
        text = data.decode(errors="replace")
        method = text.split(" ", 1)[0]
        if method not in ("INVITE", "OPTIONS"):
            return  # the ACK of a refusal
        status = "200 OK" if method == "OPTIONS" else f"486 {self.reason}"
        self.invites += method == "INVITE"
        assert self.transport is not None
        self.transport.sendto(sip_response(data, status, "full1"), addr)


@contextlib.asynccontextmanager
async def refusing_worker(port: int, reason: str) -> AsyncIterator[_Refuser]:
    """A worker on ``port`` refusing calls with ``486 <reason>``."""
    loop = asyncio.get_running_loop()
    transport, protocol = await loop.create_datagram_endpoint(
        lambda: _Refuser(reason), local_addr=(HOST, port)
    )
    try:
        yield protocol
    finally:
        transport.close()


async def _edge_preferring(make_edge: EdgeFactory, worker_port: int, full_port: int) -> int:
    """An edge with both workers active; loads equal, it tries ``full_port`` first."""
    # Algorithm 10 takes the first address dispatcher.list shows, the last in
    # the file; no pings during the test (the first is due after 60 s).
    edge = await make_edge(
        workers=((HOST, worker_port), (HOST, full_port)),
        limits=EdgeLimits(ping_interval=60, fr_timer_ms=2000),
    )
    for port in (worker_port, full_port):
        await edge.rpc("dispatcher.set_state", "ap", "1", f"sip:{HOST}:{port}")
    flags = await dispatcher_flags(edge)
    assert flags == {f"sip:{HOST}:{full_port}": "AP", f"sip:{HOST}:{worker_port}": "AP"}
    return edge_port(edge)


async def test_a_worker_whose_slots_are_all_taken_passes_the_call_on(
    make_edge: EdgeFactory,
) -> None:
    worker_port, full_port = free_port(), free_port()
    async with fake_worker(worker_port), refusing_worker(full_port, "Busy Here") as full:
        port = await _edge_preferring(make_edge, worker_port, full_port)
        assert (
            await sipp(f"{HOST}:{port}", "-sf", str(SCENARIOS / "edge_call.xml"), "-s", "ivr") == 0
        )
        assert full.invites == 1  # tried first, refused, and the call went on


async def test_an_agents_busy_reaches_the_caller(make_edge: EdgeFactory) -> None:
    worker_port, busy_port = free_port(), free_port()
    async with fake_worker(worker_port), refusing_worker(busy_port, "Agent Busy") as busy:
        port = await _edge_preferring(make_edge, worker_port, busy_port)
        sdp = f"v=0\r\no=- 1 1 IN IP4 {HOST}\r\ns=-\r\nc=IN IP4 {HOST}\r\nt=0 0\r\n"
        sdp += "m=audio 4000 RTP/AVP 0\r\n"
        reply = await send(port, request("INVITE", port, body=sdp), 3.0)
        assert reply == "SIP/2.0 486 Agent Busy"
        assert busy.invites == 1


def _stand_in_kamailio(directory: Path, config: Path) -> subprocess.Popen[bytes]:
    """A process named kamailio with ``config`` on its command line, in a group of its own."""
    stand_in = directory / "kamailio"
    shutil.copy("/bin/sh", stand_in)
    return subprocess.Popen([stand_in, "-c", "sleep 60; :", "-f", config], start_new_session=True)


def _ended(process: subprocess.Popen[bytes]) -> bool:
    return process.poll() is not None


def _reap(process: subprocess.Popen[bytes]) -> None:
    process.kill()
    process.wait()


async def test_a_kamailio_left_by_an_earlier_run_is_stopped_first(
    make_edge: EdgeFactory, tmp_path: Path
) -> None:
    edge = await make_edge()
    await edge.stop()
    # The earlier run's Kamailio, still ending when the server starts again.
    earlier = _stand_in_kamailio(tmp_path, edge.runtime.config_file)
    try:
        edge.runtime.pid_file.write_text(f"{earlier.pid}\n")
        await edge.start()
        assert _ended(earlier)  # stopped before the new one started
        assert edge.pid not in (None, earlier.pid)
        port = edge_port(edge)
        assert await send(port, request("OPTIONS", port)) == "SIP/2.0 200 OK"
    finally:
        _reap(earlier)
