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
from agentplane.subscriptions import feeds, streams


@strawberry.type
class Subscription(ApprovalSubscription, IdentitySubscription, KnowledgeSubscription):
    @strawberry.subscription(
        description="The task's steps in seq order: persisted ones after `afterSeq`, then live "
        "ones; completes after the step that makes the task terminal."
    )
    async def task_events(
        self, info: Info[Context, None], task_id: strawberry.ID, after_seq: int | None = None
    ) -> AsyncGenerator[Step, None]:
        frames = LiveFrames.of(info)
        if frames is not None:  # on one of our websockets: the task's live feed sends
            after_seq = await feeds.follow(info.context.actor, task_id, after_seq, frames)
            if after_seq is None:
                return
        async for step in streams.task_events(info.context.actor, task_id, after_seq):
            yield step  # type: ignore[misc]

    @strawberry.subscription(description="Status changes of your tenant's tasks.")
    async def task_updates(
        self, info: Info[Context, None], agent_id: strawberry.ID | None = None
    ) -> AsyncGenerator[Task, None]:
        # Through the tenant's live feed: written to our socket or SSE response while the
        # selection renders there, else yielded to the stock pipeline.
        updates = feeds.follow_updates(info.context.actor, agent_id, LiveFrames.of(info))
        async with contextlib.aclosing(updates):  # leaves the feed when the client does
            async for task in updates:
                yield task  # type: ignore[misc]

    @strawberry.subscription(description="Best-effort live text of the task's model calls.")
    async def task_output(
        self, info: Info[Context, None], task_id: strawberry.ID
    ) -> AsyncGenerator[str, None]:
        async for chunk in streams.task_output(info.context.actor, task_id):
            yield chunk
