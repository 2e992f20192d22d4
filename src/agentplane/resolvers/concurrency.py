"""Per-agent limit on concurrently running tasks (`Agent.max_concurrent_tasks`),
enforced when a worker claims a task."""

from collections.abc import Coroutine
from dataclasses import dataclass
from typing import Any

from tortoise.connection import get_connection
from tortoise.transactions import in_transaction

from agentplane.core import db
from agentplane.models import Task, TaskStatus


@dataclass(frozen=True)
class Candidate:
    """A claimable task as the claim's compare-and-set needs it, and its agent's limit."""

    id: str
    status: TaskStatus
    attempt: int
    agent_id: str
    cap: int | None


# The oldest claimable tasks whose agents are not already running as many tasks as they
# may (their queued tasks wait), with each agent's limit: one statement. `busy` is
# uncorrelated, so the database counts the limited agents' running tasks once.
_CANDIDATES = (
    "SELECT task.id, task.status, task.attempt, task.agent_id, agent.max_concurrent_tasks"
    " FROM task JOIN agent ON agent.id = task.agent_id"
    " WHERE task.status IN (?, ?) AND task.agent_id NOT IN ("
    "SELECT busy.id FROM agent AS busy WHERE busy.max_concurrent_tasks IS NOT NULL"
    " AND busy.max_concurrent_tasks <= (SELECT COUNT(*) FROM task AS r"
    " WHERE r.agent_id = busy.id AND r.status = ?))"
    " ORDER BY task.id LIMIT ?"
)


async def candidates(statuses: tuple[TaskStatus, TaskStatus], limit: int) -> list[Candidate]:
    conn = get_connection("default")
    params = [statuses[0].value, statuses[1].value, TaskStatus.RUNNING.value, limit]
    rows = await conn.execute_query_dict(db.placeholders(conn, _CANDIDATES), params)
    return [
        Candidate(
            str(r["id"]),
            TaskStatus(r["status"]),
            int(r["attempt"]),
            str(r["agent_id"]),
            r["max_concurrent_tasks"],
        )
        for r in rows
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
                "SELECT id FROM agent WHERE id = $1 FOR UPDATE", [candidate.agent_id]
            )
        running = await Task.filter(agent_id=candidate.agent_id, status=TaskStatus.RUNNING).count()
        if running >= candidate.cap:
            claim.close()
            return None
        return await claim
