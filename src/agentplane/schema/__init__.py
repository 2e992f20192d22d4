"""The GraphQL transport: types and fields that render what resolvers/ return, never the ORM.
Imports the application layer, models/ and core/; never http/, rest_compat/ or mcp/."""

import functools
from collections.abc import Callable

import strawberry
from graphql import GraphQLError
from strawberry.extensions import SchemaExtension
from strawberry.types import ExecutionContext as OperationContext

from agentplane.schema.approvals import ApprovalRequest
from agentplane.schema.audit_extension import AuditMutations
from agentplane.schema.compiled import CompiledQueries
from agentplane.schema.errors import ErrorCodes, log_errors
from agentplane.schema.execution import ExecutionContext
from agentplane.schema.hardening import Hardening
from agentplane.schema.mutation import Mutation
from agentplane.schema.query import Query
from agentplane.schema.subscription import Subscription
from agentplane.schema.telemetry import OperationTelemetry
from agentplane.schema.types import AccessToken, Agent, Step, Task, Tenant


def schema_extensions(production: bool = False) -> list[Callable[[], SchemaExtension]]:
    """Each a factory of per-request instances; the rules and caches they use are built once."""
    return [
        OperationTelemetry,  # metrics and an optional span per operation, no field hook
        lambda: ErrorCodes(production),
        AuditMutations,  # a mutation whose resolvers recorded nothing is still audited
        # Cached parse and validation; token/depth/alias/directive limits; cost.
        lambda: Hardening(production),
        CompiledQueries,  # hot read queries from a cached plan; the rest: graphql-core
    ]


SCHEMA_EXTENSIONS = schema_extensions()


class Schema(strawberry.Schema):
    def process_errors(
        self, errors: list[GraphQLError], execution_context: OperationContext | None = None
    ) -> None:
        log_errors(errors)


@functools.cache
def build_schema(production: bool = False) -> strawberry.Schema:
    """Production: no introspection, no "Did you mean" suggestions (GraphiQL is off too)."""
    return Schema(
        query=Query,
        mutation=Mutation,
        subscription=Subscription,
        types=[Tenant, AccessToken, Agent, Task, Step, ApprovalRequest],
        extensions=schema_extensions(production),
        execution_context_class=ExecutionContext,
    )


schema = build_schema()
