"""A lean Server-Sent Events client for measuring fan-out: one asyncio Protocol per
response, as ws_probe.py is for websockets. Each event is stamped with the time its
bytes were read and parsed only after the run. GraphQL-over-SSE messages come out shaped
like the websocket ones (`{"type": "next", "payload": …}`, `{"type": "complete"}`); a
REST stream's (Koda's task events) as `{"type": "step", "payload": <the step>}`."""

import asyncio
import json
import time
from typing import Any
from urllib.parse import urlsplit


class SseProbe(asyncio.Protocol):
    def __init__(self, request: bytes) -> None:
        self.request = request
        self.transport: asyncio.Transport | None = None
        self.received: list[tuple[float, bytes]] = []  # (arrival time, event text)
        self._raw = b""
        self._body = b""
        self._headers_done = False
        loop = asyncio.get_running_loop()
        self.closed = loop.create_future()
        self.finished = loop.create_future()  # the `complete` event arrived
        self.wanted = 0
        self.enough: asyncio.Future[None] | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        transport.write(self.request)

    def data_received(self, data: bytes) -> None:
        arrived = time.time()
        self._raw += data
        if not self._headers_done:
            if b"\r\n\r\n" not in self._raw:
                return
            head, self._raw = self._raw.split(b"\r\n\r\n", 1)
            assert head.startswith(b"HTTP/1.1 200"), head
            self._headers_done = True
        ended = False
        while True:  # chunked transfer coding: size line, data, CRLF
            size_end = self._raw.find(b"\r\n")
            if size_end < 0:
                break
            size = int(self._raw[:size_end], 16)
            if len(self._raw) < size_end + 2 + size + 2:
                break
            self._body += self._raw[size_end + 2 : size_end + 2 + size]
            self._raw = self._raw[size_end + 2 + size + 2 :]
            ended = ended or size == 0  # the last chunk: the response is complete
        while b"\r\n\r\n" in self._body:
            event, self._body = self._body.split(b"\r\n\r\n", 1)
            if event.startswith(b":"):
                continue  # heartbeat
            self.received.append((arrived, event))
        if ended and not self.finished.done():
            self.finished.set_result(None)
        if self.enough is not None and len(self.received) >= self.wanted:
            self.enough.set_result(None)
            self.enough = None

    def connection_lost(self, exc: Exception | None) -> None:
        for future in (self.closed, self.finished):
            if not future.done():
                future.set_result(None)
        if self.enough is not None:
            self.enough.set_result(None)

    async def until(self, count: int) -> None:
        if len(self.received) >= count or self.closed.done():
            return
        self.wanted = count
        self.enough = asyncio.get_running_loop().create_future()
        await self.enough

    def messages(self, start: int = 0) -> list[tuple[float, dict[str, Any]]]:
        out = []
        for at, event in self.received[start:]:
            kind, _, data = event.decode().partition("\r\ndata: ")
            if kind == "event: complete":
                out.append((at, {"type": "complete"}))
            elif kind.endswith("event: step"):  # a REST stream's `id: …\r\nevent: step`
                out.append((at, {"type": "step", "payload": json.loads(data)}))
            else:
                out.append((at, {"type": "next", "payload": json.loads(data)}))
        return out

    async def close(self) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.close()
            await self.closed


async def subscribe(url: str, token: str, query: str, variables: dict[str, Any]) -> SseProbe:
    """POST the subscription to `url` (…/graphql) with `Accept: text/event-stream`."""
    parts = urlsplit(url)
    body = json.dumps({"query": query, "variables": variables}).encode()
    request = (
        f"POST {parts.path} HTTP/1.1\r\nHost: {parts.netloc}\r\n"
        f"Accept: text/event-stream\r\nAuthorization: Bearer {token}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
    ).encode() + body
    return await _connect(parts.hostname, parts.port, request)


async def get(url: str, token: str, last_event_id: int | None = None) -> SseProbe:
    """GET a REST event stream, e.g. …/api/runtime/tasks/{id}/events."""
    parts = urlsplit(url)
    resume = "" if last_event_id is None else f"Last-Event-ID: {last_event_id}\r\n"
    request = (
        f"GET {parts.path} HTTP/1.1\r\nHost: {parts.netloc}\r\n"
        f"Authorization: Bearer {token}\r\n{resume}\r\n"
    ).encode()
    return await _connect(parts.hostname, parts.port, request)


async def _connect(host: str | None, port: int | None, request: bytes) -> SseProbe:
    _, probe = await asyncio.get_running_loop().create_connection(
        lambda: SseProbe(request), host, port
    )
    return probe
