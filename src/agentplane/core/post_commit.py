"""One transaction per change, and the side effects it causes held back until it commits.

`atomic()` opens a transaction (a savepoint when nested) and, for its length, queues what
`after_commit` is given (broker publishes, socket revocations) instead of running it; the
outermost one runs the queue after COMMIT and drops it on rollback, so no subscriber or
worker ever hears of a change that did not happen, or before it is visible.
"""

import contextvars
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

from tortoise.transactions import in_transaction

log = logging.getLogger(__name__)
Effect = Callable[[], Awaitable[None]]


class _Queue:
    def __init__(self) -> None:
        self.effects: list[Effect] = []
        self.open = True  # a task spawned inside outlives it: after close, effects run at once


_queue: contextvars.ContextVar[_Queue | None] = contextvars.ContextVar(
    "agentplane_post_commit", default=None
)


@asynccontextmanager
async def atomic() -> AsyncIterator[None]:
    outer = _queue.get()
    queue = _Queue()
    token = _queue.set(queue)
    try:
        async with in_transaction():
            yield
    finally:
        queue.open = False
        _queue.reset(token)
    # Committed (or, nested, its savepoint released): hand the effects outwards.
    if outer is not None and outer.open:
        outer.effects.extend(queue.effects)
        return
    for effect in queue.effects:
        try:
            await effect()
        except Exception:  # the change is committed; a lost notification must not undo it
            log.exception("post-commit effect failed")


async def after_commit(effect: Effect) -> None:
    """Run `effect` once the current `atomic()` commits, or now outside one."""
    queue = _queue.get()
    if queue is None or not queue.open:
        await effect()
    else:
        queue.effects.append(effect)
