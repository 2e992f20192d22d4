from enum import StrEnum
from typing import Any

from tortoise import fields
from tortoise.models import Model

from agentplane.core import ids
from agentplane.core.pricing import PRICING_VERSION
from agentplane.models.agent import Agent
from agentplane.models.budget import current_window
from agentplane.models.tenant import Tenant


class TaskStatus(StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    PAUSED = "paused"
    # A tool call waits for a human's decision (an ApprovalRequest); no worker holds it.
    WAITING_FOR_APPROVAL = "waiting_for_approval"
    RETRYING = "retrying"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @property
    def is_terminal(self) -> bool:
        return self in TERMINAL_STATUSES


TERMINAL_STATUSES = frozenset({TaskStatus.COMPLETED, TaskStatus.FAILED, TaskStatus.CANCELLED})


class StepKind(StrEnum):
    PROVIDER_CALL = "PROVIDER_CALL"
    TOOL_CALL = "TOOL_CALL"
    MEMORY_HIT = "MEMORY_HIT"
    RETRIEVAL_HIT = "RETRIEVAL_HIT"
    AUDIT = "AUDIT"
    STATUS_CHANGE = "STATUS_CHANGE"


class Task(Model):
    id = fields.CharField(max_length=40, primary_key=True, default=ids.task_id)
    tenant: fields.ForeignKeyRelation[Tenant] = fields.ForeignKeyField(
        "models.Tenant", related_name="tasks", on_delete=fields.CASCADE
    )
    tenant_id: str
    agent: fields.ForeignKeyRelation[Agent] = fields.ForeignKeyField(
        "models.Agent", related_name="tasks", on_delete=fields.CASCADE
    )
    agent_id: str
    status = fields.CharEnumField(TaskStatus, max_length=32, default=TaskStatus.QUEUED)
    query = fields.TextField()
    output = fields.TextField(null=True)
    error = fields.TextField(null=True)
    metadata: fields.JSONField[dict[str, Any]] = fields.JSONField(default=dict)
    # Earlier turns of a conversation, replayed to the model before `query`:
    # [{"role": "user" | "assistant", "content": text}, …].
    history: fields.JSONField[list[dict[str, str]]] = fields.JSONField(default=list)
    # A chat's conversation: its tasks' queries and answers are the next turn's history.
    conversation_id = fields.CharField(max_length=200, null=True)
    cost_usd = fields.DecimalField(max_digits=20, decimal_places=10, default=0)
    # Highest `seq` written so far: the step write path bumps it atomically.
    last_seq = fields.IntField(default=0)
    attempt = fields.IntField(default=0)
    worker_id = fields.CharField(max_length=100, null=True)
    # The running worker's claim: it must heartbeat before this passes, or another takes over.
    lease_expires_at = fields.DatetimeField(null=True)
    # Leases that lapsed in this run (worker crashes); at max_attempts the task fails.
    expiries = fields.IntField(default=0)
    cancel_requested = fields.BooleanField(default=False)
    pause_requested = fields.BooleanField(default=False)
    # Why the task is in its status, when that needs saying (e.g. paused for "budget").
    status_reason = fields.CharField(max_length=200, null=True)
    created_by = fields.CharField(max_length=40, null=True)
    created_at = fields.DatetimeField(auto_now_add=True)
    updated_at = fields.DatetimeField(auto_now=True)
    started_at = fields.DatetimeField(null=True)
    finished_at = fields.DatetimeField(null=True)

    class Meta:
        table = "task"
        indexes = (
            ("status", "id"),
            ("tenant_id", "id"),
            ("agent_id", "id"),
            ("agent_id", "conversation_id", "id"),
        )


class Step(Model):
    id = fields.CharField(max_length=40, primary_key=True, default=ids.step_id)
    task: fields.ForeignKeyRelation[Task] = fields.ForeignKeyField(
        "models.Task", related_name="steps", on_delete=fields.CASCADE
    )
    task_id: str
    seq = fields.IntField()
    kind = fields.CharEnumField(StepKind, max_length=16)
    payload: fields.JSONField[dict[str, Any]] = fields.JSONField(default=dict)
    # Typed columns for provider calls; null on other kinds.
    model = fields.CharField(max_length=200, null=True)
    input_tokens = fields.IntField(null=True)
    output_tokens = fields.IntField(null=True)
    latency_ms = fields.IntField(null=True)
    cost_usd = fields.DecimalField(max_digits=20, decimal_places=10, null=True)
    created_at = fields.DatetimeField(auto_now_add=True)

    class Meta:
        table = "step"
        unique_together = (("task", "seq"),)


class UsageRecord(Model):
    """Tokens and price of one provider call: the source of every spend figure."""

    id = fields.CharField(max_length=40, primary_key=True, default=ids.usage_id)
    tenant: fields.ForeignKeyRelation[Tenant] = fields.ForeignKeyField(
        "models.Tenant", related_name="usage", on_delete=fields.CASCADE
    )
    tenant_id: str
    agent_id = fields.CharField(max_length=40)
    task_id = fields.CharField(max_length=40)
    step_id = fields.CharField(max_length=40)
    model = fields.CharField(max_length=200)
    input_tokens = fields.IntField()
    output_tokens = fields.IntField()
    cost_usd = fields.DecimalField(max_digits=20, decimal_places=10)
    # False when the catalog has no price for the model: cost is then unknown, not $0.
    priced = fields.BooleanField()
    # The budget window (calendar month in UTC, "YYYY-MM") the spend counts in.
    period = fields.CharField(max_length=7, default=current_window)
    # The catalog's price list the cost was computed with.
    pricing_version = fields.CharField(max_length=32, default=PRICING_VERSION)
    created_at = fields.DatetimeField(auto_now_add=True)

    class Meta:
        table = "usage_record"
        indexes = (("tenant_id", "created_at"),)
