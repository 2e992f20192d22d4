"""Spend and token figures, read from priced usage records (the one source of spend)."""

import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from enum import StrEnum
from typing import Any

from pypika_tortoise.terms import Function as PypikaFunction
from tortoise.functions import Count, Function, Sum

from agentplane.core.errors import NotFound, ValidationFailed
from agentplane.models import Agent, Task, Tenant, UsageRecord
from agentplane.models.budget import current_window
from agentplane.resolvers.auth import Actor
from agentplane.resolvers.permissions import Perm, check_tenant, require, scoped_to_tenant

_WINDOW = re.compile(r"\d{4}-(0[1-9]|1[0-2])")


@dataclass
class ModelUsage:
    model: str
    input_tokens: int
    output_tokens: int
    cost_usd: Decimal
    calls: int


@dataclass
class UsageSummary:
    tenant_id: str
    period_start: datetime
    period_end: datetime
    input_tokens: int = 0
    output_tokens: int = 0
    cost_usd: Decimal = Decimal(0)
    calls: int = 0
    unpriced_calls: int = 0
    by_model: list[ModelUsage] = field(default_factory=list)


def month_bounds(now: datetime | None = None) -> tuple[datetime, datetime]:
    now = now or datetime.now(UTC)
    start = now.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    end = (
        start.replace(year=start.year + 1, month=1)
        if start.month == 12
        else start.replace(month=start.month + 1)
    )
    return start, end


async def tenant_usage(
    actor: Actor | None, tenant_id: str | None = None, now: datetime | None = None
) -> UsageSummary:
    """The calendar month's usage (UTC) of the caller's tenant (or, for platform
    callers, of the tenant they name)."""
    actor = require(actor, Perm.TENANT_READ)
    tenant_id = tenant_id or actor.tenant_id
    if tenant_id is None:
        raise ValidationFailed("Platform-scoped callers must name a tenant", field="tenant")
    check_tenant(actor, tenant_id, "Tenant")
    start, end = month_bounds(now)
    rows = (
        await UsageRecord.filter(tenant_id=tenant_id, created_at__gte=start, created_at__lt=end)
        .group_by("model")
        .annotate(
            input_tokens_sum=Sum("input_tokens"),
            output_tokens_sum=Sum("output_tokens"),
            cost_sum=Sum("cost_usd"),
            calls=Count("id"),
        )
        .order_by("model")
        .values("model", "input_tokens_sum", "output_tokens_sum", "cost_sum", "calls")
    )
    unpriced = await UsageRecord.filter(
        tenant_id=tenant_id, created_at__gte=start, created_at__lt=end, priced=False
    ).count()
    summary = UsageSummary(tenant_id, start, end, unpriced_calls=unpriced)
    for row in rows:
        usage = ModelUsage(
            model=row["model"],
            input_tokens=int(row["input_tokens_sum"] or 0),
            output_tokens=int(row["output_tokens_sum"] or 0),
            cost_usd=Decimal(str(row["cost_sum"] or 0)),
            calls=int(row["calls"]),
        )
        summary.by_model.append(usage)
        summary.input_tokens += usage.input_tokens
        summary.output_tokens += usage.output_tokens
        summary.cost_usd += usage.cost_usd
        summary.calls += usage.calls
    return summary


@dataclass
class TaskUsage:
    input_tokens: int
    output_tokens: int
    cost_usd: Decimal


async def task_usage(actor: Actor | None, task: Task) -> TaskUsage:
    """Tokens and cost of one task's provider calls. `task` was already authorised."""
    actor = require(actor, Perm.TASK_READ)
    check_tenant(actor, task.tenant_id, "Task")
    row = (
        await UsageRecord.filter(task_id=task.id)
        .annotate(i=Sum("input_tokens"), o=Sum("output_tokens"))
        .first()
        .values("i", "o")
    )
    return TaskUsage(
        input_tokens=int((row or {}).get("i") or 0),
        output_tokens=int((row or {}).get("o") or 0),
        cost_usd=task.cost_usd,
    )


async def tasks_usage(actor: Actor | None, task_list: list[Task]) -> dict[str, TaskUsage]:
    """`task_usage` for many tasks in one query (lists must not cost a query per row)."""
    actor = require(actor, Perm.TASK_READ)
    for task in task_list:
        check_tenant(actor, task.tenant_id, "Task")
    ids = [t.id for t in task_list]
    rows = (
        await UsageRecord.filter(task_id__in=ids)
        .group_by("task_id")
        .annotate(i=Sum("input_tokens"), o=Sum("output_tokens"))
        .values("task_id", "i", "o")
        if ids
        else []
    )
    tokens = {r["task_id"]: (int(r["i"] or 0), int(r["o"] or 0)) for r in rows}
    return {t.id: TaskUsage(*tokens.get(t.id, (0, 0)), cost_usd=t.cost_usd) for t in task_list}


async def list_usage_records(
    actor: Actor | None, tenant: str | None = None, limit: int = 100
) -> list[UsageRecord]:
    """Usage records, newest first, with their tenant loaded. Tenant callers see their own;
    platform callers see all, or one tenant's when they name it."""
    actor = require(actor, Perm.TENANT_READ)
    if not 1 <= limit <= 1000:
        raise ValidationFailed("`limit` must be 1..1000", field="limit")
    qs = (
        UsageRecord.all()
        if actor.tenant_id is None
        else UsageRecord.filter(tenant_id=actor.tenant_id)
    )
    if tenant is not None:
        found = await Tenant.get_or_none(name=tenant) if len(tenant) <= 63 else None
        if found is None:
            raise NotFound(f"Tenant {tenant!r} not found")
        check_tenant(actor, found.id, f"Tenant {tenant!r}")
        qs = qs.filter(tenant_id=found.id)
    return await qs.select_related("tenant").order_by("-created_at", "-id").limit(limit)


class SpendDimension(StrEnum):
    AGENT = "agent"
    MODEL = "model"
    DAY = "day"


@dataclass
class SpendBucket:
    key: str  # an agent ID, a model, or a day "YYYY-MM-DD"
    label: str  # the agent's name, else the key
    cost_usd: Decimal
    input_tokens: int
    output_tokens: int
    calls: int
    unpriced_calls: int


class _DateOf(PypikaFunction):  # type: ignore[misc]
    """SQL `DATE(x)`: the same function on SQLite (ISO text) and PostgreSQL."""

    def __init__(self, term: Any, alias: str | None = None) -> None:
        super().__init__("DATE", term, alias=alias)


class _Day(Function):
    database_func = _DateOf


async def spend_breakdown(
    actor: Actor | None,
    by: SpendDimension,
    tenant: str | None = None,
    window: str | None = None,
) -> list[SpendBucket]:
    """A budget window's priced usage (default: this month) grouped by agent, model or
    day (UTC), in the caller's tenant (platform callers: every tenant unless they name one)."""
    actor = require(actor, Perm.USAGE_READ)
    window = window or current_window()
    if not _WINDOW.fullmatch(window):
        raise ValidationFailed('`window` is a month, "YYYY-MM"', field="window")
    qs = await scoped_to_tenant(actor, UsageRecord.filter(period=window), tenant)
    column = {SpendDimension.AGENT: "agent_id", SpendDimension.MODEL: "model"}.get(by)
    if column is None:
        qs = qs.annotate(day=_Day("created_at"))
        column = "day"
    rows = (
        await qs.group_by(column)
        .annotate(
            i=Sum("input_tokens"),
            o=Sum("output_tokens"),
            c=Sum("cost_usd"),
            n=Count("id"),
        )
        .values(column, "i", "o", "c", "n")
    )
    unpriced_rows = (
        await qs.filter(priced=False).group_by(column).annotate(n=Count("id")).values(column, "n")
    )
    unpriced = {str(r[column]): int(r["n"]) for r in unpriced_rows}
    names: dict[str, str] = {}
    if by == SpendDimension.AGENT:
        agent_ids = [r[column] for r in rows]
        names = dict(await Agent.filter(id__in=agent_ids).values_list("id", "name"))  # type: ignore[arg-type]
    buckets = [
        SpendBucket(
            key=str(r[column]),
            label=names.get(str(r[column]), str(r[column])),
            cost_usd=Decimal(str(r["c"] or 0)),
            input_tokens=int(r["i"] or 0),
            output_tokens=int(r["o"] or 0),
            calls=int(r["n"]),
            unpriced_calls=unpriced.get(str(r[column]), 0),
        )
        for r in rows
    ]
    if by == SpendDimension.DAY:
        return sorted(buckets, key=lambda b: b.key)
    return sorted(buckets, key=lambda b: (-b.cost_usd, b.key))
