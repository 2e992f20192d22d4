"""Budgets: monthly USD ceilings at four scopes, enforced under any concurrency.

Before each provider call the runtime *reserves* the call's worst-case cost against
every applicable ceiling (global, tenant, account, agent) in one transaction of
conditional UPDATEs (`... WHERE spent + reserved + amount <= limit`): the database
re-checks the condition under the row lock, so no interleaving of processes can
pass a ceiling. After the call it *settles* the reservation to the actual cost.
A refused reservation pauses the run with reason `budget`.
"""

import asyncio
import contextlib
import math
from collections.abc import AsyncGenerator, Awaitable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any, TypeVar

from tortoise.connection import get_connection
from tortoise.exceptions import IntegrityError
from tortoise.transactions import in_transaction

from agentplane.core import db
from agentplane.core.errors import BudgetExceeded, NotFound, ValidationFailed
from agentplane.models import (
    AccessToken,
    Agent,
    AuditEvent,
    Budget,
    BudgetScope,
    Reservation,
    RoleAssignment,
    Task,
    Tenant,
    TenantPhase,
    UsageRecord,
)
from agentplane.models.budget import current_window, to_units, to_usd
from agentplane.resolvers import audit
from agentplane.resolvers.auth import Actor
from agentplane.resolvers.pagination import Page, paginate
from agentplane.resolvers.permissions import (
    Perm,
    check_tenant,
    is_platform,
    require,
    scoped_to_tenant,
)
from agentplane.runtime.catalog import ModelInfo
from agentplane.runtime.control import RunPaused
from agentplane.runtime.providers.base import CompletionRequest, count_tokens
from agentplane.subscriptions import feeds
from agentplane.subscriptions.broker import get_broker
from agentplane.subscriptions.feeds import Sink

ALERT_CHANNEL = "agentplane:budget-alerts"
WARNING_PERCENT = 80
DEFAULT_MAX_OUTPUT_TOKENS = 4096
MAX_LIMIT_USD = Decimal("1000000000")
ALERT_STATES = ("ok", "warning", "exceeded")
T = TypeVar("T")


# ---------------------------------------------------------------- scopes and views


@dataclass
class BudgetView:
    scope: BudgetScope
    tenant_id: str | None
    account: str | None
    agent_id: str | None
    monthly_limit_usd: Decimal | None  # None: no ceiling at this scope
    current_spend_usd: Decimal
    reserved_usd: Decimal
    window: str
    id: str | None = None
    updated_at: datetime | None = None

    @property
    def alert_state(self) -> str:
        return ALERT_STATES[_level(self.current_spend_usd, self.monthly_limit_usd)]


def _level(spent: Decimal | int, limit: Decimal | int | None) -> int:
    if limit is None:
        return 0
    if spent >= limit:
        return 2
    return 1 if spent * 100 >= limit * WARNING_PERCENT else 0


def _key(scope: BudgetScope, tenant_id: str | None, account: str | None, agent: str | None) -> str:
    match scope:
        case BudgetScope.GLOBAL:
            return "global"
        case BudgetScope.TENANT:
            return f"tenant:{tenant_id}"
        case BudgetScope.ACCOUNT:
            return f"account:{account}"
        case BudgetScope.AGENT:
            return f"agent:{agent}"


def task_keys(tenant_id: str, agent_id: str, account: str | None) -> list[str]:
    keys = ["global", f"tenant:{tenant_id}", f"agent:{agent_id}"]
    if account:
        keys.append(f"account:{account}")
    return keys


@dataclass
class _Target:
    scope: BudgetScope
    tenant_id: str | None
    account: str | None
    agent_id: str | None

    @property
    def key(self) -> str:
        return _key(self.scope, self.tenant_id, self.account, self.agent_id)


async def _account_tenant(account: str) -> str | None:
    if account.startswith("tok_"):
        token = await AccessToken.get_or_none(id=account)
        if token is None:
            raise NotFound(f"Account {account!r} not found")
        return token.tenant_id
    if account.startswith("usr_"):
        assignment = await RoleAssignment.filter(user_id=account).order_by("id").first()
        if assignment is None:
            raise NotFound(f"Account {account!r} not found")
        return assignment.tenant_id
    raise ValidationFailed("`account` must be a user (usr_…) or token (tok_…) ID", field="account")


async def _target(
    actor: Actor,
    scope: BudgetScope,
    tenant: str | None,
    account: str | None,
    agent_id: str | None,
) -> _Target:
    """Which budget the arguments name, checked against what the caller may see."""
    if scope == BudgetScope.GLOBAL:
        if not is_platform(actor):
            raise NotFound("Global budget not found")
        return _Target(scope, None, None, None)
    if scope == BudgetScope.TENANT:
        if tenant is None:
            if actor.tenant_id is None:
                raise ValidationFailed("`tenant` is required for a tenant budget", field="tenant")
            return _Target(scope, actor.tenant_id, None, None)
        row = await Tenant.get_or_none(name=tenant)
        if row is None or row.phase == TenantPhase.DELETED:
            raise NotFound(f"Tenant {tenant!r} not found")
        check_tenant(actor, row.id, f"Tenant {tenant!r}")
        return _Target(scope, row.id, None, None)
    if scope == BudgetScope.ACCOUNT:
        account = account or (actor.subject if actor.kind != "admin_token" else None)
        if not account:
            raise ValidationFailed("`account` is required for an account budget", field="account")
        tenant_id = await _account_tenant(account)
        if tenant_id is not None:
            check_tenant(actor, tenant_id, f"Account {account!r}")
        elif not is_platform(actor):
            raise NotFound(f"Account {account!r} not found")
        return _Target(scope, tenant_id, account, None)
    if not agent_id:
        raise ValidationFailed("`agentId` is required for an agent budget", field="agentId")
    agent = await Agent.get_or_none(id=agent_id)
    if agent is None:
        raise NotFound(f"Agent {agent_id!r} not found")
    check_tenant(actor, agent.tenant_id, f"Agent {agent_id!r}")
    return _Target(scope, agent.tenant_id, None, agent.id)


async def _usage_sum(target: _Target, window: str) -> Decimal:
    """The window's priced usage at the scope, summed exactly."""
    qs = UsageRecord.filter(period=window, priced=True)
    if target.scope == BudgetScope.TENANT:
        qs = qs.filter(tenant_id=target.tenant_id)
    elif target.scope == BudgetScope.AGENT:
        qs = qs.filter(agent_id=target.agent_id)
    elif target.scope == BudgetScope.ACCOUNT:
        task_ids = await Task.filter(created_by=target.account).values_list("id", flat=True)
        qs = qs.filter(task_id__in=list(task_ids))
    costs = await qs.values_list("cost_usd", flat=True)
    return sum((Decimal(str(c)) for c in costs), Decimal(0))


def _view(row: Budget) -> BudgetView:
    window = current_window()
    rolled = row.period != window
    return BudgetView(
        scope=row.scope,
        tenant_id=row.tenant_id,
        account=row.account,
        agent_id=row.agent_id,
        monthly_limit_usd=to_usd(row.limit_units),
        current_spend_usd=Decimal(0) if rolled else to_usd(row.spent_units),
        reserved_usd=Decimal(0) if rolled else to_usd(row.reserved_units),
        window=window,
        id=row.id,
        updated_at=row.updated_at,
    )


# ---------------------------------------------------------------- reads and writes


async def get_budget(
    actor: Actor | None,
    scope: BudgetScope,
    tenant: str | None = None,
    account: str | None = None,
    agent_id: str | None = None,
) -> BudgetView:
    actor = require(actor, Perm.BUDGET_READ)
    target = await _target(actor, scope, tenant, account, agent_id)
    row = await Budget.get_or_none(scope_key=target.key)
    if row is not None:
        return _view(row)
    window = current_window()
    return BudgetView(
        scope,
        target.tenant_id,
        target.account,
        target.agent_id,
        None,
        await _usage_sum(target, window),
        Decimal(0),
        window,
    )


async def list_budgets(
    actor: Actor | None, first: int | None = None, after: str | None = None
) -> Page[Budget]:
    actor = require(actor, Perm.BUDGET_READ)
    qs = Budget.all() if is_platform(actor) else Budget.filter(tenant_id=actor.tenant_id)
    return await paginate(qs, first, after)


def view_of(row: Budget) -> BudgetView:
    return _view(row)


def _parse_limit(value: Any) -> Decimal:
    try:
        limit = Decimal(str(value))
    except (InvalidOperation, ValueError):
        raise ValidationFailed(
            "`monthlyLimitUsd` must be a number", field="monthlyLimitUsd"
        ) from None
    if not limit.is_finite() or limit < 0 or limit > MAX_LIMIT_USD:
        raise ValidationFailed(
            f"`monthlyLimitUsd` must be between 0 and {MAX_LIMIT_USD}", field="monthlyLimitUsd"
        )
    return limit


@audit.audited("budget.set")
async def set_budget(
    actor: Actor | None,
    *,
    scope: BudgetScope,
    monthly_limit_usd: Any,
    tenant: str | None = None,
    account: str | None = None,
    agent_id: str | None = None,
) -> BudgetView:
    actor = require(actor, Perm.BUDGET_WRITE)
    limit = _parse_limit(monthly_limit_usd)
    target = await _target(actor, scope, tenant, account, agent_id)
    if target.tenant_id is not None:
        from agentplane.resolvers.tenants import check_writable

        await check_writable(target.tenant_id)
    window = current_window()
    units = to_units(limit)
    row = await Budget.get_or_none(scope_key=target.key)
    if row is None:
        spent = to_units(await _usage_sum(target, window))
        try:
            row = await Budget.create(
                scope=scope,
                scope_key=target.key,
                tenant_id=target.tenant_id,
                account=target.account,
                agent_id=target.agent_id,
                limit_units=units,
                period=window,
                spent_units=spent,
                alert_level=_level(spent, units),
            )
        except IntegrityError:  # created concurrently: fall through to the update
            row = await Budget.get(scope_key=target.key)
    if row.limit_units != units:
        # A raised (or lowered) ceiling re-arms the alerts above the current level.
        await Budget.filter(id=row.id).update(limit_units=units, updated_at=datetime.now(UTC))
        row = await Budget.get(id=row.id)
        level = _level(row.spent_units, row.limit_units) if row.period == window else 0
        await Budget.filter(id=row.id).update(alert_level=level)
    return _view(await Budget.get(id=row.id))


@audit.audited("budget.remove")
async def remove_budget(
    actor: Actor | None,
    *,
    scope: BudgetScope,
    tenant: str | None = None,
    account: str | None = None,
    agent_id: str | None = None,
) -> BudgetView:
    actor = require(actor, Perm.BUDGET_WRITE)
    target = await _target(actor, scope, tenant, account, agent_id)
    row = await Budget.get_or_none(scope_key=target.key)
    if row is None:
        raise NotFound("No budget is set at that scope")
    view = _view(row)
    await Budget.filter(id=row.id).delete()
    return view


async def check_submit(
    tenant_id: str, agent_id: str, account: str | None, need: Decimal = Decimal(0)
) -> None:
    """Refuse work when a scope it would spend in has no room left at all (or not
    `need` more: what a budget-paused task's refused call wanted)."""
    window = current_window()
    units = to_units(need)
    for row in await Budget.filter(scope_key__in=task_keys(tenant_id, agent_id, account)):
        used = row.spent_units + row.reserved_units if row.period == window else 0
        if (used + units > row.limit_units) if units else (used >= row.limit_units):
            raise BudgetExceeded(
                f"The {row.scope.value} budget of ${to_usd(row.limit_units)} for {window} is spent",
                scope=row.scope.value.upper(),
                budgetId=row.id,
            )


# ---------------------------------------------------------------- enforcement


async def _update(conn: Any, sql: str, params: list[Any]) -> bool:
    """Run a conditional UPDATE; True when it changed a row. (asyncpg reports the
    row count; SQLite hands back the RETURNING rows.)"""
    count, rows = await conn.execute_query(sql, params)
    if conn.capabilities.dialect == "postgres":
        return bool(count)
    return bool(rows)


class _Refused(Exception):
    def __init__(self, budget_id: str) -> None:
        self.budget_id = budget_id


def worst_case_cost(info: ModelInfo, request: CompletionRequest) -> Decimal:
    """The most this call can cost: the prompt's tokens and the output cap at list price."""
    if not info.priced:
        return Decimal(0)  # unknown: recorded as unpriced, never as $0 spend
    prompt = sum(count_tokens(m.content or "") for m in request.messages)
    prompt += sum(
        count_tokens(str(c.arguments)) + 4 for m in request.messages for c in m.tool_calls
    )
    if info.provider != "scripted":
        # Our word-and-punctuation count can undercount a real tokenizer: leave a margin.
        prompt = math.ceil(prompt * 2) + 64 + 64 * len(request.tools)
    max_output = request.config.get("maxOutputTokens")
    if not isinstance(max_output, int) or max_output <= 0:
        max_output = DEFAULT_MAX_OUTPUT_TOKENS
    if info.id == "scripted/echo":  # it answers with one of the messages, never more
        longest = max((count_tokens(m.content or "") for m in request.messages), default=0)
        max_output = min(max_output, longest)
    return info.cost(prompt, max_output)


@dataclass
class Hold:
    """A reservation (None when no budget applies) and the task it was made for."""

    task: Task
    reservation: Reservation | None


async def _phase_and_budgets(task: Task) -> tuple[str | None, list[str]]:
    """The task's tenant phase and the IDs of the budgets it spends in (in ID order), in
    one statement: the agent loop reads both before every provider call."""
    keys = task_keys(task.tenant_id, task.agent_id, task.created_by)
    conn = get_connection("default")
    sql = (
        "SELECT tenant.phase, budget.id FROM tenant LEFT JOIN budget ON budget.scope_key IN"
        f" ({', '.join('?' for _ in keys)}) WHERE tenant.id = ? ORDER BY budget.id"
    )
    rows = await conn.execute_query_dict(db.placeholders(conn, sql), [*keys, task.tenant_id])
    if not rows:
        return None, []
    return rows[0]["phase"], [str(r["id"]) for r in rows if r["id"] is not None]


async def reserve(task: Task, amount: Decimal, ids: list[str] | None = None) -> Reservation | None:
    """Hold `amount` against every budget that applies to the task (`ids`, in ID order,
    when the caller read them), all or nothing.

    Raises BudgetExceeded (naming the refusing budget) when any has no room.
    """
    window = current_window()
    units = to_units(amount)
    # Read outside the transaction: with no budget in scope (the common case) there is
    # nothing to lock, and BEGIN/COMMIT would be two round trips for nothing. A budget
    # created meanwhile is no different from one created just after this call.
    if ids is None:
        keys = task_keys(task.tenant_id, task.agent_id, task.created_by)
        found = Budget.filter(scope_key__in=keys).order_by("id").values_list("id", flat=True)
        ids = [str(i) for i in await found]
    if not ids:
        return None
    try:
        async with in_transaction() as conn:
            # A new month: start the window afresh (idempotent; one process wins).
            await (
                Budget.filter(id__in=list(ids))
                .exclude(period=window)
                .update(period=window, spent_units=0, reserved_units=0, alert_level=0)
            )
            sql = db.placeholders(
                conn,
                "UPDATE budget SET reserved_units = reserved_units + ? "
                "WHERE id = ? AND period = ? AND spent_units + reserved_units + ? <= limit_units "
                "RETURNING id",
            )
            for budget_id in ids:  # in ID order, so concurrent reservers never deadlock
                if not await _update(conn, sql, [units, budget_id, window, units]):
                    raise _Refused(str(budget_id))
            return await Reservation.create(
                task_id=task.id, period=window, amount_units=units, budget_ids=list(ids)
            )
    except _Refused as refused:
        row = await Budget.get(id=refused.budget_id)
        raise BudgetExceeded(
            f"The {row.scope.value} budget of ${to_usd(row.limit_units)} for {window} has no "
            f"room for ${amount}",
            scope=row.scope.value.upper(),
            budgetId=row.id,
        ) from None


async def settle(
    reservation: Reservation | None, actual: Decimal, task: Task | None = None
) -> None:
    """Turn a reservation into spend: release the hold, add the actual cost (once)."""
    if reservation is None:
        return
    units = to_units(actual)
    async with in_transaction() as conn:
        won = await Reservation.filter(id=reservation.id, settled_at__isnull=True).update(
            settled_at=datetime.now(UTC)
        )
        if not won:
            return
        same = db.placeholders(
            conn,
            "UPDATE budget SET reserved_units = reserved_units - ?, spent_units = spent_units + ? "
            "WHERE id = ? AND period = ? RETURNING id",
        )
        other = db.placeholders(
            conn, "UPDATE budget SET spent_units = spent_units + ? WHERE id = ?"
        )
        for budget_id in reservation.budget_ids:
            if not await _update(
                conn, same, [reservation.amount_units, units, budget_id, reservation.period]
            ):  # the window rolled over while the call ran: count it in the new one
                await conn.execute_query(other, [units, budget_id])
    if units:
        await _announce_crossings(reservation.budget_ids, task)


async def release_stale(older_than: timedelta) -> int:
    """Settle reservations of calls that never came back (a crashed worker) at $0."""
    cutoff = datetime.now(UTC) - older_than
    stale = await Reservation.filter(settled_at__isnull=True, created_at__lt=cutoff)
    for reservation in stale:
        await settle(reservation, Decimal(0))
    return len(stale)


async def _announce_crossings(budget_ids: list[str], task: Task | None) -> None:
    """Publish each threshold crossing once per window: a conditional UPDATE of
    `alert_level` decides which process announces it."""
    for row in await Budget.filter(id__in=budget_ids):
        level = _level(row.spent_units, row.limit_units)
        if level == 0:
            continue
        won = await Budget.filter(id=row.id, period=row.period, alert_level__lt=level).update(
            alert_level=level
        )
        if not won:
            continue
        view = _view(row)
        state = ALERT_STATES[level]
        await audit.record(
            audit.SYSTEM,
            "budget.crossed",
            resource=row.id,
            tenant_id=row.tenant_id,
            task_id=task.id if task is not None else None,
            details={
                "scope": row.scope.value,
                "alertState": state,
                "monthlyLimitUsd": str(view.monthly_limit_usd),
                "currentSpendUsd": str(view.current_spend_usd),
                "window": row.period,
            },
        )
        await get_broker().publish(ALERT_CHANNEL, alert_event(row, state))


def alert_event(row: Budget, state: str) -> dict[str, Any]:
    return {
        "budget_id": row.id,
        "scope": row.scope.value,
        "tenant_id": row.tenant_id,
        "account": row.account,
        "agent_id": row.agent_id,
        "window": row.period,
        "alert_state": state,
        "monthly_limit_usd": str(to_usd(row.limit_units)),
        "current_spend_usd": str(to_usd(row.spent_units)),
        "at": datetime.now(UTC).isoformat(),
    }


# ---------------------------------------------------------------- the runtime's hooks


async def reserve_call(task: Task, info: ModelInfo, request: CompletionRequest) -> Hold:
    """Called by the agent loop before each provider call.

    Raises RunPaused when the task must stop here: its tenant was suspended or
    deleted, or a budget has no room for this call.
    """
    phase, ids = await _phase_and_budgets(task)
    if phase in (TenantPhase.SUSPENDED, TenantPhase.SUSPENDED.value):
        raise RunPaused("tenant_suspended")
    if phase in (TenantPhase.DELETED, TenantPhase.DELETED.value):
        raise RunPaused("tenant_deleted")
    amount = worst_case_cost(info, request)
    try:
        reservation = await reserve(task, amount, ids)
    except BudgetExceeded as exc:
        await audit.record(
            audit.SYSTEM,
            "budget.exhausted",
            resource=str(exc.details.get("budgetId", "")),
            tenant_id=task.tenant_id,
            task_id=task.id,
            outcome="denied",
            details={"message": exc.message, "reservedUsd": str(amount)},
        )
        raise RunPaused("budget", exc.message) from None
    return Hold(task, reservation)


async def refused_amount(task_id: str) -> Decimal:
    """What the call that paused the task for its budget wanted to reserve."""
    event = (
        await AuditEvent.filter(task_id=task_id, action="budget.exhausted").order_by("-id").first()
    )
    try:
        return Decimal(str(event.details.get("reservedUsd"))) if event else Decimal(0)
    except InvalidOperation:
        return Decimal(0)


async def guarded(hold: Hold, call: Awaitable[T]) -> T:
    """Await the provider call; if it fails, release the hold (nothing was spent)."""
    try:
        return await call
    except BaseException:
        await asyncio.shield(settle(hold.reservation, Decimal(0)))
        raise


async def settle_call(hold: Hold, actual: Decimal) -> None:
    await settle(hold.reservation, actual, hold.task)


# ---------------------------------------------------------------- alerts and usage


async def budget_alerts(
    actor: Actor | None, sink: Sink | None = None
) -> AsyncGenerator[dict[str, Any], None]:
    """Threshold crossings the caller may see, as they happen (one per level and window):
    written to `sink` by the alerts feed while it renders them, the others yielded."""
    actor = require(actor, Perm.BUDGET_READ)
    tenant_id = None if is_platform(actor) else actor.tenant_id

    def concerns(message: dict[str, Any]) -> bool:
        return tenant_id is None or message.get("tenant_id") == tenant_id

    alerts = feeds.follow_channel(ALERT_CHANNEL, _as_sent, concerns, sink)
    async with contextlib.aclosing(alerts):  # leaves the feed when the caller does
        async for message in alerts:
            yield message


def _as_sent(message: dict[str, Any]) -> dict[str, Any]:
    return message


async def list_usage(
    actor: Actor | None,
    first: int | None,
    after: str | None,
    tenant: str | None = None,
    model: str | None = None,
) -> Page[UsageRecord]:
    """Usage records, newest first."""
    actor = require(actor, Perm.USAGE_READ)
    qs = await scoped_to_tenant(actor, UsageRecord.all(), tenant)
    if model is not None:
        qs = qs.filter(model=model)
    return await paginate(qs, first, after, newest_first=True)
