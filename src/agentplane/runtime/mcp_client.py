"""Talk to an MCP server (stdio command or streamable HTTP URL): list its tools, call one.

Each call opens its own connection and closes it (no pooling): a server that hung, crashed or
wrote garbage on an earlier call cannot poison the next one, and a stdio child never outlives
the call. The whole call runs under one `anyio.fail_after`, so the caller gets an `McpError`
within `timeout` (for stdio, part of it is kept for stopping the child); the SDK's stdio
transport kills the child's process tree on the way out, even under cancellation.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import anyio
import httpx2
from mcp import types
from mcp.client.session import ClientSession
from mcp.client.stdio import PROCESS_TERMINATION_TIMEOUT, StdioServerParameters, stdio_client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared._httpx_utils import create_mcp_http_client
from mcp.shared.exceptions import MCPError

from agentplane.core import egress

MCP_TIMEOUT = "MCP_TIMEOUT"
MCP_UNAVAILABLE = "MCP_UNAVAILABLE"
MCP_PROTOCOL = "MCP_PROTOCOL"
EGRESS_REFUSED = egress.EgressRefused.code

_CONNECTION_CLOSED = -32000  # JSON-RPC code the SDK uses when the transport ends mid-request


@dataclass
class StdioTarget:
    command: str
    args: list[str] = field(default_factory=list)
    env: dict[str, str] | None = None


@dataclass
class HttpTarget:
    url: str
    headers: dict[str, str] | None = None


Target = StdioTarget | HttpTarget


@dataclass
class McpToolInfo:
    name: str
    description: str
    input_schema: dict[str, Any]
    annotations: dict[str, Any]  # camelCase MCP names, e.g. {"destructiveHint": True}


@dataclass
class McpServerInfo:
    protocol_version: str
    server_name: str
    server_version: str
    tools: list[McpToolInfo]


@dataclass
class McpCallResult:
    text: str  # the text contents joined; other content kinds as their JSON
    is_error: bool  # the tool itself reported an error (the model should see it)
    structured: dict[str, Any] | None


class McpError(Exception):
    """A call that could not complete: `.code` is MCP_TIMEOUT, MCP_UNAVAILABLE, MCP_PROTOCOL
    or EGRESS_REFUSED."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message

    def __str__(self) -> str:
        return f"{self.code}: {self.message}"


def _wait_budget(target: Target, timeout: float) -> float:
    """The part of `timeout` a call may wait for the server; the rest pays for stopping a stdio
    child (the SDK closes its stdin, waits 2 s, then kills the process group)."""
    if isinstance(target, StdioTarget):
        return max(timeout - min(PROCESS_TERMINATION_TIMEOUT + 0.5, timeout / 2), 0.1)
    return timeout


def describe(target: Target) -> str:
    if isinstance(target, StdioTarget):
        return " ".join([target.command, *target.args])
    return target.url


@dataclass
class _Seen:
    http_status: int | None = None  # the last non-2xx answer; the SDK's error drops it


@asynccontextmanager
async def _session(
    target: Target, seen: _Seen
) -> AsyncIterator[tuple[ClientSession, types.InitializeResult]]:
    async with AsyncExitStack() as stack:
        if isinstance(target, StdioTarget):
            params = StdioServerParameters(
                command=target.command, args=list(target.args), env=target.env
            )
            read, write = await stack.enter_async_context(stdio_client(params))
        else:
            try:
                await egress.check(target.url)
            except egress.EgressRefused as exc:
                raise McpError(EGRESS_REFUSED, exc.message) from None
            client = await stack.enter_async_context(
                create_mcp_http_client(headers=target.headers or None)
            )

            async def note_status(response: httpx2.Response) -> None:
                if response.status_code >= 400:
                    seen.http_status = response.status_code

            client.event_hooks["response"].append(note_status)
            read, write = await stack.enter_async_context(
                streamable_http_client(target.url, http_client=client)
            )
        # Between transport and session: a line that is not JSON-RPC fails the call at once
        # (the SDK would log it and wait for an answer that never comes).
        checked_send, checked_read = anyio.create_memory_object_stream[Any](0)
        tasks = await stack.enter_async_context(anyio.create_task_group())
        tasks.start_soon(_reject_garbage, read, checked_send, describe(target))
        stack.callback(tasks.cancel_scope.cancel)
        session = await stack.enter_async_context(ClientSession(checked_read, write))
        init = await session.initialize()
        yield session, init


async def _reject_garbage(source: Any, sink: Any, where: str) -> None:
    async with sink:
        async for item in source:
            if isinstance(item, Exception):
                raise McpError(
                    MCP_PROTOCOL, f"MCP server {where!r} sent a non-JSON-RPC line: {item}"
                )
            await sink.send(item)


def _flatten(excs: BaseException) -> list[BaseException]:
    if isinstance(excs, BaseExceptionGroup):
        out: list[BaseException] = []
        for exc in excs.exceptions:
            out.extend(_flatten(exc))
        return out
    return [excs]


def _translate(exc: BaseException, target: Target, timeout: float, seen: _Seen) -> McpError:
    where = describe(target)
    if seen.http_status in (401, 403):
        return McpError(
            MCP_UNAVAILABLE,
            f"MCP server {where!r} refused the credentials (HTTP {seen.http_status})",
        )
    for inner in _flatten(exc):
        if isinstance(inner, McpError):
            return inner
        if isinstance(inner, TimeoutError):
            return McpError(MCP_TIMEOUT, f"MCP server {where!r} did not answer within {timeout:g}s")
        if isinstance(inner, MCPError):
            if inner.code == _CONNECTION_CLOSED:
                return McpError(
                    MCP_UNAVAILABLE, f"MCP server {where!r} closed the connection: {inner.message}"
                )
            return McpError(
                MCP_PROTOCOL, f"MCP server {where!r} answered an error: {inner.message}"
            )
        if isinstance(inner, OSError | httpx2.HTTPError | anyio.BrokenResourceError):
            return McpError(MCP_UNAVAILABLE, f"MCP server {where!r} is unreachable: {inner}")
        if isinstance(inner, ValueError):  # pydantic / JSON decoding of what the server sent
            return McpError(MCP_PROTOCOL, f"MCP server {where!r} sent an invalid message: {inner}")
    return McpError(MCP_UNAVAILABLE, f"MCP server {where!r} failed: {exc!r}")


def _tool_info(tool: types.Tool) -> McpToolInfo:
    annotations = (
        tool.annotations.model_dump(by_alias=True, exclude_none=True) if tool.annotations else {}
    )
    return McpToolInfo(
        name=tool.name,
        description=tool.description or "",
        input_schema=dict(tool.input_schema or {"type": "object"}),
        annotations=annotations,
    )


def _text_of(content: list[Any]) -> str:
    parts: list[str] = []
    for item in content:
        if isinstance(item, types.TextContent):
            parts.append(item.text)
        else:
            parts.append(json.dumps(item.model_dump(by_alias=True, exclude_none=True)))
    return "\n".join(parts)


async def list_tools(target: Target, timeout: float = 10) -> McpServerInfo:
    """Connect, negotiate, and list every tool (following pagination)."""
    seen = _Seen()
    try:
        with anyio.fail_after(_wait_budget(target, timeout)):
            async with _session(target, seen) as (session, init):
                tools: list[McpToolInfo] = []
                cursor: str | None = None
                while True:
                    params = types.PaginatedRequestParams(cursor=cursor) if cursor else None
                    page = await session.list_tools(params=params)
                    tools.extend(_tool_info(tool) for tool in page.tools)
                    cursor = page.next_cursor
                    if not cursor:
                        break
                return McpServerInfo(
                    protocol_version=str(init.protocol_version),
                    server_name=init.server_info.name,
                    server_version=init.server_info.version,
                    tools=tools,
                )
    except Exception as exc:
        raise _translate(exc, target, timeout, seen) from exc


async def call_tool(
    target: Target, name: str, arguments: dict[str, Any], timeout: float = 30
) -> McpCallResult:
    """Connect, call one tool; a tool-reported error comes back as `is_error`, not raised."""
    seen = _Seen()
    try:
        with anyio.fail_after(_wait_budget(target, timeout)):
            async with _session(target, seen) as (session, _init):
                result = await session.call_tool(name, arguments)
                structured = result.structured_content
                return McpCallResult(
                    text=_text_of(list(result.content)),
                    is_error=bool(result.is_error),
                    structured=dict(structured) if isinstance(structured, dict) else None,
                )
    except Exception as exc:
        raise _translate(exc, target, timeout, seen) from exc
