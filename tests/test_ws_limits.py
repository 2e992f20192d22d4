"""Websocket hardening over the wire (a real uvicorn process, graphql-transport-ws)."""

import asyncio
import contextlib
import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import websockets
from websockets.exceptions import ConnectionClosed

from agentplane.cli import WS_MAX_MESSAGE_BYTES
from agentplane.http.graphql_app import MAX_SUBSCRIPTIONS_PER_CONNECTION
from agentplane.http.ws_limits import (
    CLOSE_RATE_LIMITED,
    CLOSE_TOO_MANY_SOCKETS,
    MAX_SOCKETS_PER_CREDENTIAL,
)
from tests.support.server import LiveServer, live_server

PROTOCOL = "graphql-transport-ws"
UPDATES = "subscription { taskUpdates { id status } }"
VIEWER = {"query": "{ viewer { role } }"}


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


async def test_sockets_per_credential_are_capped_and_released(server: LiveServer) -> None:
    # Given as many open sockets for one token as allowed
    token = operator_token(server)
    async with contextlib.AsyncExitStack() as stack:
        for _ in range(MAX_SOCKETS_PER_CREDENTIAL):
            ws = await stack.enter_async_context(
                websockets.connect(server.ws_url, subprotocols=[PROTOCOL])
            )
            await init(ws, token)
        # When one more connects with the same token, then it is closed 4291
        async with websockets.connect(server.ws_url, subprotocols=[PROTOCOL]) as extra:
            await extra.send(json.dumps(_init_message(token)))
            assert await closed_with(extra) == CLOSE_TOO_MANY_SOCKETS
        # and the admin's sockets are counted apart
        async with websockets.connect(server.ws_url, subprotocols=[PROTOCOL]) as other:
            await init(other, server.admin_token)
    # When they close, then their slots are free again
    for _ in range(50):
        async with websockets.connect(server.ws_url, subprotocols=[PROTOCOL]) as again:
            await again.send(json.dumps(_init_message(token)))
            reply = json.loads(await asyncio.wait_for(again.recv(), 10))
            if reply["type"] == "connection_ack":
                break
        await asyncio.sleep(0.1)
    assert reply["type"] == "connection_ack"


def _init_message(token: str) -> dict[str, object]:
    return {"type": "connection_init", "payload": {"Authorization": f"Bearer {token}"}}


async def stack_client(server: LiveServer) -> httpx.AsyncClient:
    return httpx.AsyncClient(base_url=server.base_url, timeout=10)


async def test_websockets_take_from_the_http_rate_limit_bucket(tmp_path: Path) -> None:
    limit = 8
    env = {"AGENTPLANE_RATE_LIMIT_PER_MIN": str(limit)}
    with live_server(f"sqlite://{tmp_path / 'rl.db'}", tmp_path, env=env) as server:
        http = await stack_client(server)
        # Given an operator token that made 3 HTTP requests (the admin's bucket paid setup)
        token = operator_token(server)
        auth = {"Authorization": f"Bearer {token}"}
        for _ in range(3):
            response = await http.post("/graphql", json=VIEWER, headers=auth)
            assert response.status_code == 200
        assert response.headers["x-ratelimit-remaining"] == str(limit - 3)
        # When a socket connects (1) and starts subscriptions (1 each) until the bucket is empty
        async with websockets.connect(server.ws_url, subprotocols=[PROTOCOL]) as ws:
            await init(ws, token)
            for i in range(limit - 4):
                subscribe = {"id": str(i), "type": "subscribe", "payload": {"query": UPDATES}}
                await ws.send(json.dumps(subscribe))
            refused_id = str(limit - 4)
            subscribe = {"id": refused_id, "type": "subscribe", "payload": {"query": UPDATES}}
            await ws.send(json.dumps(subscribe))
            # Then the next subscription is refused with RATE_LIMITED; the socket stays open
            reply = json.loads(await asyncio.wait_for(ws.recv(), 10))
            assert reply["type"] == "error" and reply["id"] == refused_id, reply
            assert reply["payload"][0]["extensions"]["code"] == "RATE_LIMITED"
            await ws.send(json.dumps({"type": "ping"}))
            assert json.loads(await asyncio.wait_for(ws.recv(), 10))["type"] == "pong"
            # and HTTP with the same token is refused too: one bucket
            refused = await http.post("/graphql", json=VIEWER, headers=auth)
            assert refused.status_code == 429
            # and so is another socket, closed 4290 after its connection_init
            async with websockets.connect(server.ws_url, subprotocols=[PROTOCOL]) as late:
                await late.send(json.dumps(_init_message(token)))
                assert await closed_with(late) == CLOSE_RATE_LIMITED
            # on the legacy protocol, a connection_error then the same close code
            async with websockets.connect(server.ws_url, subprotocols=["graphql-ws"]) as legacy:
                await legacy.send(json.dumps(_init_message(token)))
                error = json.loads(await asyncio.wait_for(legacy.recv(), 10))
                assert error["type"] == "connection_error"
                assert error["payload"]["code"] == CLOSE_RATE_LIMITED
                assert await closed_with(legacy) == CLOSE_RATE_LIMITED
        # Another token has its own bucket
        assert (await http.post("/graphql", json=VIEWER)).status_code == 200
        await http.aclose()
