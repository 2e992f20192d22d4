"""A lean websocket client for measuring fan-out: one asyncio Protocol per socket.

With 1,000 sockets in one Python process, a regular client (a reader task per socket,
JSON parsed as each message arrives) spends more time per message than the server
does, and its own queueing ends up in the latency figures. Here each frame is stamped
with the time its bytes were read, before anything else is done with it, and parsed
only after the run; framing comes from the `websockets` library's sans-I/O protocol.
"""

import asyncio
import json
import time
from typing import Any
from urllib.parse import urlsplit

from websockets.client import ClientProtocol
from websockets.frames import Frame, Opcode
from websockets.protocol import State
from websockets.typing import Subprotocol
from websockets.uri import parse_uri


class Probe(asyncio.Protocol):
    def __init__(self, url: str, subprotocol: str | None) -> None:
        protocols = [Subprotocol(subprotocol)] if subprotocol else None
        self.ws = ClientProtocol(parse_uri(url), subprotocols=protocols)
        self.transport: asyncio.Transport | None = None
        self.received: list[tuple[float, bytes]] = []  # (arrival time, text frame)
        self.open = asyncio.get_running_loop().create_future()
        self.closed = asyncio.get_running_loop().create_future()
        self.wanted = 0
        self.enough: asyncio.Future[None] | None = None
        # Set by the first frame with a `complete` message (both protocols name it so).
        self.finished = asyncio.get_running_loop().create_future()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        self.ws.send_request(self.ws.connect())
        self._flush()

    def data_received(self, data: bytes) -> None:
        arrived = time.time()
        self.ws.receive_data(data)
        for event in self.ws.events_received():
            if isinstance(event, Frame):
                if event.opcode is Opcode.TEXT:
                    self.received.append((arrived, event.data))
                    if b'"complete"' in event.data and not self.finished.done():
                        self.finished.set_result(None)
            elif self.ws.state is State.OPEN and not self.open.done():
                self.open.set_result(None)  # the handshake response
        self._flush()  # pongs, close frames
        if self.ws.handshake_exc is not None and not self.open.done():
            self.open.set_exception(self.ws.handshake_exc)
        if self.enough is not None and len(self.received) >= self.wanted:
            self.enough.set_result(None)
            self.enough = None

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.open.done():
            self.open.set_exception(exc or ConnectionError("closed during the handshake"))
        for future in (self.closed, self.finished):
            if not future.done():
                future.set_result(None)
        if self.enough is not None:
            self.enough.set_result(None)

    def _flush(self) -> None:
        assert self.transport is not None
        for chunk in self.ws.data_to_send():
            if chunk:
                self.transport.write(chunk)
            else:  # end of stream
                self.transport.close()

    def send_json(self, message: dict[str, Any]) -> None:
        self.ws.send_text(json.dumps(message).encode())
        self._flush()

    async def until(self, count: int) -> None:
        """Wait until `count` text frames have arrived in all (or the socket closed)."""
        if len(self.received) >= count or self.closed.done():
            return
        self.wanted = count
        self.enough = asyncio.get_running_loop().create_future()
        await self.enough

    def messages(self, start: int = 0) -> list[tuple[float, dict[str, Any]]]:
        return [(at, json.loads(frame)) for at, frame in self.received[start:]]

    async def close(self) -> None:
        if self.transport is None or self.transport.is_closing():
            return
        self.ws.send_close()
        self._flush()
        try:
            async with asyncio.timeout(5):
                await self.closed
        except TimeoutError:
            self.transport.close()


async def connect(url: str, subprotocol: str | None = None) -> Probe:
    parts = urlsplit(url)
    _, probe = await asyncio.get_running_loop().create_connection(
        lambda: Probe(url, subprotocol), parts.hostname, parts.port
    )
    await probe.open
    return probe
