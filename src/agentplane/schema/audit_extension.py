"""A safety net for "every mutation is audited": a GraphQL mutation whose resolvers
recorded nothing (one added without `@audited`) is recorded here, per root field.
The HTTP fast path's mutations (http/fast_path.py) go through the same two steps."""

from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from typing import Any

from graphql import FieldNode, GraphQLError, OperationDefinitionNode
from strawberry.extensions import SchemaExtension
from strawberry.types.graphql import OperationType

from agentplane.resolvers import audit
from agentplane.resolvers.auth import Actor

_DENIED = {"UNAUTHENTICATED", "FORBIDDEN", "TENANT_SUSPENDED"}


@contextmanager
def collecting_records() -> Iterator[list[str]]:
    """The IDs of the audit records made while one mutation runs."""
    collected: list[str] = []
    token = audit.recorded_in_operation.set(collected)
    try:
        yield collected
    finally:
        audit.recorded_in_operation.reset(token)


async def record_unaudited(
    actor: Actor | None, root_fields: list[str], errors: list[GraphQLError]
) -> None:
    """Record a mutation that recorded nothing itself, with its outcome (errors as
    execution left them, before rendering)."""
    codes = {
        (getattr(e, "extensions", None) or {}).get("code")
        or getattr(getattr(e, "original_error", None), "code", None)
        for e in errors
    }
    outcome = "success" if not errors else ("denied" if codes & _DENIED else "failure")
    for name in root_fields:
        await audit.record(actor, f"graphql.{name}", outcome=outcome)


class AuditMutations(SchemaExtension):
    async def on_execute(self) -> AsyncIterator[None]:  # type: ignore[override]
        ctx = self.execution_context
        if ctx.operation_type != OperationType.MUTATION:
            yield
            return
        with collecting_records() as collected:
            yield
        if collected:
            return
        result = ctx.result
        errors = list(getattr(result, "errors", None) or [])
        await record_unaudited(getattr(ctx.context, "_actor", None), _root_fields(ctx), errors)


def _root_fields(ctx: Any) -> list[str]:
    document = getattr(ctx, "graphql_document", None)
    if document is None:
        return []
    operation_name = getattr(ctx, "operation_name", None)
    for definition in document.definitions:
        if not isinstance(definition, OperationDefinitionNode):
            continue
        if operation_name and (definition.name is None or definition.name.value != operation_name):
            continue
        return root_fields(definition)
    return []


def root_fields(operation: OperationDefinitionNode) -> list[str]:
    return [s.name.value for s in operation.selection_set.selections if isinstance(s, FieldNode)]
