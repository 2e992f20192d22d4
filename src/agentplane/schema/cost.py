"""What an operation costs before it runs, by GitHub's formula.

Every connection must say how many nodes it wants (`first`, 1..100). From those
numbers, for the selected operation (fragments expanded):

- **node count**: for each connection (and each list taking `first`, such as a
  task's `steps`), the product of its own size and the sizes of the connections
  above it, summed. Capped at `MAX_NODES` per request.
- **cost**: for each connection, the number of requests needed to fill it if every
  page were full (the product of the sizes of the connections above it), summed,
  divided by 100 and rounded; at least 1.

The cost is what a caller is charged against its rate-limit bucket; `charge` is the
one function that does that, and `rateLimit { cost remaining resetAt }` shows it.
"""

import math
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from graphql import (
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    GraphQLError,
    GraphQLField,
    GraphQLInt,
    GraphQLInterfaceType,
    GraphQLList,
    GraphQLNonNull,
    GraphQLObjectType,
    GraphQLSchema,
    InlineFragmentNode,
    OperationDefinitionNode,
    SelectionSetNode,
    Undefined,
    VariableNode,
    get_named_type,
    value_from_ast,
)
from graphql.execution.values import get_variable_values

from agentplane.core.errors import DomainError
from agentplane.resolvers.auth import Actor

MAX_PAGE = 100  # `first` on any connection
MAX_NODES = 500_000  # per request, as GitHub
LIST_DEFAULT_SIZES = {("Task", "steps"): 1000}  # lists taking an optional `first`


class MissingPaginationBoundaries(DomainError):
    code = "MISSING_PAGINATION_BOUNDARIES"


class ExcessivePagination(DomainError):
    code = "EXCESSIVE_PAGINATION"


class MaxNodeLimitExceeded(DomainError):
    code = "MAX_NODE_LIMIT_EXCEEDED"


@dataclass(frozen=True)
class QueryCost:
    cost: int
    node_count: int


@dataclass(frozen=True)
class RateLimitStatus:
    """The caller's bucket after this request was charged (None: no bucket configured)."""

    cost: int
    node_count: int
    limit: int | None = None
    used: int | None = None
    remaining: int | None = None
    reset_at: datetime | None = None


Charger = Callable[[Actor | None, QueryCost], Awaitable[RateLimitStatus]]
_charger: Charger | None = None


def set_charger(charger: Charger | None) -> None:
    """Install the per-actor rate-limit bucket (the identity/rate-limit work plugs in here)."""
    global _charger
    _charger = charger


async def charge(actor: Actor | None, cost: QueryCost) -> RateLimitStatus:
    """Charge `cost` to the caller's bucket; without a bucket, report the cost alone."""
    if _charger is None:
        return RateLimitStatus(cost=cost.cost, node_count=cost.node_count)
    return await _charger(actor, cost)


def _unwrap_list(field: GraphQLField) -> bool:
    t = field.type
    if isinstance(t, GraphQLNonNull):
        t = t.of_type
    return isinstance(t, GraphQLList)


class _Walker:
    def __init__(
        self,
        schema: GraphQLSchema,
        fragments: Mapping[str, FragmentDefinitionNode],
        variables: Mapping[str, Any],
    ) -> None:
        self.schema = schema
        self.fragments = fragments
        self.variables = variables
        self.nodes = 0
        self.requests = 0
        self.errors: list[GraphQLError] = []
        self.read_variables = False  # a variable sized a list

    def fields(
        self, parent: Any, selection_set: SelectionSetNode, seen: frozenset[str]
    ) -> Iterable[tuple[Any, FieldNode]]:
        """(parent type, field) pairs of a selection set, fragments expanded once per path."""
        for selection in selection_set.selections:
            if isinstance(selection, FieldNode):
                yield parent, selection
            elif isinstance(selection, InlineFragmentNode):
                cond = selection.type_condition
                target = self.schema.get_type(cond.name.value) if cond else parent
                yield from self.fields(target or parent, selection.selection_set, seen)
            elif isinstance(selection, FragmentSpreadNode):
                name = selection.name.value
                fragment = self.fragments.get(name)
                if fragment is None or name in seen:  # unknown or cyclic: validation reports it
                    continue
                target = self.schema.get_type(fragment.type_condition.name.value)
                yield from self.fields(target or parent, fragment.selection_set, seen | {name})

    def walk(
        self, parent: Any, selection_set: SelectionSetNode, multiplier: int, seen: frozenset[str]
    ) -> None:
        for parent_type, node in self.fields(parent, selection_set, seen):
            name = node.name.value
            if name.startswith("__") or not isinstance(
                parent_type, GraphQLObjectType | GraphQLInterfaceType
            ):
                continue
            field = parent_type.fields.get(name)
            if field is None or node.selection_set is None:
                continue
            child = get_named_type(field.type)
            size = self.size_of(parent_type.name, name, field, node, child.name)
            if size is None:
                self.walk(child, node.selection_set, multiplier, seen)
                continue
            self.requests += multiplier
            self.nodes += multiplier * size
            self.walk(child, node.selection_set, multiplier * size, seen)

    def first_of(self, field: GraphQLField, node: FieldNode) -> Any:
        for argument in node.arguments or ():
            if argument.name.value == "first":
                if isinstance(argument.value, VariableNode):
                    self.read_variables = True
                    return self.variables.get(argument.value.name.value)
                value = value_from_ast(argument.value, GraphQLInt)
                return None if value is Undefined else value
        default = field.args["first"].default_value if "first" in field.args else None
        return None if default is Undefined else default

    def size_of(
        self, parent: str, name: str, field: GraphQLField, node: FieldNode, child: str
    ) -> int | None:
        """How many nodes this field can return, for connections and lists taking `first`."""
        connection = child.endswith("Connection")
        if not connection and not ("first" in field.args and _unwrap_list(field)):
            return None
        first = self.first_of(field, node)
        if first is not None and not isinstance(first, int):
            return 0  # a bad argument: execution reports it
        where = f"`{name}` connection"
        if first is None:
            if not connection:
                return LIST_DEFAULT_SIZES.get((parent, name), MAX_PAGE)
            self.errors.append(
                GraphQLError(
                    f"You must provide a `first` value to properly paginate the {where}.",
                    node,
                    original_error=MissingPaginationBoundaries(
                        f"You must provide a `first` value to properly paginate the {where}.",
                        field=name,
                    ),
                )
            )
            return 0
        if connection and first > MAX_PAGE:
            message = (
                f"Requesting {first} records on the {where} exceeds the `first` limit "
                f"of {MAX_PAGE} records."
            )
            self.errors.append(
                GraphQLError(message, node, original_error=ExcessivePagination(message, field=name))
            )
            return 0
        return max(first, 0)


def estimate(
    schema: GraphQLSchema,
    operation: OperationDefinitionNode,
    fragments: Mapping[str, FragmentDefinitionNode],
    variables: Mapping[str, Any] | None,
) -> tuple[QueryCost, list[GraphQLError]]:
    """The operation's cost and node count, and any pagination or node-limit errors."""
    # Variables as execution will see them (defaults applied); if they do not coerce,
    # execution reports that, and the raw values are the best estimate meanwhile.
    coerced = get_variable_values(
        schema, operation.variable_definitions or (), dict(variables or {})
    )
    values = variables or {} if isinstance(coerced, list) else coerced.coerced
    cost, errors, _ = _estimate(schema, operation, fragments, values)
    return cost, errors


def fixed_estimate(
    schema: GraphQLSchema,
    operation: OperationDefinitionNode,
    fragments: Mapping[str, FragmentDefinitionNode],
) -> tuple[QueryCost, list[GraphQLError]] | None:
    """`estimate`'s answer for every request of this operation, when no variable sizes a
    list in it; None when the variables make the cost."""
    cost, errors, read_variables = _estimate(schema, operation, fragments, {})
    return None if read_variables else (cost, errors)


def _estimate(
    schema: GraphQLSchema,
    operation: OperationDefinitionNode,
    fragments: Mapping[str, FragmentDefinitionNode],
    values: Mapping[str, Any],
) -> tuple[QueryCost, list[GraphQLError], bool]:
    root = schema.get_root_type(operation.operation)
    walker = _Walker(schema, fragments, values)
    if root is not None:
        walker.walk(root, operation.selection_set, 1, frozenset())
    # GitHub rounds to the nearest whole number (half up, not Python's half to even).
    cost = QueryCost(cost=max(1, math.floor(walker.requests / 100 + 0.5)), node_count=walker.nodes)
    errors = walker.errors
    if not errors and cost.node_count > MAX_NODES:
        message = (
            f"This query requests up to {cost.node_count:,} nodes, more than the "
            f"{MAX_NODES:,} allowed per request: ask for smaller pages (`first`)."
        )
        errors = [
            GraphQLError(
                message,
                operation,
                original_error=MaxNodeLimitExceeded(
                    message, nodeCount=cost.node_count, maxNodes=MAX_NODES
                ),
            )
        ]
    return cost, errors, walker.read_variables
