"""The egress policy for HTTP tools and HTTP MCP servers: a tenant's tool URL is no way into
the control plane's networks (metadata service, private ranges; loopback in production),
refused at registration when the address is literal and at the call when a name resolves there."""

import ipaddress
from collections.abc import Iterator

import httpx
import pytest

from agentplane.core import egress
from agentplane.core.config import Settings
from agentplane.models import McpServer, McpTransport, StepKind, Tool
from agentplane.resolvers import tools
from tests.support.factories import make_agent, make_tenant, make_token
from tests.support.graphql import GraphQLClient, error_codes
from tests.support.http_tool_server import Recorded, serve_tools
from tests.test_tools_runtime import admin_of, run_task, tool_steps

CREATE_HTTP = """
mutation($input: CreateHttpToolInput!) { createHttpTool(input: $input) { tool { id } } }
"""
REGISTER = """
mutation($input: RegisterMcpServerInput!) {
  registerMcpServer(input: $input) { mcpServer { id status statusMessage } }
}
"""


@pytest.fixture
def tool_server() -> Iterator[tuple[str, Recorded]]:
    with serve_tools() as served:
        yield served


@pytest.mark.parametrize(
    ("address", "allowed"),
    [
        ("8.8.8.8", True),
        ("2606:4700:4700::1111", True),
        ("169.254.169.254", False),  # cloud metadata
        ("10.1.2.3", False),
        ("192.168.0.10", False),
        ("100.64.0.1", False),  # carrier-grade NAT
        ("0.0.0.0", False),
        ("fd00::1", False),
        ("::ffff:169.254.169.254", False),  # v4-mapped v6 is judged as the v4 address
    ],
)
def test_only_public_addresses_are_allowed(address: str, allowed: bool) -> None:
    assert egress.address_allowed(ipaddress.ip_address(address)) is allowed


def test_loopback_only_in_development_and_the_allow_list_widens(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    loopback = ipaddress.ip_address("127.0.0.1")
    assert egress.address_allowed(loopback)
    monkeypatch.setenv("AGENTPLANE_ENV", "production")
    assert not egress.address_allowed(loopback)
    monkeypatch.setenv("AGENTPLANE_EGRESS_ALLOW", "tools.internal, 127.0.0.0/8")
    assert egress.address_allowed(loopback)
    assert not egress.address_allowed(ipaddress.ip_address("10.0.0.1"))


async def test_a_private_address_is_refused_at_registration(gql: GraphQLClient) -> None:
    tenant = await make_tenant("acme")
    admin = await make_token(tenant, "tenant_admin")
    refused = await gql(
        CREATE_HTTP,
        admin,
        input={"name": "meta", "url": "http://169.254.169.254/latest/meta-data"},
    )
    assert error_codes(refused) == ["EGRESS_REFUSED"]
    assert "AGENTPLANE_EGRESS_ALLOW" in refused["errors"][0]["message"]
    mcp = await gql(
        REGISTER, admin, input={"name": "inner", "transport": "HTTP", "url": "http://10.0.0.7/mcp"}
    )
    assert error_codes(mcp) == ["EGRESS_REFUSED"]
    assert await Tool.filter(tenant_id=tenant.id).count() == 0
    assert await McpServer.filter(tenant_id=tenant.id).count() == 0


async def test_rest_answers_egress_refusals_with_400(client: httpx.AsyncClient) -> None:
    acme = await make_tenant("acme")
    admin = await make_token(acme, "tenant_admin")
    response = await client.post(
        "/api/v1/mcp-servers",
        headers={"Authorization": f"Bearer {admin}"},
        json={"name": "inner", "endpoint": "http://192.168.1.1/mcp", "transport": "http"},
    )
    assert response.status_code == 400, response.text
    assert response.json()["code"] == "egress_refused"
    assert await McpServer.filter(tenant_id=acme.id).count() == 0


async def test_a_name_resolving_to_loopback_is_refused_at_the_call_in_production(
    services: Settings, tool_server: tuple[str, Recorded], monkeypatch: pytest.MonkeyPatch
) -> None:
    # given an HTTP tool registered by name (no literal to judge at registration)
    base, recorded = tool_server
    port = httpx.URL(base).port
    tenant = await make_tenant("acme")
    await tools.create_http_tool(
        admin_of(tenant), name="weather", url=f"http://localhost:{port}/weather", method="GET"
    )
    script = [{"tool": "weather", "arguments": {"city": "Oslo"}}, {"say": "{last_tool_result}"}]
    agent = await make_agent(
        tenant, model="scripted/agent", tools=["weather"], config={"script": script}
    )
    # when the installation runs in production, where loopback is not a public address
    monkeypatch.setenv("AGENTPLANE_ENV", "production")
    task = await run_task(services, tenant, agent.id, "weather?")
    # then the call is an error step the model reads, and the server never saw a request
    [step] = await tool_steps(task)
    assert step.kind == StepKind.TOOL_CALL
    assert step.payload["errorCode"] == "EGRESS_REFUSED"
    assert "is not a public address" in step.payload["error"]
    assert recorded.requests == []
    # and once the operator allows the host, the same tool works
    monkeypatch.setenv("AGENTPLANE_EGRESS_ALLOW", "localhost")
    task = await run_task(services, tenant, agent.id, "weather?")
    [step] = await tool_steps(task)
    assert step.payload.get("errorCode") is None, step.payload
    assert len(recorded.requests) == 1


async def test_an_mcp_server_behind_a_refused_name_is_not_contacted(
    services: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    # given an HTTP MCP server registered by name in development (unreachable: port 9)
    tenant = await make_tenant("acme")
    admin = admin_of(tenant)
    server = await tools.register_mcp_server(
        admin, name="inner", transport=McpTransport.HTTP, url="http://localhost:9/mcp"
    )
    assert (server.status_message or "").startswith("MCP_UNAVAILABLE: ")
    # when the installation runs in production, a refresh refuses before connecting
    monkeypatch.setenv("AGENTPLANE_ENV", "production")
    server = await tools.refresh_mcp_server(admin, server.id)
    assert (server.status_message or "").startswith("EGRESS_REFUSED: ")
    # and registering `localhost` there is refused at once, with nothing stored
    with pytest.raises(egress.EgressRefused):
        await tools.register_mcp_server(
            admin, name="again", transport=McpTransport.HTTP, url="http://localhost:9/mcp"
        )
    assert await McpServer.filter(tenant_id=tenant.id).count() == 1
