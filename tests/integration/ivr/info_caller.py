"""A minimal SIP caller over UDP that keys digits as SIP INFO, when the test says so.

sipp sends SIP INFO only at fixed points of a scenario; a payment line call
needs each answer keyed when the flow asks for it, so the test drives this
caller itself: INVITE (PCMU, the SDP port given), ACK, then one INFO
(``application/dtmf-relay``, ``Signal=`` and ``Duration=``) per key, and the
200 OK to the line's BYE. It talks to a media worker directly (no proxy, so
no route set to follow); the test sends the call's RTP itself.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import typing
from collections.abc import AsyncIterator


class _Endpoint(asyncio.DatagramProtocol):
    def __init__(self) -> None:
        self.messages: asyncio.Queue[str] = asyncio.Queue()
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = typing.cast(asyncio.DatagramTransport, transport)

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        self.messages.put_nowait(data.decode(errors="replace"))


def _header(message: str, name: str) -> str:
    for line in message.split("\r\n")[1:]:
        if not line:
            break
        key, _, value = line.partition(":")
        if key.strip().lower() == name.lower():
            return value.strip()
    return ""


class InfoCaller:
    """One call to ``service`` at 127.0.0.1:``port``, keys sent as SIP INFO."""

    def __init__(self, port: int, service: str, rtp_port: int) -> None:
        self.port, self.service, self.rtp_port = port, service, rtp_port
        self.call_id = secrets.token_hex(8)
        self.tag = secrets.token_hex(4)
        self.cseq = 1
        self.to = f"<sip:{service}@127.0.0.1:{port}>"
        self.ended = asyncio.Event()
        self._endpoint = _Endpoint()
        self._local = 0
        self._replies: dict[int, asyncio.Future[str]] = {}
        self._reader: asyncio.Task[None] | None = None

    @classmethod
    @contextlib.asynccontextmanager
    async def call(cls, port: int, service: str, rtp_port: int) -> AsyncIterator[InfoCaller]:
        caller = cls(port, service, rtp_port)
        loop = asyncio.get_running_loop()
        await loop.create_datagram_endpoint(lambda: caller._endpoint, local_addr=("127.0.0.1", 0))
        assert caller._endpoint.transport is not None
        caller._local = caller._endpoint.transport.get_extra_info("sockname")[1]
        caller._reader = asyncio.create_task(caller._read())
        try:
            await caller._invite()
            yield caller
        finally:
            caller._reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await caller._reader
            caller._endpoint.transport.close()

    def _send(self, text: str) -> None:
        assert self._endpoint.transport is not None
        self._endpoint.transport.sendto(text.encode(), ("127.0.0.1", self.port))

    def _request(self, method: str, body: str = "", content_type: str = "") -> str:
        lines = [
            f"{method} sip:{self.service}@127.0.0.1:{self.port} SIP/2.0",
            f"Via: SIP/2.0/UDP 127.0.0.1:{self._local};branch=z9hG4bK{secrets.token_hex(6)}",
            f"From: <sip:15550100@127.0.0.1:{self._local}>;tag={self.tag}",
            f"To: {self.to}",
            f"Call-ID: {self.call_id}",
            f"CSeq: {self.cseq} {method}",
            f"Contact: <sip:15550100@127.0.0.1:{self._local}>",
            "Max-Forwards: 70",
        ]
        if content_type:
            lines.append(f"Content-Type: {content_type}")
        lines.append(f"Content-Length: {len(body.encode())}")
        return "\r\n".join(lines) + "\r\n\r\n" + body

    async def _read(self) -> None:
        while True:
            message = await self._endpoint.messages.get()
            if message.startswith("SIP/2.0"):
                status = int(message.split()[1])
                number = int(_header(message, "CSeq").split()[0])
                future = self._replies.get(number)
                if status >= 200 and future is not None and not future.done():
                    future.set_result(message)
            elif message.startswith("BYE"):
                reply = ["SIP/2.0 200 OK"]
                for name in ("Via", "From", "To", "Call-ID", "CSeq"):
                    reply.append(f"{name}: {_header(message, name)}")
                self._send("\r\n".join([*reply, "Content-Length: 0"]) + "\r\n\r\n")
                self.ended.set()

    async def _transaction(self, request: str, timeout: float = 10.0) -> str:
        future: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        self._replies[self.cseq] = future
        self._send(request)
        return await asyncio.wait_for(future, timeout)

    async def _invite(self) -> None:
        sdp = (
            "v=0\r\no=caller 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
            f"m=audio {self.rtp_port} RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n"
        )
        answer = await self._transaction(self._request("INVITE", sdp, "application/sdp"))
        assert answer.startswith("SIP/2.0 200"), answer.split("\r\n")[0]
        self.to = _header(answer, "To")
        self._send(self._request("ACK"))

    async def keys(self, keys: str) -> None:
        """Each key as one SIP INFO, answered 200 before the next."""
        for key in keys:
            self.cseq += 1
            body = f"Signal={key}\r\nDuration=160\r\n"
            reply = await self._transaction(self._request("INFO", body, "application/dtmf-relay"))
            assert reply.startswith("SIP/2.0 200"), reply.split("\r\n")[0]
            await asyncio.sleep(0.1)
