"""The budget race: with room for k tasks, 50 concurrent submissions through two API
processes (each with its worker) on PostgreSQL spend at most the ceiling."""

import asyncio
import time
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest

from agentplane.models import Budget, Task, TaskStatus, UsageRecord
from agentplane.models.budget import current_window, to_units
from tests.support.factories import make_agent, make_tenant, make_token
from tests.support.server import live_server

PER_TASK = Decimal("0.000002")  # scripted/echo, "hi" in, "hi" out (see test_budgets)
K = 10
SUBMISSIONS = 50
SUBMIT = 'mutation($a: ID!) { submitTask(input: {agentId: $a, query: "hi"}) { task { id } } }'


async def test_fifty_submissions_from_two_processes_spend_at_most_the_ceiling(
    services: Any, database_url: str, workdir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    if not database_url.startswith("postgres"):
        pytest.skip("the multi-process race runs on PostgreSQL")
    monkeypatch.setenv("AGENTPLANE_RATE_LIMIT_PER_MIN", "100000")
    # given room for exactly K tasks at the tenant scope
    acme = await make_tenant("acme")
    agent = await make_agent(acme, config={"maxOutputTokens": 1})
    operator = await make_token(acme, "operator")
    await Budget.create(
        scope="tenant",
        scope_key=f"tenant:{acme.id}",
        tenant_id=acme.id,
        limit_units=to_units(PER_TASK * K),
        period=current_window(),
    )

    with (
        live_server(database_url, workdir) as one,
        live_server(database_url, workdir) as two,
    ):
        # when 50 submissions race through both API processes
        async with httpx.AsyncClient(timeout=30) as client:

            async def submit(i: int) -> dict[str, Any]:
                base = (one, two)[i % 2].base_url
                response = await client.post(
                    base + "/graphql",
                    json={"query": SUBMIT, "variables": {"a": agent.id}},
                    headers={"Authorization": f"Bearer {operator}"},
                )
                assert response.status_code == 200, response.text
                body: dict[str, Any] = response.json()
                return body

            started = time.monotonic()
            results = await asyncio.gather(*(submit(i) for i in range(SUBMISSIONS)))
            submit_s = time.monotonic() - started

        # and every accepted task has either finished or paused
        deadline = time.monotonic() + 60
        while await Task.filter(status__in=[TaskStatus.QUEUED, TaskStatus.RUNNING]).exists():
            assert time.monotonic() < deadline, "tasks did not settle"
            await asyncio.sleep(0.1)

    # then each submission was accepted or refused as BUDGET_EXCEEDED, nothing else
    codes = [(r.get("errors") or [{}])[0].get("extensions", {}).get("code", "OK") for r in results]
    assert set(codes) <= {"OK", "BUDGET_EXCEEDED"}, results
    accepted = codes.count("OK")
    # exactly K completed, the rest paused for the budget: none failed
    statuses = await Task.all().values_list("status", "status_reason")
    completed = sum(1 for s, _ in statuses if s == TaskStatus.COMPLETED)
    paused = [r for s, r in statuses if s == TaskStatus.PAUSED]
    assert completed == K
    assert len(statuses) == accepted == completed + len(paused)
    assert set(paused) <= {"budget"}
    # spend never passed the ceiling; no reservation is left behind
    budget = await Budget.get(tenant_id=acme.id)
    assert budget.spent_units == budget.limit_units == to_units(PER_TASK * K)
    assert budget.reserved_units == 0
    costs = await UsageRecord.filter(tenant_id=acme.id).values_list("cost_usd", flat=True)
    assert sum(Decimal(str(c)) for c in costs) == PER_TASK * K
    print(
        f"\nbudget race: {SUBMISSIONS} submissions in {submit_s:.2f}s, {accepted} accepted, "
        f"{codes.count('BUDGET_EXCEEDED')} refused, {completed} completed, {len(paused)} paused"
    )
