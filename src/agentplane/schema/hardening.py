"""Limits on what one GraphQL document may ask, on by default.

The limit rules are graphql-core validation rules built once, at import: the
validation cache is keyed by (schema, document, rules), so rules created per request
(as Strawberry's QueryDepthLimiter/MaxAliasesLimiter are when passed as factories)
would miss the cache on every request. Validation here is one LRU-cached call that
also passes `hide_suggestions` in production.

Per request, after validation, the operation's cost is estimated (schema/cost.py),
refused over the node limit or without pagination boundaries, and charged.
"""

import functools
import re
from collections.abc import AsyncIterator, Iterator
from typing import Any

from graphql import (
    ASTValidationRule,
    DirectiveNode,
    DocumentNode,
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    GraphQLError,
    GraphQLSchema,
    InlineFragmentNode,
    OperationDefinitionNode,
    OperationType,
    SelectionSetNode,
    get_operation_ast,
    parse,
    validate,
)
from graphql import ExecutionResult as GraphQLExecutionResult
from graphql.validation import NoSchemaIntrospectionCustomRule
from starlette.requests import Request
from strawberry.extensions import SchemaExtension
from strawberry.schema.validation_rules.maybe_null import MaybeNullValidationRule
from strawberry.schema.validation_rules.one_of import OneOfInputValidationRule

from agentplane.core.errors import DomainError, ValidationFailed
from agentplane.schema import cost

MAX_DEPTH = 10  # nested selection sets; introspection fields are not counted
MAX_ALIASES = 30
MAX_DIRECTIVES = 20
MAX_TOKENS = 2_000  # enforced by the parser, before any of the rest


def _limit_error(node: Any, message: str, limit: str, maximum: int, actual: int) -> GraphQLError:
    return GraphQLError(
        message,
        node,
        extensions={
            "code": "GRAPHQL_VALIDATION_FAILED",
            "limit": limit,
            "max": maximum,
            "actual": actual,
        },
    )


class QueryLimitsRule(ASTValidationRule):
    """Depth per operation (fragments expanded), aliases and directives per document."""

    def enter_document(self, node: DocumentNode, *_: Any) -> None:
        fragments = {
            d.name.value: d for d in node.definitions if isinstance(d, FragmentDefinitionNode)
        }
        aliases = directives = 0
        for definition in node.definitions:
            for found in _walk_all(definition):
                if isinstance(found, FieldNode) and found.alias is not None:
                    aliases += 1
                elif isinstance(found, DirectiveNode):
                    directives += 1
        if aliases > MAX_ALIASES:
            self.report_error(
                _limit_error(
                    node,
                    f"Too many aliases: {aliases}, at most {MAX_ALIASES} are allowed.",
                    "aliases",
                    MAX_ALIASES,
                    aliases,
                )
            )
        if directives > MAX_DIRECTIVES:
            self.report_error(
                _limit_error(
                    node,
                    f"Too many directives: {directives}, at most {MAX_DIRECTIVES} are allowed.",
                    "directives",
                    MAX_DIRECTIVES,
                    directives,
                )
            )
        for definition in node.definitions:
            if isinstance(definition, OperationDefinitionNode):
                depth = _depth(definition.selection_set, fragments, frozenset(), MAX_DEPTH + 1)
                if depth > MAX_DEPTH:
                    name = definition.name.value if definition.name else "anonymous"
                    self.report_error(
                        _limit_error(
                            definition,
                            f"Operation '{name}' is nested too deeply: more than "
                            f"{MAX_DEPTH} levels are not allowed.",
                            "depth",
                            MAX_DEPTH,
                            depth,
                        )
                    )


def _walk_all(node: Any) -> Iterator[Any]:
    """Every field and directive under `node` (fragments are definitions of their own)."""
    yield from getattr(node, "directives", None) or ()
    selection_set = getattr(node, "selection_set", None)
    if selection_set is None:
        return
    for selection in selection_set.selections:
        yield selection
        yield from _walk_all(selection)


def _depth(
    selection_set: SelectionSetNode,
    fragments: dict[str, FragmentDefinitionNode],
    seen: frozenset[str],
    cap: int,
) -> int:
    """Depth of a selection set, stopping at `cap`; fragment cycles are cut (and reported
    by graphql-core's NoFragmentCyclesRule)."""
    deepest = 0
    for selection in selection_set.selections:
        if isinstance(selection, FieldNode):
            if selection.name.value.startswith("__") or selection.selection_set is None:
                depth = 0 if selection.name.value.startswith("__") else 1
            else:
                depth = 1 + (
                    _depth(selection.selection_set, fragments, seen, cap - 1) if cap > 1 else 0
                )
        elif isinstance(selection, InlineFragmentNode):
            depth = _depth(selection.selection_set, fragments, seen, cap)
        elif isinstance(selection, FragmentSpreadNode):
            name = selection.name.value
            fragment = fragments.get(name)
            if fragment is None or name in seen:
                continue
            depth = _depth(fragment.selection_set, fragments, seen | {name}, cap)
        else:
            continue
        deepest = max(deepest, depth)
        if deepest >= cap:
            break
    return deepest


LIMIT_RULES: tuple[type[ASTValidationRule], ...] = (QueryLimitsRule,)
STRAWBERRY_RULES = (MaybeNullValidationRule, OneOfInputValidationRule)


@functools.lru_cache(maxsize=512)
def parse_cached(query: str, max_tokens: int) -> DocumentNode:
    return parse(query, max_tokens=max_tokens)


@functools.lru_cache(maxsize=512)
def validate_cached(
    schema: GraphQLSchema,
    document: DocumentNode,
    rules: tuple[type[ASTValidationRule], ...],
    production: bool,
) -> list[GraphQLError]:
    all_rules = (*rules, *LIMIT_RULES, *STRAWBERRY_RULES)
    if production:
        all_rules = (*all_rules, NoSchemaIntrospectionCustomRule)
    return validate(schema, document, all_rules, hide_suggestions=production)


_SUGGESTION = re.compile(r"\s*Did you mean [^?]*\?")


def strip_suggestions(message: str) -> str:
    """Execution-time messages (e.g. a bad enum value in a variable) can still suggest."""
    return _SUGGESTION.sub("", message)


class Hardening(SchemaExtension):
    """Cached parsing (token limit) and validation (limit rules), and the per-request cost."""

    def __init__(self, production: bool = False) -> None:
        self.production = production

    def on_operation(self) -> Iterator[None]:
        self.execution_context.parse_options["max_tokens"] = MAX_TOKENS
        yield

    def on_parse(self) -> Iterator[None]:
        ec = self.execution_context
        if ec.graphql_document is None and ec.query:
            try:
                ec.graphql_document = parse_cached(ec.query, MAX_TOKENS)
            except GraphQLError:
                # Strawberry parses once more (bounded by the same max_tokens) where its
                # own error handling turns the syntax error into a GraphQL error response.
                pass
        yield

    def on_validate(self) -> Iterator[None]:
        ec = self.execution_context
        assert ec.graphql_document is not None
        ec.pre_execution_errors = validate_cached(
            ec.schema._schema, ec.graphql_document, tuple(ec.validation_rules), self.production
        )
        yield

    async def on_execute(self) -> AsyncIterator[None]:
        ec = self.execution_context
        document = ec.graphql_document
        operation = get_operation_ast(document, ec.operation_name) if document else None
        if (
            operation is not None
            and operation.operation == OperationType.SUBSCRIPTION
            and isinstance(getattr(ec.context, "request", None), Request)
        ):
            refused = ValidationFailed(
                "Subscriptions need a websocket: connect to /graphql with the "
                "graphql-transport-ws (or graphql-ws) protocol"
            )
            error = GraphQLError(refused.message, operation, original_error=refused)
            ec.result = GraphQLExecutionResult(data=None, errors=[error])  # type: ignore[assignment]
        elif operation is not None and operation.operation != OperationType.SUBSCRIPTION:
            fragments = {
                d.name.value: d
                for d in document.definitions  # type: ignore[union-attr]
                if isinstance(d, FragmentDefinitionNode)
            }
            estimate, errors = cost.estimate(ec.schema._schema, operation, fragments, ec.variables)
            if errors:
                ec.result = GraphQLExecutionResult(data=None, errors=errors)  # type: ignore[assignment]
            else:
                context = ec.context
                try:
                    actor = getattr(context, "actor", None)
                except DomainError:
                    actor = None  # an invalid credential: the fields report it
                try:
                    status = await cost.charge(actor, estimate)
                except DomainError as exc:  # e.g. the bucket is empty: nothing runs
                    error = GraphQLError(exc.message, operation, original_error=exc)
                    ec.result = GraphQLExecutionResult(data=None, errors=[error])  # type: ignore[assignment]
                else:
                    if hasattr(context, "rate_limit"):
                        context.rate_limit = status
        yield
