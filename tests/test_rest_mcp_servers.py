"""OpenCrane's `/api/v1/mcp-servers` over the tool registry: the same servers as GraphQL,
secrets never read back, another tenant's servers answer 404 in OpenCrane's envelope."""

import sys
from pathlib import Path

import httpx

from agentplane.models import McpServer
from tests.support.factories import make_tenant, make_token
from tests.support.graphql import GraphQLClient

FIXTURE = str(Path(__file__).resolve().parent / "support/mcp_fixture_server.py")
SECRET = "Bearer very-secret-remote-token"


def auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def test_mcp_server_lifecycle_over_rest(
    client: httpx.AsyncClient, gql: GraphQLClient
) -> None:
    # given a platform admin registering a stdio server for tenant acme
    acme = await make_tenant("acme")
    platform = await make_token(None, "platform_admin")
    created = await client.post(
        "/api/v1/mcp-servers?tenant=acme",
        headers=auth(platform),
        json={
            "name": "fixture",
            "endpoint": sys.executable,
            "args": [FIXTURE],
            "transport": "stdio",
        },
    )
    assert created.status_code == 201, created.text
    server = created.json()
    assert (server["status"], server["protocolVersion"]) == ("ready", "2025-11-25")
    assert server["endpoint"] == sys.executable
    tools = {t["remoteName"]: t for t in server["tools"]}
    assert tools["delete_everything"]["requiresApproval"] is True
    assert tools["add"]["name"] == "fixture__add"
    # then the tenant's admin reads it over REST and GraphQL alike
    admin = await make_token(acme, "tenant_admin")
    listed = await client.get("/api/v1/mcp-servers", headers=auth(admin))
    assert [s["id"] for s in listed.json()] == [server["id"]]
    one = await client.get(f"/api/v1/mcp-servers/{server['id']}", headers=auth(admin))
    assert one.json() == listed.json()[0]
    graph = await gql.ok(
        "query($id: ID!) { mcpServer(id: $id) { name status tools { name } } }",
        admin,
        id=server["id"],
    )
    assert sorted(t["name"] for t in graph["mcpServer"]["tools"]) == sorted(
        t["name"] for t in server["tools"]
    )
    # and an HTTP server's credential is a header listed by name, never by value
    remote = await client.post(
        "/api/v1/mcp-servers",
        headers=auth(admin),
        json={
            "name": "remote",
            "endpoint": "http://127.0.0.1:9/mcp",
            "secretHeaders": {"Authorization": SECRET},
        },
    )
    assert remote.status_code == 201, remote.text
    assert remote.json()["status"] == "error"
    assert remote.json()["credentials"] == [
        {
            "id": "header:Authorization",
            "displayName": "Authorization",
            "brokeringMode": "header",
            "secretRef": "encrypted",
        }
    ]
    everything = await client.get("/api/v1/mcp-servers", headers=auth(admin))
    assert SECRET not in everything.text and SECRET not in remote.text
    # when it is updated then deleted
    updated = await client.put(
        f"/api/v1/mcp-servers/{remote.json()['id']}",
        headers=auth(admin),
        json={"endpoint": "http://127.0.0.1:9/other", "timeoutS": 2},
    )
    assert updated.status_code == 200, updated.text
    assert updated.json()["endpoint"] == "http://127.0.0.1:9/other"
    deleted = await client.delete(f"/api/v1/mcp-servers/{remote.json()['id']}", headers=auth(admin))
    assert deleted.json() == {"id": remote.json()["id"], "status": "deleted"}
    assert await McpServer.filter(tenant_id=acme.id).count() == 1


async def test_rest_refuses_stdio_to_tenants_and_hides_other_tenants(
    client: httpx.AsyncClient,
) -> None:
    acme, beta = await make_tenant("acme"), await make_tenant("beta")
    platform = await make_token(None, "platform_admin")
    created = await client.post(
        "/api/v1/mcp-servers?tenant=acme",
        headers=auth(platform),
        json={
            "name": "fixture",
            "endpoint": sys.executable,
            "args": [FIXTURE],
            "transport": "stdio",
        },
    )
    server_id = created.json()["id"]
    beta_admin = await make_token(beta, "tenant_admin")
    stdio = await client.post(
        "/api/v1/mcp-servers",
        headers=auth(beta_admin),
        json={"name": "mine", "endpoint": "/bin/sh", "transport": "stdio"},
    )
    assert (stdio.status_code, stdio.json()["code"]) == (403, "forbidden")
    for method, body in (("GET", None), ("PUT", {"timeoutS": 1}), ("DELETE", None)):
        response = await client.request(
            method, f"/api/v1/mcp-servers/{server_id}", headers=auth(beta_admin), json=body
        )
        assert (response.status_code, response.json()["code"]) == (404, "not_found"), method
    assert (await client.get("/api/v1/mcp-servers", headers=auth(beta_admin))).json() == []
    bad = await client.post(
        "/api/v1/mcp-servers",
        headers=auth(beta_admin),
        json={"name": "x", "endpoint": "http://a.test/mcp", "transport": "carrier-pigeon"},
    )
    assert bad.status_code == 400 and bad.json()["code"] == "invalid_request"
    assert await McpServer.filter(tenant_id=beta.id).count() == 0
    assert (await McpServer.get(id=server_id)).timeout_s == 30.0
    assert acme.id != beta.id
