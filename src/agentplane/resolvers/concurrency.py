"""Per-agent limit on concurrently running tasks (`Agent.max_concurrent_tasks`),
enforced when a worker claims a task."""

from collections.abc import Coroutine
from typing import Any

from tortoise.functions import Count
from tortoise.transactions import in_transaction

from agentplane.models import Agent, Task, TaskStatus


async def saturated_agents() -> list[str]:
    """Agents already running as many tasks as they may: their queued tasks wait."""
    limited = dict(
        await Agent.filter(max_concurrent_tasks__isnull=False).values_list(
            "id", "max_concurrent_tasks"
        )
    )
    if not limited:
        return []
    running = dict(
        await Task.filter(status=TaskStatus.RUNNING, agent_id__in=list(limited))
        .annotate(n=Count("id"))
        .group_by("agent_id")
        .values_list("agent_id", "n")
    )
    return [agent for agent, cap in limited.items() if running.get(agent, 0) >= cap]


async def claim_within_limit(task_id: str, claim: Coroutine[Any, Any, Task | None]) -> Task | None:
    """Run `claim` (the queued → running compare-and-set) only while the task's agent is
    under its limit. The agent row's lock serialises concurrent claims of its tasks, so
    two workers cannot both take the last slot."""
    row = await Task.filter(id=task_id).first().values("agent_id", "agent__max_concurrent_tasks")
    cap = row["agent__max_concurrent_tasks"] if row else None
    if row is None or cap is None:
        return await claim
    async with in_transaction() as conn:
        if conn.capabilities.dialect == "postgres":
            await conn.execute_query(
                "SELECT id FROM agent WHERE id = $1 FOR UPDATE", [row["agent_id"]]
            )
        running = await Task.filter(agent_id=row["agent_id"], status=TaskStatus.RUNNING).count()
        if running >= cap:
            claim.close()
            return None
        return await claim
