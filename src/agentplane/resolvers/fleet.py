"""Fleet figures for the dashboard: how many tasks are in each status, per agent."""

from dataclasses import dataclass

from tortoise.functions import Count

from agentplane.models import Task, TaskStatus
from agentplane.resolvers.auth import Actor
from agentplane.resolvers.permissions import Perm, require, scoped_to_tenant


@dataclass
class TaskCount:
    agent_id: str
    status: TaskStatus
    status_reason: str | None  # e.g. "budget" for a task paused by its budget
    count: int


async def task_counts(actor: Actor | None, tenant: str | None = None) -> list[TaskCount]:
    """Tasks by agent, status and status reason, in one grouped query over the caller's
    tenant (platform callers: every tenant unless they name one)."""
    actor = require(actor, Perm.TASK_READ)
    qs = await scoped_to_tenant(actor, Task.all(), tenant)
    rows = (
        await qs.group_by("agent_id", "status", "status_reason")
        .annotate(n=Count("id"))
        .values("agent_id", "status", "status_reason", "n")
    )
    counts = [
        TaskCount(r["agent_id"], TaskStatus(r["status"]), r["status_reason"], int(r["n"]))
        for r in rows
    ]
    return sorted(counts, key=lambda c: (c.agent_id, c.status.value, c.status_reason or ""))
