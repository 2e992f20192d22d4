"""Compiled execution for hot read queries: a validated operation becomes a plan once.

graphql-core resolves every field of every object through the general machinery
(resolve info, `is_awaitable` checks, completion by type), about 3-6 µs a field: a page
of 50 tasks with their agents is ~550 fields, several milliseconds. For operations
built only from the fields below, the plan (cached per parsed document and operation)
reads attributes and serialises leaves with the schema's own scalar and enum
serialisers, level by level, loading relations in one batch per level through the same
per-request DataLoaders.

Authorisation is unchanged: root fields call the same resolvers with the same actor,
relations go through the same loaders (which call resolvers). Anything the plan does
not cover (fragments on other types, directives, a response key selected twice, unlisted
fields, subscriptions, other mutations) runs on the general path, and so does any query
whose plan raises: errors are always produced by the general path, so they are identical.

Mutations (only for the HTTP fast path; Strawberry's execution runs them otherwise): a
plan holds one root field of MUTATION_ROOTS, whose payload selects leaves and plain
objects only. It runs the same function as the schema's resolver, once: it cannot hand
over to the general path after its side effects, so it reports every error itself,
located and nulled as graphql-core reports it.
"""

import asyncio
import functools
import logging
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import orjson
from graphql import (
    DocumentNode,
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    GraphQLEnumType,
    GraphQLError,
    GraphQLList,
    GraphQLNonNull,
    GraphQLObjectType,
    GraphQLScalarType,
    GraphQLSchema,
    InlineFragmentNode,
    OperationDefinitionNode,
    OperationType,
    SelectionSetNode,
    get_operation_ast,
    located_error,
    specified_rules,
)
from graphql import ExecutionResult as GraphQLExecutionResult
from graphql.execution.values import VariableValues, get_argument_values, get_variable_values
from graphql.pyutils import Undefined, inspect
from strawberry.extensions import SchemaExtension
from strawberry.utils.operation import get_first_operation

from agentplane.core import observability as obs
from agentplane.core.errors import DomainError
from agentplane.models import TaskStatus
from agentplane.resolvers import agents as agent_resolvers
from agentplane.resolvers import json_pages
from agentplane.resolvers import tasks as task_resolvers
from agentplane.resolvers.pagination import encode_cursor
from agentplane.schema import cost, mutation, query
from agentplane.schema.hardening import MAX_TOKENS, parse_cached, validate_cached
from agentplane.schema.types import Connection

BACKREF = "strawberry-definition"
log = logging.getLogger(__name__)


COMPILED_HIT = obs.COMPILED_QUERIES.labels("hit")
COMPILED_FALLBACK = obs.COMPILED_QUERIES.labels("fallback")


class NotCompilable(Exception):
    pass


class Fallback(Exception):
    """The plan cannot answer this request: the general path will."""


def _context_actor(context: Any) -> Any:
    return context.actor


async def _tasks(context: Any, args: dict[str, Any]) -> Any:
    status = args.get("status")
    page = await task_resolvers.list_tasks(
        _context_actor(context),
        args.get("first"),
        args.get("after"),
        args.get("agentId"),
        TaskStatus(status) if status is not None else None,
    )
    return Connection.of(page)


async def _agents(context: Any, args: dict[str, Any]) -> Any:
    page = await agent_resolvers.list_agents(
        _context_actor(context), args.get("first"), args.get("after")
    )
    return Connection.of(page)


async def _task(context: Any, args: dict[str, Any]) -> Any:
    return await task_resolvers.get_task(_context_actor(context), args["id"])


async def _agent(context: Any, args: dict[str, Any]) -> Any:
    return await agent_resolvers.get_agent(_context_actor(context), args["id"])


async def _models(context: Any, args: dict[str, Any]) -> Any:
    return query.model_infos(_context_actor(context), args["enabledOnly"])


async def _submit_task(context: Any, args: dict[str, Any]) -> Any:
    given = args["input"]
    return await mutation.submit_task_payload(
        context, given["agentId"], given["query"], given.get("metadata")
    )


RootResolver = Callable[[Any, dict[str, Any]], Awaitable[Any]]
# Root fields the plan may start from: the same resolvers the schema's fields call.
ROOTS: dict[str, RootResolver] = {
    "tasks": _tasks,
    "agents": _agents,
    "task": _task,
    "agent": _agent,
    "models": _models,
}
MUTATION_ROOTS: dict[str, RootResolver] = {"submitTask": _submit_task}
# Relations resolved by async field resolvers: (parent type, field) -> (loader, key attribute).
RELATIONS: dict[tuple[str, str], tuple[str, str]] = {
    ("Task", "agent"): ("agent_loader", "agent_id"),
    ("AccessToken", "tenant"): ("tenant_loader", "tenant_id"),
}


@dataclass
class FieldPlan:
    key: str
    node: FieldNode
    parent: str  # the object type's name
    get: Callable[[Any], Any] | None = None  # parent object -> value
    serialize: Callable[[Any], Any] | None = None  # leaves
    non_null: bool = False
    is_list: bool = False
    item_non_null: bool = False
    children: list["FieldPlan"] | None = None  # objects
    object_type: GraphQLObjectType | None = None  # objects
    relation: tuple[str, str] | None = None  # (loader, key attribute)
    typename: str | None = None


@dataclass
class RootPlan:
    key: str
    resolve: RootResolver
    field_def: Any
    node: FieldNode
    non_null: bool
    is_list: bool
    item_non_null: bool
    children: list[FieldPlan] = field(default_factory=list)
    sql: "SqlConnection | None" = None  # PostgreSQL renders it (json_pages)
    object_type: GraphQLObjectType | None = None


@dataclass
class Plan:
    operation: OperationDefinitionNode
    roots: list[RootPlan]
    mutation: bool = False


def _unwrap(gql_type: Any) -> tuple[Any, bool, bool, bool]:
    """(named type, non_null, is_list, item_non_null)"""
    non_null = isinstance(gql_type, GraphQLNonNull)
    if non_null:
        gql_type = gql_type.of_type
    is_list = isinstance(gql_type, GraphQLList)
    item_non_null = False
    if is_list:
        gql_type = gql_type.of_type
        item_non_null = isinstance(gql_type, GraphQLNonNull)
        if item_non_null:
            gql_type = gql_type.of_type
        if isinstance(gql_type, GraphQLList):
            raise NotCompilable("nested lists")
    return gql_type, non_null, is_list, item_non_null


Fragments = dict[str, FragmentDefinitionNode]


def _fields(
    selection_set: SelectionSetNode, parent: str, fragments: Fragments
) -> Iterator[FieldNode]:
    """The fields of a selection set, fragments on the same object type spread in place."""
    keys: set[str] = set()
    for node in _flatten(selection_set, parent, fragments, frozenset()):
        key = (node.alias or node.name).value
        if key in keys:
            raise NotCompilable("repeated response key (merging takes the general path)")
        keys.add(key)
        yield node


def _flatten(
    selection_set: SelectionSetNode, parent: str, fragments: Fragments, seen: frozenset[str]
) -> Iterator[FieldNode]:
    for selection in selection_set.selections:
        if selection.directives:
            raise NotCompilable("directives take the general path")
        if isinstance(selection, FieldNode):
            yield selection
        elif isinstance(selection, InlineFragmentNode):
            condition = selection.type_condition
            if condition is not None and condition.name.value != parent:
                raise NotCompilable("type conditions take the general path")
            yield from _flatten(selection.selection_set, parent, fragments, seen)
        elif isinstance(selection, FragmentSpreadNode):
            name = selection.name.value
            fragment = fragments.get(name)
            if fragment is None or name in seen or fragment.type_condition.name.value != parent:
                raise NotCompilable("fragment on another type")
            yield from _flatten(fragment.selection_set, parent, fragments, seen | {name})


def _compile_object(
    parent: GraphQLObjectType,
    selection_set: SelectionSetNode,
    fragments: Fragments,
    strict: bool = False,  # a mutation's payload: leaves and plain objects only
) -> list[FieldPlan]:
    plans = []
    for node in _fields(selection_set, parent.name, fragments):
        name = node.name.value
        key = (node.alias or node.name).value
        if name == "__typename":
            plans.append(FieldPlan(key=key, node=node, parent=parent.name, typename=parent.name))
            continue
        if name.startswith("__"):
            raise NotCompilable("introspection")
        field_def = parent.fields.get(name)
        if field_def is None:
            raise NotCompilable(f"unknown field {name}")
        named, non_null, is_list, item_non_null = _unwrap(field_def.type)
        definition = (field_def.extensions or {}).get(BACKREF)
        resolver = getattr(definition, "base_resolver", None)
        plan = FieldPlan(
            key=key,
            node=node,
            parent=parent.name,
            non_null=non_null,
            is_list=is_list,
            item_non_null=item_non_null,
        )
        if strict and (is_list or (parent.name, name) in RELATIONS):
            raise NotCompilable("a mutation's payload selects leaves and plain objects")
        if (parent.name, name) in RELATIONS:
            if node.arguments or is_list:
                raise NotCompilable("relation with arguments")
            plan.relation = RELATIONS[(parent.name, name)]
        elif resolver is None:
            if node.arguments or definition is None:
                raise NotCompilable("arguments on a plain field")
            attribute = definition.python_name
            plan.get = lambda obj, attribute=attribute: getattr(obj, attribute)
        elif not resolver.is_async and not resolver.arguments and resolver.info_parameter is None:
            function = resolver.wrapped_func
            plan.get = lambda obj, function=function: function(obj, obj)
        else:
            raise NotCompilable(f"resolver of {parent.name}.{name}")
        if isinstance(named, GraphQLScalarType | GraphQLEnumType):
            if node.selection_set is not None:
                raise NotCompilable("selection on a leaf")
            plan.serialize = named.serialize
        elif isinstance(named, GraphQLObjectType) and node.selection_set is not None:
            plan.children = _compile_object(named, node.selection_set, fragments, strict)
            plan.object_type = named
        else:
            raise NotCompilable(f"abstract type at {parent.name}.{name}")
        plans.append(plan)
    return plans


# ---------------------------------------------------------------- rendered by PostgreSQL

# Root connections the database may render: (resolver, the node's projection) per field.
SQL_ROOTS: dict[str, Callable[..., Awaitable[json_pages.JsonPage | None]]] = {
    "tasks": json_pages.tasks_page,
    "agents": json_pages.agents_page,
}
# Joined relations: (parent type, field) -> model attribute (json_pages.RELATIONS).
SQL_RELATIONS = {("Task", "agent"): "agent"}
# Fields with a resolver whose value is a column: (type, field) -> (attribute, kind).
SQL_COMPUTED: dict[tuple[str, str], tuple[str, json_pages.Kind]] = {
    ("Task", "costUsd"): ("cost_usd", "float"),
    ("Task", "isTerminal"): ("status", ("in", tuple(s.value for s in TaskStatus if s.is_terminal))),
    ("Agent", "tools"): ("tools", "json"),  # a JSON list of strings
}
SCALAR_KINDS = {
    "ID": "text",
    "String": "text",
    "Int": "int",
    "Boolean": "bool",
    "Float": "float",
    "DateTime": "datetime",
    "JSON": "json",
}
PAGE_INFO = {
    "hasNextPage": lambda page: page.has_next,
    "hasPreviousPage": lambda page: page.has_previous,
    "startCursor": lambda page: encode_cursor(page.rows[0][0]) if page.rows else None,
    "endCursor": lambda page: encode_cursor(page.rows[-1][0]) if page.rows else None,
}


@dataclass(frozen=True)
class SqlConnection:
    """A connection whose nodes PostgreSQL renders: its keys, in selection order, as
    ("typename", name), ("edges", [(key, "cursor" | "node" | "typename:<Name>")]) or
    ("pageInfo", [(key, field or "typename:<Name>")])."""

    fields: tuple[tuple[str, str, Any], ...]
    node: json_pages.Projection
    resolve: Callable[..., Awaitable[json_pages.JsonPage | None]]


def _projection(
    parent: GraphQLObjectType, selection_set: SelectionSetNode, fragments: Fragments
) -> json_pages.Projection:
    fields: list[tuple[str, str, Any]] = []
    for node in _fields(selection_set, parent.name, fragments):
        name, key = node.name.value, (node.alias or node.name).value
        if name == "__typename":
            fields.append((key, "", f"typename:{parent.name}"))
            continue
        field_def = parent.fields[name]
        named, _, is_list, _ = _unwrap(field_def.type)
        definition = (field_def.extensions or {}).get(BACKREF)
        if node.arguments or definition is None:
            raise NotCompilable("not a column")
        if (parent.name, name) in SQL_COMPUTED:
            fields.append((key, *SQL_COMPUTED[(parent.name, name)]))
        elif is_list:
            raise NotCompilable("a list")
        elif (parent.name, name) in SQL_RELATIONS and node.selection_set is not None:
            nested = _projection(named, node.selection_set, fragments)
            fields.append((key, SQL_RELATIONS[(parent.name, name)], nested))
        elif getattr(definition, "base_resolver", None) is not None:
            raise NotCompilable("a resolver")
        elif isinstance(named, GraphQLEnumType):
            values = tuple(
                (str(getattr(v.value, "value", v.value)), n) for n, v in named.values.items()
            )
            fields.append((key, definition.python_name, ("enum", values)))
        elif isinstance(named, GraphQLScalarType) and named.name in SCALAR_KINDS:
            fields.append((key, definition.python_name, SCALAR_KINDS[named.name]))
        else:
            raise NotCompilable("not a column")
    return json_pages.Projection(tuple(fields))


def _sql_connection(
    name: str, connection: GraphQLObjectType, node: FieldNode, fragments: Fragments
) -> SqlConnection | None:
    resolve = SQL_ROOTS.get(name)
    if resolve is None or node.selection_set is None:
        return None
    try:
        fields: list[tuple[str, str, Any]] = []
        projection: json_pages.Projection | None = None
        for part in _fields(node.selection_set, connection.name, fragments):
            part_name, key = part.name.value, (part.alias or part.name).value
            if part_name == "__typename":
                fields.append((key, "typename", connection.name))
                continue
            part_type = _unwrap(connection.fields[part_name].type)[0]
            assert part.selection_set is not None  # validated: objects have selections
            inner = []
            for child in _fields(part.selection_set, part_type.name, fragments):
                child_name, child_key = child.name.value, (child.alias or child.name).value
                if child_name == "__typename":
                    inner.append((child_key, f"typename:{part_type.name}"))
                elif part_name == "edges" and child_name == "node":
                    if projection is not None:
                        raise NotCompilable("two node selections")
                    assert child.selection_set is not None
                    node_type = _unwrap(part_type.fields["node"].type)[0]
                    projection = _projection(node_type, child.selection_set, fragments)
                    inner.append((child_key, "node"))
                elif (part_name, child_name) == ("edges", "cursor") or part_name == "pageInfo":
                    inner.append((child_key, child_name))
                else:
                    raise NotCompilable(f"{part_name}.{child_name}")
            fields.append((key, part_name, tuple(inner)))
        node_projection = projection or json_pages.Projection(())
        json_pages.check(resolve, node_projection)
        return SqlConnection(tuple(fields), node_projection, resolve)
    except (NotCompilable, KeyError, ValueError):
        return None


def _render_connection(plan: SqlConnection, page: json_pages.JsonPage) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, part, inner in plan.fields:
        if part == "typename":
            out[key] = inner
        elif part == "edges":
            edges = []
            for primary_key, text in page.rows:
                edge: dict[str, Any] = {}
                for edge_key, what in inner:
                    if what == "node":
                        edge[edge_key] = orjson.Fragment(text)  # passed through unparsed
                    elif what == "cursor":
                        edge[edge_key] = encode_cursor(primary_key)
                    else:
                        edge[edge_key] = what.removeprefix("typename:")
                edges.append(edge)
            out[key] = edges
        else:
            out[key] = {
                info_key: what.removeprefix("typename:")
                if what.startswith("typename:")
                else PAGE_INFO[what](page)
                for info_key, what in inner
            }
    return out


def _compile(
    schema: GraphQLSchema, operation: OperationDefinitionNode, fragments: Fragments, mutations: bool
) -> Plan:
    if operation.directives:
        raise NotCompilable("directives on the operation")
    is_mutation = operation.operation == OperationType.MUTATION
    if is_mutation and mutations:
        root_type, resolvers = schema.mutation_type, MUTATION_ROOTS
        if len(operation.selection_set.selections) != 1:
            raise NotCompilable("one mutation at a time")
    elif operation.operation == OperationType.QUERY:
        root_type, resolvers = schema.query_type, ROOTS
    else:
        raise NotCompilable("queries, and mutations on the fast path")
    assert root_type is not None
    roots = []
    for node in _fields(operation.selection_set, root_type.name, fragments):
        name = node.name.value
        resolve = resolvers.get(name)
        field_def = root_type.fields.get(name)
        if resolve is None or field_def is None or node.selection_set is None:
            raise NotCompilable(f"root field {name}")
        named, non_null, is_list, item_non_null = _unwrap(field_def.type)
        if not isinstance(named, GraphQLObjectType):
            raise NotCompilable("root of an abstract type")
        roots.append(
            RootPlan(
                key=(node.alias or node.name).value,
                resolve=resolve,
                field_def=field_def,
                node=node,
                non_null=non_null,
                is_list=is_list,
                item_non_null=item_non_null,
                children=_compile_object(named, node.selection_set, fragments, is_mutation),
                object_type=named,
                sql=None if is_mutation else _sql_connection(name, named, node, fragments),
            )
        )
    return Plan(operation=operation, roots=roots, mutation=is_mutation)


@functools.lru_cache(maxsize=512)
def plan_for(
    schema: GraphQLSchema,
    document: DocumentNode,
    operation_name: str | None,
    mutations: bool = False,  # the HTTP fast path's: execute_mutation runs them
) -> Plan | None:
    operation = get_operation_ast(document, operation_name)
    if operation is None:
        return None
    fragments = {
        d.name.value: d for d in document.definitions if isinstance(d, FragmentDefinitionNode)
    }
    try:
        return _compile(schema, operation, fragments, mutations)
    except NotCompilable:
        return None


@dataclass(frozen=True)
class ReadyPlan:
    """A query text that parsed, validated and compiled: what the HTTP fast path needs."""

    plan: Plan
    operation_name: str | None  # as Strawberry names it: given, else the first operation's
    fragments: Fragments
    # When no variable sizes a list, the cost and its errors are the document's: estimated once.
    fixed_cost: tuple[cost.QueryCost, list[GraphQLError]] | None


@functools.lru_cache(maxsize=512)
def ready_plan(
    schema: GraphQLSchema, query: str, operation_name: str | None, production: bool
) -> ReadyPlan | None:
    """The plan for a document text, through the same parse and validation caches as
    the general path (schema/hardening.py); None for anything the plan does not answer
    (a syntax or validation error, an unknown operation, an uncovered selection)."""
    try:
        document = parse_cached(query, MAX_TOKENS)
    except GraphQLError:
        return None
    if validate_cached(schema, document, tuple(specified_rules), production):
        return None
    if operation_name is None:  # Strawberry's ExecutionContext.operation_name
        first = get_first_operation(document)
        operation_name = first.name.value if first is not None and first.name else None
    plan = plan_for(schema, document, operation_name, True)
    if plan is None:
        return None
    fragments = {
        d.name.value: d for d in document.definitions if isinstance(d, FragmentDefinitionNode)
    }
    fixed_cost = cost.fixed_estimate(schema, plan.operation, fragments)
    return ReadyPlan(plan, operation_name, fragments, fixed_cost)


async def _complete(
    plans: list[FieldPlan], objects: list[Any], context: Any
) -> list[dict[str, Any]]:
    """Complete `plans` on every object of one level, batching each relation once."""
    rows: list[dict[str, Any]] = [{} for _ in objects]
    for plan in plans:
        key = plan.key
        if plan.typename is not None:
            for row in rows:
                row[key] = plan.typename
            continue
        if plan.relation is not None:
            loader_name, attribute = plan.relation
            loader = getattr(context, loader_name)
            values = await asyncio.gather(
                *(
                    loader.load(k) if (k := getattr(obj, attribute)) is not None else _none()
                    for obj in objects
                )
            )
        else:
            get = plan.get
            assert get is not None
            values = [get(obj) for obj in objects]
        if plan.serialize is not None:
            serialize = plan.serialize
            for row, value in zip(rows, values, strict=True):
                if value is None:
                    if plan.non_null:
                        raise Fallback
                    row[key] = None
                elif plan.is_list:
                    row[key] = [_leaf(serialize, v, plan.item_non_null) for v in value]
                else:
                    row[key] = serialize(value)
            continue
        assert plan.children is not None
        # Objects: gather the whole level's children, complete them in one pass.
        flat: list[Any] = []
        for value in values:
            if value is None:
                if plan.non_null:
                    raise Fallback
            elif plan.is_list:
                if plan.item_non_null and any(v is None for v in value):
                    raise Fallback
                flat.extend(v for v in value if v is not None)
            else:
                flat.append(value)
        completed = iter(await _complete(plan.children, flat, context))
        for row, value in zip(rows, values, strict=True):
            if value is None:
                row[key] = None
            elif plan.is_list:
                row[key] = [None if v is None else next(completed) for v in value]
            else:
                row[key] = next(completed)
    return rows


async def _sql_page(
    plan: SqlConnection, context: Any, args: dict[str, Any]
) -> json_pages.JsonPage | None:
    actor, first, after = _context_actor(context), args.get("first"), args.get("after")
    if plan.resolve is json_pages.tasks_page:
        status = args.get("status")
        return await json_pages.tasks_page(
            actor,
            first,
            after,
            args.get("agentId"),
            TaskStatus(status) if status is not None else None,
            plan.node,
        )
    return await json_pages.agents_page(actor, first, after, plan.node)


async def _none() -> None:
    return None


def _leaf(serialize: Callable[[Any], Any], value: Any, non_null: bool) -> Any:
    if value is None:
        if non_null:
            raise Fallback
        return None
    return serialize(value)


def coerce_variables(
    schema: GraphQLSchema, plan: Plan, variables: dict[str, Any] | None
) -> VariableValues | None:
    """The operation's variables as execution sees them; None when they do not coerce
    (the general path reports that)."""
    coerced = get_variable_values(
        schema, plan.operation.variable_definitions or (), variables or {}
    )
    return None if isinstance(coerced, list) else coerced


async def execute_plan(
    schema: GraphQLSchema, plan: Plan, context: Any, coerced: VariableValues
) -> tuple[dict[str, Any] | None, list[GraphQLError]]:
    """Run `plan` with coerced variables: (data, errors of root fields' domain errors).
    Raises (Fallback or anything unexpected) when the general path must answer."""
    data: dict[str, Any] = {}
    errors: list[GraphQLError] = []
    for root in plan.roots:
        args = get_argument_values(root.field_def, root.node, coerced)
        try:
            if root.sql is not None:
                page = await _sql_page(root.sql, context, args)
                if page is not None:
                    data[root.key] = _render_connection(root.sql, page)
                    continue
            value = await root.resolve(context, args)
        except DomainError as exc:
            # Answered here, as graphql-core would: running the resolver again on the
            # general path would repeat its side effects (a denial is audited once).
            errors.append(
                GraphQLError(exc.message, [root.node], path=[root.key], original_error=exc)
            )
            if root.non_null:
                return None, errors
            data[root.key] = None
            continue
        if value is None:
            if root.non_null:
                raise Fallback
            data[root.key] = None
            continue
        if not root.is_list:
            data[root.key] = (await _complete(root.children, [value], context))[0]
            continue
        if root.item_non_null and any(v is None for v in value):
            raise Fallback
        completed = iter(
            await _complete(root.children, [v for v in value if v is not None], context)
        )
        data[root.key] = [None if v is None else next(completed) for v in value]
    return data, errors


class _Nulled(Exception):
    """A non-null field completed to null: its parent is null too (the error is recorded)."""


def _field_error(
    exc: Exception, plan: FieldPlan, path: list[str | int], errors: list[GraphQLError]
) -> None:
    """graphql-core's handling of an error in a field: located, recorded once, and the
    null carried up to the nearest nullable field (raised on while non-null)."""
    errors.append(located_error(exc, [plan.node], path))
    if plan.non_null:
        raise _Nulled


def _complete_strict(
    plans: list[FieldPlan], obj: Any, path: list[str | int], errors: list[GraphQLError]
) -> dict[str, Any]:
    """One object of a mutation's payload, completed as graphql-core completes it."""
    row: dict[str, Any] = {}
    for plan in plans:
        key = plan.key
        if plan.typename is not None:
            row[key] = plan.typename
            continue
        here = [*path, key]
        try:
            assert plan.get is not None
            value = plan.get(obj)
            if value is None:
                if plan.non_null:
                    name = f"{plan.parent}.{plan.node.name.value}"
                    raise TypeError(f"Cannot return null for non-nullable field {name}.")
                row[key] = None
            elif plan.serialize is not None:
                row[key] = _serialized(plan.serialize, value)
            else:
                assert plan.children is not None and plan.object_type is not None
                _check_type(plan.object_type, value, plan.node)
                try:
                    row[key] = _complete_strict(plan.children, value, here, errors)
                except _Nulled:
                    if plan.non_null:
                        raise
                    row[key] = None
        except _Nulled:
            raise
        except Exception as exc:
            _field_error(exc, plan, here, errors)
            row[key] = None
    return row


def _check_type(object_type: GraphQLObjectType, value: Any, node: FieldNode) -> None:
    """graphql-core's check of an object's runtime type (our types' `is_type_of`)."""
    if object_type.is_type_of is not None and not object_type.is_type_of(value, None):  # type: ignore[arg-type]
        message = f"Expected value of type '{object_type.name}' but got: {inspect(value)}."
        raise GraphQLError(message, [node])


def _serialized(serialize: Callable[[Any], Any], value: Any) -> Any:
    serialized = serialize(value)
    if serialized is None or serialized is Undefined:
        raise TypeError(f"{inspect(value)} serialized to {inspect(serialized)}")  # masked
    return serialized


async def execute_mutation(
    schema: GraphQLSchema, plan: Plan, context: Any, coerced: VariableValues
) -> tuple[dict[str, Any] | None, list[GraphQLError]]:
    """Run a mutation's plan (its one root field): (data, errors), every error included.
    Never raises but for cancellation: the mutation has run and cannot be run again."""
    [root] = plan.roots
    errors: list[GraphQLError] = []
    data: dict[str, Any] | None = None
    try:
        args = get_argument_values(root.field_def, root.node, coerced)
        value = await root.resolve(context, args)
        if value is not None:
            assert root.object_type is not None
            _check_type(root.object_type, value, root.node)
            data = _complete_strict(root.children, value, [root.key], errors)
        elif root.non_null:
            name = f"{schema.mutation_type}.{root.node.name.value}"
            raise TypeError(f"Cannot return null for non-nullable field {name}.")
    except _Nulled:
        pass
    except Exception as exc:
        errors.append(located_error(exc, [root.node], [root.key]))
    if data is None and root.non_null:
        return None, errors
    return {root.key: data}, errors


class CompiledQueries(SchemaExtension):
    """Answers a query from its compiled plan when it has one; else the general path runs."""

    async def on_execute(self) -> Any:
        ec = self.execution_context
        document = ec.graphql_document
        if ec.result is None and document is not None and not ec.pre_execution_errors:
            plan = plan_for(ec.schema._schema, document, ec.operation_name)
            if plan is not None:
                try:
                    coerced = coerce_variables(ec.schema._schema, plan, ec.variables)
                    if coerced is None:
                        raise Fallback
                    data, errors = await execute_plan(ec.schema._schema, plan, ec.context, coerced)
                except Exception:  # other errors are left to the general path
                    log.debug("compiled plan fell back", exc_info=True)
                    COMPILED_FALLBACK.inc()
                else:
                    COMPILED_HIT.inc()
                    ec.result = GraphQLExecutionResult(data=data, errors=errors or None)  # type: ignore[assignment]
        yield
