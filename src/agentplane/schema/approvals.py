"""GraphQL for approval requests: tool calls held for a human's decision."""

import contextlib
from collections.abc import AsyncGenerator
from datetime import datetime
from enum import Enum
from typing import Any

import strawberry
from strawberry.scalars import JSON
from strawberry.types import Info

from agentplane import models
from agentplane.resolvers import approvals
from agentplane.schema.context import Context
from agentplane.schema.live import LiveFrames
from agentplane.schema.types import Agent, Connection, Node, Task

strawberry.enum(models.ApprovalStatus)
strawberry.enum(models.OnExpiry)


@strawberry.enum
class ApprovalDecision(Enum):
    APPROVE = "approve"
    REJECT = "reject"


@strawberry.type(description="A tool call held until a human approves or rejects it.")
class ApprovalRequest(Node):
    id: strawberry.ID
    status: models.ApprovalStatus
    tool: str
    arguments: JSON = strawberry.field(description="The arguments the model asked for")
    edited_arguments: JSON | None = strawberry.field(
        description="The arguments the approver replaced them with, if any"
    )
    arguments_schema: JSON = strawberry.field(description="The tool's JSON Schema")
    risk: str
    preview: str = strawberry.field(description="The call in one line, for a list view")
    reason: str | None = strawberry.field(description="Why it was decided so (the model sees it)")
    decided_by: str | None
    decided_at: datetime | None
    expires_at: datetime | None
    on_expiry: models.OnExpiry = strawberry.field(
        description="What expiry does: REJECT the call, or FAIL the task"
    )
    step_seq: int = strawberry.field(description="The seq of the model call that asked for it")
    call_id: str
    created_at: datetime

    @strawberry.field
    def task_id(self, root: strawberry.Parent[models.ApprovalRequest]) -> strawberry.ID:
        return strawberry.ID(root.task_id)

    @strawberry.field
    async def task(
        self, root: strawberry.Parent[models.ApprovalRequest], info: Info[Context, None]
    ) -> Task | None:
        return await info.context.task_loader.load(root.task_id)  # type: ignore[return-value]

    @strawberry.field
    async def agent(
        self, root: strawberry.Parent[models.ApprovalRequest], info: Info[Context, None]
    ) -> Agent | None:
        return await info.context.agent_loader.load(root.agent_id)  # type: ignore[return-value]

    @classmethod
    def is_type_of(cls, obj: Any, info: Info) -> bool:
        return isinstance(obj, models.ApprovalRequest | ApprovalRequest)


@strawberry.input
class DecideApprovalInput:
    id: strawberry.ID
    decision: ApprovalDecision
    arguments: JSON | None = strawberry.field(
        default=None,
        description="APPROVE only: replace the call's arguments (checked against the tool's "
        "JSON Schema)",
    )
    reason: str | None = strawberry.field(
        default=None, description="Recorded and audited; on REJECT the model sees it"
    )


@strawberry.type
class DecideApprovalPayload:
    approval_request: ApprovalRequest

    @strawberry.field(description="The task, back in the queue when the decision freed it.")
    async def task(self, info: Info[Context, None]) -> Task | None:
        request: models.ApprovalRequest = self.approval_request  # type: ignore[assignment]
        return await info.context.task_loader.load(request.task_id)  # type: ignore[return-value]


@strawberry.type
class ApprovalQuery:
    @strawberry.field(description="Approval requests, newest first.")
    async def approval_requests(
        self,
        info: Info[Context, None],
        first: int | None = None,
        after: str | None = None,
        status: models.ApprovalStatus | None = None,
        task_id: strawberry.ID | None = None,
    ) -> Connection[ApprovalRequest]:
        page = await approvals.list_requests(info.context.actor, first, after, status, task_id)
        return Connection.of(page)

    @strawberry.field
    async def approval_request(
        self, info: Info[Context, None], id: strawberry.ID
    ) -> ApprovalRequest:
        return await approvals.get_request(info.context.actor, id)  # type: ignore[return-value]


@strawberry.type
class ApprovalMutation:
    @strawberry.mutation(
        description="Approve (optionally with edited arguments) or reject a held tool call. "
        "The first decision wins; another answers CONFLICT."
    )
    async def decide_approval(
        self, info: Info[Context, None], input: DecideApprovalInput
    ) -> DecideApprovalPayload:
        request = await approvals.decide(
            info.context.actor,
            input.id,
            approve=input.decision == ApprovalDecision.APPROVE,
            arguments=input.arguments,
            reason=input.reason,
        )
        return DecideApprovalPayload(approval_request=request)  # type: ignore[arg-type]


@strawberry.type
class ApprovalSubscription:
    @strawberry.subscription(
        description="Approval requests of your tenant as they are opened and decided "
        "(expired, cancelled), optionally of one task."
    )
    async def approval_updates(
        self, info: Info[Context, None], task_id: strawberry.ID | None = None
    ) -> AsyncGenerator[ApprovalRequest, None]:
        # Through the approvals feed (subscriptions/feeds.py), as taskEvents goes.
        updates = approvals.approval_updates(info.context.actor, task_id, LiveFrames.of(info))
        async with contextlib.aclosing(updates):
            async for request in updates:
                yield request  # type: ignore[misc]
