"""GraphQL aggregates the operator dashboard (/ui) reads: task counts and spend breakdowns."""

import strawberry
from strawberry.types import Info

from agentplane import models
from agentplane.resolvers import fleet, usage
from agentplane.schema.context import Context

SpendDimension = strawberry.enum(usage.SpendDimension, description="How spend is grouped")


@strawberry.type(description="How many tasks of one agent are in one status (and reason).")
class TaskCount:
    agent_id: strawberry.ID
    status: models.TaskStatus
    status_reason: str | None = strawberry.field(description='e.g. "budget" for a paused task')
    count: int


@strawberry.type(description="Priced usage of one agent, model or day (UTC) in a window.")
class SpendBucket:
    key: str = strawberry.field(description='An agent ID, a model, or a day "YYYY-MM-DD"')
    label: str = strawberry.field(description="The agent's name; else the key")
    cost_usd: float
    input_tokens: int
    output_tokens: int
    calls: int
    unpriced_calls: int = strawberry.field(description="Calls of models without a price")


@strawberry.type
class DashboardQuery:
    @strawberry.field(description="Tasks by agent and status (all of them, not a page).")
    async def task_counts(
        self, info: Info[Context, None], tenant: str | None = None
    ) -> list[TaskCount]:
        rows = await fleet.task_counts(info.context.actor, tenant)
        return [
            TaskCount(
                agent_id=strawberry.ID(r.agent_id),
                status=r.status,
                status_reason=r.status_reason,
                count=r.count,
            )
            for r in rows
        ]

    @strawberry.field(
        description='Spend in a budget window ("YYYY-MM", default this month) by agent, '
        "model or day."
    )
    async def spend_breakdown(
        self,
        info: Info[Context, None],
        by: SpendDimension,  # type: ignore[valid-type]
        tenant: str | None = None,
        window: str | None = None,
    ) -> list[SpendBucket]:
        rows = await usage.spend_breakdown(info.context.actor, by, tenant, window)
        return [
            SpendBucket(
                key=r.key,
                label=r.label,
                cost_usd=float(r.cost_usd),
                input_tokens=r.input_tokens,
                output_tokens=r.output_tokens,
                calls=r.calls,
                unpriced_calls=r.unpriced_calls,
            )
            for r in rows
        ]
