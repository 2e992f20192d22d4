"""Revoking a token closes its live websockets (over a real uvicorn process)."""

import asyncio
import json
from pathlib import Path

import httpx
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from agentplane.core.config import Settings
from agentplane.models import AccessToken
from tests.support.factories import make_agent, make_tenant, make_token
from tests.support.server import live_server

WATCH = "subscription($a: ID) { taskUpdates(agentId: $a) { id status } }"


async def open_subscription(ws_url: str, token: str, agent_id: str):  # type: ignore[no-untyped-def]
    ws = await connect(ws_url, subprotocols=["graphql-transport-ws"])
    await ws.send(
        json.dumps({"type": "connection_init", "payload": {"Authorization": f"Bearer {token}"}})
    )
    assert json.loads(await ws.recv())["type"] == "connection_ack"
    payload = {"query": WATCH, "variables": {"a": agent_id}}
    await ws.send(json.dumps({"id": "1", "type": "subscribe", "payload": payload}))
    return ws


async def test_revoking_a_token_closes_its_websockets(
    services: Settings, database_url: str, workdir: Path
) -> None:
    acme = await make_tenant("acme")
    agent = await make_agent(acme)
    watcher, bystander = await make_token(acme, "viewer"), await make_token(acme, "viewer")
    admin = await make_token(acme, "tenant_admin")
    watcher_id = (await AccessToken.get(prefix=watcher[:12])).id
    with live_server(database_url, workdir, "--no-worker") as server:
        # given two live subscriptions with different tokens
        revoked_ws = await open_subscription(server.ws_url, watcher, agent.id)
        other_ws = await open_subscription(server.ws_url, bystander, agent.id)
        # when one token is revoked
        async with httpx.AsyncClient() as client:
            response = await client.post(
                server.base_url + "/graphql",
                json={
                    "query": "mutation($id: ID!) { revokeAccessToken(input: {id: $id})"
                    " { token { revokedAt } } }",
                    "variables": {"id": watcher_id},
                },
                headers={"Authorization": f"Bearer {admin}"},
            )
        assert response.json()["data"]["revokeAccessToken"]["token"]["revokedAt"]
        # then its websocket is closed at once, the other stays open
        try:
            async with asyncio.timeout(5):
                while True:
                    await revoked_ws.recv()
        except ConnectionClosed as closed:
            assert closed.rcvd is not None and closed.rcvd.code == 4401
        assert other_ws.state.name == "OPEN"
        await other_ws.ping()
        await other_ws.close()


async def test_a_role_change_closes_the_users_websockets(
    services: Settings, database_url: str, workdir: Path
) -> None:
    acme = await make_tenant("acme")
    agent = await make_agent(acme)
    admin = {"Authorization": f"Bearer {await make_token(acme, 'tenant_admin')}"}
    bystander = await make_token(acme, "viewer")
    with live_server(database_url, workdir, "--no-worker") as server:
        async with httpx.AsyncClient(base_url=server.base_url) as client:
            created = await client.post(
                "/v1/principals",
                headers=admin,
                json={"subjectId": "bob@acme.test", "role": "operator"},
            )
            principal, pat = created.json()["principal"], created.json()["pat"]["token"]
            # given a live subscription of a token acting for a user, and another's
            users_ws = await open_subscription(server.ws_url, pat, agent.id)
            other_ws = await open_subscription(server.ws_url, bystander, agent.id)
            # when the user's role is lowered
            body = {
                "principalId": principal["id"],
                "roleDefinitionId": "viewer",
                "scope": "/tenants/acme",
            }
            granted = await client.post("/v1/role-assignments", headers=admin, json=body)
            assert granted.status_code == 201, granted.text
        # then the user's websocket closes (to reconnect with the new role), the other stays
        try:
            async with asyncio.timeout(5):
                while True:
                    await users_ws.recv()
        except ConnectionClosed as closed:
            assert closed.rcvd is not None
            assert (closed.rcvd.code, closed.rcvd.reason) == (4401, "role changed")
        assert other_ws.state.name == "OPEN"
        await other_ws.ping()
        await other_ws.close()
