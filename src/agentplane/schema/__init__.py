"""The GraphQL schema: types map onto resolvers/, never onto the ORM."""

import strawberry
from strawberry.extensions import ValidationCache

from agentplane.schema.audit_extension import AuditMutations
from agentplane.schema.errors import ErrorCodes
from agentplane.schema.mutation import Mutation
from agentplane.schema.parse_cache import ParseCache
from agentplane.schema.query import Query
from agentplane.schema.subscription import Subscription
from agentplane.schema.types import AccessToken, Agent, Step, Task, Tenant


def build_schema() -> strawberry.Schema:
    return strawberry.Schema(
        query=Query,
        mutation=Mutation,
        subscription=Subscription,
        types=[Tenant, AccessToken, Agent, Task, Step],
        extensions=[
            ErrorCodes,
            AuditMutations,
            ParseCache,
            lambda: ValidationCache(maxsize=512),
        ],
    )


schema = build_schema()
