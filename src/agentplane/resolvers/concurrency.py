"""Per-agent limit on concurrently running tasks (`Agent.max_concurrent_tasks`),
enforced when a worker claims a task."""

import functools
from collections.abc import Coroutine
from dataclasses import dataclass
from typing import Any

from tortoise.connection import get_connection
from tortoise.transactions import in_transaction

from agentplane.core import db
from agentplane.models import Agent, Task, TaskStatus


@dataclass(frozen=True)
class Candidate:
    """A claimable task as the claim's compare-and-set needs it, and its agent (whose
    limit the claim checks, and which its run uses: read with the candidate, not again)."""

    id: str
    status: TaskStatus
    attempt: int
    agent: Agent

    @property
    def cap(self) -> int | None:
        return self.agent.max_concurrent_tasks


# The oldest claimable tasks whose agents are not already running as many tasks as they
# may (their queued tasks wait), with each one's agent: one statement. `busy` is
# uncorrelated, so the database counts the limited agents' running tasks once.
@functools.cache
def _candidates_sql(postgres: bool) -> str:
    sql = (
        'SELECT "task"."id" AS "task_id", "task"."status", "task"."attempt",'
        f" {db.columns_as(Agent, 'agent', 'a_')}"
        ' FROM "task" JOIN "agent" ON "agent"."id" = "task"."agent_id"'
        ' WHERE "task"."status" IN (?, ?) AND "task"."agent_id" NOT IN ('
        'SELECT busy.id FROM "agent" AS busy WHERE busy.max_concurrent_tasks IS NOT NULL'
        ' AND busy.max_concurrent_tasks <= (SELECT COUNT(*) FROM "task" AS r'
        " WHERE r.agent_id = busy.id AND r.status = ?))"
        ' ORDER BY "task"."id" LIMIT ?'
    )
    return db.numbered(sql) if postgres else sql


async def candidates(statuses: tuple[TaskStatus, TaskStatus], limit: int) -> list[Candidate]:
    conn = get_connection("default")
    params = [statuses[0].value, statuses[1].value, TaskStatus.RUNNING.value, limit]
    sql = _candidates_sql(conn.capabilities.dialect == "postgres")
    return [
        Candidate(
            str(r["task_id"]),
            TaskStatus(r["status"]),
            int(r["attempt"]),
            db.model_from(Agent, r, "a_"),
        )
        for r in await conn.execute_query_dict(sql, params)
    ]


async def claim_within_limit(
    candidate: Candidate, claim: Coroutine[Any, Any, Task | None]
) -> Task | None:
    """Run `claim` (the queued → running compare-and-set) only while the task's agent is
    under its limit. The agent row's lock serialises concurrent claims of its tasks, so
    two workers cannot both take the last slot."""
    if candidate.cap is None:
        return await claim
    async with in_transaction() as conn:
        if conn.capabilities.dialect == "postgres":
            await conn.execute_query(
                "SELECT id FROM agent WHERE id = $1 FOR UPDATE", [candidate.agent.id]
            )
        running = await Task.filter(agent_id=candidate.agent.id, status=TaskStatus.RUNNING).count()
        if running >= candidate.cap:
            claim.close()
            return None
        return await claim
