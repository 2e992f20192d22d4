"""agentplane's MCP server at /mcp, over the wire: a real `agentplane serve` process and the
`mcp` package's own client (streamable HTTP)."""

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import httpx2
import pytest
from mcp.client.session import ClientSession
from mcp.client.streamable_http import streamable_http_client

from agentplane.models import AgentState
from agentplane.runtime.mcp_client import HttpTarget, McpError, call_tool, list_tools
from tests.support.factories import make_agent, make_tenant, make_token
from tests.support.server import live_server


@asynccontextmanager
async def mcp_session(base_url: str, token: str) -> AsyncIterator[ClientSession]:
    headers = {"Authorization": f"Bearer {token}"}
    async with (
        httpx2.AsyncClient(headers=headers, timeout=30) as http,
        streamable_http_client(base_url + "/mcp", http_client=http) as (read, write),
        ClientSession(read, write) as session,
    ):
        await session.initialize()
        yield session


async def test_an_mcp_client_lists_and_runs_its_tenants_agents_only(
    services: Any, database_url: str, workdir: Path
) -> None:
    # given two tenants, each with an active agent (and acme with a draft one)
    acme, globex = await make_tenant("acme"), await make_tenant("globex")
    await make_agent(acme, "echo", state=AgentState.ACTIVE, description="Echoes the query")
    await make_agent(acme, "drafty", state=AgentState.DRAFT)
    await make_agent(globex, "secret-echo", state=AgentState.ACTIVE)
    acme_token = await make_token(acme, "operator")
    globex_token = await make_token(globex, "operator")

    with live_server(database_url, workdir) as server:
        # when acme lists and calls its tools
        async with mcp_session(server.base_url, acme_token) as session:
            listed = await session.list_tools()
            result = await session.call_tool("echo", {"query": "hello over mcp"})
            foreign = await session.call_tool("secret-echo", {"query": "leak?"})
            bad = await session.call_tool("echo", {})
        # and globex lists its own
        async with mcp_session(server.base_url, globex_token) as session:
            globex_tools = await session.list_tools()
        # and our own MCP client (runtime/mcp_client.py) reaches it over HTTP as well
        target = HttpTarget(server.base_url + "/mcp", {"Authorization": f"Bearer {acme_token}"})
        info = await list_tools(target)
        ours = await call_tool(target, "echo", {"query": "via our client"})
        with pytest.raises(McpError) as refused:
            await list_tools(HttpTarget(server.base_url + "/mcp"))

    # then acme sees only its active agent, with our input schema
    assert [(t.name, t.description) for t in listed.tools] == [("echo", "Echoes the query")]
    assert listed.tools[0].input_schema["required"] == ["query"]
    # and the run's output comes back, with the task's ID
    assert result.is_error is False
    assert "hello over mcp" in result.content[0].text
    assert result.structured_content is not None
    assert result.structured_content["status"] == "completed"
    assert result.structured_content["taskId"].startswith("tsk_")
    # and another tenant's agent is an unknown tool, bad input a clear tool error
    assert foreign.is_error is True
    assert foreign.content[0].text == "NOT_FOUND: Unknown tool 'secret-echo'"
    assert bad.is_error is True
    assert bad.content[0].text.startswith("VALIDATION")
    assert [t.name for t in globex_tools.tools] == ["secret-echo"]
    assert (info.server_name, [t.name for t in info.tools]) == ("agentplane", ["echo"])
    assert ours.is_error is False
    assert "via our client" in ours.text
    assert refused.value.code == "MCP_UNAVAILABLE"
    assert "refused the credentials (HTTP 401)" in refused.value.message


async def test_a_failed_task_is_a_tool_error_with_the_tasks_error(
    services: Any, database_url: str, workdir: Path
) -> None:
    # given an agent that cannot finish: one model call allowed, and it asks for a tool
    acme = await make_tenant("acme")
    await make_agent(
        acme,
        "looper",
        model="scripted/agent",
        max_steps=1,
        tools=["calculator"],
        config={"script": [{"tool": "calculator", "arguments": {"expression": "1+1"}}]},
    )
    token = await make_token(acme, "operator")

    with live_server(database_url, workdir) as server:
        async with mcp_session(server.base_url, token) as session:
            result = await session.call_tool("looper", {"query": "go"})

    assert result.is_error is True
    assert result.structured_content is not None
    assert result.structured_content["status"] == "failed"
    assert "no final answer within 1 model calls" in result.content[0].text


async def test_mcp_without_a_valid_token_is_401_with_a_challenge(
    services: Any, database_url: str, workdir: Path
) -> None:
    initialize = {
        "jsonrpc": "2.0",
        "id": 1,
        "method": "initialize",
        "params": {
            "protocolVersion": "2025-11-25",
            "capabilities": {},
            "clientInfo": {"name": "t", "version": "1"},
        },
    }
    headers = {"Accept": "application/json, text/event-stream"}
    with live_server(database_url, workdir) as server:
        async with httpx.AsyncClient(base_url=server.base_url) as http:
            missing = await http.post("/mcp", json=initialize, headers=headers)
            wrong = await http.post(
                "/mcp",
                json=initialize,
                headers={**headers, "Authorization": "Bearer agp_not_a_real_token"},
            )

    assert missing.status_code == 401
    assert missing.headers["www-authenticate"] == 'Bearer realm="agentplane"'
    assert missing.json()["error"]["code"] == "UNAUTHENTICATED"
    assert wrong.status_code == 401
    assert wrong.headers["www-authenticate"] == 'Bearer realm="agentplane", error="invalid_token"'
