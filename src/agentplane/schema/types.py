"""GraphQL object types. Fields read model attributes; relations go through resolvers."""

from datetime import datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Annotated, Any, Generic, TypeVar

import strawberry
from strawberry.scalars import JSON
from strawberry.types import Info

from agentplane import models
from agentplane.resolvers import step_payloads, usage
from agentplane.resolvers.pagination import Page
from agentplane.resolvers.steps import StepsKey
from agentplane.resolvers.task_pages import AgentTasksKey
from agentplane.schema.context import Context

if TYPE_CHECKING:
    from agentplane.schema.approvals import ApprovalRequest

T = TypeVar("T")

# The model enums are the GraphQL enums (names like QUEUED, values like "queued").
for _enum in (models.TaskStatus, models.StepKind, models.AgentState, models.TenantPhase):
    strawberry.enum(_enum)


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
    phase: models.TenantPhase
    created_at: datetime
    suspended_at: datetime | None
    deleted_at: datetime | None = strawberry.field(
        description="Set while deleted: restorable for 30 days from then"
    )

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
    owner_user_id: strawberry.ID | None
    created_by: str | None

    @strawberry.field
    async def tenant(
        self, root: strawberry.Parent[models.AccessToken], info: Info[Context, None]
    ) -> Tenant | None:
        if root.tenant_id is None:
            return None
        return await info.context.tenant_loader.load(root.tenant_id)  # type: ignore[return-value]

    @classmethod
    def is_type_of(cls, obj: Any, info: Info) -> bool:
        return isinstance(obj, models.AccessToken | AccessToken)


@strawberry.type
class Step(Node):
    id: strawberry.ID
    seq: int
    kind: models.StepKind
    payload: JSON
    created_at: datetime
    model: str | None
    input_tokens: int | None
    output_tokens: int | None
    latency_ms: int | None

    @strawberry.field
    def task_id(self, root: strawberry.Parent[models.Step]) -> strawberry.ID:
        return strawberry.ID(root.task_id)

    @strawberry.field
    def cost_usd(self, root: strawberry.Parent[models.Step]) -> float | None:
        return _usd(root.cost_usd)

    @strawberry.field(
        description="True when `payload` is a preview: the step was larger than "
        f"{step_payloads.STEP_INLINE_BYTES} bytes; `fullPayload` has all of it."
    )
    def payload_truncated(self, root: strawberry.Parent[models.Step]) -> bool:
        return step_payloads.is_truncated(root.payload)

    @strawberry.field(description="The whole payload, however large (read it only when needed).")
    async def full_payload(
        self, root: strawberry.Parent[models.Step], info: Info[Context, None]
    ) -> JSON:
        if not step_payloads.is_truncated(root.payload):
            return root.payload  # type: ignore[return-value]
        return await info.context.full_payload_loader.load(root.id)

    @classmethod
    def is_type_of(cls, obj: Any, info: Info) -> bool:
        return isinstance(obj, models.Step | Step)


@strawberry.type
class TaskUsage:
    input_tokens: int
    output_tokens: int

    @strawberry.field
    def cost_usd(self, root: strawberry.Parent[usage.TaskUsage]) -> float:
        return float(root.cost_usd)


@strawberry.type
class Task(Node):
    id: strawberry.ID
    status: models.TaskStatus
    query: str
    output: str | None
    error: str | None
    metadata: JSON
    attempt: int
    created_at: datetime
    updated_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    status_reason: str | None = strawberry.field(
        description='Why the task is in its status, e.g. paused for "budget"'
    )
    worker_id: str | None = strawberry.field(
        description="The worker (host:pid:…) running the task, or that ended it; none while "
        "it waits"
    )

    @strawberry.field
    def is_terminal(self, root: strawberry.Parent[models.Task]) -> bool:
        return root.status.is_terminal

    @strawberry.field
    def cost_usd(self, root: strawberry.Parent[models.Task]) -> float:
        return float(root.cost_usd)

    @strawberry.field(description="Tokens and cost of its provider calls.")
    async def usage(
        self, root: strawberry.Parent[models.Task], info: Info[Context, None]
    ) -> TaskUsage:
        return await info.context.task_usage_loader.load(root)  # type: ignore[return-value]

    @strawberry.field
    async def agent(
        self, root: strawberry.Parent[models.Task], info: Info[Context, None]
    ) -> "Agent | None":
        return await info.context.agent_loader.load(root.agent_id)  # type: ignore[return-value]

    @strawberry.field(description="The approval request the task waits for, while it waits.")
    async def pending_approval(
        self, root: strawberry.Parent[models.Task], info: Info[Context, None]
    ) -> Annotated["ApprovalRequest", strawberry.lazy("agentplane.schema.approvals")] | None:
        if root.status != models.TaskStatus.WAITING_FOR_APPROVAL:
            return None  # only a waiting task has one worth showing: no query
        return await info.context.pending_approval_loader.load(root.id)  # type: ignore[return-value]

    @strawberry.field(description="The trace, in seq order, after `afterSeq` (at most 1000).")
    async def steps(
        self,
        root: strawberry.Parent[models.Task],
        info: Info[Context, None],
        after_seq: int | None = None,
        first: int | None = None,
    ) -> list[Step]:
        key = StepsKey(root.id, root.tenant_id, after_seq, first)
        key.bounds()  # a bad argument fails here, not inside the batch
        return await info.context.steps_loader.load(key)  # type: ignore[return-value]

    @classmethod
    def is_type_of(cls, obj: Any, info: Info) -> bool:
        return isinstance(obj, models.Task | Task)


@strawberry.type
class Agent(Node):
    id: strawberry.ID
    name: str
    display_name: str
    description: str
    model: str
    system_prompt: str
    tools: list[str]
    config: JSON
    max_steps: int
    max_concurrent_tasks: int | None = strawberry.field(
        description="At most this many of its tasks run at once (null: no limit)"
    )
    timeout_s: int | None
    state: models.AgentState
    version: int = strawberry.field(description="Bumped by each publish")
    published_at: datetime | None
    created_at: datetime
    updated_at: datetime

    @strawberry.field
    async def tasks(
        self,
        root: strawberry.Parent[models.Agent],
        info: Info[Context, None],
        first: int | None = None,
        after: str | None = None,
    ) -> Connection[Task]:
        key = AgentTasksKey(root.id, first, after)
        key.shape()  # a bad argument fails here, not inside the batch
        page = await info.context.agent_tasks_loader.load(key)
        return Connection.of(page)  # type: ignore[return-value]

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


@strawberry.type(description="What this query cost, and the caller's rate-limit bucket after it.")
class RateLimit:
    cost: int = strawberry.field(
        description="Points charged: requests needed to fill every connection, / 100, ≥ 1"
    )
    node_count: int = strawberry.field(description="Most nodes this query can return")
    limit: int | None = strawberry.field(description="Points per window; null without a bucket")
    used: int | None
    remaining: int | None
    reset_at: datetime | None
