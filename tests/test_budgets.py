"""Budgets: reserve-then-settle enforcement, pause at a ceiling and resume after raising it,
alerts (deduplicated per window), usage records and the refusal of new work."""

import asyncio
from decimal import Decimal
from typing import Any

import pytest

from agentplane.core.errors import BudgetExceeded
from agentplane.core.pricing import PRICING_VERSION
from agentplane.models import AuditEvent, Budget, Step, Task, TaskStatus, UsageRecord
from agentplane.models.budget import current_window, to_units
from agentplane.resolvers import budgets, tasks, traces
from agentplane.resolvers.auth import Actor
from agentplane.schema import schema
from agentplane.schema.context import Context
from tests.support.factories import make_agent, make_tenant, make_token
from tests.support.graphql import GraphQLClient, error_codes

# scripted/echo costs $0.50 / $1.50 per million tokens; "hi" is 1 token in, 1 out, and
# with maxOutputTokens 1 the reserved worst case equals the actual cost: $0.000002.
PER_TASK = Decimal("0.000002")
ECHO = {"maxOutputTokens": 1}
SUBMIT = (
    'mutation($a: ID!) { submitTask(input: {agentId: $a, query: "hi"}) { task { id status } } }'
)
TASK = (
    "query($id: ID!) { task(id: $id) { status statusReason output costUsd"
    " steps { seq kind payload } } }"
)
BUDGET = (
    '{ budget(scope: TENANT, tenant: "acme") { monthlyLimitUsd currentSpendUsd reservedUsd'
    " alertState window } }"
)


def set_budget(limit: Decimal | str, scope: str = "TENANT", extra: str = 'tenant: "acme"') -> str:
    return (
        f"mutation {{ setBudget(input: {{scope: {scope}, {extra}, monthlyLimitUsd: {limit}}})"
        " { budget { monthlyLimitUsd currentSpendUsd alertState } } }"
    )


async def settle_down(gql: GraphQLClient, token: str, task_id: str) -> dict[str, Any]:
    """Wait until the task is terminal or paused."""
    task: dict[str, Any] = {}
    for _ in range(400):
        task = (await gql.ok(TASK, token, id=task_id))["task"]
        if task["status"] in ("COMPLETED", "FAILED", "CANCELLED", "PAUSED"):
            return task
        await asyncio.sleep(0.025)
    raise AssertionError(f"task did not settle: {task}")


async def collect_alerts(actor: Actor, into: list[dict[str, Any]]) -> None:
    stream = await schema.subscribe(
        "subscription { budgetAlerts { scope alertState monthlyLimitUsd currentSpendUsd window"
        " tenantId } }",
        context_value=_context(actor),
    )
    assert not hasattr(stream, "errors"), stream
    async for result in stream:  # type: ignore[union-attr]
        assert not result.errors, result.errors
        into.append(result.data["budgetAlerts"])


def _context(actor: Actor) -> Context:
    context = Context(request=None)
    context.set_actor(actor)
    return context


async def test_pause_at_ceiling_alerts_audit_and_resume_after_raising(
    gql: GraphQLClient,
) -> None:
    # given tenant acme with room for two tasks and someone watching the alerts
    acme = await make_tenant("acme")
    agent = await make_agent(acme, config=ECHO)
    admin = await make_token(None, "platform_admin")
    operator = await make_token(acme, "operator")
    budget = await gql.ok(set_budget(PER_TASK * 2 + PER_TASK / 2), admin)
    assert budget["setBudget"]["budget"] == {
        "monthlyLimitUsd": 0.000005,
        "currentSpendUsd": 0.0,
        "alertState": "OK",
    }
    alerts: list[dict[str, Any]] = []
    watcher = asyncio.create_task(
        collect_alerts(Actor(kind="token", role="tenant_admin", tenant_id=acme.id), alerts)
    )
    await asyncio.sleep(0.1)

    # when three tasks run one after the other
    ids = []
    for _ in range(3):
        ids.append((await gql.ok(SUBMIT, operator, a=agent.id))["submitTask"]["task"]["id"])
        await settle_down(gql, operator, ids[-1])

    # then two complete, the third pauses for the budget (not failed)
    first, second, third = [await settle_down(gql, operator, i) for i in ids]
    assert first["status"] == second["status"] == "COMPLETED"
    assert (third["status"], third["statusReason"]) == ("PAUSED", "budget")
    # spend is exactly the priced usage, and never above the ceiling
    state = (await gql.ok(BUDGET, operator))["budget"]
    assert state["currentSpendUsd"] == pytest.approx(0.000004)
    assert state["reservedUsd"] == 0.0
    assert (state["alertState"], state["window"]) == ("WARNING", current_window())
    # the warning (80 %) was announced once, and is in the audit trail and the trace
    await asyncio.sleep(0.2)
    assert [a["alertState"] for a in alerts] == ["WARNING"]
    crossed = await AuditEvent.get(action="budget.crossed")
    assert crossed.task_id == ids[1] and crossed.details["alertState"] == "warning"
    audit_steps = [s for s in second["steps"] if s["kind"] == "AUDIT"]
    assert [s["payload"]["action"] for s in audit_steps] == ["budget.crossed"]
    paused_audit = [s["payload"]["action"] for s in third["steps"] if s["kind"] == "AUDIT"]
    assert paused_audit == ["budget.exhausted"]

    # resuming without more room is refused
    resume = "mutation($id: ID!) { resumeTask(input: {id: $id}) { task { status } } }"
    assert error_codes(await gql(resume, operator, id=ids[2])) == ["BUDGET_EXCEEDED"]

    # when the ceiling is raised and the task resumed, it finishes
    await gql.ok(set_budget("0.00001"), admin)
    assert (await gql.ok(resume, operator, id=ids[2]))["resumeTask"]["task"]["status"] == "QUEUED"
    done = await settle_down(gql, operator, ids[2])
    assert (done["status"], done["output"]) == ("COMPLETED", "hi")
    state = (await gql.ok(BUDGET, operator))["budget"]
    assert state["currentSpendUsd"] == pytest.approx(0.000006)
    assert state["alertState"] == "OK"
    watcher.cancel()


async def test_exhausted_scope_refuses_submission_and_alerts_once(gql: GraphQLClient) -> None:
    # given room for exactly two tasks at the agent scope
    acme = await make_tenant("acme")
    agent = await make_agent(acme, config=ECHO)
    admin = await make_token(acme, "tenant_admin")
    await gql.ok(set_budget(PER_TASK * 2, "AGENT", f'agentId: "{agent.id}"'), admin)
    for _ in range(2):
        task_id = (await gql.ok(SUBMIT, admin, a=agent.id))["submitTask"]["task"]["id"]
        assert (await settle_down(gql, admin, task_id))["status"] == "COMPLETED"
    # when a third is submitted, it is refused and nothing is queued
    before = await Task.all().count()
    body = await gql(SUBMIT, admin, a=agent.id)
    assert error_codes(body) == ["BUDGET_EXCEEDED"]
    assert body["errors"][0]["extensions"]["scope"] == "AGENT"
    assert await Task.all().count() == before
    # and the crossing to EXCEEDED was announced once (no earlier WARNING: 50 % → 100 %)
    events = await AuditEvent.filter(action="budget.crossed").values_list("details", flat=True)
    assert [e["alertState"] for e in events] == ["exceeded"]
    listed = await gql.ok(
        "{ budgets(first: 100) { edges { node { scope agentId alertState currentSpendUsd } } } }",
        admin,
    )
    assert [e["node"] for e in listed["budgets"]["edges"]] == [
        {"scope": "AGENT", "agentId": agent.id, "alertState": "EXCEEDED", "currentSpendUsd": 4e-06}
    ]
    # the submission refusal is in the audit trail too
    assert await AuditEvent.filter(action="task.submit", outcome="failure").count() == 1


async def test_submission_is_refused_at_each_scope_it_would_spend_in(services: Any) -> None:
    # given an operator's agent, and spent budgets that a task of it does not spend against
    acme, other = await make_tenant("acme"), await make_tenant("other")
    agent, sibling = await make_agent(acme, "a"), await make_agent(acme, "b")
    operator = Actor(kind="token", role="operator", tenant_id=acme.id, token_id="tok_op")
    window = current_window()
    spent = {"limit_units": 1, "spent_units": 1, "period": window}
    for scope, key in [
        ("tenant", f"tenant:{other.id}"),
        ("agent", f"agent:{sibling.id}"),
        ("account", "account:tok_someone_else"),
    ]:
        await Budget.create(scope=scope, scope_key=key, **spent)
    # one of its own spent last month only
    await Budget.create(
        scope="agent", scope_key=f"agent:{agent.id}", limit_units=1, spent_units=1, period="2000-01"
    )
    submitted = await tasks.submit_task(operator, agent_id=agent.id, query="q")
    assert submitted.status == TaskStatus.QUEUED
    # when a budget it does spend against is spent, at each scope in turn
    own = [
        ("global", "global"),
        ("tenant", f"tenant:{acme.id}"),
        ("account", "account:tok_op"),
        ("agent", f"agent:{agent.id}"),
    ]
    for scope, key in own:
        await Budget.filter(scope_key=key).delete()
        budget = await Budget.create(scope=scope, scope_key=key, **spent)
        # then the submission is refused, naming that budget, and nothing is queued
        with pytest.raises(BudgetExceeded) as refused:
            await tasks.submit_task(operator, agent_id=agent.id, query="q")
        assert refused.value.details == {"scope": scope.upper(), "budgetId": budget.id}
        await budget.delete()
    assert await Task.all().count() == 1


async def test_reservations_never_pass_the_ceiling_under_concurrency(services: Any) -> None:
    # given room for exactly 7 reservations of $0.000002, across two applicable budgets
    acme = await make_tenant("acme")
    agent = await make_agent(acme)
    task = await traces.create_task(
        tenant_id=acme.id, agent_id=agent.id, query="x", metadata={}, created_by="tok_x"
    )
    window = current_window()
    await Budget.create(
        scope="tenant",
        scope_key=f"tenant:{acme.id}",
        tenant_id=acme.id,
        limit_units=to_units(PER_TASK * 7),
        period=window,
    )
    await Budget.create(
        scope="global", scope_key="global", limit_units=to_units(PER_TASK * 100), period=window
    )

    # when 50 reservations race
    async def attempt() -> bool:
        try:
            await budgets.reserve(task, PER_TASK)
            return True
        except BudgetExceeded:
            return False

    won = await asyncio.gather(*(attempt() for _ in range(50)))

    # then exactly 7 were granted, and both budgets hold exactly that much
    assert sum(won) == 7
    tenant_budget = await Budget.get(scope_key=f"tenant:{acme.id}")
    assert tenant_budget.reserved_units == to_units(PER_TASK * 7)
    assert (await Budget.get(scope_key="global")).reserved_units == to_units(PER_TASK * 7)


async def test_new_month_starts_afresh_and_usage_is_stamped(services: Any) -> None:
    acme = await make_tenant("acme")
    agent = await make_agent(acme)
    task = await traces.create_task(
        tenant_id=acme.id, agent_id=agent.id, query="x", metadata={}, created_by="tok_x"
    )
    # a budget fully spent in an earlier month
    await Budget.create(
        scope="tenant",
        scope_key=f"tenant:{acme.id}",
        tenant_id=acme.id,
        limit_units=to_units(PER_TASK),
        spent_units=to_units(PER_TASK),
        alert_level=2,
        period="2000-01",
    )
    # this month there is room again
    reservation = await budgets.reserve(task, PER_TASK)
    assert reservation is not None and reservation.period == current_window()
    await budgets.settle(reservation, PER_TASK / 2)
    row = await Budget.get(scope_key=f"tenant:{acme.id}")
    assert (row.period, row.spent_units, row.reserved_units) == (
        current_window(),
        to_units(PER_TASK / 2),
        0,
    )
    # settling twice changes nothing
    await budgets.settle(reservation, PER_TASK)
    assert (await Budget.get(id=row.id)).spent_units == to_units(PER_TASK / 2)
    # usage records carry the window and the price list's version
    step = await traces.append_step(
        task, "PROVIDER_CALL", {}, traces.Usage("scripted/echo", 1, 1, 1, PER_TASK, True)
    )
    usage = await UsageRecord.get(step_id=step.id)
    assert (usage.period, usage.pricing_version) == (current_window(), PRICING_VERSION)
    assert await Step.filter(task_id=task.id).count() == 2


async def test_token_usage_flags_unpriced_models(gql: GraphQLClient) -> None:
    acme = await make_tenant("acme")
    agent = await make_agent(acme, config=ECHO)
    viewer = await make_token(acme, "viewer")
    operator = await make_token(acme, "operator")
    task_id = (await gql.ok(SUBMIT, operator, a=agent.id))["submitTask"]["task"]["id"]
    await settle_down(gql, operator, task_id)
    # an unpriced call (a model outside the catalog) next to the priced one
    await UsageRecord.create(
        tenant_id=acme.id,
        agent_id=agent.id,
        task_id=task_id,
        step_id="stp_x",
        model="openai/my-local-llm",
        input_tokens=10,
        output_tokens=5,
        cost_usd=0,
        priced=False,
    )
    usage = await gql.ok(
        "{ tokenUsage(first: 100) { edges { node { model inputTokens outputTokens costUsd"
        " costStatus pricingVersion window tenant { name } } } } }",
        viewer,
    )
    rows = [e["node"] for e in usage["tokenUsage"]["edges"]]
    assert rows == [
        {
            "model": "openai/my-local-llm",
            "inputTokens": 10,
            "outputTokens": 5,
            "costUsd": None,
            "costStatus": "UNPRICED",
            "pricingVersion": PRICING_VERSION,
            "window": current_window(),
            "tenant": {"name": "acme"},
        },
        {
            "model": "scripted/echo",
            "inputTokens": 1,
            "outputTokens": 1,
            "costUsd": 2e-06,
            "costStatus": "PRICED",
            "pricingVersion": PRICING_VERSION,
            "window": current_window(),
            "tenant": {"name": "acme"},
        },
    ]
    by_model = await gql.ok(
        '{ tokenUsage(first: 100, model: "scripted/echo") { edges { node { model } } } }', viewer
    )
    assert len(by_model["tokenUsage"]["edges"]) == 1
    # the unpriced call is not counted as spend
    spend = await gql.ok(BUDGET, viewer)
    assert spend["budget"] == {
        "monthlyLimitUsd": None,
        "currentSpendUsd": 2e-06,
        "reservedUsd": 0.0,
        "alertState": "OK",
        "window": current_window(),
    }


async def test_budget_validation_and_scoping(gql: GraphQLClient) -> None:
    acme, beta = await make_tenant("acme"), await make_tenant("beta")
    admin = await make_token(acme, "tenant_admin")
    billing = await make_token(None, "billing")
    assert error_codes(await gql(set_budget("-1"), admin)) == ["VALIDATION"]
    # another tenant's budget answers like a missing tenant; the global one is platform-only
    assert error_codes(await gql(set_budget("5", extra='tenant: "beta"'), admin)) == ["NOT_FOUND"]
    assert error_codes(await gql(set_budget("5", "GLOBAL", "tenant: null"), admin)) == ["NOT_FOUND"]
    assert await Budget.all().count() == 0
    # a platform-scoped billing token sets the global ceiling and any tenant's
    await gql.ok(set_budget("100", "GLOBAL", "tenant: null"), billing)
    await gql.ok(set_budget("5", extra='tenant: "beta"'), billing)
    assert sorted(await Budget.all().values_list("scope_key", flat=True)) == [
        "global",
        f"tenant:{beta.id}",
    ]
    removed = await gql.ok(
        'mutation { removeBudget(input: {scope: TENANT, tenant: "beta"}) { budget { scope } } }',
        billing,
    )
    assert removed["removeBudget"]["budget"]["scope"] == "TENANT"
    assert await Budget.all().count() == 1
    assert acme.id != beta.id
