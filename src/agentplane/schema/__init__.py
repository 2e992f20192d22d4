"""The GraphQL schema: types map onto resolvers/, never onto the ORM."""

import strawberry
from strawberry.extensions import ParserCache, ValidationCache

from agentplane.schema.errors import ErrorCodes
from agentplane.schema.execution import ExecutionContext
from agentplane.schema.mutation import Mutation
from agentplane.schema.query import Query
from agentplane.schema.subscription import Subscription
from agentplane.schema.types import AccessToken, Agent, Step, Task, Tenant

SCHEMA_EXTENSIONS = [
    ErrorCodes,
    lambda: ParserCache(maxsize=512),
    lambda: ValidationCache(maxsize=512),
]


def build_schema() -> strawberry.Schema:
    return strawberry.Schema(
        query=Query,
        mutation=Mutation,
        subscription=Subscription,
        types=[Tenant, AccessToken, Agent, Task, Step],
        extensions=SCHEMA_EXTENSIONS,
        execution_context_class=ExecutionContext,
    )


schema = build_schema()
