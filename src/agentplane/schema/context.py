"""Per-request GraphQL context: the caller and the request's DataLoaders."""

from dataclasses import dataclass, field
from typing import Any

from strawberry.dataloader import DataLoader

from agentplane.core.errors import DomainError
from agentplane.models import Agent, ApprovalRequest, RoleAssignment, Step, Task, Tenant
from agentplane.resolvers import (
    agents,
    approvals,
    step_payloads,
    steps,
    task_pages,
    tenants,
    usage,
    users,
)
from agentplane.resolvers.auth import Actor
from agentplane.resolvers.pagination import Page
from agentplane.schema.cost import RateLimitStatus


@dataclass
class Context:
    request: Any
    response: Any = None
    _actor: Actor | None = None
    auth_error: DomainError | None = None
    connection_params: dict[str, Any] | None = None  # set by the websocket protocols
    rate_limit: RateLimitStatus | None = None  # this operation's cost, once charged
    agent_loader: DataLoader[str, Agent | None] = field(init=False)
    tenant_loader: DataLoader[str, Tenant | None] = field(init=False)
    steps_loader: DataLoader[steps.StepsKey, list[Step]] = field(init=False)
    full_payload_loader: DataLoader[str, Any] = field(init=False)
    agent_tasks_loader: DataLoader[task_pages.AgentTasksKey, Page[Task]] = field(init=False)
    user_roles_loader: DataLoader[str, list[RoleAssignment]] = field(init=False)
    task_usage_loader: DataLoader[Task, usage.TaskUsage] = field(init=False)
    task_loader: DataLoader[str, Task | None] = field(init=False)
    pending_approval_loader: DataLoader[str, ApprovalRequest | None] = field(init=False)

    def __post_init__(self) -> None:
        # Loaders call resolvers, so batching never bypasses the tenant filter.
        self.agent_loader = DataLoader(lambda ids: agents.load_agents(self.actor, list(ids)))
        self.tenant_loader = DataLoader(lambda ids: tenants.load_tenants(self.actor, list(ids)))
        self.steps_loader = DataLoader(lambda keys: steps.load_steps(self.actor, list(keys)))
        self.agent_tasks_loader = DataLoader(
            lambda keys: task_pages.load_agent_task_pages(self.actor, list(keys))
        )
        self.full_payload_loader = DataLoader(
            lambda ids: step_payloads.load_full_payloads(self.actor, list(ids))
        )
        self.user_roles_loader = DataLoader(self._load_user_roles)
        self.task_usage_loader = DataLoader(self._load_task_usage, cache_key_fn=lambda t: t.id)
        self.task_loader = DataLoader(lambda ids: approvals.load_tasks(self.actor, list(ids)))
        self.pending_approval_loader = DataLoader(
            lambda ids: approvals.load_pending(self.actor, list(ids))
        )

    async def _load_user_roles(self, user_ids: list[str]) -> list[list[RoleAssignment]]:
        found = await users.role_assignments(self.actor, list(user_ids))
        return [found[u] for u in user_ids]

    async def _load_task_usage(self, task_list: list[Task]) -> list[usage.TaskUsage]:
        found = await usage.tasks_usage(self.actor, list(task_list))
        return [found[t.id] for t in task_list]

    @property
    def actor(self) -> Actor | None:
        """The caller; a bad credential raises here, on first use, as a GraphQL error."""
        if self.auth_error is not None:
            raise self.auth_error
        return self._actor

    def set_actor(self, actor: Actor | None) -> None:
        self._actor, self.auth_error = actor, None
