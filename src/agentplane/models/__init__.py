"""Tortoise ORM models: the only place the database schema is declared.
Imports core/ only."""

from agentplane.models.agent import Agent, AgentState
from agentplane.models.approval import ApprovalRequest, ApprovalStatus, OnExpiry
from agentplane.models.audit import AuditEvent
from agentplane.models.budget import Budget, BudgetScope, Reservation
from agentplane.models.identity import (
    DeviceGrant,
    OidcLogin,
    ProviderKey,
    RoleAssignment,
    RoleDefinition,
    Session,
    User,
)
from agentplane.models.knowledge import (
    Chunk,
    Document,
    DocumentStatus,
    KnowledgeBase,
    Memory,
    MemoryStatus,
)
from agentplane.models.step_blob import StepPayload
from agentplane.models.task import Step, StepKind, Task, TaskStatus, UsageRecord
from agentplane.models.tenant import AccessToken, Tenant, TenantPhase
from agentplane.models.tool import McpServer, McpServerStatus, McpTransport, Tool, ToolSource
from agentplane.models.worker_queue import WorkerQueue

__all__ = [
    "AccessToken",
    "Agent",
    "AgentState",
    "ApprovalRequest",
    "ApprovalStatus",
    "AuditEvent",
    "Budget",
    "BudgetScope",
    "Chunk",
    "DeviceGrant",
    "Document",
    "DocumentStatus",
    "KnowledgeBase",
    "McpServer",
    "McpServerStatus",
    "McpTransport",
    "Memory",
    "MemoryStatus",
    "OidcLogin",
    "OnExpiry",
    "ProviderKey",
    "Reservation",
    "RoleAssignment",
    "RoleDefinition",
    "Session",
    "Step",
    "StepKind",
    "StepPayload",
    "Task",
    "TaskStatus",
    "Tenant",
    "TenantPhase",
    "Tool",
    "ToolSource",
    "UsageRecord",
    "User",
    "WorkerQueue",
]
