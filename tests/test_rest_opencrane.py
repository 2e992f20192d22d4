"""The OpenCrane dialect's paths that exist so far: token usage."""

import httpx

from tests.support.factories import make_agent, make_tenant, make_token
from tests.support.rest import wait_terminal


async def test_token_usage_lists_the_callers_usage_records(client: httpx.AsyncClient) -> None:
    acme, other = await make_tenant("acme"), await make_tenant("other")
    token = await make_token(acme, "viewer")
    admin = await make_token(None, "platform_admin")
    for tenant, query in ((acme, "first"), (acme, "second run"), (other, "theirs")):
        agent = await make_agent(tenant, f"echo-{query.split()[0]}")
        operator = await make_token(tenant, "operator")
        submitted = await client.post(
            "/api/runtime/tasks",
            headers={"Authorization": f"Bearer {operator}"},
            json={"agent_id": agent.id, "query": query},
        )
        await wait_terminal(submitted.json()["id"])

    mine = await client.get("/api/v1/token-usage", headers={"Authorization": f"Bearer {token}"})
    assert mine.status_code == 200
    rows = mine.json()
    assert [r["tenant"] for r in rows] == ["acme", "acme"]
    assert rows[0]["recordedAt"] >= rows[1]["recordedAt"]  # newest first
    assert set(rows[0]) == {
        "tenant",
        "model",
        "inputTokens",
        "outputTokens",
        "totalCostUsd",
        "recordedAt",
    }
    assert rows[0]["outputTokens"] == 2 and rows[1]["outputTokens"] == 1

    everyone = await client.get("/api/v1/token-usage", headers={"Authorization": f"Bearer {admin}"})
    assert sorted(r["tenant"] for r in everyone.json()) == ["acme", "acme", "other"]
    one = await client.get(
        "/api/v1/token-usage?tenant=other&limit=1", headers={"Authorization": f"Bearer {admin}"}
    )
    assert [r["tenant"] for r in one.json()] == ["other"]

    for url, status, code in [
        ("/api/v1/token-usage?tenant=other", 404, "not_found"),
        ("/api/v1/token-usage?limit=0", 400, "invalid_request"),
    ]:
        response = await client.get(url, headers={"Authorization": f"Bearer {token}"})
        assert response.status_code == status
        assert response.json()["code"] == code and isinstance(response.json()["error"], str)
    anonymous = await client.get("/api/v1/token-usage")
    assert anonymous.status_code == 401 and anonymous.json()["code"] == "unauthorized"
