"""Websocket hardening over the wire (a real uvicorn process, graphql-transport-ws)."""

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import websockets
from websockets.exceptions import ConnectionClosed

from agentplane.cli import WS_MAX_MESSAGE_BYTES
from agentplane.http.graphql_app import MAX_SUBSCRIPTIONS_PER_CONNECTION
from tests.support.server import LiveServer, live_server

PROTOCOL = "graphql-transport-ws"
UPDATES = "subscription { taskUpdates { id status } }"


@pytest.fixture
def server(tmp_path: Path) -> Iterator[LiveServer]:
    with live_server(f"sqlite://{tmp_path / 'ws.db'}", tmp_path) as live:
        yield live


def operator_token(server: LiveServer) -> str:
    def call(query: str) -> dict:
        body = httpx.post(
            server.base_url + "/graphql",
            json={"query": query},
            headers={"Authorization": f"Bearer {server.admin_token}"},
        ).json()
        assert not body.get("errors"), body
        return body["data"]

    call('mutation { createTenant(input: {name: "acme"}) { tenant { id } } }')
    minted = call(
        'mutation { createAccessToken(input: {name: "ws", tenant: "acme", role: "operator"})'
        " { plainTextToken } }"
    )
    return minted["createAccessToken"]["plainTextToken"]


async def closed_with(ws: websockets.ClientConnection, timeout: float = 10) -> int | None:
    with pytest.raises(ConnectionClosed) as closed:
        async with asyncio.timeout(timeout):
            while True:
                await ws.recv()
    return closed.value.rcvd.code if closed.value.rcvd else None


async def init(ws: websockets.ClientConnection, token: str) -> None:
    await ws.send(
        json.dumps({"type": "connection_init", "payload": {"Authorization": f"Bearer {token}"}})
    )
    assert json.loads(await ws.recv())["type"] == "connection_ack"


async def test_connection_init_must_come_within_5_seconds(server: LiveServer) -> None:
    async with websockets.connect(server.ws_url, subprotocols=[PROTOCOL]) as ws:
        assert await closed_with(ws) == 4408


async def test_bad_token_closes_4403(server: LiveServer) -> None:
    async with websockets.connect(server.ws_url, subprotocols=[PROTOCOL]) as ws:
        await ws.send(
            json.dumps({"type": "connection_init", "payload": {"Authorization": "Bearer agp_no"}})
        )
        assert await closed_with(ws) == 4403


async def test_duplicate_subscription_id_closes_4409(server: LiveServer) -> None:
    token = operator_token(server)
    async with websockets.connect(server.ws_url, subprotocols=[PROTOCOL]) as ws:
        await init(ws, token)
        message = {"id": "same", "type": "subscribe", "payload": {"query": UPDATES}}
        await ws.send(json.dumps(message))
        await ws.send(json.dumps(message))
        assert await closed_with(ws) == 4409


async def test_subscriptions_per_connection_are_capped(server: LiveServer) -> None:
    token = operator_token(server)
    async with websockets.connect(server.ws_url, subprotocols=[PROTOCOL]) as ws:
        await init(ws, token)
        for i in range(MAX_SUBSCRIPTIONS_PER_CONNECTION + 1):
            subscribe = {"id": str(i), "type": "subscribe", "payload": {"query": UPDATES}}
            await ws.send(json.dumps(subscribe))
        reply = json.loads(await asyncio.wait_for(ws.recv(), 10))
        assert reply["type"] == "error"
        assert reply["id"] == str(MAX_SUBSCRIPTIONS_PER_CONNECTION)
        assert reply["payload"][0]["message"] == "Subscription limit reached"
        # the connection stays usable
        await ws.send(json.dumps({"type": "ping"}))
        assert json.loads(await asyncio.wait_for(ws.recv(), 10))["type"] == "pong"


async def test_oversized_message_closes_1009(server: LiveServer) -> None:
    token = operator_token(server)
    async with websockets.connect(server.ws_url, subprotocols=[PROTOCOL], max_size=None) as ws:
        await init(ws, token)
        padding = "x" * (WS_MAX_MESSAGE_BYTES + 1)
        await ws.send(json.dumps({"id": "1", "type": "subscribe", "payload": {"query": padding}}))
        assert await closed_with(ws) == 1009


async def test_subscription_documents_get_the_same_limits(server: LiveServer) -> None:
    token = operator_token(server)
    inner = "id"
    for _ in range(3):
        inner = f"agent {{ tasks(first: 1) {{ edges {{ node {{ {inner} }} }} }} }}"
    deep = f"subscription {{ taskUpdates {{ {inner} }} }}"
    async with websockets.connect(server.ws_url, subprotocols=[PROTOCOL]) as ws:
        await init(ws, token)
        await ws.send(json.dumps({"id": "deep", "type": "subscribe", "payload": {"query": deep}}))
        reply = json.loads(await asyncio.wait_for(ws.recv(), 10))
    assert reply["type"] == "error" and reply["id"] == "deep"
    assert reply["payload"][0]["extensions"]["limit"] == "depth"


def gauge(server: LiveServer, name: str) -> float:
    for line in httpx.get(server.base_url + "/metrics").text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    raise AssertionError(f"{name} not in /metrics")


async def test_active_websockets_and_subscriptions_are_gauged(server: LiveServer) -> None:
    token = operator_token(server)
    assert gauge(server, "agentplane_websockets_active") == 0
    async with websockets.connect(server.ws_url, subprotocols=[PROTOCOL]) as ws:
        await init(ws, token)
        for i in range(2):
            subscribe = {"id": str(i), "type": "subscribe", "payload": {"query": UPDATES}}
            await ws.send(json.dumps(subscribe))
        for _ in range(50):
            if gauge(server, "agentplane_subscriptions_active") == 2:
                break
            await asyncio.sleep(0.05)
        assert gauge(server, "agentplane_websockets_active") == 1
        assert gauge(server, "agentplane_subscriptions_active") == 2
        await ws.send(json.dumps({"id": "0", "type": "complete"}))
        for _ in range(50):
            if gauge(server, "agentplane_subscriptions_active") == 1:
                break
            await asyncio.sleep(0.05)
        assert gauge(server, "agentplane_subscriptions_active") == 1
    for _ in range(50):
        if gauge(server, "agentplane_websockets_active") == 0:
            break
        await asyncio.sleep(0.05)
    assert gauge(server, "agentplane_websockets_active") == 0
    assert gauge(server, "agentplane_subscriptions_active") == 0
