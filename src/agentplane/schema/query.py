from typing import Annotated, Any

import strawberry
from strawberry.types import Info

from agentplane import models
from agentplane.core import ids
from agentplane.core.errors import NotFound
from agentplane.resolvers import agents, approvals, tasks, tenants, tokens, tools
from agentplane.resolvers.auth import Actor
from agentplane.schema.approvals import ApprovalQuery
from agentplane.schema.context import Context
from agentplane.schema.dashboard import DashboardQuery
from agentplane.schema.fleet import FleetQuery
from agentplane.schema.iam import IamQuery
from agentplane.schema.identity import IdentityQuery
from agentplane.schema.knowledge import KnowledgeQuery
from agentplane.schema.tools import ToolsQuery
from agentplane.schema.types import (
    AccessToken,
    Agent,
    Connection,
    ModelInfo,
    Node,
    RateLimit,
    Task,
    Tenant,
    Viewer,
)


async def _node(info: Info[Context, None], id_: str) -> Any:
    actor = info.context.actor
    match ids.kind_of(id_):
        case "Tenant":
            return await tenants.get_tenant_by_id(actor, id_)
        case "Agent":
            return await agents.get_agent(actor, id_)
        case "Task":
            return await tasks.get_task(actor, id_)
        case "Step":
            return await tasks.get_step(actor, id_)
        case "ApprovalRequest":
            return await approvals.get_request(actor, id_)
        case "Tool":
            return await tools.get_tool(actor, id_)
        case "McpServer":
            return await tools.get_mcp_server(actor, id_)
    raise NotFound(f"No object with ID {id_!r}")


@strawberry.type
class Query(
    ApprovalQuery,
    KnowledgeQuery,
    ToolsQuery,
    IdentityQuery,
    IamQuery,
    FleetQuery,
    DashboardQuery,
):
    @strawberry.field
    async def viewer(self, info: Info[Context, None]) -> Viewer | None:
        actor = info.context.actor
        if actor is None:
            return None
        tenant = await info.context.tenant_loader.load(actor.tenant_id) if actor.tenant_id else None
        return Viewer(
            kind=actor.kind,
            role=actor.role,
            token_id=strawberry.ID(actor.token_id) if actor.token_id else None,
            tenant=tenant,  # type: ignore[arg-type]
        )

    @strawberry.field(description="Fetch any object by its prefixed ID.")
    async def node(self, info: Info[Context, None], id: strawberry.ID) -> Node:
        return await _node(info, id)  # type: ignore[no-any-return]

    @strawberry.field
    async def tenants(
        self, info: Info[Context, None], first: int | None = None, after: str | None = None
    ) -> Connection[Tenant]:
        return Connection.of(await tenants.list_tenants(info.context.actor, first, after))

    @strawberry.field
    async def tenant(self, info: Info[Context, None], name: str) -> Tenant:
        return await tenants.get_tenant(info.context.actor, name)  # type: ignore[return-value]

    @strawberry.field
    async def agents(
        self, info: Info[Context, None], first: int | None = None, after: str | None = None
    ) -> Connection[Agent]:
        return Connection.of(await agents.list_agents(info.context.actor, first, after))

    @strawberry.field
    async def agent(self, info: Info[Context, None], id: strawberry.ID) -> Agent:
        return await agents.get_agent(info.context.actor, id)  # type: ignore[return-value]

    @strawberry.field(description="Tasks, newest first.")
    async def tasks(
        self,
        info: Info[Context, None],
        first: int | None = None,
        after: str | None = None,
        agent_id: strawberry.ID | None = None,
        status: models.TaskStatus | None = None,
    ) -> Connection[Task]:
        page = await tasks.list_tasks(info.context.actor, first, after, agent_id, status)
        return Connection.of(page)

    @strawberry.field
    async def task(self, info: Info[Context, None], id: strawberry.ID) -> Task:
        return await tasks.get_task(info.context.actor, id)  # type: ignore[return-value]

    @strawberry.field(description="Access tokens (never their plaintext).")
    async def access_tokens(
        self,
        info: Info[Context, None],
        first: int | None = None,
        after: str | None = None,
        include_revoked: bool = True,
    ) -> Connection[AccessToken]:
        page = await tokens.list_access_tokens(info.context.actor, first, after, include_revoked)
        return Connection.of(page)

    @strawberry.field(description="This query's cost and the caller's rate-limit state.")
    def rate_limit(self, info: Info[Context, None]) -> RateLimit | None:
        status = info.context.rate_limit
        if status is None:
            return None
        return RateLimit(
            cost=status.cost,
            node_count=status.node_count,
            limit=status.limit,
            used=status.used,
            remaining=status.remaining,
            reset_at=status.reset_at,
        )

    @strawberry.field(description="The model catalog with list prices.")
    def models(
        self,
        info: Info[Context, None],
        enabled_only: Annotated[
            bool, strawberry.argument(description="Only the models a provider here serves")
        ] = False,
    ) -> list[ModelInfo]:
        return model_infos(info.context.actor, enabled_only)


def model_infos(actor: Actor | None, enabled_only: bool) -> list[ModelInfo]:
    """`Query.models` (the compiled plans call it too)."""
    return [
        ModelInfo(
            id=m.id,
            provider=m.provider,
            label=m.label,
            input_usd_per_million_tokens=_float(m.input_usd_per_mtok),
            output_usd_per_million_tokens=_float(m.output_usd_per_mtok),
        )
        for m in agents.list_models(actor, enabled_only)
    ]


def _float(value: Any) -> float | None:
    return None if value is None else float(value)
