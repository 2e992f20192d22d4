"""Batched nested connections: a page of tasks for each of many agents in one query.

`agents { tasks(first: n) }` would otherwise query once per agent. A window function
(`ROW_NUMBER() OVER (PARTITION BY agent_id …)`, in PostgreSQL and SQLite alike) keeps
each agent's newest `first + 1` tasks, so the pages are exactly what `list_tasks`
returns for each agent alone, with the same permission check and tenant filter.
"""

from collections import defaultdict
from dataclasses import dataclass

from tortoise.connection import get_connection

from agentplane.models import Task
from agentplane.resolvers.auth import Actor
from agentplane.resolvers.pagination import Page, decode_cursor, page_size
from agentplane.resolvers.permissions import Perm, is_platform, require


class _Params:
    """Bound parameters in the dialect's placeholder style."""

    def __init__(self, postgres: bool) -> None:
        self.postgres = postgres
        self.values: list[object] = []

    def add(self, value: object) -> str:
        self.values.append(value)
        return f"${len(self.values)}" if self.postgres else "?"


@dataclass(frozen=True)
class AgentTasksKey:
    agent_id: str
    first: int | None = None
    after: str | None = None

    def shape(self) -> tuple[int, str | None]:
        """(page size, id to start below); raises ValidationFailed on bad arguments."""
        return page_size(self.first), decode_cursor(self.after) if self.after else None


async def load_agent_task_pages(actor: Actor | None, keys: list[AgentTasksKey]) -> list[Page[Task]]:
    actor = require(actor, Perm.TASK_READ)
    conn = get_connection("default")
    postgres = conn.capabilities.dialect == "postgres"
    by_shape: dict[tuple[int, str | None], list[str]] = defaultdict(list)
    for key in keys:
        by_shape[key.shape()].append(key.agent_id)
    found: dict[tuple[str, int, str | None], list[Task]] = defaultdict(list)
    for (size, below), agent_ids in by_shape.items():
        params = _Params(postgres)
        param = params.add
        where = [f'"agent_id" IN ({", ".join(param(a) for a in dict.fromkeys(agent_ids))})']
        if not is_platform(actor):
            where.append(f'"tenant_id" = {param(actor.tenant_id)}')
        if below is not None:
            where.append(f'"id" < {param(below)}')
        sql = (
            'SELECT * FROM (SELECT *, ROW_NUMBER() OVER (PARTITION BY "agent_id"'
            f' ORDER BY "id" DESC) AS "_rn" FROM "task" WHERE {" AND ".join(where)}) AS "ranked"'
            f' WHERE "_rn" <= {param(size + 1)} ORDER BY "agent_id", "id" DESC'
        )
        for row in await conn.execute_query_dict(sql, params.values):
            task = Task._init_from_db(**row)
            found[(task.agent_id, size, below)].append(task)
    pages = []
    for key in keys:
        size, below = key.shape()
        rows = found.get((key.agent_id, size, below), [])
        pages.append(
            Page(items=rows[:size], has_next=len(rows) > size, has_previous=bool(key.after))
        )
    return pages
