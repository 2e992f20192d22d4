"""Per-request GraphQL context: the caller and the request's DataLoaders."""

import functools
from dataclasses import dataclass
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

    # The request's DataLoaders, each made on first use: most requests need none or one
    # (a compiled page rendered by the database needs none). Loaders call resolvers, so
    # batching never bypasses the tenant filter.
    @functools.cached_property
    def agent_loader(self) -> DataLoader[str, Agent | None]:
        return DataLoader(lambda ids: agents.load_agents(self.actor, list(ids)))

    @functools.cached_property
    def tenant_loader(self) -> DataLoader[str, Tenant | None]:
        return DataLoader(lambda ids: tenants.load_tenants(self.actor, list(ids)))

    @functools.cached_property
    def steps_loader(self) -> DataLoader[steps.StepsKey, list[Step]]:
        return DataLoader(lambda keys: steps.load_steps(self.actor, list(keys)))

    @functools.cached_property
    def agent_tasks_loader(self) -> DataLoader[task_pages.AgentTasksKey, Page[Task]]:
        return DataLoader(lambda keys: task_pages.load_agent_task_pages(self.actor, list(keys)))

    @functools.cached_property
    def full_payload_loader(self) -> DataLoader[str, Any]:
        return DataLoader(lambda ids: step_payloads.load_full_payloads(self.actor, list(ids)))

    @functools.cached_property
    def user_roles_loader(self) -> DataLoader[str, list[RoleAssignment]]:
        return DataLoader(self._load_user_roles)

    @functools.cached_property
    def task_usage_loader(self) -> DataLoader[Task, usage.TaskUsage]:
        return DataLoader(self._load_task_usage, cache_key_fn=lambda t: t.id)

    @functools.cached_property
    def task_loader(self) -> DataLoader[str, Task | None]:
        return DataLoader(lambda ids: approvals.load_tasks(self.actor, list(ids)))

    @functools.cached_property
    def pending_approval_loader(self) -> DataLoader[str, ApprovalRequest | None]:
        return DataLoader(lambda ids: approvals.load_pending(self.actor, list(ids)))

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
