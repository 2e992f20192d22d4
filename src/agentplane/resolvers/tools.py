"""The tool registry of a tenant: HTTP tools, MCP servers and their tools.

Secret headers (HTTP tools, MCP servers over HTTP) are encrypted at rest like provider
keys and never read back: reads show their names only. A stdio MCP server runs a command
on the workers' hosts, so only platform callers may register one.
"""

import json
import re
from collections import defaultdict
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

import jsonschema
from tortoise.exceptions import IntegrityError
from tortoise.transactions import in_transaction

from agentplane.core import egress, secretbox
from agentplane.core.errors import Conflict, Forbidden, NotFound, ValidationFailed
from agentplane.core.ids import MAX_LEN as MAX_ID_LEN
from agentplane.models import McpServer, McpServerStatus, McpTransport, Tool, ToolSource
from agentplane.resolvers.audit import audited
from agentplane.resolvers.auth import Actor
from agentplane.resolvers.pagination import Page, paginate
from agentplane.resolvers.permissions import (
    Perm,
    get_owned,
    is_platform,
    require,
    scoped_to_tenant,
)
from agentplane.resolvers.tenants import check_writable, resolve_tenant_name
from agentplane.runtime import mcp_client, tool_sources
from agentplane.runtime.tools import TOOLS, ResolvedTool, resolve_builtin

NAME_RE = re.compile(r"^[A-Za-z0-9_-]{1,64}$")  # what OpenAI accepts as a function name
SERVER_NAME_RE = re.compile(r"^[A-Za-z0-9-]{1,32}$")  # no `_`: tool names are `server__tool`
RISKS = ("low", "medium", "high", "critical")
METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE")
MAX_TIMEOUT_S = 300.0
LIST_TIMEOUT_S = 20.0
MAX_HEADERS = 20
MAX_SCHEMA_BYTES = 64 * 1024
# The risk an MCP tool starts with, from the annotations its server declares.
_DESTRUCTIVE, _READ_ONLY = "destructiveHint", "readOnlyHint"


# -- checks ---------------------------------------------------------------------------------


def _check_tool_name(name: str) -> None:
    if not NAME_RE.match(name) or "__" in name:
        raise ValidationFailed(
            "`name` must be 1-64 letters, digits, `_` or `-`, without `__` "
            "(reserved for MCP tools, named `server__tool`)",
            field="name",
        )
    if name in TOOLS:
        raise Conflict(f"{name!r} is a built-in tool", field="name")


def _check_url(url: str, field: str = "url") -> None:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc or len(url) > 2000:
        raise ValidationFailed(f"`{field}` must be an http(s) URL", field=field)
    egress.check_static(url)


def _check_schema(schema: Any) -> dict[str, Any]:
    if not isinstance(schema, dict) or schema.get("type", "object") != "object":
        raise ValidationFailed(
            "`inputSchema` must be a JSON Schema of an object", field="inputSchema"
        )
    if len(json.dumps(schema)) > MAX_SCHEMA_BYTES:
        raise ValidationFailed("`inputSchema` is too large", field="inputSchema")
    try:
        jsonschema.validators.validator_for(schema).check_schema(schema)
    except jsonschema.SchemaError as exc:
        raise ValidationFailed(
            f"`inputSchema` is not a valid JSON Schema: {exc.message}", field="inputSchema"
        ) from None
    return {"type": "object", **schema}


def _check_risk(risk: str) -> None:
    if risk not in RISKS:
        raise ValidationFailed(f"`risk` must be one of {list(RISKS)}", field="risk")


def _check_timeout(timeout_s: float) -> None:
    if not 0.1 <= timeout_s <= MAX_TIMEOUT_S:
        raise ValidationFailed(f"`timeoutS` must be 0.1..{MAX_TIMEOUT_S:g}", field="timeoutS")


def _sealed_headers(headers: Any, field: str = "secretHeaders") -> tuple[str | None, list[str]]:
    """(ciphertext, names) of secret headers; {} or None clears them."""
    if not headers:
        return None, []
    if not isinstance(headers, dict) or len(headers) > MAX_HEADERS:
        raise ValidationFailed(f"`{field}` must be an object of at most 20 headers", field=field)
    for name, value in headers.items():
        if not re.match(r"^[A-Za-z0-9-]{1,100}$", str(name)) or not isinstance(value, str):
            raise ValidationFailed(f"`{field}` must map header names to strings", field=field)
        if "\n" in value or "\r" in value or len(value) > 8192:
            raise ValidationFailed(f"`{field}`: header {name!r} has a bad value", field=field)
    return secretbox.encrypt(json.dumps(headers)), sorted(headers)


# -- tools ----------------------------------------------------------------------------------


async def list_tools(
    actor: Actor | None,
    first: int | None,
    after: str | None,
    *,
    tenant: str | None = None,
    source: ToolSource | None = None,
    server_id: str | None = None,
) -> Page[Tool]:
    """Registered tools (HTTP and MCP) of the caller's tenant, oldest first."""
    actor = require(actor, Perm.TOOL_READ)
    qs = await scoped_to_tenant(actor, Tool.all(), tenant)
    if source is not None:
        qs = qs.filter(source=source)
    if server_id is not None:
        server = await get_mcp_server(actor, server_id)
        qs = qs.filter(server_id=server.id)
    return await paginate(qs, first, after)


def builtin_tools(actor: Actor | None) -> list[ResolvedTool]:
    require(actor, Perm.TOOL_READ)
    return [resolve_builtin(name) for name in TOOLS]


async def get_tool(actor: Actor | None, tool_id: str) -> Tool:
    actor = require(actor, Perm.TOOL_READ)
    return await get_owned(actor, Tool, tool_id, "Tool")


async def get_tool_by_name(actor: Actor | None, name: str) -> Tool:
    """A tool of the caller's tenant by its name (REST paths name tools)."""
    actor = require(actor, Perm.TOOL_READ)
    row = await Tool.get_or_none(tenant_id=actor.tenant_id, name=name) if actor.tenant_id else None
    if row is None:
        raise NotFound(f"Tool {name!r} not found")
    return row


async def load_tools_of_servers(actor: Actor | None, server_ids: list[str]) -> list[list[Tool]]:
    """Batch read for DataLoaders: each server's tools by name; foreign servers get none."""
    actor = require(actor, Perm.TOOL_READ)
    qs = Tool.filter(server_id__in=[i for i in server_ids if len(i) <= MAX_ID_LEN])
    if not is_platform(actor):
        qs = qs.filter(tenant_id=actor.tenant_id)
    by_server: dict[str, list[Tool]] = defaultdict(list)
    for row in await qs.order_by("name"):
        by_server[row.server_id or ""].append(row)
    return [by_server.get(i, []) for i in server_ids]


@audited("tool.create")
async def create_http_tool(
    actor: Actor | None,
    *,
    name: str,
    url: str,
    method: str = "POST",
    description: str = "",
    input_schema: Any = None,
    secret_headers: Any = None,
    requires_approval: bool = False,
    risk: str = "low",
    timeout_s: float = 30.0,
    tenant: str | None = None,
) -> Tool:
    actor = require(actor, Perm.TOOL_WRITE)
    _check_tool_name(name)
    _check_url(url)
    method = method.upper()
    if method not in METHODS:
        raise ValidationFailed(f"`method` must be one of {list(METHODS)}", field="method")
    schema = _check_schema(input_schema if input_schema is not None else {"type": "object"})
    _check_risk(risk)
    _check_timeout(timeout_s)
    tenant_id = await resolve_tenant_name(actor, tenant)
    ciphertext, header_names = _sealed_headers(secret_headers)
    try:
        return await Tool.create(
            tenant_id=tenant_id,
            name=name,
            source=ToolSource.HTTP,
            description=description[:4000],
            input_schema=schema,
            url=url,
            method=method,
            secret_headers=ciphertext,
            secret_header_names=header_names,
            requires_approval=requires_approval,
            risk=risk,
            timeout_s=timeout_s,
        )
    except IntegrityError:
        raise Conflict(f"A tool named {name!r} already exists", field="name") from None


_HTTP_ONLY = {"url", "method", "input_schema", "secret_headers", "timeout_s", "description"}


@audited("tool.update")
async def update_tool(actor: Actor | None, tool_id: str, **changes: Any) -> Tool:
    """Change a tool; omitted (None) fields stay. An MCP tool's description and schema come
    from its server: only `enabled`, `requires_approval` and `risk` change here."""
    actor = require(actor, Perm.TOOL_WRITE)
    tool = await get_owned(actor, Tool, tool_id, "Tool")
    await check_writable(tool.tenant_id)
    changes = {k: v for k, v in changes.items() if v is not None}
    allowed = {"enabled", "requires_approval", "risk"}
    if tool.source == ToolSource.HTTP:
        allowed |= _HTTP_ONLY
    refused = sorted(set(changes) - allowed)
    if refused:
        raise ValidationFailed(
            f"Cannot change {refused} of a {tool.source.value} tool", field=refused[0]
        )
    if "risk" in changes:
        _check_risk(changes["risk"])
    if "url" in changes:
        _check_url(changes["url"])
    if "method" in changes:
        changes["method"] = str(changes["method"]).upper()
        if changes["method"] not in METHODS:
            raise ValidationFailed(f"`method` must be one of {list(METHODS)}", field="method")
    if "input_schema" in changes:
        changes["input_schema"] = _check_schema(changes["input_schema"])
    if "timeout_s" in changes:
        _check_timeout(changes["timeout_s"])
    if "secret_headers" in changes:
        changes["secret_headers"], changes["secret_header_names"] = _sealed_headers(
            changes["secret_headers"]
        )
    if changes:
        await Tool.filter(id=tool.id).update(updated_at=datetime.now(UTC), **changes)
    return await Tool.get(id=tool.id)


@audited("tool.delete")
async def delete_tool(actor: Actor | None, tool_id: str) -> Tool:
    """Delete an HTTP tool (an MCP server's tools go with the server, or are disabled)."""
    actor = require(actor, Perm.TOOL_WRITE)
    tool = await get_owned(actor, Tool, tool_id, "Tool")
    await check_writable(tool.tenant_id)
    if tool.source != ToolSource.HTTP:
        raise ValidationFailed(
            "An MCP server's tool cannot be deleted: disable it, or delete the server",
            field="id",
        )
    await Tool.filter(id=tool.id).delete()
    return tool


# -- MCP servers ----------------------------------------------------------------------------


async def list_mcp_servers(
    actor: Actor | None, first: int | None, after: str | None, *, tenant: str | None = None
) -> Page[McpServer]:
    actor = require(actor, Perm.TOOL_READ)
    qs = await scoped_to_tenant(actor, McpServer.all(), tenant)
    return await paginate(qs, first, after)


async def all_mcp_servers(actor: Actor | None) -> list[McpServer]:
    """Every MCP server the caller sees (REST lists), by name."""
    actor = require(actor, Perm.TOOL_READ)
    qs = await scoped_to_tenant(actor, McpServer.all(), None)
    return await qs.order_by("name").limit(1000)


async def get_mcp_server(actor: Actor | None, server_id: str) -> McpServer:
    actor = require(actor, Perm.TOOL_READ)
    return await get_owned(actor, McpServer, server_id, "MCP server")


def _check_endpoint(
    actor: Actor,
    transport: McpTransport,
    command: str | None,
    args: list[str] | None,
    url: str | None,
) -> None:
    if transport == McpTransport.STDIO:
        if not is_platform(actor):
            raise Forbidden(
                "Only platform callers may register a stdio MCP server: it runs a command on "
                "the workers' hosts. Register a streamable HTTP URL instead."
            )
        if not command or len(command) > 1000:
            raise ValidationFailed("A stdio MCP server needs a `command`", field="command")
        if args is not None and not (
            isinstance(args, list) and all(isinstance(a, str) for a in args) and len(args) <= 64
        ):
            raise ValidationFailed("`args` must be a list of strings", field="args")
    else:
        if not url:
            raise ValidationFailed("An HTTP MCP server needs a `url`", field="url")
        _check_url(url)


@audited("mcp_server.register")
async def register_mcp_server(
    actor: Actor | None,
    *,
    name: str,
    transport: McpTransport,
    command: str | None = None,
    args: list[str] | None = None,
    url: str | None = None,
    secret_headers: Any = None,
    timeout_s: float = 30.0,
    tenant: str | None = None,
) -> McpServer:
    """Register a server and list its tools at once; a server that cannot be reached is
    registered all the same, with `status: error` and the reason."""
    actor = require(actor, Perm.TOOL_WRITE)
    if not SERVER_NAME_RE.match(name):
        raise ValidationFailed("`name` must be 1-32 letters, digits or `-`", field="name")
    _check_endpoint(actor, transport, command, args, url)
    _check_timeout(timeout_s)
    tenant_id = await resolve_tenant_name(actor, tenant)
    ciphertext, header_names = _sealed_headers(secret_headers)
    if transport == McpTransport.STDIO and ciphertext:
        raise ValidationFailed("A stdio MCP server takes no headers", field="secretHeaders")
    try:
        server = await McpServer.create(
            tenant_id=tenant_id,
            name=name,
            transport=transport,
            command=command if transport == McpTransport.STDIO else None,
            args=list(args or []) if transport == McpTransport.STDIO else [],
            url=url if transport == McpTransport.HTTP else None,
            secret_headers=ciphertext,
            secret_header_names=header_names,
            timeout_s=timeout_s,
        )
    except IntegrityError:
        raise Conflict(f"An MCP server named {name!r} already exists", field="name") from None
    return await _refresh(server)


@audited("mcp_server.update")
async def update_mcp_server(actor: Actor | None, server_id: str, **changes: Any) -> McpServer:
    """Change where and how the server is reached (omitted fields stay), then refresh it."""
    actor = require(actor, Perm.TOOL_WRITE)
    server = await get_owned(actor, McpServer, server_id, "MCP server")
    await check_writable(server.tenant_id)
    changes = {k: v for k, v in changes.items() if v is not None}
    refused = sorted(set(changes) - {"command", "args", "url", "secret_headers", "timeout_s"})
    if refused:
        raise ValidationFailed(f"Cannot change {refused}", field=refused[0])
    _check_endpoint(
        actor,
        server.transport,
        changes.get("command", server.command),
        changes.get("args", server.args),
        changes.get("url", server.url),
    )
    if "timeout_s" in changes:
        _check_timeout(changes["timeout_s"])
    if "secret_headers" in changes:
        changes["secret_headers"], changes["secret_header_names"] = _sealed_headers(
            changes["secret_headers"]
        )
    if changes:
        await McpServer.filter(id=server.id).update(updated_at=datetime.now(UTC), **changes)
    return await _refresh(await McpServer.get(id=server.id))


@audited("mcp_server.refresh")
async def refresh_mcp_server(actor: Actor | None, server_id: str) -> McpServer:
    """List the server's tools again: new ones are added (enabled, approval from their
    annotations), vanished ones removed, the operator's settings on the others kept."""
    actor = require(actor, Perm.TOOL_WRITE)
    server = await get_owned(actor, McpServer, server_id, "MCP server")
    await check_writable(server.tenant_id)
    return await _refresh(server)


@audited("mcp_server.delete")
async def delete_mcp_server(actor: Actor | None, server_id: str) -> McpServer:
    actor = require(actor, Perm.TOOL_WRITE)
    server = await get_owned(actor, McpServer, server_id, "MCP server")
    await check_writable(server.tenant_id)
    async with in_transaction():
        await Tool.filter(server_id=server.id).delete()
        await McpServer.filter(id=server.id).delete()
    return server


def exposed_name(server: str, tool: str) -> str:
    """`server__tool`, as a model may call it (OpenAI: [A-Za-z0-9_-]{1,64})."""
    return re.sub(r"[^A-Za-z0-9_-]", "_", f"{server}__{tool}")[:64]


def initial_risk(annotations: dict[str, Any]) -> tuple[bool, str]:
    """(requires approval, risk) of a newly listed MCP tool, from its annotations."""
    if annotations.get(_DESTRUCTIVE) is True:
        return True, "high"
    if annotations.get(_READ_ONLY) is True:
        return False, "low"
    return False, "medium"


async def _refresh(server: McpServer) -> McpServer:
    try:
        target = tool_sources.mcp_target(server)
        # Listing starts the server cold (a stdio child, a remote session): give it room.
        info = await mcp_client.list_tools(target, timeout=max(server.timeout_s, LIST_TIMEOUT_S))
    except mcp_client.McpError as exc:
        await McpServer.filter(id=server.id).update(
            status=McpServerStatus.ERROR,
            status_message=f"{exc.code}: {exc.message}"[:2000],
            refreshed_at=datetime.now(UTC),
        )
        return await McpServer.get(id=server.id)
    notes: list[str] = []
    try:
        async with in_transaction():
            await _store_listing(server, info, notes)
    except IntegrityError:
        raise Conflict(
            "The server's tools changed meanwhile (a concurrent refresh?): retry"
        ) from None
    return await McpServer.get(id=server.id)


async def _store_listing(
    server: McpServer, info: mcp_client.McpServerInfo, notes: list[str]
) -> None:
    existing = {t.remote_name: t for t in await Tool.filter(server_id=server.id)}
    wanted = [exposed_name(server.name, t.name) for t in info.tools]
    taken = set(
        await Tool.filter(tenant_id=server.tenant_id, name__in=wanted)
        .exclude(server_id=server.id)
        .values_list("name", flat=True)
    )
    seen: set[str] = set()
    for listed, name in zip(info.tools, wanted, strict=True):
        if name in seen or name in taken:
            notes.append(f"tool {listed.name!r} skipped: the name {name!r} is taken")
            continue
        seen.add(name)
        try:
            schema, schema_ok = _check_schema(listed.input_schema), True
        except ValidationFailed:
            notes.append(f"tool {listed.name!r} has an invalid input schema; it is disabled")
            schema, schema_ok = {"type": "object"}, False
        fields: dict[str, Any] = {
            "name": name,
            "description": listed.description[:4000],
            "input_schema": schema,
            "annotations": listed.annotations,
        }
        row = existing.pop(listed.name, None)
        if row is not None:
            if not schema_ok:
                fields["enabled"] = False
            await Tool.filter(id=row.id).update(updated_at=datetime.now(UTC), **fields)
            continue
        approval, risk = initial_risk(listed.annotations)
        await Tool.create(
            tenant_id=server.tenant_id,
            source=ToolSource.MCP,
            server_id=server.id,
            remote_name=listed.name,
            requires_approval=approval,
            risk=risk,
            enabled=schema_ok,
            **fields,
        )
    if existing:  # the server no longer lists them
        await Tool.filter(id__in=[t.id for t in existing.values()]).delete()
    await McpServer.filter(id=server.id).update(
        status=McpServerStatus.READY,
        status_message="; ".join(notes)[:2000],
        protocol_version=info.protocol_version[:32],
        server_name=info.server_name[:200],
        server_version=info.server_version[:100],
        refreshed_at=datetime.now(UTC),
    )
