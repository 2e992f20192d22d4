"""A small GraphQL-over-websocket client for both subscription protocols.

`graphql-transport-ws`: connection_init/connection_ack, subscribe/next/error/complete,
ping/pong. Legacy `graphql-ws`: connection_init/connection_ack|connection_error,
start/data/error/complete, `ka` keepalives. `receive` normalises both to
`next`/`error`/`complete`, answers pings and drops keepalives.
"""

import itertools
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

from websockets.asyncio.client import ClientConnection, connect

TRANSPORT_WS = "graphql-transport-ws"
LEGACY_WS = "graphql-ws"


@dataclass
class Message:
    type: str  # "next" | "error" | "complete"
    id: str
    payload: Any = None


class GraphQLWebSocket:
    def __init__(self, ws: ClientConnection, protocol: str) -> None:
        self.ws = ws
        self.protocol = protocol
        self._ids = itertools.count(1)

    async def send(self, message: dict[str, Any]) -> None:
        await self.ws.send(json.dumps(message))

    async def receive_raw(self) -> dict[str, Any]:
        return json.loads(await self.ws.recv())  # type: ignore[no-any-return]

    async def init(self, payload: dict[str, Any] | None = None) -> dict[str, Any]:
        """Send `connection_init`; the server's answer (ack, or legacy `connection_error`)."""
        await self.send({"type": "connection_init", "payload": payload or {}})
        while True:
            reply = await self.receive_raw()
            if reply["type"] != "ka":  # legacy keepalives may follow the ack, never precede it
                return reply

    async def subscribe(self, query: str, **variables: Any) -> str:
        op_id = str(next(self._ids))
        kind = "subscribe" if self.protocol == TRANSPORT_WS else "start"
        payload = {"query": query, "variables": variables}
        await self.send({"id": op_id, "type": kind, "payload": payload})
        return op_id

    async def stop(self, op_id: str) -> None:
        kind = "complete" if self.protocol == TRANSPORT_WS else "stop"
        await self.send({"id": op_id, "type": kind})

    async def receive(self) -> Message:
        while True:
            raw = await self.receive_raw()
            kind = raw["type"]
            if kind == "ping":
                await self.send({"type": "pong"})
            elif kind in ("pong", "ka"):
                continue
            elif kind in ("next", "data"):
                return Message("next", raw["id"], raw["payload"])
            elif kind in ("error", "complete"):
                return Message(kind, raw["id"], raw.get("payload"))
            else:
                raise AssertionError(f"unexpected message {raw}")

    async def collect(self, op_id: str) -> tuple[list[dict[str, Any]], Message]:
        """The `next` payloads of one operation until it ends, and the message that ended it."""
        payloads: list[dict[str, Any]] = []
        while True:
            message = await self.receive()
            assert message.id == op_id, message
            if message.type != "next":
                return payloads, message
            payloads.append(message.payload)


@asynccontextmanager
async def open_ws(
    url: str,
    protocol: str = TRANSPORT_WS,
    *,
    token: str | None = None,
    header_token: str | None = None,
    init: bool = True,
) -> AsyncIterator[GraphQLWebSocket]:
    """A connection; `token` goes in the connection_init payload, `header_token` in the
    upgrade request's Authorization header. With `init`, asserts the connection_ack."""
    headers = {"Authorization": f"Bearer {header_token}"} if header_token else None
    async with connect(url, subprotocols=[protocol], additional_headers=headers) as ws:  # type: ignore[list-item]
        assert ws.subprotocol == protocol
        client = GraphQLWebSocket(ws, protocol)
        if init:
            ack = await client.init({"Authorization": f"Bearer {token}"} if token else None)
            assert ack["type"] == "connection_ack", ack
        yield client
