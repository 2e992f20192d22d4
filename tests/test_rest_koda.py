"""The Koda runtime REST dialect, served from the same resolvers as GraphQL."""

import asyncio

import httpx

from agentplane.models import Task
from tests.support.factories import make_agent, make_tenant, make_token

ENVELOPE_KEYS = {"code", "category", "message", "retryable", "user_action"}


async def test_submit_poll_and_trace(client: httpx.AsyncClient) -> None:
    tenant = await make_tenant("acme")
    await make_agent(tenant, "atlas")
    token = await make_token(tenant, "operator")
    auth = {"Authorization": f"Bearer {token}"}
    created = await client.post(
        "/api/runtime/tasks",
        headers=auth,
        json={"agent_id": "atlas", "query": "audit auth", "metadata": {"source": "operator"}},
    )
    assert created.status_code == 202
    record = created.json()
    assert set(record) == {
        "id",
        "agent_id",
        "status",
        "created_at",
        "updated_at",
        "metadata",
        "output",
    }
    assert record["agent_id"] == "atlas" and record["metadata"] == {"source": "operator"}
    assert record["status"] == "queued" and record["output"] is None
    async with asyncio.timeout(10):
        while (await Task.get(id=record["id"])).status.value != "completed":
            await asyncio.sleep(0.02)
    polled = (await client.get(f"/api/runtime/tasks/{record['id']}", headers=auth)).json()
    assert polled["status"] == "completed" and polled["output"] == "audit auth"
    trace = (await client.get(f"/api/runtime/tasks/{record['id']}/trace", headers=auth)).json()
    assert [s["seq"] for s in trace["steps"]] == [1, 2, 3, 4]
    assert [s["kind"] for s in trace["steps"]][2] == "provider_call"


async def test_errors_use_the_operational_envelope(client: httpx.AsyncClient) -> None:
    tenant, other = await make_tenant("acme"), await make_tenant("other")
    token = await make_token(tenant, "operator")
    foreign = await make_agent(other, "theirs")
    auth = {"Authorization": f"Bearer {token}"}
    cases = [
        (await client.post("/api/runtime/tasks", headers=auth, content=b"{not json"), 400),
        (await client.post("/api/runtime/tasks", headers=auth, json={"query": "x"}), 400),
        (await client.post("/api/runtime/tasks", json={"agent_id": foreign.id, "query": "x"}), 401),
        (
            await client.post(
                "/api/runtime/tasks", headers=auth, json={"agent_id": foreign.id, "query": "x"}
            ),
            404,
        ),
        (await client.get("/api/runtime/tasks/tsk_missing", headers=auth), 404),
    ]
    for response, status in cases:
        assert response.status_code == status, response.text
        assert set(response.json()) == ENVELOPE_KEYS
    assert await Task.filter(agent_id=foreign.id).count() == 0


async def test_viewer_may_not_submit(client: httpx.AsyncClient) -> None:
    tenant = await make_tenant("acme")
    agent = await make_agent(tenant)
    viewer = await make_token(tenant, "viewer")
    response = await client.post(
        "/api/runtime/tasks",
        headers={"Authorization": f"Bearer {viewer}"},
        json={"agent_id": agent.id, "query": "x"},
    )
    assert response.status_code == 403
    assert response.json()["code"] == "FORBIDDEN"
    assert await Task.all().count() == 0


async def test_ready(client: httpx.AsyncClient) -> None:
    response = await client.get("/api/runtime/ready")
    assert response.status_code == 200
    assert response.json()["status"] == "ready"
