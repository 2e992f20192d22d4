"""Render errors: domain errors get a stable `extensions.code`; anything else is masked."""

import logging
from collections.abc import Iterator

from graphql import GraphQLError, GraphQLSyntaxError
from strawberry.extensions import SchemaExtension
from strawberry.schema.exceptions import CannotGetOperationTypeError
from strawberry.types import ExecutionResult
from strawberry.types.execution import PreExecutionError, StreamExecutionResult

from agentplane.core.errors import DomainError, as_domain_error
from agentplane.core.observability import error_extensions
from agentplane.schema.hardening import strip_suggestions

log = logging.getLogger("agentplane.graphql")
MASKED_MESSAGE = "Internal server error"


def render_error(error: GraphQLError, production: bool = False) -> GraphQLError:
    rendered = _render(error, production)
    request_id = error_extensions()
    if request_id:  # the id in the X-Request-ID header and in the server's log lines
        rendered.extensions = {**(rendered.extensions or {}), **request_id}
    return rendered


def _render(error: GraphQLError, production: bool) -> GraphQLError:
    original = error.original_error
    if isinstance(error, GraphQLSyntaxError) or isinstance(original, GraphQLSyntaxError):
        return GraphQLError(
            error.message,
            nodes=error.nodes,
            source=error.source,
            positions=error.positions,
            extensions={"code": "GRAPHQL_PARSE_FAILED"},
        )
    if original is None:
        # Parse and validation errors: the message is safe and useful as it is
        # (in production, without "Did you mean" suggestions).
        return GraphQLError(
            strip_suggestions(error.message) if production else error.message,
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
        return _render(original, production)
    mapped = as_domain_error(original)
    if mapped is not None:
        log.warning("%s at %s: %s", mapped.code, error.path, original)
        return GraphQLError(
            mapped.message, nodes=error.nodes, path=error.path, extensions={"code": mapped.code}
        )
    log.error("unexpected error in %s", error.path, exc_info=original)
    return GraphQLError(
        MASKED_MESSAGE, nodes=error.nodes, path=error.path, extensions={"code": "INTERNAL"}
    )


class ErrorCodes(SchemaExtension):
    """Runs once per operation (no per-field hook), after execution; and, for streams
    (subscriptions, operations over websockets), on each result before it is sent,
    since `on_operation` only resumes after a stream has ended."""

    streamed = False

    def __init__(self, production: bool = False) -> None:
        self.production = production

    def on_operation(self) -> Iterator[None]:
        yield
        result = self.execution_context.result
        if not self.streamed and result is not None and result.errors:
            result.errors = [render_error(e, self.production) for e in result.errors]

    def on_stream_result(self, result: StreamExecutionResult) -> Iterator[None]:
        self.streamed = True
        if isinstance(result, ExecutionResult) and result.errors:
            # Request errors get their codes too; a parse error then fails its one
            # operation with an `error` message instead of closing the whole socket.
            # An unknown operation type is left for the protocol handler to answer.
            result.errors = [
                e
                if isinstance(result, PreExecutionError)
                and isinstance(e.original_error, CannotGetOperationTypeError)
                else render_error(e, self.production)
                for e in result.errors
            ]
        yield


def log_errors(errors: list[GraphQLError]) -> None:
    """Strawberry's error hook: domain and request errors are answers, not faults, so
    they are not logged with tracebacks; unexpected errors are logged, with theirs,
    where they are masked (`render_error`)."""
    for error in errors:
        original = error.original_error
        if original is None or isinstance(original, DomainError | GraphQLError):
            code = original.code if isinstance(original, DomainError) else "request"
            log.debug("graphql error (%s): %s", code, error.message)
