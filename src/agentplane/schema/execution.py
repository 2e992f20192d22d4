"""The graphql-core executor our schema runs on.

Tortoise models define `__await__` (awaiting one returns itself), so graphql-core's
`is_awaitable` takes every model a resolver returns for a coroutine and completes
each list item on the asynchronous path. A model is data, not work: here it is
completed synchronously, like any other object.
"""

from typing import Any

from graphql import GraphQLField, GraphQLObjectType, GraphQLResolveInfo, OperationType
from graphql.language import FieldNode
from graphql.pyutils import Path
from strawberry.execution import optimized_is_awaitable
from strawberry.schema.schema import StrawberryGraphQLCoreExecutionContext
from tortoise.models import Model

from agentplane.schema import live


def is_awaitable(value: Any) -> bool:
    if isinstance(value, Model):
        return False
    return optimized_is_awaitable(value)


class ExecutionContext(StrawberryGraphQLCoreExecutionContext):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.is_awaitable = is_awaitable  # type: ignore[assignment]

    def build_resolve_info(
        self,
        field_def: GraphQLField,
        field_nodes: list[FieldNode],
        parent_type: GraphQLObjectType,
        path: Path,
    ) -> GraphQLResolveInfo:
        if path.prev is None and self.operation.operation is OperationType.SUBSCRIPTION:
            # The subscription's root field: its resolver runs events through this
            # executor itself (schema/live.py).
            live.bind_executor(self)
        return super().build_resolve_info(field_def, field_nodes, parent_type, path)
