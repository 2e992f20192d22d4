import contextlib
from collections.abc import AsyncGenerator

import strawberry
from strawberry.types import Info

from agentplane.schema.approvals import ApprovalSubscription
from agentplane.schema.context import Context
from agentplane.schema.identity import IdentitySubscription
from agentplane.schema.knowledge import KnowledgeSubscription
from agentplane.schema.live import LiveFrames
from agentplane.schema.types import Step, Task
from agentplane.subscriptions import streams


@strawberry.type
class Subscription(ApprovalSubscription, IdentitySubscription, KnowledgeSubscription):
    # Each goes through this process's live feed (subscriptions/feeds.py): written straight
    # to our socket or SSE response while the selection renders there (LiveFrames), else
    # yielded to Strawberry's own pipeline.
    @strawberry.subscription(
        description="The task's steps in seq order: persisted ones after `afterSeq`, then live "
        "ones; completes after the step that makes the task terminal."
    )
    async def task_events(
        self, info: Info[Context, None], task_id: strawberry.ID, after_seq: int | None = None
    ) -> AsyncGenerator[Step, None]:
        steps = streams.task_events(info.context.actor, task_id, after_seq, LiveFrames.of(info))
        async with contextlib.aclosing(steps):  # leaves the feed when the client does
            async for step in steps:
                yield step  # type: ignore[misc]

    @strawberry.subscription(description="Status changes of your tenant's tasks.")
    async def task_updates(
        self, info: Info[Context, None], agent_id: strawberry.ID | None = None
    ) -> AsyncGenerator[Task, None]:
        updates = streams.task_updates(info.context.actor, agent_id, LiveFrames.of(info))
        async with contextlib.aclosing(updates):
            async for task in updates:
                yield task  # type: ignore[misc]

    @strawberry.subscription(description="Best-effort live text of the task's model calls.")
    async def task_output(
        self, info: Info[Context, None], task_id: strawberry.ID
    ) -> AsyncGenerator[str, None]:
        chunks = streams.task_output(info.context.actor, task_id, LiveFrames.of(info))
        async with contextlib.aclosing(chunks):
            async for chunk in chunks:
                yield chunk
