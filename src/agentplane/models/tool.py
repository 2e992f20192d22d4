"""A tenant's tool registry: HTTP tools, MCP servers and the tools each server lists.

Built-in tools (calculator, retrieve, remember, memory_search) are code, not rows.
"""

from enum import StrEnum
from typing import Any

from tortoise import fields
from tortoise.models import Model

from agentplane.core import ids
from agentplane.models.tenant import Tenant


class ToolSource(StrEnum):
    BUILTIN = "builtin"
    HTTP = "http"
    MCP = "mcp"


class McpTransport(StrEnum):
    STDIO = "stdio"
    HTTP = "http"  # streamable HTTP


class McpServerStatus(StrEnum):
    UNKNOWN = "unknown"  # never listed yet
    READY = "ready"  # the last refresh listed its tools
    ERROR = "error"  # the last refresh failed (`status_message` says why)


class McpServer(Model):
    id = fields.CharField(max_length=40, primary_key=True, default=ids.mcp_server_id)
    tenant: fields.ForeignKeyRelation[Tenant] = fields.ForeignKeyField(
        "models.Tenant", related_name="mcp_servers", on_delete=fields.CASCADE
    )
    tenant_id: str
    name = fields.CharField(max_length=64)
    transport = fields.CharEnumField(McpTransport, max_length=8)
    command = fields.CharField(max_length=1000, null=True)  # stdio
    args: fields.JSONField[list[str]] = fields.JSONField(default=list)  # stdio
    url = fields.CharField(max_length=2000, null=True)  # streamable HTTP
    # Fernet ciphertext of a JSON object {header: value}; only the names are ever read back.
    secret_headers = fields.TextField(null=True)
    secret_header_names: fields.JSONField[list[str]] = fields.JSONField(default=list)
    timeout_s = fields.FloatField(default=30.0)
    status = fields.CharEnumField(McpServerStatus, max_length=16, default=McpServerStatus.UNKNOWN)
    status_message = fields.TextField(default="")
    protocol_version = fields.CharField(max_length=32, null=True)
    server_name = fields.CharField(max_length=200, null=True)
    server_version = fields.CharField(max_length=100, null=True)
    refreshed_at = fields.DatetimeField(null=True)
    created_at = fields.DatetimeField(auto_now_add=True)
    updated_at = fields.DatetimeField(auto_now=True)

    class Meta:
        table = "mcp_server"
        unique_together = (("tenant", "name"),)


class Tool(Model):
    """An HTTP tool, or one tool of an MCP server; `name` is what agents and models call it."""

    id = fields.CharField(max_length=40, primary_key=True, default=ids.tool_id)
    tenant: fields.ForeignKeyRelation[Tenant] = fields.ForeignKeyField(
        "models.Tenant", related_name="tools", on_delete=fields.CASCADE
    )
    tenant_id: str
    name = fields.CharField(max_length=64)
    source = fields.CharEnumField(ToolSource, max_length=8)
    description = fields.TextField(default="")
    input_schema: fields.JSONField[dict[str, Any]] = fields.JSONField(default=dict)
    enabled = fields.BooleanField(default=True)
    requires_approval = fields.BooleanField(default=False)
    risk = fields.CharField(max_length=16, default="low")
    # MCP: the server and the tool's own name there; its annotations as listed.
    server: fields.ForeignKeyNullableRelation[McpServer] = fields.ForeignKeyField(
        "models.McpServer", related_name="tools", null=True, on_delete=fields.CASCADE
    )
    server_id: str | None
    remote_name = fields.CharField(max_length=200, null=True)
    annotations: fields.JSONField[dict[str, Any]] = fields.JSONField(default=dict)
    # HTTP: where and how to call; secret headers as for MCP servers.
    url = fields.CharField(max_length=2000, null=True)
    method = fields.CharField(max_length=8, null=True)
    secret_headers = fields.TextField(null=True)
    secret_header_names: fields.JSONField[list[str]] = fields.JSONField(default=list)
    timeout_s = fields.FloatField(default=30.0)
    created_at = fields.DatetimeField(auto_now_add=True)
    updated_at = fields.DatetimeField(auto_now=True)

    class Meta:
        table = "tool"
        unique_together = (("tenant", "name"),)
        indexes = (("server_id", "remote_name"),)
