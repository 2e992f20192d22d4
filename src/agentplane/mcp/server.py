"""A tenant's agents as MCP tools, over streamable HTTP at `/mcp`.

The endpoint authenticates each HTTP request with our bearer tokens (401 + WWW-Authenticate
before any MCP traffic) and keeps the Actor in the request's state; the MCP handlers read it
from the request the transport hands them, so every list and call runs as that caller through
the same resolvers GraphQL uses. Stateless mode: each POST stands alone, so there is no MCP
session to bind to a token or to lose on restart, and any API process can answer.
"""

from __future__ import annotations

import asyncio
from typing import Any

from mcp import types
from mcp.server import Server, ServerRequestContext
from mcp.server.streamable_http_manager import StreamableHTTPSessionManager
from mcp.server.transport_security import TransportSecuritySettings
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.types import Receive, Scope, Send

from agentplane.core.config import Settings
from agentplane.core.errors import DomainError, Unauthenticated
from agentplane.models import AgentState, TaskStatus
from agentplane.resolvers import agents, approvals, tasks
from agentplane.resolvers.auth import Actor, authenticate, bearer_from_header
from agentplane.subscriptions import streams

PATH = "/mcp"
INPUT_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {"query": {"type": "string", "minLength": 1, "description": "The task"}},
    "required": ["query"],
    "additionalProperties": False,
}
_PAGE = 100


def _actor(ctx: ServerRequestContext[Any, Any]) -> Actor:
    request = ctx.request
    actor = getattr(getattr(request, "state", None), "agentplane_actor", None)
    if not isinstance(actor, Actor):  # the endpoint below always sets it; never run anonymous
        raise Unauthenticated("No caller on this MCP request")
    return actor


async def _agents(actor: Actor) -> list[Any]:
    """The active agents of the caller's tenant. A platform-scoped token belongs to no tenant,
    and tool names are agent names (unique per tenant only), so it lists none."""
    if actor.tenant_id is None:
        return []
    found: list[Any] = []
    while True:
        page = await agents.list_agents_offset(actor, _PAGE, len(found), AgentState.ACTIVE)
        found.extend(page.items)
        if len(page.items) < _PAGE or len(found) >= page.total:
            return found


def _tool(agent: Any) -> types.Tool:
    return types.Tool(
        name=agent.name,
        description=agent.description or f"Run the agentplane agent {agent.name!r} on a query.",
        input_schema=INPUT_SCHEMA,
        annotations=types.ToolAnnotations(read_only_hint=False, open_world_hint=True),
    )


def _error(message: str, meta: dict[str, Any] | None = None) -> types.CallToolResult:
    return types.CallToolResult(
        content=[types.TextContent(text=message)], structured_content=meta, is_error=True
    )


def build_server(settings: Settings) -> Server[Any]:
    async def list_tools(
        ctx: ServerRequestContext[Any, Any], params: types.PaginatedRequestParams | None
    ) -> types.ListToolsResult:
        return types.ListToolsResult(tools=[_tool(a) for a in await _agents(_actor(ctx))])

    async def call_tool(
        ctx: ServerRequestContext[Any, Any], params: types.CallToolRequestParams
    ) -> types.CallToolResult:
        actor = _actor(ctx)
        query = (params.arguments or {}).get("query")
        if not isinstance(query, str):
            return _error("VALIDATION: `query` (a string) is required")
        try:
            if actor.tenant_id is None:  # see _agents: names mean nothing outside a tenant
                return _error(f"NOT_FOUND: Unknown tool {params.name!r}")
            agent = await agents.find_agent(actor, params.name)
            if agent.state != AgentState.ACTIVE:
                return _error(f"NOT_FOUND: Unknown tool {params.name!r}")
            task = await tasks.submit_task(
                actor, agent_id=agent.id, query=query, metadata={"source": "mcp"}
            )
            task = await streams.run_to_end(actor, task, settings.task_timeout_s + 5)
        except DomainError as exc:
            if exc.code == "NOT_FOUND":
                return _error(f"NOT_FOUND: Unknown tool {params.name!r}")
            return _error(f"{exc.code}: {exc.message}")
        meta = {"taskId": task.id, "status": task.status.value}
        if task.status.value == "completed":
            return types.CallToolResult(
                content=[types.TextContent(text=task.output or "")], structured_content=meta
            )
        if task.status == TaskStatus.WAITING_FOR_APPROVAL:
            waiting = await approvals.approval_required(actor, task)
            return _error(
                f"{waiting.code}: {waiting.message}",
                {**meta, "approvalId": waiting.details["approvalId"]},
            )
        if not task.status.is_terminal:
            await tasks.cancel_task(actor, task.id)
            return _error(f"TIMEOUT: task {task.id} did not finish in time and was cancelled")
        return types.CallToolResult(
            content=[types.TextContent(text=f"task {task.id} {task.status.value}: {task.error}")],
            structured_content=meta,
            is_error=True,
        )

    return Server(
        "agentplane",
        version="0.1.0",
        instructions="Each tool is an agent of your tenant; call it with {query} to run a task.",
        on_list_tools=list_tools,
        on_call_tool=call_tool,
    )


class McpEndpoint:
    """The ASGI app at `/mcp`: bearer auth, then the MCP session manager."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.server = build_server(settings)
        self.manager: StreamableHTTPSessionManager | None = None
        self._runner: asyncio.Task[None] | None = None
        self._stop = asyncio.Event()

    async def start(self) -> None:
        """Run a session manager (it runs once per instance) in a task of its own: its task
        group must be entered and left in one task, and a lifespan may be left in another."""
        manager = StreamableHTTPSessionManager(
            self.server,
            stateless=True,
            json_response=True,
            # DNS rebinding attacks ride a browser's ambient credentials; this endpoint takes
            # only a bearer token, which a rebinding page cannot send.
            security_settings=TransportSecuritySettings(enable_dns_rebinding_protection=False),
        )
        started = asyncio.Event()
        self._stop = asyncio.Event()

        async def run() -> None:
            async with manager.run():
                started.set()
                await self._stop.wait()

        self._runner = asyncio.create_task(run())
        await started.wait()
        self.manager = manager

    async def stop(self) -> None:
        self.manager = None
        self._stop.set()
        if self._runner is not None:
            await self._runner
            self._runner = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        request = Request(scope, receive)
        try:
            actor = await authenticate(
                bearer_from_header(request.headers.get("authorization")),
                self.settings.admin_token,
            )
            if actor is None:
                raise Unauthenticated("An MCP client must send 'Authorization: Bearer <token>'")
        except DomainError as exc:
            challenge = 'Bearer realm="agentplane"'
            if request.headers.get("authorization"):
                challenge += ', error="invalid_token"'
            response = JSONResponse(
                {"error": {"code": exc.code, "message": exc.message}},
                status_code=401 if isinstance(exc, Unauthenticated) else 403,
                headers={"WWW-Authenticate": challenge},
            )
            await response(scope, receive, send)
            return
        if self.manager is None:
            await JSONResponse({"error": {"code": "UNAVAILABLE"}}, 503)(scope, receive, send)
            return
        scope.setdefault("state", {})["agentplane_actor"] = actor
        await self.manager.handle_request(scope, receive, send)
