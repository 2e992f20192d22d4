"""The graphql-core executor our schema runs on.

Tortoise models define `__await__` (awaiting one returns itself), so graphql-core's
`is_awaitable` takes every model a resolver returns for a coroutine and completes
each list item on the asynchronous path. A model is data, not work: here it is
completed synchronously, like any other object.
"""

from typing import Any

from strawberry.execution import optimized_is_awaitable
from strawberry.schema.schema import StrawberryGraphQLCoreExecutionContext
from tortoise.models import Model


def is_awaitable(value: Any) -> bool:
    if isinstance(value, Model):
        return False
    return optimized_is_awaitable(value)


class ExecutionContext(StrawberryGraphQLCoreExecutionContext):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.is_awaitable = is_awaitable  # type: ignore[assignment]
