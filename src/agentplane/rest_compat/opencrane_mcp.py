"""OpenCrane's MCP servers (`/api/v1/mcp-servers`), over the tool registry's resolvers.

The seed's record is `{id, name, endpoint, transport, grants, credentials}`; we add the
server's `status`, negotiated `protocolVersion` and its `tools`. `endpoint` is the URL of a
streamable HTTP server, or the command of a stdio one (`args` beside it; platform callers
only). Credentials are secret headers (`secretHeaders: {name: value}` in a body), encrypted
at rest and listed by name only; `grants` are accepted and not kept (an agent's `tools`
says what it may call).
"""

from typing import Any

from starlette.responses import Response

from agentplane.core.errors import ValidationFailed
from agentplane.models import McpServer, McpTransport, Tool
from agentplane.resolvers import tools
from agentplane.rest_compat.common import (
    BOOL,
    DATETIME,
    OBJ,
    STR,
    Call,
    Param,
    Resp,
    array,
    iso,
    json,
    nullable,
    obj,
    record,
)
from agentplane.rest_compat.opencrane import V1, opencrane

TRANSPORTS = {
    "stdio": McpTransport.STDIO,
    "http": McpTransport.HTTP,
    "streamable-http": McpTransport.HTTP,
}
CREDENTIAL = record({"id": STR, "displayName": STR, "brokeringMode": STR, "secretRef": STR})
MCP_TOOL = record(
    {
        "id": STR,
        "name": STR,
        "remoteName": STR,
        "enabled": BOOL,
        "requiresApproval": BOOL,
        "risk": STR,
    }
)
MCP_SERVER = record(
    {
        "id": STR,
        "name": STR,
        "endpoint": STR,
        "transport": STR,
        "args": array(STR),
        "grants": array(OBJ),
        "credentials": array(CREDENTIAL),
        "status": {"type": "string", "enum": ["unknown", "ready", "error"]},
        "statusMessage": STR,
        "protocolVersion": nullable(STR),
        "refreshedAt": nullable(DATETIME),
        "tools": array(MCP_TOOL),
    }
)
_HEADERS = {"type": "object", "additionalProperties": {"type": "string"}, "maxProperties": 20}
_BODY = {
    "name": {"type": "string", "minLength": 1, "maxLength": 32},
    "endpoint": {"type": "string", "minLength": 1, "maxLength": 2000},
    "transport": {"type": "string", "enum": sorted(TRANSPORTS)},
    "args": {"type": "array", "items": STR, "maxItems": 64},
    "secretHeaders": _HEADERS,
    "timeoutS": {"type": "number", "minimum": 0.1, "maximum": 300},
    "grants": array(OBJ),
    "credentials": array(OBJ),
}
_TENANT = Param("tenant", STR, description="A tenant's name: required for platform callers.")


def _credentials(server: McpServer) -> list[dict[str, Any]]:
    return [
        {
            "id": f"header:{name}",
            "displayName": name,
            "brokeringMode": "header",
            "secretRef": "encrypted",
        }
        for name in server.secret_header_names
    ]


def _record(server: McpServer, server_tools: list[Tool]) -> dict[str, Any]:
    stdio = server.transport == McpTransport.STDIO
    return {
        "id": server.id,
        "name": server.name,
        "endpoint": (server.command if stdio else server.url) or "",
        "transport": server.transport.value,
        "args": list(server.args),
        "grants": [],
        "credentials": _credentials(server),
        "status": server.status.value,
        "statusMessage": server.status_message,
        "protocolVersion": server.protocol_version,
        "refreshedAt": iso(server.refreshed_at),
        "tools": [
            {
                "id": t.id,
                "name": t.name,
                "remoteName": t.remote_name or "",
                "enabled": t.enabled,
                "requiresApproval": t.requires_approval,
                "risk": t.risk,
            }
            for t in server_tools
        ],
    }


async def _records(call: Call, servers: list[McpServer]) -> list[dict[str, Any]]:
    lists = await tools.load_tools_of_servers(call.actor, [s.id for s in servers])
    return [_record(s, t) for s, t in zip(servers, lists, strict=True)]


def _endpoint(transport: McpTransport, endpoint: str | None) -> dict[str, Any]:
    if endpoint is None:
        return {}
    return {"command": endpoint} if transport == McpTransport.STDIO else {"url": endpoint}


@opencrane.route(
    "GET",
    V1 + "/mcp-servers",
    summary="List the MCP servers of your tenant, with their tools and credentials (names only)",
    ok=Resp(array(MCP_SERVER), "MCP server list."),
)
async def list_mcp_servers(call: Call) -> Response:
    return json(await _records(call, await tools.all_mcp_servers(call.actor)))


@opencrane.route(
    "POST",
    V1 + "/mcp-servers",
    summary="Register an MCP server and list its tools",
    description=(
        "`transport` `http` (streamable HTTP; `endpoint` is its URL) or `stdio` (`endpoint` is "
        "a command, `args` its arguments; platform callers only). An unreachable server is "
        "registered with `status: error`."
    ),
    ok={201: Resp(MCP_SERVER, "MCP server created.")},
    body=obj(_BODY, ("name", "endpoint")),
    query=(_TENANT,),
    errors=(503,),
)
async def create_mcp_server(call: Call) -> Response:
    body = call.body
    transport = TRANSPORTS[body.get("transport", "http")]
    server = await tools.register_mcp_server(
        call.actor,
        name=body["name"],
        transport=transport,
        args=body.get("args"),
        secret_headers=body.get("secretHeaders"),
        timeout_s=float(body.get("timeoutS", 30.0)),
        tenant=call.query.get("tenant"),
        **_endpoint(transport, body["endpoint"]),
    )
    return json((await _records(call, [server]))[0], 201)


@opencrane.route(
    "GET",
    V1 + "/mcp-servers/{id}",
    summary="Get an MCP server by its `mcp_…` ID",
    ok=Resp(MCP_SERVER, "MCP server detail."),
)
async def get_mcp_server(call: Call) -> Response:
    server = await tools.get_mcp_server(call.actor, call.path["id"])
    return json((await _records(call, [server]))[0])


@opencrane.route(
    "PUT",
    V1 + "/mcp-servers/{id}",
    summary="Update an MCP server (endpoint, args, secret headers, timeout), then refresh it",
    description="Absent fields stay; `secretHeaders` replaces every header (`{}` removes them).",
    ok=Resp(MCP_SERVER, "MCP server updated."),
    body=obj({k: v for k, v in _BODY.items() if k != "name"}),
)
async def update_mcp_server(call: Call) -> Response:
    body = call.body
    current = await tools.get_mcp_server(call.actor, call.path["id"])
    if "transport" in body and TRANSPORTS[body["transport"]] != current.transport:
        raise ValidationFailed("`transport` cannot change", field="transport")
    server = await tools.update_mcp_server(
        call.actor,
        current.id,
        args=body.get("args"),
        secret_headers=body.get("secretHeaders"),
        timeout_s=body.get("timeoutS"),
        **_endpoint(current.transport, body.get("endpoint")),
    )
    return json((await _records(call, [server]))[0])


@opencrane.route(
    "DELETE",
    V1 + "/mcp-servers/{id}",
    summary="Delete an MCP server and its tools",
    ok=Resp(record({"id": STR, "status": STR}), "MCP server deleted."),
)
async def delete_mcp_server(call: Call) -> Response:
    server = await tools.delete_mcp_server(call.actor, call.path["id"])
    return json({"id": server.id, "status": "deleted"})
