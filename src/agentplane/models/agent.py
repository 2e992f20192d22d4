from enum import StrEnum
from typing import Any

from tortoise import fields
from tortoise.models import Model

from agentplane.core import ids
from agentplane.models.tenant import Tenant


class AgentState(StrEnum):
    DRAFT = "draft"
    ACTIVE = "active"
    PAUSED = "paused"
    ARCHIVED = "archived"


class Agent(Model):
    id = fields.CharField(max_length=40, primary_key=True, default=ids.agent_id)
    tenant: fields.ForeignKeyRelation[Tenant] = fields.ForeignKeyField(
        "models.Tenant", related_name="agents", on_delete=fields.CASCADE
    )
    tenant_id: str
    name = fields.CharField(max_length=200)
    display_name = fields.CharField(max_length=200, default="")
    description = fields.TextField(default="")
    model = fields.CharField(max_length=200)
    system_prompt = fields.TextField(default="")
    # Names of built-in tools the agent may call.
    tools: fields.JSONField[list[str]] = fields.JSONField(default=list)
    # Provider-specific settings, e.g. the scripted model's `script`.
    config: fields.JSONField[dict[str, Any]] = fields.JSONField(default=dict)
    state = fields.CharEnumField(AgentState, max_length=16, default=AgentState.ACTIVE)
    max_steps = fields.IntField(default=8)
    # Per-run timeout; null = the installation's AGENTPLANE_TASK_TIMEOUT_S.
    timeout_s = fields.IntField(null=True)
    # At most this many of the agent's tasks run at once; null = no limit.
    max_concurrent_tasks = fields.IntField(null=True)
    version = fields.IntField(default=1)
    published_at = fields.DatetimeField(null=True)
    created_at = fields.DatetimeField(auto_now_add=True)
    updated_at = fields.DatetimeField(auto_now=True)

    class Meta:
        table = "agent"
        unique_together = (("tenant", "name"),)
