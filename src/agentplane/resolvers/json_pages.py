"""Pages rendered to JSON by PostgreSQL: one statement, no model instantiated.

A transport describes what to render (`Projection`: JSON keys over model attributes, a
relation joined in) once per compiled plan; the permission check and the tenant filter
are decided here exactly as `list_tasks`/`list_agents` and `load_agents` decide them,
then one SQL statement (built once per projection and filter shape, then cached) returns
each row's JSON object as text, which the transport passes through unparsed. On SQLite,
or when the caller may not read the joined relation (the general path reports that), the
functions return None and the caller renders the ORM's models instead.
"""

import functools
from dataclasses import dataclass
from enum import Enum
from typing import Any

from tortoise.connection import get_connection
from tortoise.models import Model

from agentplane.models import Agent, Task, TaskStatus
from agentplane.resolvers.agents import agent_filters
from agentplane.resolvers.auth import Actor
from agentplane.resolvers.pagination import decode_cursor, page_size
from agentplane.resolvers.permissions import ROLES, Perm, is_platform
from agentplane.resolvers.tasks import task_filters

# How a leaf is rendered: "text" (strings, IDs), "int", "bool", "float" (a decimal
# column as a JSON number), "datetime" (ISO 8601 as Python's isoformat in UTC), "json"
# (a JSON column as is), ("enum", ((stored value, GraphQL name), ...)) or ("in",
# (value, ...)): whether the column holds one of the values.
Kind = str | tuple[str, tuple[tuple[str, str], ...]] | tuple[str, tuple[str, ...]]


@dataclass(frozen=True)
class Projection:
    """JSON keys of one object, in order: (key, model attribute, kind) for columns,
    (key, "", "typename:<Name>") for a constant, and (key, relation, Projection) for a
    to-one relation joined in (null when the caller may not see the row)."""

    fields: tuple[tuple[str, str, "Kind | Projection"], ...]


@dataclass
class JsonPage:
    rows: list[tuple[str, str]]  # (primary key, the node's JSON text)
    has_next: bool
    has_previous: bool


async def tasks_page(
    actor: Actor | None,
    first: int | None,
    after: str | None,
    agent_id: str | None,
    status: TaskStatus | None,
    node: Projection,
) -> JsonPage | None:
    """`list_tasks`, rendered by the database."""
    filters = task_filters(actor, agent_id, status)
    assert actor is not None  # task_filters requires one
    return await _page(actor, Task, filters, {}, first, after, True, node)


async def agents_page(
    actor: Actor | None, first: int | None, after: str | None, node: Projection
) -> JsonPage | None:
    """`list_agents`, rendered by the database."""
    filters, excluded = agent_filters(actor)
    assert actor is not None
    return await _page(actor, Agent, filters, excluded, first, after, False, node)


def check(page: Any, node: Projection) -> None:
    """Raise ValueError unless `page` (tasks_page or agents_page) can render `node`."""
    _check({tasks_page: Task, agents_page: Agent}[page], node)


def _check(model: type[Model], node: Projection) -> None:
    for _, attribute, kind in node.fields:
        if isinstance(kind, Projection):
            if (model, attribute) not in RELATIONS:
                raise ValueError(f"no relation {attribute}")
            _check(RELATIONS[(model, attribute)][0], kind)
        elif not (isinstance(kind, str) and kind.startswith("typename:")):
            if attribute not in model._meta.fields_map:
                raise ValueError(f"no column {attribute}")
            _render("t", _column(model, attribute), kind)


# The relations a projection may join, with the permission `load_agents` requires.
RELATIONS: dict[tuple[type[Model], str], tuple[type[Model], str, Perm]] = {
    (Task, "agent"): (Agent, "agent_id", Perm.AGENT_READ),
}


async def _page(
    actor: Actor,
    model: type[Model],
    filters: dict[str, Any],
    excluded: dict[str, Any],
    first: int | None,
    after: str | None,
    newest_first: bool,
    node: Projection,
) -> JsonPage | None:
    connection = get_connection("default")
    if connection.capabilities.dialect != "postgres":
        return None
    size = page_size(first)
    key = decode_cursor(after) if after is not None else None
    if not _may_join(actor, model, node):
        return None  # the general path reports the relation's denial
    # Join conditions repeat the tenant filter of the relation's own loader.
    tenant_join = not is_platform(actor) and _has_relation(node)
    sql = _sql(
        model, tuple(filters), tuple(excluded), key is not None, newest_first, node, tenant_join
    )
    params = [_value(v) for v in (*filters.values(), *excluded.values())]
    if key is not None:
        params.append(key)
    if tenant_join:
        params.append(actor.tenant_id)
    params.append(size + 1)
    _, rows = await connection.execute_query(sql, params)
    return JsonPage(
        rows=[(row[0], row[1]) for row in rows[:size]],
        has_next=len(rows) > size,
        has_previous=after is not None,
    )


def _may_join(actor: Actor, model: type[Model], node: Projection) -> bool:
    for _, attribute, kind in node.fields:
        if isinstance(kind, Projection):
            target, _, perm = RELATIONS[(model, attribute)]
            if perm not in ROLES.get(actor.role, frozenset()) or not _may_join(actor, target, kind):
                return False
    return True


def _has_relation(node: Projection) -> bool:
    return any(isinstance(kind, Projection) for _, _, kind in node.fields)


def _value(value: Any) -> Any:
    return value.value if isinstance(value, Enum) else value


def _column(model: type[Model], attribute: str) -> str:
    field = model._meta.fields_map[attribute]
    return str(getattr(field, "source_field", None) or attribute)


def _render(alias: str, column: str, kind: Kind) -> str:
    ref = f'{alias}."{column}"'
    if kind in ("text", "int", "bool"):
        return ref
    if kind == "float":
        return f"{ref}::float8"
    if kind == "json":
        return f"{ref}::json"
    if kind == "datetime":
        # Python's isoformat: microseconds only when not zero, "+00:00" for UTC.
        utc = f"({ref} AT TIME ZONE 'UTC')"
        return (
            f"CASE WHEN {ref} IS NULL THEN NULL ELSE to_char({utc}, 'YYYY-MM-DD\"T\"HH24:MI:SS')"
            f" || CASE WHEN extract(microseconds FROM {utc})::int % 1000000 = 0 THEN ''"
            f" ELSE to_char({utc}, '.US') END || '+00:00' END"
        )
    if isinstance(kind, tuple) and kind[0] == "in":
        return f"({ref} IN ({', '.join(_literal(str(value)) for value in kind[1])}))"
    if isinstance(kind, tuple) and kind[0] == "enum":
        pairs = [pair for pair in kind[1] if isinstance(pair, tuple)]
        cases = " ".join(f"WHEN {_literal(value)} THEN {_literal(name)}" for value, name in pairs)
        return f"CASE {ref} {cases} END"
    raise ValueError(f"unknown kind {kind!r}")


def _literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _object(
    model: type[Model], alias: str, node: Projection, joins: list[str], tenant_param: str | None
) -> str:
    parts = []
    for key, attribute, kind in node.fields:
        if isinstance(kind, Projection):
            target, foreign_key, _ = RELATIONS[(model, attribute)]
            joined = f"j{len(joins)}"
            condition = f'{joined}."id" = {alias}."{_column(model, foreign_key)}"'
            if tenant_param is not None:
                condition += f' AND {joined}."tenant_id" = {tenant_param}'
            joins.append(f'LEFT JOIN "{target._meta.db_table}" {joined} ON {condition}')
            inner = _object(target, joined, kind, joins, tenant_param)
            value = f'CASE WHEN {joined}."id" IS NULL THEN NULL ELSE {inner} END'
        elif isinstance(kind, str) and kind.startswith("typename:"):
            value = _literal(kind.removeprefix("typename:"))
        else:
            value = _render(alias, _column(model, attribute), kind)
        parts.append(f"{_literal(key)}, {value}")
    return f"json_build_object({', '.join(parts)})"


@functools.lru_cache(maxsize=256)
def _sql(
    model: type[Model],
    filter_keys: tuple[str, ...],
    excluded: tuple[str, ...],
    keyed: bool,
    newest_first: bool,
    node: Projection,
    tenant_join: bool,
) -> str:
    """One statement per projection and filter shape; the values are parameters."""
    params = iter(range(1, 100))
    where = [f't."{_column(model, k)}" = ${next(params)}' for k in filter_keys]
    where += [f't."{_column(model, k)}" <> ${next(params)}' for k in excluded]
    if keyed:
        where.append(f't."id" {"<" if newest_first else ">"} ${next(params)}')
    tenant_param = f"${next(params)}" if tenant_join else None
    limit = f"${next(params)}"
    joins: list[str] = []
    rendered = _object(model, "t", node, joins, tenant_param)
    return (
        f'SELECT t."id", {rendered}::text FROM "{model._meta.db_table}" t {" ".join(joins)}'
        f" WHERE {' AND '.join(where) or 'TRUE'}"
        f' ORDER BY t."id" {"DESC" if newest_first else "ASC"} LIMIT {limit}'
    )
