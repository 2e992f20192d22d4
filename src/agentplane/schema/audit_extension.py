"""A safety net for "every mutation is audited": a GraphQL mutation whose resolvers
recorded nothing (one added without `@audited`) is recorded here, per root field."""

from collections.abc import AsyncIterator

from graphql import FieldNode, OperationDefinitionNode
from strawberry.extensions import SchemaExtension
from strawberry.types.graphql import OperationType

from agentplane.resolvers import audit

_DENIED = {"UNAUTHENTICATED", "FORBIDDEN", "TENANT_SUSPENDED"}


class AuditMutations(SchemaExtension):
    async def on_execute(self) -> AsyncIterator[None]:  # type: ignore[override]
        ctx = self.execution_context
        if ctx.operation_type != OperationType.MUTATION:
            yield
            return
        collected: list[str] = []
        token = audit.recorded_in_operation.set(collected)
        try:
            yield
        finally:
            audit.recorded_in_operation.reset(token)
        if collected:
            return
        result = ctx.result
        errors = list(getattr(result, "errors", None) or [])
        codes = {
            (getattr(e, "extensions", None) or {}).get("code")
            or getattr(getattr(e, "original_error", None), "code", None)
            for e in errors
        }
        outcome = "success" if not errors else ("denied" if codes & _DENIED else "failure")
        actor = getattr(ctx.context, "_actor", None)
        for name in _root_fields(ctx):
            await audit.record(actor, f"graphql.{name}", outcome=outcome)


def _root_fields(ctx: object) -> list[str]:
    document = getattr(ctx, "graphql_document", None)
    if document is None:
        return []
    operation_name = getattr(ctx, "operation_name", None)
    for definition in document.definitions:
        if not isinstance(definition, OperationDefinitionNode):
            continue
        if operation_name and (definition.name is None or definition.name.value != operation_name):
            continue
        return [
            s.name.value for s in definition.selection_set.selections if isinstance(s, FieldNode)
        ]
    return []
