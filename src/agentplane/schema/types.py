"""GraphQL object types. Fields read model attributes; relations go through resolvers."""

from datetime import datetime
from decimal import Decimal
from typing import Any, Generic, TypeVar

import strawberry
from strawberry.scalars import JSON
from strawberry.types import Info

from agentplane import models
from agentplane.resolvers import tasks as task_resolvers
from agentplane.resolvers import traces
from agentplane.resolvers.pagination import Page
from agentplane.schema.context import Context

T = TypeVar("T")

TaskStatus = strawberry.enum(models.TaskStatus, name="TaskStatus")
StepKind = strawberry.enum(models.StepKind, name="StepKind")
AgentState = strawberry.enum(models.AgentState, name="AgentState")
TenantPhase = strawberry.enum(models.TenantPhase, name="TenantPhase")


def _usd(value: Decimal | None) -> float | None:
    return None if value is None else float(value)


@strawberry.interface(description="An object with a globally unique, prefixed ID.")
class Node:
    id: strawberry.ID


@strawberry.type
class PageInfo:
    has_next_page: bool
    has_previous_page: bool
    start_cursor: str | None
    end_cursor: str | None


@strawberry.type
class Edge(Generic[T]):
    cursor: str
    node: T


@strawberry.type
class Connection(Generic[T]):
    edges: list[Edge[T]]
    page_info: PageInfo

    @classmethod
    def of(cls, page: Page[Any]) -> "Connection[Any]":
        edges = [Edge(cursor=page.cursor(item), node=item) for item in page.items]
        return cls(
            edges=edges,  # type: ignore[arg-type]
            page_info=PageInfo(
                has_next_page=page.has_next,
                has_previous_page=page.has_previous,
                start_cursor=edges[0].cursor if edges else None,
                end_cursor=edges[-1].cursor if edges else None,
            ),
        )


@strawberry.type
class Tenant(Node):
    id: strawberry.ID
    name: str
    display_name: str
    email: str
    team: str
    phase: TenantPhase
    created_at: datetime

    @classmethod
    def is_type_of(cls, obj: Any, info: Info) -> bool:
        return isinstance(obj, models.Tenant | Tenant)


@strawberry.type
class AccessToken(Node):
    id: strawberry.ID
    name: str
    role: str
    prefix: str = strawberry.field(description="First characters of the token, to tell apart")
    expires_at: datetime | None
    revoked_at: datetime | None
    last_used_at: datetime | None
    created_at: datetime

    @strawberry.field
    async def tenant(self, info: Info[Context, None]) -> Tenant | None:
        tenant_id = self.tenant_id  # type: ignore[attr-defined]
        return None if tenant_id is None else await info.context.tenant_loader.load(tenant_id)

    @classmethod
    def is_type_of(cls, obj: Any, info: Info) -> bool:
        return isinstance(obj, models.AccessToken | AccessToken)


@strawberry.type
class Step(Node):
    id: strawberry.ID
    seq: int
    kind: StepKind
    payload: JSON
    created_at: datetime
    model: str | None
    input_tokens: int | None
    output_tokens: int | None
    latency_ms: int | None

    @strawberry.field
    def task_id(self) -> strawberry.ID:
        return strawberry.ID(self.task_id)  # type: ignore[attr-defined]

    @strawberry.field
    def cost_usd(self) -> float | None:
        return _usd(self.cost_usd)  # type: ignore[attr-defined]

    @classmethod
    def is_type_of(cls, obj: Any, info: Info) -> bool:
        return isinstance(obj, models.Step | Step)


@strawberry.type
class Task(Node):
    id: strawberry.ID
    status: TaskStatus
    query: str
    output: str | None
    error: str | None
    metadata: JSON
    attempt: int
    created_at: datetime
    updated_at: datetime
    started_at: datetime | None
    finished_at: datetime | None

    @strawberry.field
    def is_terminal(self) -> bool:
        return self.status.is_terminal  # type: ignore[attr-defined]

    @strawberry.field
    def cost_usd(self) -> float:
        return float(self.cost_usd)  # type: ignore[arg-type]

    @strawberry.field
    async def agent(self, info: Info[Context, None]) -> "Agent | None":
        return await info.context.agent_loader.load(self.agent_id)  # type: ignore[attr-defined]

    @strawberry.field(description="The trace, in seq order, after `afterSeq` (at most 1000).")
    async def steps(
        self, info: Info[Context, None], after_seq: int | None = None, first: int | None = None
    ) -> list[Step]:
        return await traces.list_steps(info.context.actor, self, after_seq, first)  # type: ignore[arg-type, return-value]

    @classmethod
    def is_type_of(cls, obj: Any, info: Info) -> bool:
        return isinstance(obj, models.Task | Task)


@strawberry.type
class Agent(Node):
    id: strawberry.ID
    name: str
    description: str
    model: str
    system_prompt: str
    tools: list[str]
    config: JSON
    max_steps: int
    state: AgentState
    created_at: datetime
    updated_at: datetime

    @strawberry.field
    async def tasks(
        self, info: Info[Context, None], first: int | None = None, after: str | None = None
    ) -> Connection[Task]:
        page = await task_resolvers.list_tasks(info.context.actor, first, after, agent_id=self.id)
        return Connection.of(page)

    @classmethod
    def is_type_of(cls, obj: Any, info: Info) -> bool:
        return isinstance(obj, models.Agent | Agent)


@strawberry.type(description="Who is calling.")
class Viewer:
    kind: str
    role: str
    token_id: strawberry.ID | None
    tenant: Tenant | None


@strawberry.type
class ModelInfo:
    id: str
    provider: str
    label: str
    input_usd_per_million_tokens: float | None
    output_usd_per_million_tokens: float | None
