"""The MCP client against a real third-party server (npm server-everything over stdio on Node)
and our own fixture server (a destructive tool, a tool that hangs, one that crashes, garbage)."""

import sys
import time
from pathlib import Path

import anyio
import psutil
import pytest

from agentplane.runtime.mcp_client import (
    MCP_PROTOCOL,
    MCP_TIMEOUT,
    MCP_UNAVAILABLE,
    HttpTarget,
    McpError,
    StdioTarget,
    call_tool,
    list_tools,
)

ROOT = Path(__file__).resolve().parent.parent
EVERYTHING = ROOT / "mcp-servers/node_modules/@modelcontextprotocol/server-everything/dist/index.js"
FIXTURE = str(ROOT / "tests/support/mcp_fixture_server.py")


def everything() -> StdioTarget:
    assert EVERYTHING.exists(), "run `make test` (it runs npm ci in mcp-servers/)"
    return StdioTarget("node", [str(EVERYTHING), "stdio"])


def fixture(*args: str) -> StdioTarget:
    return StdioTarget(sys.executable, [FIXTURE, *args])


def children() -> list[psutil.Process]:
    return [p for p in psutil.Process().children(recursive=True) if p.is_running()]


@pytest.fixture(autouse=True)
def no_leftover_children() -> object:
    before = {p.pid for p in children()}
    yield
    leftover = [p for p in children() if p.pid not in before and p.status() != "zombie"]
    assert leftover == []


async def test_lists_server_everything_tools_and_negotiates_a_version() -> None:
    info = await list_tools(everything(), timeout=20)

    assert info.server_name == "mcp-servers/everything"
    assert info.protocol_version == "2025-11-25"
    names = {tool.name for tool in info.tools}
    assert {"echo", "get-sum"} <= names
    echo = next(tool for tool in info.tools if tool.name == "echo")
    assert echo.input_schema["type"] == "object"
    assert "message" in echo.input_schema["properties"]


async def test_calls_server_everything_tools() -> None:
    echoed = await call_tool(everything(), "echo", {"message": "hello"}, timeout=20)
    summed = await call_tool(everything(), "get-sum", {"a": 2, "b": 40}, timeout=20)

    assert (echoed.text, echoed.is_error) == ("Echo: hello", False)
    assert "42" in summed.text
    assert summed.is_error is False


async def test_fixture_server_lists_annotations_and_structured_results() -> None:
    info = await list_tools(fixture())

    assert (info.server_name, info.server_version) == ("agentplane-fixture", "1.2.3")
    tools = {tool.name: tool for tool in info.tools}
    assert set(tools) == {"add", "delete_everything", "hang", "crash"}
    assert tools["delete_everything"].annotations["destructiveHint"] is True
    assert tools["add"].annotations == {}
    result = await call_tool(fixture(), "add", {"a": 2, "b": 3})
    assert (result.text, result.is_error, result.structured) == ("5", False, {"result": 5})


async def test_an_unknown_tool_is_a_tool_error_not_an_exception() -> None:
    result = await call_tool(fixture(), "nope", {})

    assert result.is_error is True
    assert "nope" in result.text


async def test_a_hanging_tool_times_out_within_the_timeout() -> None:
    started = time.monotonic()
    with pytest.raises(McpError) as caught:
        await call_tool(fixture(), "hang", {}, timeout=4)

    assert caught.value.code == MCP_TIMEOUT
    assert "4s" in caught.value.message
    assert time.monotonic() - started < 4.5


async def test_a_caller_that_gives_up_first_leaves_no_child_behind() -> None:
    # the autouse fixture asserts no child survives; the caller's own deadline wins here
    with anyio.move_on_after(1) as scope:
        await call_tool(fixture(), "hang", {}, timeout=30)

    assert scope.cancelled_caught is True


async def test_a_crashing_server_is_unavailable() -> None:
    with pytest.raises(McpError) as caught:
        await call_tool(fixture(), "crash", {}, timeout=10)

    assert caught.value.code == MCP_UNAVAILABLE
    assert "closed the connection" in caught.value.message


async def test_garbage_on_stdout_is_a_protocol_error_at_once() -> None:
    started = time.monotonic()
    with pytest.raises(McpError) as caught:
        await call_tool(fixture("garbage"), "add", {"a": 1, "b": 2}, timeout=60)

    assert caught.value.code == MCP_PROTOCOL
    assert "non-JSON-RPC" in caught.value.message
    # long before the timeout (the margin absorbs a slow child start on a loaded machine)
    assert time.monotonic() - started < 20


async def test_a_missing_command_is_unavailable() -> None:
    with pytest.raises(McpError) as caught:
        await list_tools(StdioTarget("/nonexistent/mcp-server", []))

    assert caught.value.code == MCP_UNAVAILABLE


async def test_an_unreachable_http_server_is_unavailable() -> None:
    with pytest.raises(McpError) as caught:
        await list_tools(HttpTarget("http://127.0.0.1:9/mcp"), timeout=5)

    assert caught.value.code == MCP_UNAVAILABLE
