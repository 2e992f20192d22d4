"""Calling a registered tool: an HTTP endpoint or one tool of an MCP server.

Each call returns a `SourceResult` and never raises for what the far side did (an HTTP
error, a timeout, an MCP server that hung, crashed or wrote garbage): the agent loop
records it as an error step the model sees, and the worker goes on.
"""

import json
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, urlsplit

import httpx

from agentplane.core import egress, secretbox
from agentplane.core.errors import NotConfigured
from agentplane.models import McpServer, McpTransport, Tool
from agentplane.runtime import mcp_client

# A tool's answer is kept up to this size; longer ones are cut (and say so). Results above
# the step limit (8 KiB) are stored apart like any large step payload.
MAX_RESULT_BYTES = 1024 * 1024
_MAX_ERROR_CHARS = 500


@dataclass
class SourceResult:
    output: str
    error_code: str | None = None  # set when the call failed; `output` then says why


def secret_headers(ciphertext: str | None) -> dict[str, str]:
    if not ciphertext:
        return {}
    headers = json.loads(secretbox.decrypt(ciphertext))
    return {str(k): str(v) for k, v in headers.items()}


def _redact(text: str, secrets: dict[str, str]) -> str:
    for value in secrets.values():
        if value:
            text = text.replace(value, "***")
    return text


def origin(url: str) -> str:
    """Scheme, host and port: where a call went, without path or query."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


def _fill(url: str, arguments: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """`{name}` placeholders of the URL take (and consume) the argument of that name."""
    rest = dict(arguments)
    for key in list(rest):
        marker = "{" + key + "}"
        if marker in url:
            url = url.replace(marker, quote(str(rest.pop(key)), safe=""))
    return url, rest


def _query_value(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value)


async def call_http(tool: Tool, arguments: dict[str, Any]) -> SourceResult:
    try:
        headers = secret_headers(tool.secret_headers)
    except NotConfigured as exc:
        return SourceResult(
            f"error: the tool's secret headers cannot be used: {exc}", "TOOL_FAILED"
        )
    url, rest = _fill(tool.url or "", arguments)
    method = (tool.method or "POST").upper()
    request: dict[str, Any] = {"headers": {"Accept": "application/json", **headers}}
    if method in ("GET", "DELETE", "HEAD"):
        request["params"] = {k: _query_value(v) for k, v in rest.items()}
    else:
        request["json"] = rest
    try:
        await egress.check(url)
    except egress.EgressRefused as exc:
        return SourceResult(f"error: {exc.message}", exc.code)
    try:
        async with (
            httpx.AsyncClient(timeout=tool.timeout_s, follow_redirects=False) as client,
            client.stream(method, url, **request) as response,
        ):
            body = bytearray()
            cut = False
            async for chunk in response.aiter_bytes():
                body += chunk
                if len(body) > MAX_RESULT_BYTES:
                    del body[MAX_RESULT_BYTES:]
                    cut = True
                    break
    except httpx.TimeoutException:
        return SourceResult(
            f"error: {origin(url)} did not answer within {tool.timeout_s:g}s", "TOOL_TIMEOUT"
        )
    except (httpx.HTTPError, httpx.InvalidURL) as exc:
        message = _redact(f"{type(exc).__name__}: {exc}", headers)
        return SourceResult(f"error: {origin(url)} is unreachable: {message}", "TOOL_FAILED")
    text = body.decode("utf-8", errors="replace")
    if cut:
        text += f"\n[cut at {MAX_RESULT_BYTES} bytes]"
    if response.status_code >= 400:
        detail = _redact(text[:_MAX_ERROR_CHARS], headers)
        return SourceResult(f"error: HTTP {response.status_code}: {detail}", "HTTP_ERROR")
    return SourceResult(text)


def mcp_target(server: McpServer) -> mcp_client.Target:
    if server.transport == McpTransport.STDIO:
        # env=None: the SDK passes the child a minimal environment (PATH, HOME, ...), not ours.
        return mcp_client.StdioTarget(server.command or "", list(server.args))
    return mcp_client.HttpTarget(server.url or "", secret_headers(server.secret_headers) or None)


async def call_mcp(tool: Tool, server: McpServer, arguments: dict[str, Any]) -> SourceResult:
    try:
        target = mcp_target(server)
    except NotConfigured as exc:
        return SourceResult(
            f"error: the server's secret headers cannot be used: {exc}", "TOOL_FAILED"
        )
    try:
        result = await mcp_client.call_tool(
            target, tool.remote_name or tool.name, arguments, timeout=server.timeout_s
        )
    except mcp_client.McpError as exc:
        return SourceResult(f"error: {exc.message}", exc.code)
    text = result.text
    if len(text.encode()) > MAX_RESULT_BYTES:
        text = text.encode()[:MAX_RESULT_BYTES].decode(errors="ignore")
        text += f"\n[cut at {MAX_RESULT_BYTES} bytes]"
    if result.is_error:
        return SourceResult(f"error: {text}", "TOOL_ERROR")
    return SourceResult(text)
