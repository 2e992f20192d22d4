"""Budgets: monthly USD ceilings at a scope, and the reservations held against them.

Amounts are integers in units of 1e-10 USD (the precision of every stored cost), so
the conditional UPDATEs that reserve and settle are exact on SQLite and PostgreSQL.
"""

from datetime import UTC, datetime
from decimal import Decimal
from enum import StrEnum

from tortoise import fields
from tortoise.models import Model

from agentplane.core import ids

UNIT = Decimal("1e-10")  # USD per stored unit


def to_units(usd: Decimal) -> int:
    return int((usd / UNIT).to_integral_value())


def to_usd(units: int) -> Decimal:
    return (Decimal(units) * UNIT).quantize(UNIT)


def current_window(now: datetime | None = None) -> str:
    """The budget window: the calendar month in UTC, e.g. "2026-11"."""
    return (now or datetime.now(UTC)).astimezone(UTC).strftime("%Y-%m")


class BudgetScope(StrEnum):
    GLOBAL = "global"
    TENANT = "tenant"
    ACCOUNT = "account"
    AGENT = "agent"


class Budget(Model):
    id = fields.CharField(max_length=40, primary_key=True, default=ids.budget_id)
    scope = fields.CharEnumField(BudgetScope, max_length=16)
    # "global", "tenant:<id>", "account:<subject>", "agent:<id>": one budget per scope.
    scope_key = fields.CharField(max_length=120, unique=True)
    tenant_id = fields.CharField(max_length=40, null=True)
    account = fields.CharField(max_length=40, null=True)
    agent_id = fields.CharField(max_length=40, null=True)
    limit_units = fields.BigIntField()
    period = fields.CharField(max_length=7)  # the window, "YYYY-MM" (UTC)
    # Settled spend of priced usage in `period`, and reservations still in flight.
    spent_units = fields.BigIntField(default=0)
    reserved_units = fields.BigIntField(default=0)
    # Highest alert already announced in `period`: 0 ok, 1 warning, 2 exceeded.
    alert_level = fields.IntField(default=0)
    created_at = fields.DatetimeField(auto_now_add=True)
    updated_at = fields.DatetimeField(auto_now=True)

    class Meta:
        table = "budget"


class Reservation(Model):
    """Worst-case cost of one provider call, held against budgets until settled."""

    id = fields.CharField(max_length=40, primary_key=True, default=ids.reservation_id)
    task_id = fields.CharField(max_length=40)
    period = fields.CharField(max_length=7)  # the window, "YYYY-MM" (UTC)
    amount_units = fields.BigIntField()
    budget_ids: fields.JSONField[list[str]] = fields.JSONField(default=list)
    settled_at = fields.DatetimeField(null=True)
    created_at = fields.DatetimeField(auto_now_add=True)

    class Meta:
        table = "budget_reservation"
        indexes = (("settled_at", "created_at"),)
