"""Batched trace reads: the steps of many tasks in one query, for DataLoaders."""

from collections import defaultdict
from dataclasses import dataclass

from agentplane.core.errors import ValidationFailed
from agentplane.models import Step
from agentplane.resolvers.auth import Actor
from agentplane.resolvers.permissions import Perm, check_tenant, require
from agentplane.resolvers.traces import MAX_STEPS_PAGE


@dataclass(frozen=True)
class StepsKey:
    """One task's trace page: steps with `after_seq < seq`, at most `first`."""

    task_id: str
    tenant_id: str
    after_seq: int | None = None
    first: int | None = None

    def bounds(self) -> tuple[int, int]:
        if self.first is not None and self.first < 0:
            raise ValidationFailed("`first` must not be negative", field="first")
        after = max(self.after_seq or 0, 0)
        size = min(self.first if self.first is not None else MAX_STEPS_PAGE, MAX_STEPS_PAGE)
        return after, size


async def load_steps(actor: Actor | None, keys: list[StepsKey]) -> list[list[Step]]:
    """Each key's steps in seq order. `seq` is gapless per task, so a page is exactly
    `after < seq <= after + first`: one query per distinct page shape, whatever the
    number of tasks, and never a row more than asked for."""
    actor = require(actor, Perm.TASK_READ)
    for key in keys:
        check_tenant(actor, key.tenant_id, "Task")
    by_shape: dict[tuple[int, int], list[str]] = defaultdict(list)
    for key in keys:
        by_shape[key.bounds()].append(key.task_id)
    found: dict[tuple[str, int, int], list[Step]] = defaultdict(list)
    for (after, size), task_ids in by_shape.items():
        if size == 0:
            continue
        rows = await Step.filter(
            task_id__in=task_ids, seq__gt=after, seq__lte=after + size
        ).order_by("task_id", "seq")
        for step in rows:
            found[(step.task_id, after, size)].append(step)
    return [found.get((key.task_id, *key.bounds()), []) for key in keys]
