"""Parity: the same operation through REST and through GraphQL gives the same result,
because both adapters call the same resolvers."""

from datetime import datetime

import httpx
import pytest

from agentplane.models import Tenant
from tests.support.factories import PASSWORD, make_agent, make_tenant, make_token, make_user
from tests.support.graphql import GraphQLClient, error_codes
from tests.support.rest import wait_terminal

AGENT_FIELDS = "id name displayName description model systemPrompt tools state version maxSteps"


def _auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def test_agents_created_over_rest_read_the_same_over_graphql(
    client: httpx.AsyncClient, gql: GraphQLClient
) -> None:
    tenant = await make_tenant("acme")
    token = await make_token(tenant, "operator")
    kubiya = (
        await client.post(
            "/api/v1/agents",
            headers=_auth(token),
            json={"name": "k", "description": "d", "system_prompt": "s", "capabilities": []},
        )
    ).json()
    koda = (
        await client.post(
            "/api/control-plane/agents",
            headers=_auth(token),
            json={"id": "atlas", "display_name": "Atlas", "status": "paused"},
        )
    ).json()
    opsclaw = (
        await client.post(
            "/v1/agents", headers=_auth(token), json={"name": "o", "tools": ["calculator"]}
        )
    ).json()
    query = f"query($id: ID!) {{ agent(id: $id) {{ {AGENT_FIELDS} }} }}"
    k = (await gql.ok(query, token, id=kubiya["id"]))["agent"]
    assert (k["name"], k["description"], k["systemPrompt"], k["model"]) == (
        kubiya["name"],
        kubiya["description"],
        kubiya["system_prompt"],
        kubiya["model_id"],
    )
    a = (await gql.ok(query, token, id=koda["agentplane_id"]))["agent"]
    assert (a["name"], a["displayName"], a["state"]) == ("atlas", "Atlas", "PAUSED")
    o = (await gql.ok(query, token, id=opsclaw["id"]))["agent"]
    assert (o["name"], o["tools"], o["maxSteps"]) == ("o", ["calculator"], opsclaw["maxSteps"])

    listed = await gql.ok("{ agents(first: 100) { edges { node { id } } } }", token)
    graphql_ids = [e["node"]["id"] for e in listed["agents"]["edges"]]
    rest_ids = [
        a["id"] for a in (await client.get("/api/v1/agents", headers=_auth(token))).json()["items"]
    ]
    koda_ids = [
        a["agentplane_id"]
        for a in (await client.get("/api/control-plane/agents", headers=_auth(token))).json()[
            "agents"
        ]
    ]
    assert graphql_ids == rest_ids == koda_ids and len(graphql_ids) == 3


async def test_lifecycle_over_graphql_shows_over_rest_and_back(
    client: httpx.AsyncClient, gql: GraphQLClient
) -> None:
    tenant = await make_tenant("acme")
    token = await make_token(tenant, "operator")
    agent = await make_agent(tenant, "atlas")
    await gql.ok(
        'mutation($id: ID!) { updateAgent(input: {id: $id, displayName: "Atlas", '
        'systemPrompt: "Be brief."}) { agent { id } } }',
        token,
        id=agent.id,
    )
    await gql.ok(
        "mutation($id: ID!) { publishAgent(input: {id: $id}) { agent { id } } }", token, id=agent.id
    )
    await gql.ok(
        "mutation($id: ID!) { pauseAgent(input: {id: $id}) { agent { id } } }", token, id=agent.id
    )
    koda = (await client.get("/api/control-plane/agents/atlas", headers=_auth(token))).json()
    assert (koda["display_name"], koda["system_prompt"], koda["version"], koda["status"]) == (
        "Atlas",
        "Be brief.",
        2,
        "paused",
    )
    await client.post("/api/control-plane/agents/atlas/publish", headers=_auth(token))
    await client.post("/api/control-plane/agents/atlas/activate", headers=_auth(token))
    data = await gql.ok("query($id: ID!) { agent(id: $id) { version state } }", token, id=agent.id)
    assert data["agent"] == {"version": 3, "state": "ACTIVE"}

    await client.delete("/v1/agents/atlas", headers=_auth(token))
    body = await gql("query($id: ID!) { agent(id: $id) { id } }", token, id=agent.id)
    assert error_codes(body) == ["NOT_FOUND"]


async def test_task_and_trace_are_the_same_over_rest_and_graphql(
    client: httpx.AsyncClient, gql: GraphQLClient
) -> None:
    tenant = await make_tenant("acme")
    token = await make_token(tenant, "operator")
    await make_agent(tenant, "atlas")
    submitted = (
        await client.post(
            "/api/runtime/tasks",
            headers=_auth(token),
            json={"agent_id": "atlas", "query": "same answer"},
        )
    ).json()
    await wait_terminal(submitted["id"])
    koda = (
        await client.get(f"/api/runtime/tasks/{submitted['id']}/trace", headers=_auth(token))
    ).json()
    data = await gql.ok(
        "query($id: ID!) { task(id: $id) { status output costUsd "
        "steps { id seq kind payload inputTokens outputTokens costUsd } } }",
        token,
        id=submitted["id"],
    )
    task = data["task"]
    assert (koda["task"]["status"], koda["task"]["output"]) == (
        task["status"].lower(),
        task["output"],
    )
    assert [(s["id"], s["seq"], s["kind"], s["payload"]) for s in koda["steps"]] == [
        (s["id"], s["seq"], s["kind"].lower(), s["payload"]) for s in task["steps"]
    ]
    assert [s["cost_usd"] for s in koda["steps"]] == [s["costUsd"] for s in task["steps"]]
    kubiya = (
        await client.get(f"/api/v1/executions/{submitted['id']}", headers=_auth(token))
    ).json()
    assert kubiya["usage"]["cost_usd"] == pytest.approx(task["costUsd"])
    assert kubiya["usage"]["input_tokens"] == sum(s["inputTokens"] or 0 for s in task["steps"])
    usage = (await client.get("/v1/billing/usage", headers=_auth(token))).json()
    assert usage["totalCostUsd"] == pytest.approx(task["costUsd"])


async def test_permissions_agree(client: httpx.AsyncClient, gql: GraphQLClient) -> None:
    tenant, other = await make_tenant("acme"), await make_tenant("other")
    viewer = await make_token(tenant, "viewer")
    foreign = await make_agent(other, "theirs")
    body = await gql('mutation { createAgent(input: {name: "x"}) { agent { id } } }', viewer)
    assert error_codes(body) == ["FORBIDDEN"]
    rest = await client.post("/v1/agents", headers=_auth(viewer), json={"name": "x"})
    assert rest.status_code == 403
    body = await gql("query($id: ID!) { agent(id: $id) { id } }", viewer, id=foreign.id)
    assert error_codes(body) == ["NOT_FOUND"]
    for url in (
        f"/api/v1/agents/{foreign.id}",
        f"/v1/agents/{foreign.id}",
        f"/api/runtime/agents/{foreign.id}",
    ):
        assert (await client.get(url, headers=_auth(viewer))).status_code == 404


async def test_identity_over_opsclaw_reads_the_same_over_graphql(
    client: httpx.AsyncClient, gql: GraphQLClient
) -> None:
    await make_tenant("acme")
    tenant = await Tenant.get(name="acme")
    admin = await make_token(tenant, "tenant_admin")
    created = (
        await client.post(
            "/v1/principals", headers=_auth(admin), json={"subjectId": "bot@acme.test"}
        )
    ).json()["principal"]
    await gql.ok(
        'mutation { createUser(input: {email: "ann@acme.test", role: "operator"}) '
        "{ user { id } } }",
        admin,
    )
    users = (await gql.ok("{ users { id email } }", admin))["users"]
    principals = (await client.get("/v1/principals", headers=_auth(admin))).json()["data"]
    assert [(u["id"], u["email"]) for u in users] == [(p["id"], p["subjectId"]) for p in principals]
    assert created["id"] in [u["id"] for u in users] and len(users) == 2

    granted = await client.post(
        "/v1/role-assignments",
        headers=_auth(admin),
        json={
            "principalId": created["id"],
            "roleDefinitionId": "billing",
            "scope": "/tenants/acme",
        },
    )
    data = await gql.ok(
        "query($u: ID!) { roleAssignments(userId: $u) { id role userId } }", admin, u=created["id"]
    )
    assert data["roleAssignments"] == [
        {"id": granted.json()["id"], "role": "billing", "userId": created["id"]}
    ]
    roles = (await gql.ok("{ roles { name permissions } }", admin))["roles"]
    definitions = (await client.get("/v1/role-definitions", headers=_auth(admin))).json()["data"]
    assert [(r["name"], r["permissions"]) for r in roles] == [
        (d["name"], d["permissions"]) for d in definitions
    ]


async def test_tokens_and_tenants_agree_across_koda_opsclaw_and_graphql(
    client: httpx.AsyncClient, gql: GraphQLClient
) -> None:
    acme = await make_tenant("acme")
    platform = await make_token(None, "platform_admin")
    admin = await make_token(acme, "tenant_admin")
    await make_user("op@acme.test", "operator", acme)
    session = (
        await client.post(
            "/api/control-plane/auth/login",
            json={"identifier": "op@acme.test", "password": PASSWORD},
        )
    ).json()["session_token"]
    client.cookies.clear()
    koda = (await client.post("/api/control-plane/auth/tokens", headers=_auth(session))).json()
    listed = await gql.ok("{ accessTokens(first: 100) { edges { node { id } } } }", admin)
    assert koda["id"] in [e["node"]["id"] for e in listed["accessTokens"]["edges"]]
    await gql.ok(
        "mutation($id: ID!) { revokeAccessToken(input: {id: $id}) { token { id } } }",
        admin,
        id=koda["id"],
    )
    mine = (await client.get("/api/control-plane/auth/tokens", headers=_auth(session))).json()
    assert mine["items"][0]["revoked_at"] is not None

    deleted = (await client.delete(f"/v1/tenants/{acme.id}", headers=_auth(platform))).json()
    data = await gql.ok('{ tenant(name: "acme") { phase deletedAt } }', platform)
    assert data["tenant"]["phase"] == "DELETED"
    assert datetime.fromisoformat(data["tenant"]["deletedAt"]) == datetime.fromisoformat(
        deleted["deletedAt"]
    )
    await gql.ok('mutation { restoreTenant(input: {name: "acme"}) { tenant { id } } }', platform)
    plan = (await client.get("/v1/billing/plan?tenant=acme", headers=_auth(platform))).json()
    assert plan["status"] == "active"
    budget = await gql.ok(
        '{ budget(scope: TENANT, tenant: "acme") { monthlyLimitUsd currentSpendUsd } }', platform
    )
    assert (plan["monthlyBudgetUsd"], plan["currentSpendUsd"]) == (
        budget["budget"]["monthlyLimitUsd"],
        budget["budget"]["currentSpendUsd"],
    )
