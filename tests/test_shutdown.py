"""SIGTERM drains: sockets close with a proper code, in-flight tasks go back to the queue."""

import asyncio
import signal
from pathlib import Path

import httpx
import pytest
from websockets.exceptions import ConnectionClosed

from tests.support.server import live_server
from tests.support.ws import open_ws

EVENTS = "subscription($id: ID!) { taskEvents(taskId: $id) { seq kind payload } }"


def gql(base_url: str, token: str, query: str, **variables: object) -> dict:
    body = httpx.post(
        base_url + "/graphql",
        json={"query": query, "variables": variables},
        headers={"Authorization": f"Bearer {token}"},
        timeout=10,
    ).json()
    assert not body.get("errors"), body
    return body["data"]


async def test_sigterm_closes_sockets_and_hands_tasks_back(tmp_path: Path) -> None:
    url = f"sqlite://{tmp_path / 'drain.db'}"
    env = {"AGENTPLANE_SCRIPTED_DELAY_MS": "100"}
    with live_server(url, tmp_path, env=env) as server:
        admin = server.admin_token
        gql(
            server.base_url,
            admin,
            'mutation { createTenant(input: {name: "acme"}) { tenant { id } } }',
        )
        agent = gql(
            server.base_url,
            admin,
            'mutation { createAgent(input: {name: "e", tenant: "acme"}) { agent { id } } }',
        )["createAgent"]["agent"]["id"]
        task = gql(
            server.base_url,
            admin,
            "mutation($a: ID!, $q: String!) { submitTask(input: {agentId: $a, query: $q})"
            " { task { id } } }",
            a=agent,
            q=" ".join(["word"] * 100),
        )["submitTask"]["task"]["id"]
        async with asyncio.timeout(30), open_ws(server.ws_url, token=admin) as ws:
            await ws.subscribe(EVENTS, id=task)
            seen = [(await ws.receive()).payload["data"]["taskEvents"] for _ in range(2)]
            assert [s["payload"]["to"] for s in seen] == ["queued", "running"]
            server.process.send_signal(signal.SIGTERM)
            with pytest.raises(ConnectionClosed) as closed:
                while True:
                    await ws.receive()
        assert closed.value.rcvd is not None
        assert closed.value.rcvd.code in (1001, 1012)  # going away / service restart
        # uvicorn finishes the graceful shutdown, then re-raises SIGTERM for the supervisor
        assert server.process.wait(15) == -signal.SIGTERM
        assert "Application shutdown complete" in server.log()
    # the task was handed back, not lost: a new server finishes it from the queue
    with live_server(url, tmp_path, env={"AGENTPLANE_SCRIPTED_DELAY_MS": "1"}) as again:
        async with asyncio.timeout(30):
            while True:
                state = gql(again.base_url, again.admin_token,
                            "query($id: ID!) { task(id: $id) { status steps { payload } } }",
                            id=task)["task"]  # fmt: skip
                if state["status"] == "COMPLETED":
                    break
                await asyncio.sleep(0.1)
        flow = [s["payload"].get("to") for s in state["steps"] if "to" in s["payload"]]
        assert flow == ["queued", "running", "queued", "running", "completed"]
        assert state["steps"][2]["payload"]["reason"] == "worker stopped"
