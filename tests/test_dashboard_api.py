"""The GraphQL the dashboard reads besides the stock fields: `taskCounts`, `spendBreakdown`,
and the `reason` of run-control mutations, recorded in the audit entry."""

from datetime import UTC, datetime
from decimal import Decimal

from agentplane.models import AuditEvent, Task, TaskStatus, UsageRecord
from tests.support.factories import make_agent, make_tenant, make_token
from tests.support.graphql import GraphQLClient, error_codes
from tests.support.rest import wait_terminal

SUBMIT = 'mutation($a: ID!) { submitTask(input: {agentId: $a, query: "hi"}) { task { id } } }'
CONTROL = "mutation($i: TaskControlInput!) {{ {0}Task(input: $i) {{ task {{ status }} }} }}"
CANCEL = CONTROL.format("cancel")
STEPS = "query($id: ID!) { task(id: $id) { steps { payload } } }"
COUNTS = "{ taskCounts { agentId status statusReason count } }"
SPEND = (
    "query($by: SpendDimension!, $w: String) { spendBreakdown(by: $by, window: $w) "
    "{ key label costUsd inputTokens outputTokens calls unpricedCalls } }"
)


async def test_run_control_reasons_land_in_the_audit_entries_and_the_trace(
    app: object, gql: GraphQLClient
) -> None:
    # given an operator's queued task (its agent may run none at once: no worker claims it)
    acme = await make_tenant("acme")
    agent = await make_agent(acme, max_concurrent_tasks=0)
    operator = await make_token(acme, "operator")
    task_id = (await gql.ok(SUBMIT, operator, a=agent.id))["submitTask"]["task"]["id"]
    # when it is paused and cancelled with reasons, then retried without one
    await gql.ok(CONTROL.format("pause"), operator, i={"id": task_id, "reason": "customer call"})
    data = await gql.ok(
        CONTROL.format("cancel"), operator, i={"id": task_id, "reason": "wrong customer"}
    )
    await gql.ok(CONTROL.format("retry"), operator, i={"id": task_id})
    # then each audit entry carries its reason (none when none was given)
    assert data["cancelTask"]["task"]["status"] == "CANCELLED"
    records = await AuditEvent.filter(resource=task_id, action__startswith="task.").order_by("id")
    assert [(r.action, r.outcome, r.details) for r in records] == [
        ("task.submit", "success", {}),
        ("task.pause", "success", {"reason": "customer call"}),
        ("task.cancel", "success", {"reason": "wrong customer"}),
        ("task.retry", "success", {}),
    ]
    # and the status steps say who and why
    steps = (await gql.ok(STEPS, operator, id=task_id))["task"]["steps"]
    reasons = [s["payload"].get("reason", "") for s in steps]
    assert reasons[1].startswith("paused by tok_") and reasons[1].endswith(": customer call")
    assert reasons[2].startswith("cancelled by tok_") and reasons[2].endswith(": wrong customer")
    assert reasons[3].startswith("retry by tok_") and ":" not in reasons[3]


async def test_an_overlong_reason_is_refused_and_changes_nothing(
    app: object, gql: GraphQLClient
) -> None:
    # given a queued task (no worker claims it: its agent allows none at once)
    acme = await make_tenant("acme")
    agent = await make_agent(acme, max_concurrent_tasks=0)
    operator = await make_token(acme, "operator")
    task_id = (await gql.ok(SUBMIT, operator, a=agent.id))["submitTask"]["task"]["id"]
    # when a cancel carries 501 characters of reason
    body = await gql(CANCEL, operator, i={"id": task_id, "reason": "x" * 501})
    # then it is a VALIDATION error naming the field, and the task is still queued
    assert error_codes(body) == ["VALIDATION"]
    assert (await Task.get(id=task_id)).status == TaskStatus.QUEUED
    failure = await AuditEvent.get(action="task.cancel", resource=task_id)
    assert failure.outcome == "failure" and failure.details["code"] == "VALIDATION"


async def test_task_counts_group_by_agent_status_and_reason_within_the_tenant(
    app: object, gql: GraphQLClient
) -> None:
    # given two tasks that completed, one paused by budget, and another tenant's task
    acme, other = await make_tenant("acme"), await make_tenant("other")
    agent = await make_agent(acme)
    foreign = await make_agent(other)
    operator = await make_token(acme, "operator")
    ids = [
        (await gql.ok(SUBMIT, operator, a=agent.id))["submitTask"]["task"]["id"] for _ in range(3)
    ]
    await gql.ok(SUBMIT, await make_token(other, "operator"), a=foreign.id)
    for task_id in ids:
        await wait_terminal(task_id)
    await Task.filter(id=ids[0]).update(status=TaskStatus.PAUSED, status_reason="budget")
    # when a viewer of acme asks for the counts
    data = await gql.ok(COUNTS, await make_token(acme, "viewer"))
    # then they are acme's only, grouped by agent, status and reason
    assert data["taskCounts"] == [
        {"agentId": agent.id, "status": "COMPLETED", "statusReason": None, "count": 2},
        {"agentId": agent.id, "status": "PAUSED", "statusReason": "budget", "count": 1},
    ]


async def test_spend_breakdown_by_agent_model_and_day(app: object, gql: GraphQLClient) -> None:
    # given usage records of two agents this month, one unpriced, and one of another tenant
    acme, other = await make_tenant("acme"), await make_tenant("other")
    alpha, beta = await make_agent(acme, "alpha"), await make_agent(acme, "beta")
    window = datetime.now(UTC).strftime("%Y-%m")
    rows = [
        (acme, alpha, "scripted/echo", "0.5", True),
        (acme, alpha, "scripted/echo", "0.25", True),
        (acme, beta, "openai/x", "0", False),
        (other, await make_agent(other), "scripted/echo", "9", True),
    ]
    for tenant, agent, model, cost, priced in rows:
        await UsageRecord.create(
            tenant_id=tenant.id,
            agent_id=agent.id,
            task_id="tsk_x",
            step_id="stp_x",
            model=model,
            input_tokens=10,
            output_tokens=5,
            cost_usd=Decimal(cost),
            priced=priced,
            period=window,
        )
    token = await make_token(acme, "viewer")
    # when the breakdowns are read
    by_agent = (await gql.ok(SPEND, token, by="AGENT"))["spendBreakdown"]
    by_model = (await gql.ok(SPEND, token, by="MODEL", w=window))["spendBreakdown"]
    by_day = (await gql.ok(SPEND, token, by="DAY"))["spendBreakdown"]
    # then they sum acme's records only, most spent first; days are "YYYY-MM-DD" (UTC)
    assert [(b["label"], b["costUsd"], b["calls"], b["unpricedCalls"]) for b in by_agent] == [
        ("alpha", 0.75, 2, 0),
        ("beta", 0.0, 1, 1),
    ]
    assert by_agent[0]["key"] == alpha.id
    assert [(b["key"], b["costUsd"], b["inputTokens"]) for b in by_model] == [
        ("scripted/echo", 0.75, 20),
        ("openai/x", 0.0, 10),
    ]
    today = datetime.now(UTC).strftime("%Y-%m-%d")
    assert [(b["key"], b["costUsd"], b["calls"]) for b in by_day] == [(today, 0.75, 3)]
    # and another month has nothing, a malformed one is a VALIDATION error
    assert (await gql.ok(SPEND, token, by="MODEL", w="1999-01"))["spendBreakdown"] == []
    assert error_codes(await gql(SPEND, token, by="MODEL", w="2026-13")) == ["VALIDATION"]
