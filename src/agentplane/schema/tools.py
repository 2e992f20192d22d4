"""GraphQL for the tool registry: HTTP tools, MCP servers and their tools, built-ins."""

from datetime import datetime
from typing import Any

import strawberry
from strawberry.dataloader import DataLoader
from strawberry.scalars import JSON
from strawberry.types import Info

from agentplane import models
from agentplane.resolvers import tools
from agentplane.runtime.tools import ResolvedTool
from agentplane.schema.context import Context
from agentplane.schema.types import Connection, Node

HEADER_NAMES = "Names of the headers sent with each call; their values are never read back"

for _enum in (models.ToolSource, models.McpTransport, models.McpServerStatus):
    strawberry.enum(_enum)


@strawberry.type(description="A registered tool: an HTTP endpoint or one tool of an MCP server.")
class Tool(Node):
    id: strawberry.ID
    name: str = strawberry.field(description="What agents list in `tools` and models call")
    source: models.ToolSource
    description: str
    input_schema: JSON
    enabled: bool
    requires_approval: bool
    risk: str
    server_id: strawberry.ID | None = strawberry.field(description="MCP: its server")
    remote_name: str | None = strawberry.field(description="MCP: the tool's name on its server")
    annotations: JSON = strawberry.field(description="MCP: the annotations its server declares")
    url: str | None
    method: str | None
    timeout_s: float
    created_at: datetime
    updated_at: datetime

    @strawberry.field(description=HEADER_NAMES)
    def header_names(self, root: strawberry.Parent[models.Tool]) -> list[str]:
        return list(root.secret_header_names)

    @classmethod
    def is_type_of(cls, obj: Any, info: Info) -> bool:
        return isinstance(obj, models.Tool | Tool)


@strawberry.type(description="A built-in tool (code, the same in every tenant).")
class BuiltinTool:
    name: str
    description: str
    input_schema: JSON
    requires_approval: bool
    risk: str


def _builtin(tool: ResolvedTool) -> BuiltinTool:
    return BuiltinTool(
        name=tool.name,
        description=tool.description,
        input_schema=tool.input_schema,  # type: ignore[arg-type]
        requires_approval=tool.requires_approval,
        risk=tool.risk,
    )


def _server_tools(info: Info[Context, None]) -> DataLoader[str, list[models.Tool]]:
    # One batch per request for every server's tools (no N+1), through the resolver.
    context = info.context
    loader = context.__dict__.get("mcp_server_tools_loader")
    if loader is None:
        loader = DataLoader(lambda ids: tools.load_tools_of_servers(context.actor, list(ids)))
        context.__dict__["mcp_server_tools_loader"] = loader
    return loader  # type: ignore[no-any-return]


@strawberry.type(description="An MCP server of the tenant, reached over stdio or streamable HTTP.")
class McpServer(Node):
    id: strawberry.ID
    name: str
    transport: models.McpTransport
    command: str | None
    args: list[str]
    url: str | None
    timeout_s: float
    status: models.McpServerStatus
    status_message: str
    protocol_version: str | None = strawberry.field(description="Negotiated at the last refresh")
    server_name: str | None
    server_version: str | None
    refreshed_at: datetime | None
    created_at: datetime
    updated_at: datetime

    @strawberry.field(description=HEADER_NAMES)
    def header_names(self, root: strawberry.Parent[models.McpServer]) -> list[str]:
        return list(root.secret_header_names)

    @strawberry.field(description="Its tools as last listed, by name")
    async def tools(
        self, root: strawberry.Parent[models.McpServer], info: Info[Context, None]
    ) -> list[Tool]:
        return await _server_tools(info).load(root.id)  # type: ignore[return-value]

    @classmethod
    def is_type_of(cls, obj: Any, info: Info) -> bool:
        return isinstance(obj, models.McpServer | McpServer)


@strawberry.type
class ToolPayload:
    tool: Tool


@strawberry.type
class McpServerPayload:
    mcp_server: McpServer


@strawberry.input
class CreateHttpToolInput:
    name: str
    url: str = strawberry.field(description="`{arg}` in it takes the argument of that name")
    method: str = "POST"
    description: str = ""
    input_schema: JSON | None = None
    secret_headers: JSON | None = strawberry.field(
        default=None, description="{header: value}, encrypted at rest, never read back"
    )
    requires_approval: bool = False
    risk: str = "low"
    timeout_s: float = 30.0
    tenant: str | None = None


@strawberry.input
class UpdateToolInput:
    id: strawberry.ID
    enabled: bool | None = None
    requires_approval: bool | None = None
    risk: str | None = None
    description: str | None = None
    url: str | None = None
    method: str | None = None
    input_schema: JSON | None = None
    secret_headers: JSON | None = strawberry.field(
        default=None, description="Replaces every secret header; {} removes them"
    )
    timeout_s: float | None = None


@strawberry.input
class RegisterMcpServerInput:
    name: str
    transport: models.McpTransport
    command: str | None = None
    args: list[str] | None = None
    url: str | None = None
    secret_headers: JSON | None = None
    timeout_s: float = 30.0
    tenant: str | None = None


@strawberry.input
class UpdateMcpServerInput:
    id: strawberry.ID
    command: str | None = None
    args: list[str] | None = None
    url: str | None = None
    secret_headers: JSON | None = None
    timeout_s: float | None = None


@strawberry.input
class ToolIdInput:
    id: strawberry.ID


@strawberry.type
class ToolsQuery:
    @strawberry.field(description="Registered tools (HTTP and MCP) of your tenant.")
    async def tools(
        self,
        info: Info[Context, None],
        first: int | None = None,
        after: str | None = None,
        source: models.ToolSource | None = None,
        server_id: strawberry.ID | None = None,
        tenant: str | None = None,
    ) -> Connection[Tool]:
        page = await tools.list_tools(
            info.context.actor, first, after, tenant=tenant, source=source, server_id=server_id
        )
        return Connection.of(page)  # type: ignore[return-value]

    @strawberry.field
    async def tool(self, info: Info[Context, None], id: strawberry.ID) -> Tool:
        return await tools.get_tool(info.context.actor, id)  # type: ignore[return-value]

    @strawberry.field(description="The built-in tools every agent may name.")
    def builtin_tools(self, info: Info[Context, None]) -> list[BuiltinTool]:
        return [_builtin(t) for t in tools.builtin_tools(info.context.actor)]

    @strawberry.field
    async def mcp_servers(
        self,
        info: Info[Context, None],
        first: int | None = None,
        after: str | None = None,
        tenant: str | None = None,
    ) -> Connection[McpServer]:
        page = await tools.list_mcp_servers(info.context.actor, first, after, tenant=tenant)
        return Connection.of(page)  # type: ignore[return-value]

    @strawberry.field
    async def mcp_server(self, info: Info[Context, None], id: strawberry.ID) -> McpServer:
        return await tools.get_mcp_server(info.context.actor, id)  # type: ignore[return-value]


@strawberry.type
class ToolsMutation:
    @strawberry.mutation(description="Register an HTTP endpoint as a tool.")
    async def create_http_tool(
        self, info: Info[Context, None], input: CreateHttpToolInput
    ) -> ToolPayload:
        tool = await tools.create_http_tool(
            info.context.actor,
            name=input.name,
            url=input.url,
            method=input.method,
            description=input.description,
            input_schema=input.input_schema,
            secret_headers=input.secret_headers,
            requires_approval=input.requires_approval,
            risk=input.risk,
            timeout_s=input.timeout_s,
            tenant=input.tenant,
        )
        return ToolPayload(tool=tool)  # type: ignore[arg-type]

    @strawberry.mutation(description="Enable or disable a tool, set its approval and risk, …")
    async def update_tool(self, info: Info[Context, None], input: UpdateToolInput) -> ToolPayload:
        changes = {k: v for k, v in strawberry.asdict(input).items() if k != "id"}
        tool = await tools.update_tool(info.context.actor, input.id, **changes)
        return ToolPayload(tool=tool)  # type: ignore[arg-type]

    @strawberry.mutation(description="Delete an HTTP tool.")
    async def delete_tool(self, info: Info[Context, None], input: ToolIdInput) -> ToolPayload:
        return ToolPayload(tool=await tools.delete_tool(info.context.actor, input.id))  # type: ignore[arg-type]

    @strawberry.mutation(description="Register an MCP server and list its tools.")
    async def register_mcp_server(
        self, info: Info[Context, None], input: RegisterMcpServerInput
    ) -> McpServerPayload:
        server = await tools.register_mcp_server(
            info.context.actor,
            name=input.name,
            transport=input.transport,
            command=input.command,
            args=input.args,
            url=input.url,
            secret_headers=input.secret_headers,
            timeout_s=input.timeout_s,
            tenant=input.tenant,
        )
        return McpServerPayload(mcp_server=server)  # type: ignore[arg-type]

    @strawberry.mutation(description="Change how an MCP server is reached, then refresh it.")
    async def update_mcp_server(
        self, info: Info[Context, None], input: UpdateMcpServerInput
    ) -> McpServerPayload:
        changes = {k: v for k, v in strawberry.asdict(input).items() if k != "id"}
        server = await tools.update_mcp_server(info.context.actor, input.id, **changes)
        return McpServerPayload(mcp_server=server)  # type: ignore[arg-type]

    @strawberry.mutation(description="List an MCP server's tools again.")
    async def refresh_mcp_server(
        self, info: Info[Context, None], input: ToolIdInput
    ) -> McpServerPayload:
        server = await tools.refresh_mcp_server(info.context.actor, input.id)
        return McpServerPayload(mcp_server=server)  # type: ignore[arg-type]

    @strawberry.mutation(description="Delete an MCP server and its tools.")
    async def delete_mcp_server(
        self, info: Info[Context, None], input: ToolIdInput
    ) -> McpServerPayload:
        server = await tools.delete_mcp_server(info.context.actor, input.id)
        return McpServerPayload(mcp_server=server)  # type: ignore[arg-type]
