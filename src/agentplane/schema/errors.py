"""Render errors: domain errors get a stable `extensions.code`; anything else is masked."""

import logging
from collections.abc import Iterator

from graphql import GraphQLError
from strawberry.extensions import SchemaExtension

from agentplane.errors import DomainError

log = logging.getLogger("agentplane.graphql")
MASKED_MESSAGE = "Internal server error"


def render_error(error: GraphQLError) -> GraphQLError:
    original = error.original_error
    if original is None:
        # Parse and validation errors: the message is safe and useful as it is.
        return GraphQLError(
            error.message,
            nodes=error.nodes,
            source=error.source,
            positions=error.positions,
            path=error.path,
            extensions={**(error.extensions or {}), "code": "GRAPHQL_VALIDATION_FAILED"},
        )
    if isinstance(original, DomainError):
        return GraphQLError(
            original.message,
            nodes=error.nodes,
            path=error.path,
            extensions={"code": original.code, **original.details},
        )
    if isinstance(original, GraphQLError):  # e.g. a variable that failed to coerce
        return render_error(original)
    log.error("unexpected error in %s", error.path, exc_info=original)
    return GraphQLError(
        MASKED_MESSAGE, nodes=error.nodes, path=error.path, extensions={"code": "INTERNAL"}
    )


class ErrorCodes(SchemaExtension):
    """Runs once per operation (no per-field hook), after execution."""

    def on_operation(self) -> Iterator[None]:
        yield
        result = self.execution_context.result
        if result is not None and result.errors:
            result.errors = [render_error(e) for e in result.errors]
