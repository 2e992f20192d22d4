from enum import StrEnum
from typing import Any

from tortoise import fields
from tortoise.models import Model

from agentplane.core import ids
from agentplane.models.task import Task
from agentplane.models.tenant import Tenant


class ApprovalStatus(StrEnum):
    PENDING = "pending"
    APPROVED = "approved"
    REJECTED = "rejected"
    EXPIRED = "expired"
    CANCELLED = "cancelled"  # its task was cancelled while it waited


class OnExpiry(StrEnum):
    REJECT = "reject"  # the model sees the call refused and carries on
    FAIL = "fail"  # the task fails


class ApprovalRequest(Model):
    """A tool call held for a human's decision.

    The row is the durable question: the task waits (holding no worker) until the request
    is decided, expires or is cancelled."""

    id = fields.CharField(max_length=40, primary_key=True, default=ids.approval_id)
    tenant: fields.ForeignKeyRelation[Tenant] = fields.ForeignKeyField(
        "models.Tenant", related_name="approval_requests", on_delete=fields.CASCADE
    )
    tenant_id: str
    task: fields.ForeignKeyRelation[Task] = fields.ForeignKeyField(
        "models.Task", related_name="approval_requests", on_delete=fields.CASCADE
    )
    task_id: str
    agent_id = fields.CharField(max_length=40)
    # The PROVIDER_CALL step that asked for the call, and the call's id in it: together
    # they name the call within the task, so a resumed run finds its request again.
    step_seq = fields.IntField()
    call_id = fields.CharField(max_length=200)
    tool = fields.CharField(max_length=200)
    arguments: fields.JSONField[dict[str, Any]] = fields.JSONField(default=dict)
    # The tool's JSON Schema when the call was made: edited arguments must validate.
    arguments_schema: fields.JSONField[dict[str, Any]] = fields.JSONField(default=dict)
    risk = fields.CharField(max_length=32, default="high")
    preview = fields.TextField(default="")
    status = fields.CharEnumField(ApprovalStatus, max_length=16, default=ApprovalStatus.PENDING)
    on_expiry = fields.CharEnumField(OnExpiry, max_length=16, default=OnExpiry.REJECT)
    expires_at = fields.DatetimeField(null=True)
    decided_by = fields.CharField(max_length=100, null=True)
    decided_at = fields.DatetimeField(null=True)
    reason = fields.TextField(null=True)
    edited_arguments: fields.JSONField[dict[str, Any] | None] = fields.JSONField(null=True)
    created_at = fields.DatetimeField(auto_now_add=True)

    class Meta:
        table = "approval_request"
        unique_together = (("task_id", "step_seq", "call_id"),)
        indexes = (("tenant_id", "id"), ("status", "expires_at"))
