"""The tool registry over GraphQL: HTTP tools with secret headers, MCP servers and their
tools (listed, refreshed, enabled one by one), permissions and cross-tenant probes."""

import sys
from pathlib import Path
from typing import Any

from agentplane.models import Agent, McpServer, Tool
from tests.support.factories import make_tenant, make_token
from tests.support.graphql import GraphQLClient, error_codes

FIXTURE = str(Path(__file__).resolve().parent / "support/mcp_fixture_server.py")
SECRET = "s3cret-value-never-read-back"

CREATE_HTTP = """
mutation($input: CreateHttpToolInput!) {
  createHttpTool(input: $input) {
    tool { id name source url method requiresApproval risk headerNames inputSchema }
  }
}"""
REGISTER = """
mutation($input: RegisterMcpServerInput!) {
  registerMcpServer(input: $input) {
    mcpServer {
      id name transport status statusMessage protocolVersion serverName serverVersion
      tools { id name remoteName enabled requiresApproval risk annotations inputSchema }
    }
  }
}"""
SERVER_TOOLS = "query($id: ID!) { mcpServer(id: $id) { tools { name enabled requiresApproval } } }"


def http_input(**fields: Any) -> dict[str, Any]:
    return {
        "name": "weather",
        "url": "http://127.0.0.1:9/weather",
        "method": "GET",
        "inputSchema": {"type": "object", "properties": {"city": {"type": "string"}}},
        "secretHeaders": {"X-Api-Key": SECRET},
        **fields,
    }


def fixture_input(tenant: str = "acme") -> dict[str, Any]:
    return {
        "name": "fixture",
        "transport": "STDIO",
        "command": sys.executable,
        "args": [FIXTURE],
        "tenant": tenant,
    }


async def test_http_tool_secret_headers_are_encrypted_and_never_readable(
    gql: GraphQLClient,
) -> None:
    # given a tenant admin registering an HTTP tool with a secret header
    tenant = await make_tenant("acme")
    admin = await make_token(tenant, "tenant_admin")
    created = await gql(CREATE_HTTP, admin, input=http_input())
    tool = created["data"]["createHttpTool"]["tool"]
    assert tool["source"] == "HTTP"
    assert tool["headerNames"] == ["X-Api-Key"]
    # then no read shows the value, and the column holds ciphertext only
    reads = [
        created,
        await gql("{ tools(first: 10) { edges { node { id headerNames url } } } }", admin),
        await gql(
            "query($id: ID!) { node(id: $id) { ... on Tool { name } } }", admin, id=tool["id"]
        ),
        await gql("query($id: ID!) { tool(id: $id) { headerNames } }", admin, id=tool["id"]),
    ]
    for body in reads:
        assert not body.get("errors"), body
        assert SECRET not in str(body)
    row = await Tool.get(id=tool["id"])
    assert row.secret_headers and SECRET not in row.secret_headers
    # and an operator reads the registry but may not change it
    operator = await make_token(tenant, "operator")
    listed = await gql("{ tools(first: 5) { edges { node { name } } } }", operator)
    assert [e["node"]["name"] for e in listed["data"]["tools"]["edges"]] == ["weather"]
    denied = await gql(CREATE_HTTP, operator, input=http_input(name="other"))
    assert error_codes(denied) == ["FORBIDDEN"]
    assert await Tool.filter(tenant_id=tenant.id).count() == 1


async def test_bad_http_tools_are_validation_errors(gql: GraphQLClient) -> None:
    tenant = await make_tenant("acme")
    admin = await make_token(tenant, "tenant_admin")
    cases = [
        http_input(name="a__b"),
        http_input(name="calculator"),
        http_input(url="file:///etc/passwd"),
        http_input(method="TRACE"),
        http_input(inputSchema={"type": "object", "properties": {"x": {"type": 5}}}),
        http_input(risk="apocalyptic"),
        http_input(secretHeaders={"X-Bad": "a\nb"}),
    ]
    codes = [error_codes(await gql(CREATE_HTTP, admin, input=case)) for case in cases]
    assert codes == [
        ["VALIDATION"],
        ["CONFLICT"],
        ["VALIDATION"],
        ["VALIDATION"],
        ["VALIDATION"],
        ["VALIDATION"],
        ["VALIDATION"],
    ]
    assert await Tool.all().count() == 0


async def test_mcp_server_tools_are_listed_refreshed_and_enabled_one_by_one(
    gql: GraphQLClient,
) -> None:
    # given a platform admin registering our fixture server (stdio) for a tenant
    tenant = await make_tenant("acme")
    platform = await make_token(None, "platform_admin")
    server = (await gql.ok(REGISTER, platform, input=fixture_input()))["registerMcpServer"][
        "mcpServer"
    ]
    # then its status, negotiated version and tools are visible, approval from annotations
    assert server["status"] == "READY", server["statusMessage"]
    assert server["protocolVersion"] == "2025-11-25"
    assert (server["serverName"], server["serverVersion"]) == ("agentplane-fixture", "1.2.3")
    by_name = {t["name"]: t for t in server["tools"]}
    assert set(by_name) == {
        "fixture__add",
        "fixture__crash",
        "fixture__delete_everything",
        "fixture__hang",
    }
    destructive = by_name["fixture__delete_everything"]
    assert (destructive["requiresApproval"], destructive["risk"]) == (True, "high")
    assert destructive["annotations"]["destructiveHint"] is True
    assert (by_name["fixture__add"]["requiresApproval"], by_name["fixture__add"]["risk"]) == (
        False,
        "medium",
    )
    assert by_name["fixture__add"]["inputSchema"]["required"] == ["a", "b"]
    # when the tenant's admin disables one tool and lifts approval from another, then refreshes
    admin = await make_token(tenant, "tenant_admin")
    update = (
        "mutation($input: UpdateToolInput!) "
        "{ updateTool(input: $input) { tool { name enabled requiresApproval } } }"
    )
    await gql.ok(update, admin, input={"id": by_name["fixture__hang"]["id"], "enabled": False})
    await gql.ok(
        update,
        admin,
        input={"id": destructive["id"], "requiresApproval": False, "risk": "critical"},
    )
    refresh = (
        "mutation($input: ToolIdInput!) "
        "{ refreshMcpServer(input: $input) { mcpServer { status refreshedAt } } }"
    )
    refreshed = await gql.ok(refresh, admin, input={"id": server["id"]})
    assert refreshed["refreshMcpServer"]["mcpServer"]["status"] == "READY"
    # then the operator's settings survived the refresh
    tools = {
        t["name"]: t
        for t in (await gql.ok(SERVER_TOOLS, admin, id=server["id"]))["mcpServer"]["tools"]
    }
    assert tools["fixture__hang"]["enabled"] is False
    assert tools["fixture__delete_everything"]["requiresApproval"] is False
    assert tools["fixture__add"]["enabled"] is True
    # and an MCP tool's schema is its server's, not editable here
    refused = await gql(
        update, admin, input={"id": by_name["fixture__add"]["id"], "url": "http://x.test"}
    )
    assert error_codes(refused) == ["VALIDATION"]


async def test_only_platform_callers_register_stdio_servers(gql: GraphQLClient) -> None:
    tenant = await make_tenant("acme")
    admin = await make_token(tenant, "tenant_admin")
    denied = await gql(REGISTER, admin, input={**fixture_input(), "tenant": None})
    assert error_codes(denied) == ["FORBIDDEN"]
    assert "stdio" in denied["errors"][0]["message"]
    assert await McpServer.all().count() == 0


async def test_an_unreachable_http_server_is_registered_with_its_error(gql: GraphQLClient) -> None:
    tenant = await make_tenant("acme")
    admin = await make_token(tenant, "tenant_admin")
    body = await gql.ok(
        REGISTER,
        admin,
        input={
            "name": "remote",
            "transport": "HTTP",
            "url": "http://127.0.0.1:9/mcp",
            "secretHeaders": {"Authorization": f"Bearer {SECRET}"},
        },
    )
    server = body["registerMcpServer"]["mcpServer"]
    assert server["status"] == "ERROR"
    assert server["statusMessage"].startswith("MCP_UNAVAILABLE: ")
    assert server["tools"] == []
    assert SECRET not in str(body)


async def test_agents_name_only_their_tenants_tools(gql: GraphQLClient) -> None:
    # given a tool in tenant A
    a, b = await make_tenant("acme"), await make_tenant("beta")
    a_admin, b_admin = await make_token(a, "tenant_admin"), await make_token(b, "tenant_admin")
    await gql.ok(CREATE_HTTP, a_admin, input=http_input())
    create = (
        """mutation($input: CreateAgentInput!) { createAgent(input: $input) { agent { tools } } }"""
    )
    # then A's agents may name it, B's may not (the name means nothing in B)
    ok = await gql.ok(
        create,
        a_admin,
        input={"name": "x", "model": "scripted/agent", "tools": ["weather", "calculator"]},
    )
    assert ok["createAgent"]["agent"]["tools"] == ["weather", "calculator"]
    refused = await gql(
        create, b_admin, input={"name": "x", "model": "scripted/agent", "tools": ["weather"]}
    )
    assert error_codes(refused) == ["VALIDATION"]
    assert "Unknown tools ['weather']" in refused["errors"][0]["message"]
    assert await Agent.filter(tenant_id=b.id).count() == 0


async def test_cross_tenant_probes_on_every_id_taking_field(gql: GraphQLClient) -> None:
    # given tenant A's HTTP tool and MCP server (with its tools)
    a, b = await make_tenant("acme"), await make_tenant("beta")
    a_admin = await make_token(a, "tenant_admin")
    platform = await make_token(None, "platform_admin")
    tool_id = (await gql.ok(CREATE_HTTP, a_admin, input=http_input()))["createHttpTool"]["tool"][
        "id"
    ]
    server = (await gql.ok(REGISTER, platform, input=fixture_input()))["registerMcpServer"][
        "mcpServer"
    ]
    server_id, mcp_tool_id = server["id"], server["tools"][0]["id"]
    before = (
        sorted([(t.id, t.enabled, t.url, t.requires_approval) for t in await Tool.all()]),
        await McpServer.all().count(),
    )
    # when tenant B's admin probes every field that takes one of their IDs
    b_admin = await make_token(b, "tenant_admin")
    probes = [
        ("query($id: ID!) { tool(id: $id) { name } }", {"id": tool_id}),
        ("query($id: ID!) { tool(id: $id) { name } }", {"id": mcp_tool_id}),
        ("query($id: ID!) { mcpServer(id: $id) { name } }", {"id": server_id}),
        ("query($id: ID!) { node(id: $id) { id } }", {"id": tool_id}),
        ("query($id: ID!) { node(id: $id) { id } }", {"id": server_id}),
        (
            "query($id: ID!) { tools(first: 5, serverId: $id) { edges { node { id } } } }",
            {"id": server_id},
        ),
        ('query { tools(first: 5, tenant: "acme") { edges { node { id } } } }', {}),
        ('query { mcpServers(first: 5, tenant: "acme") { edges { node { id } } } }', {}),
        (
            "mutation($id: ID!) { updateTool(input: {id: $id, enabled: false}) { tool { id } } }",
            {"id": mcp_tool_id},
        ),
        (
            'mutation($id: ID!) { updateTool(input: {id: $id, url: "http://evil.test"}) '
            "{ tool { id } } }",
            {"id": tool_id},
        ),
        ("mutation($id: ID!) { deleteTool(input: {id: $id}) { tool { id } } }", {"id": tool_id}),
        (
            "mutation($id: ID!) { refreshMcpServer(input: {id: $id}) { mcpServer { id } } }",
            {"id": server_id},
        ),
        (
            "mutation($id: ID!) { updateMcpServer(input: {id: $id, timeoutS: 1}) "
            "{ mcpServer { id } } }",
            {"id": server_id},
        ),
        (
            "mutation($id: ID!) { deleteMcpServer(input: {id: $id}) { mcpServer { id } } }",
            {"id": server_id},
        ),
    ]
    for query, variables in probes:
        body = await gql(query, b_admin, **variables)
        assert error_codes(body) == ["NOT_FOUND"], (query, body)
    # then B's own lists are empty and nothing of A's changed
    lists = await gql.ok(
        "{ tools(first: 10) { edges { node { id } } } "
        "mcpServers(first: 10) { edges { node { id } } } }",
        b_admin,
    )
    assert lists == {"tools": {"edges": []}, "mcpServers": {"edges": []}}
    after = (
        sorted([(t.id, t.enabled, t.url, t.requires_approval) for t in await Tool.all()]),
        await McpServer.all().count(),
    )
    assert after == before


async def test_http_tools_are_deleted_mcp_tools_only_disabled(gql: GraphQLClient) -> None:
    tenant = await make_tenant("acme")
    admin = await make_token(tenant, "tenant_admin")
    platform = await make_token(None, "platform_admin")
    tool_id = (await gql.ok(CREATE_HTTP, admin, input=http_input()))["createHttpTool"]["tool"]["id"]
    server = (await gql.ok(REGISTER, platform, input=fixture_input()))["registerMcpServer"][
        "mcpServer"
    ]
    delete = "mutation($id: ID!) { deleteTool(input: {id: $id}) { tool { id name } } }"
    deleted = await gql.ok(delete, admin, id=tool_id)
    assert deleted["deleteTool"]["tool"]["name"] == "weather"
    refused = await gql(delete, admin, id=server["tools"][0]["id"])
    assert error_codes(refused) == ["VALIDATION"]
    # deleting the server takes its tools with it
    gone = await gql.ok(
        "mutation($id: ID!) { deleteMcpServer(input: {id: $id}) { mcpServer { id } } }",
        admin,
        id=server["id"],
    )
    assert gone["deleteMcpServer"]["mcpServer"]["id"] == server["id"]
    assert await Tool.filter(tenant_id=tenant.id).count() == 0
