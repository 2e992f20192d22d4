"""Tortoise ORM models: the only place the database schema is declared."""

from agentplane.models.agent import Agent, AgentState
from agentplane.models.step_blob import StepPayload
from agentplane.models.task import Step, StepKind, Task, TaskStatus, UsageRecord
from agentplane.models.tenant import AccessToken, Tenant, TenantPhase
from agentplane.models.worker_queue import WorkerQueue

__all__ = [
    "AccessToken",
    "Agent",
    "AgentState",
    "Step",
    "StepKind",
    "StepPayload",
    "Task",
    "TaskStatus",
    "Tenant",
    "TenantPhase",
    "UsageRecord",
    "WorkerQueue",
]
