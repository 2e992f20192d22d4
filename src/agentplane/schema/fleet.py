"""GraphQL for running the fleet: worker queues, an agent by name, publish checks, the
month's usage of a tenant, and the server's utilisation.

What the Kubiya, Koda, OpsClaw and OpenCrane REST routes already did, on the same
resolvers (`tests/test_graphql_parity.py` keeps the two in step). Mixed into
`Query`/`Mutation`.
"""

import base64
import binascii
from datetime import datetime
from typing import Any

import strawberry
from strawberry.types import Info

from agentplane import models
from agentplane.core.errors import ValidationFailed
from agentplane.resolvers import agents, server, usage, worker_queues
from agentplane.resolvers.pagination import Page, page_size
from agentplane.schema.context import Context
from agentplane.schema.types import Agent, Connection, Tenant


@strawberry.type
class WorkerQueue:
    name: str
    display_name: str
    description: str
    max_workers: int | None
    heartbeat_interval: int = strawberry.field(description="Seconds")
    created_at: datetime
    updated_at: datetime

    @strawberry.field(description="A UUID (Kubiya callers validate it as one)")
    def id(self, root: strawberry.Parent[models.WorkerQueue]) -> strawberry.ID:
        return strawberry.ID(str(root.id))

    @strawberry.field
    async def tenant(
        self, root: strawberry.Parent[models.WorkerQueue], info: Info[Context, None]
    ) -> Tenant | None:
        return await info.context.tenant_loader.load(root.tenant_id)  # type: ignore[return-value]


@strawberry.input
class CreateWorkerQueueInput:
    name: str
    display_name: str = ""
    description: str = ""
    max_workers: int | None = None
    heartbeat_interval: int = strawberry.field(default=60, description="Seconds, 10..3600")
    tenant: str | None = strawberry.field(
        default=None, description="Tenant name; required for platform-scoped callers"
    )


@strawberry.type
class WorkerQueuePayload:
    worker_queue: WorkerQueue


@strawberry.input
class DeleteWorkerQueueInput:
    id: strawberry.ID


@strawberry.type
class DeleteWorkerQueuePayload:
    deleted_id: strawberry.ID


@strawberry.type
class PublishCheck:
    id: str
    passed: bool
    severity: str = strawberry.field(description='"error" blocks publishing, "warning" does not')
    message: str


@strawberry.type
class ModelUsage:
    model: str
    input_tokens: int
    output_tokens: int
    calls: int

    @strawberry.field
    def cost_usd(self, root: strawberry.Parent[usage.ModelUsage]) -> float:
        return float(root.cost_usd)


@strawberry.type
class TenantUsage:
    tenant_id: strawberry.ID
    period_start: datetime
    period_end: datetime
    input_tokens: int
    output_tokens: int
    calls: int
    unpriced_calls: int = strawberry.field(description="Calls of models without a price")
    by_model: list[ModelUsage]

    @strawberry.field
    def cost_usd(self, root: strawberry.Parent[usage.UsageSummary]) -> float:
        return float(root.cost_usd)


@strawberry.type(description="This API process's host: a utilisation sample.")
class ServerStatus:
    cpu_percent: float
    memory_used_bytes: float = strawberry.field(description="Bytes (a Float: over 2^31)")
    memory_total_bytes: float
    storage_used_bytes: float = strawberry.field(description="The disk holding the database")
    storage_total_bytes: float
    active_tenants: int
    sampled_at: datetime


# Worker queues page by offset (their IDs are random UUIDs, not time-sortable keys); the
# cursor is the opaque offset of the next row.
def _offset(after: str | None) -> int:
    if after is None:
        return 0
    try:
        raw = base64.urlsafe_b64decode(after.encode()).decode()
        if raw.startswith("o:") and len(raw) <= 12:
            return int(raw[2:])
    except (binascii.Error, UnicodeDecodeError, ValueError):
        pass
    raise ValidationFailed("Malformed cursor", field="after")


class _OffsetPage(Page[Any]):
    def __init__(self, items: list[Any], start: int, has_next: bool) -> None:
        super().__init__(items, has_next, start > 0)
        self._at = {id(item): start + i + 1 for i, item in enumerate(items)}

    def cursor(self, item: Any) -> str:
        return base64.urlsafe_b64encode(f"o:{self._at[id(item)]}".encode()).decode()


@strawberry.type
class FleetQuery:
    @strawberry.field(description="Worker queues, oldest first.")
    async def worker_queues(
        self, info: Info[Context, None], first: int | None = None, after: str | None = None
    ) -> Connection[WorkerQueue]:
        size, start = page_size(first), _offset(after)
        page = await worker_queues.list_worker_queues(info.context.actor, max(size, 1), start)
        items = page.items[:size]
        return Connection.of(_OffsetPage(items, start, start + len(items) < page.total))

    @strawberry.field
    async def worker_queue(self, info: Info[Context, None], id: strawberry.ID) -> WorkerQueue:
        queue = await worker_queues.get_worker_queue(info.context.actor, id)
        return queue  # type: ignore[return-value]

    @strawberry.field(description="An agent of your tenant by name (or by ID).")
    async def agent_by_name(self, info: Info[Context, None], name: str) -> Agent:
        return await agents.find_agent(info.context.actor, name)  # type: ignore[return-value]

    @strawberry.field(description="What publishing the agent's current settings would check.")
    async def agent_publish_checks(
        self, info: Info[Context, None], agent_id: strawberry.ID
    ) -> list[PublishCheck]:
        _, checks = await agents.publish_checks(info.context.actor, agent_id)
        return checks  # type: ignore[return-value]

    @strawberry.field(
        description="The calendar month's (UTC) usage of your tenant; platform callers name one."
    )
    async def tenant_usage(
        self, info: Info[Context, None], tenant_id: strawberry.ID | None = None
    ) -> TenantUsage:
        summary = await usage.tenant_usage(info.context.actor, tenant_id)
        return summary  # type: ignore[return-value]

    @strawberry.field(description="Utilisation of this server (platform-scoped callers).")
    async def server_status(self, info: Info[Context, None]) -> ServerStatus:
        settings = info.context.request.app.state.settings
        shot = await server.snapshot(info.context.actor, settings.database_url)
        return shot  # type: ignore[return-value]


@strawberry.type
class FleetMutation:
    @strawberry.mutation(description="A named queue that tasks can be routed to.")
    async def create_worker_queue(
        self, info: Info[Context, None], input: CreateWorkerQueueInput
    ) -> WorkerQueuePayload:
        queue = await worker_queues.create_worker_queue(
            info.context.actor,
            name=input.name,
            display_name=input.display_name,
            description=input.description,
            max_workers=input.max_workers,
            heartbeat_interval=input.heartbeat_interval,
            tenant=input.tenant,
        )
        return WorkerQueuePayload(worker_queue=queue)  # type: ignore[arg-type]

    @strawberry.mutation(description="Delete a queue; tasks routed to it keep its ID.")
    async def delete_worker_queue(
        self, info: Info[Context, None], input: DeleteWorkerQueueInput
    ) -> DeleteWorkerQueuePayload:
        await worker_queues.delete_worker_queue(info.context.actor, input.id)
        return DeleteWorkerQueuePayload(deleted_id=input.id)
