"""Durable human approvals: a tool call held for a decision, the task waiting without a
worker, decisions as compare-and-sets, expiry, cancel, and the audit trail."""

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from agentplane.core.config import Settings
from agentplane.core.errors import Conflict, Forbidden, NotFound, ValidationFailed
from agentplane.models import (
    AccessToken,
    Agent,
    ApprovalRequest,
    ApprovalStatus,
    AuditEvent,
    Step,
    StepKind,
    Task,
    TaskStatus,
    Tenant,
)
from agentplane.resolvers import agents, approvals, tasks
from agentplane.resolvers.auth import Actor
from agentplane.runtime.worker import Worker
from agentplane.subscriptions import streams
from tests.support.factories import make_agent, make_tenant, make_token
from tests.support.graphql import GraphQLClient, error_codes

SCRIPT = [
    {"tool": "calculator", "arguments": {"expression": "6*7"}},
    {"say": "answer: {last_tool_result}"},
]


def operator(tenant: Tenant) -> Actor:
    return Actor(kind="token", role="operator", tenant_id=tenant.id, token_id="tok_op")


def role(tenant: Tenant, name: str) -> Actor:
    return Actor(kind="token", role=name, tenant_id=tenant.id, token_id=f"tok_{name}")


async def gated_agent(tenant: Tenant, **rule: Any) -> Agent:
    return await make_agent(
        tenant,
        model="scripted/agent",
        tools=["calculator"],
        config={"script": SCRIPT, "approvals": {"tools": {"calculator": {"risk": "high", **rule}}}},
    )


async def wait_for(task_id: str, *statuses: TaskStatus, timeout: float = 15) -> Task:
    async with asyncio.timeout(timeout):
        while (task := await Task.get(id=task_id)).status not in statuses:
            await asyncio.sleep(0.02)
    return task


async def trace(task_id: str) -> list[Step]:
    steps = await Step.filter(task_id=task_id).order_by("seq")
    assert [s.seq for s in steps] == list(range(1, len(steps) + 1))  # gapless, no repeats
    return steps


def flow(steps: list[Step]) -> list[str]:
    return [s.payload["to"] for s in steps if s.kind == StepKind.STATUS_CHANGE]


def tool_calls(steps: list[Step]) -> list[dict[str, Any]]:
    return [s.payload for s in steps if s.kind == StepKind.TOOL_CALL]


@pytest.fixture
async def worker(services: Settings) -> Any:
    running = Worker(services)
    await running.start()
    yield running
    await running.stop()


async def waiting(tenant: Tenant, agent: Agent) -> tuple[Task, ApprovalRequest]:
    task = await tasks.submit_task(operator(tenant), agent_id=agent.id, query="what is 6*7?")
    parked = await wait_for(task.id, TaskStatus.WAITING_FOR_APPROVAL, TaskStatus.COMPLETED)
    assert parked.status == TaskStatus.WAITING_FOR_APPROVAL
    return parked, await ApprovalRequest.get(task_id=task.id)


async def test_a_call_that_needs_approval_waits_holding_no_worker(worker: Worker) -> None:
    # given an agent whose calculator calls need approval
    tenant = await make_tenant("acme")
    agent = await gated_agent(tenant, expiresInS=3600)
    # when its task reaches the call
    task, request = await waiting(tenant, agent)
    # then the task waits with no worker, no lease and nothing run
    assert task.worker_id is None and task.lease_expires_at is None
    assert not task.status.is_terminal
    await asyncio.sleep(0.1)
    assert task.id not in worker.running
    assert request.status == ApprovalStatus.PENDING
    assert (request.tool, request.arguments, request.risk) == (
        "calculator",
        {"expression": "6*7"},
        "high",
    )
    assert request.preview == "calculator(expression='6*7')"
    assert request.arguments_schema["required"] == ["expression"]
    assert request.expires_at is not None
    assert timedelta(seconds=3590) < request.expires_at - request.created_at <= timedelta(hours=1)
    steps = await trace(task.id)
    assert flow(steps) == ["queued", "running", "waiting_for_approval"]
    assert tool_calls(steps) == []
    asked = next(s for s in steps if s.kind == StepKind.AUDIT)
    assert asked.payload["action"] == "approval.request"
    assert asked.payload["resource"] == request.id
    provider_call = next(s for s in steps if s.kind == StepKind.PROVIDER_CALL)
    assert request.step_seq == provider_call.seq
    assert steps[-1].payload["approvalId"] == request.id
    # and a lease reaper leaves it alone
    await worker.reap()
    assert (await Task.get(id=task.id)).status == TaskStatus.WAITING_FOR_APPROVAL


async def test_approved_with_edited_arguments_runs_the_tool_once_with_them(worker: Worker) -> None:
    tenant = await make_tenant("acme")
    task, request = await waiting(tenant, await gated_agent(tenant))
    # when an operator approves with other arguments
    decided = await approvals.decide(
        operator(tenant), request.id, approve=True, arguments={"expression": "7*7"}, reason="ok"
    )
    assert decided.status == ApprovalStatus.APPROVED
    assert decided.decided_by == "tok_op" and decided.decided_at is not None
    done = await wait_for(task.id, TaskStatus.COMPLETED, TaskStatus.FAILED)
    # then the run continued from the trace and the tool ran once, with the edited arguments
    assert done.status == TaskStatus.COMPLETED, done.error
    assert done.output == "answer: 49"
    steps = await trace(task.id)
    assert flow(steps) == [
        "queued", "running", "waiting_for_approval", "queued", "running", "completed"
    ]  # fmt: skip
    calls = tool_calls(steps)
    assert [(c["arguments"], c["output"]) for c in calls] == [({"expression": "7*7"}, "49")]
    assert len([s for s in steps if s.kind == StepKind.PROVIDER_CALL]) == 2
    audited = [s.payload["action"] for s in steps if s.kind == StepKind.AUDIT]
    assert audited == ["approval.request", "approval.approve"]
    record = await AuditEvent.get(action="approval.approve")
    assert (record.actor, record.resource, record.task_id, record.outcome) == (
        "tok_op", request.id, task.id, "success"
    )  # fmt: skip
    assert record.details == {
        "tool": "calculator",
        "decision": "approved",
        "reason": "ok",
        "editedArguments": {"expression": "7*7"},
    }


async def test_a_rejected_call_reaches_the_model_as_a_tool_error(worker: Worker) -> None:
    tenant = await make_tenant("acme")
    task, request = await waiting(tenant, await gated_agent(tenant))
    await approvals.decide(
        role(tenant, "tenant_admin"), request.id, approve=False, reason="not on a Monday"
    )
    done = await wait_for(task.id, TaskStatus.COMPLETED, TaskStatus.FAILED)
    refusal = "error: the call was rejected by tok_tenant_admin: not on a Monday"
    assert done.output == f"answer: {refusal}"
    calls = tool_calls(await trace(task.id))
    assert calls == [
        {
            "tool": "calculator",
            "callId": request.call_id,
            "arguments": {"expression": "6*7"},
            "output": refusal,
            "approvalId": request.id,
            "approval": "rejected",
        }
    ]


async def test_two_decisions_at_once_exactly_one_wins(worker: Worker) -> None:
    tenant = await make_tenant("acme")
    task, request = await waiting(tenant, await gated_agent(tenant))
    # when an approval and a rejection arrive together
    results = await asyncio.gather(
        approvals.decide(operator(tenant), request.id, approve=True),
        approvals.decide(role(tenant, "tenant_admin"), request.id, approve=False, reason="no"),
        return_exceptions=True,
    )
    # then exactly one is recorded and the other is a CONFLICT
    won = [r for r in results if isinstance(r, ApprovalRequest)]
    lost = [r for r in results if isinstance(r, Conflict)]
    assert len(won) == 1 and len(lost) == 1, results
    final = await ApprovalRequest.get(id=request.id)
    assert final.status == won[0].status
    done = await wait_for(task.id, TaskStatus.COMPLETED, TaskStatus.FAILED)
    steps = await trace(task.id)
    assert flow(steps).count("queued") == 2  # requeued once
    assert len(tool_calls(steps)) == 1
    decisions = await AuditEvent.filter(
        action__in=["approval.approve", "approval.reject"]
    ).values_list("outcome", flat=True)
    assert sorted(decisions) == ["failure", "success"]
    # and a later decision is a CONFLICT too
    with pytest.raises(Conflict):
        await approvals.decide(operator(tenant), request.id, approve=True)
    assert done.status == TaskStatus.COMPLETED


async def state(task_id: str, request_id: str) -> tuple[Any, ...]:
    task = await Task.get(id=task_id)
    request = await ApprovalRequest.get(id=request_id)
    return (
        task.status,
        task.last_seq,
        request.status,
        request.decided_by,
        request.edited_arguments,
        await Step.filter(task_id=task_id).count(),
    )


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ({"expression": 42}, "at expression: 42 is not of type 'string'"),
        ({}, "at (root): 'expression' is a required property"),
        (["6*7"], "`arguments` must be a JSON object"),
    ],
)
async def test_edited_arguments_that_fail_the_schema_change_nothing(
    worker: Worker, arguments: Any, message: str
) -> None:
    tenant = await make_tenant("acme")
    task, request = await waiting(tenant, await gated_agent(tenant))
    before = await state(task.id, request.id)
    with pytest.raises(ValidationFailed) as refused:
        await approvals.decide(operator(tenant), request.id, approve=True, arguments=arguments)
    assert message in refused.value.message
    assert await state(task.id, request.id) == before
    # editing arguments of a rejection makes no sense either
    with pytest.raises(ValidationFailed):
        await approvals.decide(
            operator(tenant), request.id, approve=False, arguments={"expression": "1"}
        )
    assert await state(task.id, request.id) == before


async def test_viewers_and_other_tenants_cannot_decide(worker: Worker) -> None:
    tenant = await make_tenant("acme")
    other = await make_tenant("globex")
    task, request = await waiting(tenant, await gated_agent(tenant))
    before = await state(task.id, request.id)
    with pytest.raises(Forbidden):
        await approvals.decide(role(tenant, "viewer"), request.id, approve=True)
    with pytest.raises(NotFound):
        await approvals.decide(operator(other), request.id, approve=True)
    with pytest.raises(NotFound):
        await approvals.get_request(operator(other), request.id)
    with pytest.raises(NotFound):
        await approvals.list_requests(operator(other), 10, None, task_id=task.id)
    assert (await approvals.list_requests(operator(other), 10, None)).items == []
    with pytest.raises(NotFound):  # an overlong ID names nothing
        await approvals.decide(operator(tenant), "apr_" + "x" * 60, approve=True)
    assert await state(task.id, request.id) == before
    # a viewer still reads it
    assert (await approvals.get_request(role(tenant, "viewer"), request.id)).id == request.id
    denied = await AuditEvent.filter(action="approval.approve").values_list("outcome", flat=True)
    assert sorted(denied) == ["denied", "failure", "failure"]


async def test_an_expired_request_rejects_the_call_when_the_policy_says_reject(
    worker: Worker,
) -> None:
    tenant = await make_tenant("acme")
    task, request = await waiting(tenant, await gated_agent(tenant, expiresInS=60))
    # when the sweep runs after the expiry
    assert await approvals.expire_due(datetime.now(UTC)) == 0  # not due yet
    later = datetime.now(UTC) + timedelta(seconds=61)
    await ApprovalRequest.filter(id=request.id).update(expires_at=datetime.now(UTC))
    assert await approvals.expire_due(later) == 1
    # then the model sees the call refused and the run completes
    done = await wait_for(task.id, TaskStatus.COMPLETED, TaskStatus.FAILED)
    assert (
        done.output == f"answer: error: approval request {request.id} expired before anyone decided"
    )
    expired = await ApprovalRequest.get(id=request.id)
    assert expired.status == ApprovalStatus.EXPIRED
    steps = await trace(task.id)
    assert [c["approval"] for c in tool_calls(steps)] == ["expired"]
    audited = [s.payload["action"] for s in steps if s.kind == StepKind.AUDIT]
    assert audited == ["approval.request", "approval.expire"]
    # and deciding it now is a conflict
    with pytest.raises(Conflict):
        await approvals.decide(operator(tenant), request.id, approve=True)


async def test_an_expired_request_fails_the_task_when_the_policy_says_fail(
    worker: Worker,
) -> None:
    tenant = await make_tenant("acme")
    task, request = await waiting(tenant, await gated_agent(tenant, expiresInS=60, onExpiry="fail"))
    await ApprovalRequest.filter(id=request.id).update(expires_at=datetime.now(UTC))
    # when someone tries to decide after the expiry, it is refused and the policy applies
    with pytest.raises(Conflict) as late:
        await approvals.decide(operator(tenant), request.id, approve=True)
    assert "expired" in late.value.message
    failed = await Task.get(id=task.id)
    assert failed.status == TaskStatus.FAILED
    assert failed.error == f"approval {request.id} expired"
    steps = await trace(task.id)
    assert flow(steps)[-2:] == ["waiting_for_approval", "failed"]
    assert tool_calls(steps) == []


async def test_cancelling_a_waiting_task_cancels_its_request(worker: Worker) -> None:
    tenant = await make_tenant("acme")
    task, request = await waiting(tenant, await gated_agent(tenant))
    with pytest.raises(Conflict):  # a waiting task holds no worker: nothing to pause
        await tasks.pause_task(operator(tenant), task.id)
    cancelled = await tasks.cancel_task(operator(tenant), task.id)
    assert cancelled.status == TaskStatus.CANCELLED
    assert (await ApprovalRequest.get(id=request.id)).status == ApprovalStatus.CANCELLED
    with pytest.raises(Conflict):
        await approvals.decide(operator(tenant), request.id, approve=True)
    steps = await trace(task.id)
    assert flow(steps)[-2:] == ["waiting_for_approval", "cancelled"]
    assert [s.payload["action"] for s in steps if s.kind == StepKind.AUDIT][-1] == "approval.cancel"


async def test_a_decision_made_before_the_worker_parks_the_task_is_not_lost(
    services: Settings,
) -> None:
    # given a worker that claimed the task and opened a request, but has not parked yet
    tenant = await make_tenant("acme")
    agent = await gated_agent(tenant)
    await tasks.submit_task(operator(tenant), agent_id=agent.id, query="q")
    slow = Worker(services)
    task = await slow.claim()
    assert task is not None
    request = await approvals.open_request(
        task, step_seq=0, call_id="c1", tool="calculator", arguments={"expression": "1"},
        schema={}, risk="high", preview="p", expires_in_s=None,
        on_expiry=approvals.OnExpiry.REJECT, fence=task.attempt,
    )  # fmt: skip
    # when the decision lands while the task is still running
    await approvals.decide(operator(tenant), request.id, approve=True)
    assert (await Task.get(id=task.id)).status == TaskStatus.RUNNING
    await approvals.park(task, request)
    # then parking sees it and puts the task straight back in the queue
    assert (await Task.get(id=task.id)).status == TaskStatus.QUEUED
    assert flow(await trace(task.id))[-2:] == ["waiting_for_approval", "queued"]


async def test_a_cancel_asked_before_the_worker_parks_the_task_is_not_lost(
    services: Settings,
) -> None:
    tenant = await make_tenant("acme")
    agent = await gated_agent(tenant)
    await tasks.submit_task(operator(tenant), agent_id=agent.id, query="q")
    task = await Worker(services).claim()
    assert task is not None
    request = await approvals.open_request(
        task, step_seq=0, call_id="c1", tool="calculator", arguments={"expression": "1"},
        schema={}, risk="high", preview="p", expires_in_s=None,
        on_expiry=approvals.OnExpiry.REJECT, fence=task.attempt,
    )  # fmt: skip
    # when a cancel arrives while the task is still running (cancelTask flags it)
    await Task.filter(id=task.id).update(cancel_requested=True)
    await approvals.park(task, request)
    # then parking ends it and withdraws the question
    assert (await Task.get(id=task.id)).status == TaskStatus.CANCELLED
    assert (await ApprovalRequest.get(id=request.id)).status == ApprovalStatus.CANCELLED
    assert flow(await trace(task.id))[-2:] == ["waiting_for_approval", "cancelled"]


@pytest.mark.parametrize("head_start", range(0, 60, 6))
async def test_a_cancel_racing_the_park_always_ends_cancelled(
    services: Settings, head_start: int
) -> None:
    # given a running task whose worker is about to park it for an approval
    tenant = await make_tenant("acme")
    agent = await gated_agent(tenant)
    await tasks.submit_task(operator(tenant), agent_id=agent.id, query="q")
    task = await Worker(services).claim()
    assert task is not None
    request = await approvals.open_request(
        task, step_seq=0, call_id="c1", tool="calculator", arguments={"expression": "1"},
        schema={}, risk="high", preview="p", expires_in_s=None,
        on_expiry=approvals.OnExpiry.REJECT, fence=task.attempt,
    )  # fmt: skip

    async def park_later() -> None:
        for _ in range(head_start):  # lets the cancel get this far before parking
            await asyncio.sleep(0)
        await approvals.park(task, request)

    # when an operator cancels while the worker parks (interleaved at varying points)
    cancelled, _ = await asyncio.gather(tasks.cancel_task(operator(tenant), task.id), park_later())
    # then the task ends cancelled, whoever came first, and its question is withdrawn
    assert cancelled.status == TaskStatus.CANCELLED
    assert (await ApprovalRequest.get(id=request.id)).status == ApprovalStatus.CANCELLED


async def test_a_worker_that_lost_the_task_cannot_open_a_request(services: Settings) -> None:
    tenant = await make_tenant("acme")
    agent = await gated_agent(tenant)
    await tasks.submit_task(operator(tenant), agent_id=agent.id, query="q")
    task = await Worker(services).claim()
    assert task is not None
    from agentplane.resolvers.traces import LeaseLost

    with pytest.raises(LeaseLost):
        await approvals.open_request(
            task, step_seq=0, call_id="c1", tool="calculator", arguments={}, schema={},
            risk="high", preview="p", expires_in_s=None, on_expiry=approvals.OnExpiry.REJECT,
            fence=task.attempt - 1,
        )  # fmt: skip
    assert await ApprovalRequest.all().count() == 0  # rolled back with the refused step


async def test_the_task_events_stream_continues_after_the_decision(worker: Worker) -> None:
    tenant = await make_tenant("acme")
    agent = await gated_agent(tenant)
    actor = operator(tenant)
    task = await tasks.submit_task(actor, agent_id=agent.id, query="q")
    seen: list[Step] = []

    async def follow() -> None:
        async for step in streams.task_events(actor, task.id, 0):
            seen.append(step)

    follower = asyncio.create_task(follow())
    await wait_for(task.id, TaskStatus.WAITING_FOR_APPROVAL)
    request = await ApprovalRequest.get(task_id=task.id)
    await asyncio.sleep(0.1)
    assert not follower.done()  # waiting is not the end
    await approvals.decide(actor, request.id, approve=True)
    async with asyncio.timeout(10):
        await follower
    assert [s.seq for s in seen] == [s.seq for s in await trace(task.id)]
    assert flow(seen)[-1] == "completed"


async def test_approval_updates_reach_only_the_tenant(worker: Worker) -> None:
    tenant = await make_tenant("acme")
    other = await make_tenant("globex")
    mine: list[ApprovalRequest] = []
    theirs: list[ApprovalRequest] = []

    async def listen(actor: Actor, into: list[ApprovalRequest]) -> None:
        async for request in approvals.approval_updates(actor):
            into.append(request)

    listeners = [
        asyncio.create_task(listen(role(tenant, "viewer"), mine)),
        asyncio.create_task(listen(role(other, "viewer"), theirs)),
    ]
    await asyncio.sleep(0.1)
    task, request = await waiting(tenant, await gated_agent(tenant))
    await approvals.decide(operator(tenant), request.id, approve=True)
    await wait_for(task.id, TaskStatus.COMPLETED)
    await asyncio.sleep(0.1)
    for listener in listeners:
        listener.cancel()
    assert [(r.id, r.status) for r in mine] == [
        (request.id, ApprovalStatus.PENDING),
        (request.id, ApprovalStatus.APPROVED),
    ]
    assert theirs == []


@pytest.mark.parametrize(
    "rules",
    [
        [],
        {"calculator": "yes"},
        {"calculator": {"expiresInS": 0}},
        {"calculator": {"expiresInS": "soon"}},
        {"calculator": {"onExpiry": "ignore"}},
        {"calculator": {"risk": ""}},
    ],
)
async def test_a_malformed_approval_policy_is_refused_when_saved(
    services: Settings, rules: Any
) -> None:
    tenant = await make_tenant("acme")
    with pytest.raises(ValidationFailed):
        await agents.create_agent(
            role(tenant, "tenant_admin"),
            name="bad",
            model="scripted/agent",
            tools=["calculator"],
            config={"approvals": {"tools": rules}},
        )
    assert await Agent.all().count() == 0


REQUEST_FIELDS = "id tool arguments risk status preview argumentsSchema taskId agent { name }"
TASK_VIEW = f"""query($id: ID!) {{ task(id: $id) {{ status isTerminal statusReason workerId
  pendingApproval {{ {REQUEST_FIELDS} }} }} }}"""
GQL_DECIDE = """mutation($id: ID!, $decision: ApprovalDecision!, $args: JSON, $reason: String) {
  decideApproval(input: {id: $id, decision: $decision, arguments: $args, reason: $reason}) {
    approvalRequest { id status decidedBy reason editedArguments } task { id status } } }"""


async def test_graphql_shows_the_waiting_task_and_takes_one_decision(gql: GraphQLClient) -> None:
    # given a task waiting for approval, run by the app's in-process worker
    tenant = await make_tenant("acme")
    other = await make_tenant("globex")
    agent = await gated_agent(tenant)
    op, viewer, stranger = (
        await make_token(tenant, "operator"),
        await make_token(tenant, "viewer"),
        await make_token(other, "operator"),
    )
    submitted = await gql.ok(
        'mutation($a: ID!) { submitTask(input: {agentId: $a, query: "q"}) { task { id } } }',
        op,
        a=agent.id,
    )
    task_id = submitted["submitTask"]["task"]["id"]
    await wait_for(task_id, TaskStatus.WAITING_FOR_APPROVAL)
    # then the task shows what it waits for
    task = (await gql.ok(TASK_VIEW, viewer, id=task_id))["task"]
    request = task.pop("pendingApproval")
    assert task == {
        "status": "WAITING_FOR_APPROVAL",
        "isTerminal": False,
        "statusReason": "approval of calculator",
        "workerId": None,
    }
    assert request["tool"] == "calculator" and request["status"] == "PENDING"
    assert request["arguments"] == {"expression": "6*7"} and request["risk"] == "high"
    assert request["taskId"] == task_id and request["agent"] == {"name": "echo"}
    assert request["argumentsSchema"]["properties"] == {"expression": {"type": "string"}}
    listed = await gql.ok(
        "{ approvalRequests(first: 10, status: PENDING) { edges { node { id } } } }", viewer
    )
    assert [e["node"]["id"] for e in listed["approvalRequests"]["edges"]] == [request["id"]]
    waiting_tasks = await gql.ok(
        "{ tasks(first: 10, status: WAITING_FOR_APPROVAL) { edges { node { id } } } }", viewer
    )
    assert [e["node"]["id"] for e in waiting_tasks["tasks"]["edges"]] == [task_id]
    node = await gql.ok(
        "query($id: ID!) { node(id: $id) { ... on ApprovalRequest { tool } } }",
        viewer,
        id=request["id"],
    )
    assert node["node"] == {"tool": "calculator"}
    before = await state(task_id, request["id"])
    # a viewer may not decide; another tenant sees nothing; bad arguments are refused
    denied = await gql(GQL_DECIDE, viewer, id=request["id"], decision="APPROVE")
    assert error_codes(denied) == ["FORBIDDEN"]
    for probe in (
        await gql(GQL_DECIDE, stranger, id=request["id"], decision="REJECT"),
        await gql(
            "query($id: ID!) { approvalRequest(id: $id) { id } }", stranger, id=request["id"]
        ),
        await gql("query($id: ID!) { node(id: $id) { id } }", stranger, id=request["id"]),
        await gql(
            "query($t: ID) { approvalRequests(first: 5, taskId: $t) { edges { cursor } } }",
            stranger,
            t=task_id,
        ),
    ):
        assert error_codes(probe) == ["NOT_FOUND"], probe
    theirs = await gql.ok("{ approvalRequests(first: 5) { edges { cursor } } }", stranger)
    assert theirs["approvalRequests"]["edges"] == []
    invalid = await gql(
        GQL_DECIDE, op, id=request["id"], decision="APPROVE", args={"expression": ["6*7"]}
    )
    assert error_codes(invalid) == ["VALIDATION"]
    assert await state(task_id, request["id"]) == before
    # when the operator approves, then the task is queued again and a second decision conflicts
    decided = await gql.ok(
        GQL_DECIDE, op, id=request["id"], decision="APPROVE", args={"expression": "2*3"}
    )
    assert decided["decideApproval"]["approvalRequest"] == {
        "id": request["id"],
        "status": "APPROVED",
        "decidedBy": (await AccessToken.get(prefix=op[:12])).id,
        "reason": None,
        "editedArguments": {"expression": "2*3"},
    }
    assert decided["decideApproval"]["task"]["status"] in ("QUEUED", "RUNNING", "COMPLETED")
    again = await gql(GQL_DECIDE, op, id=request["id"], decision="REJECT", reason="late")
    assert error_codes(again) == ["CONFLICT"]
    done = await wait_for(task_id, TaskStatus.COMPLETED)
    assert done.output == "answer: 6"
    assert (await gql.ok(TASK_VIEW, viewer, id=task_id))["task"]["pendingApproval"] is None
    trail = await AuditEvent.filter(action__startswith="approval.").order_by("id")
    assert [(e.action, e.outcome) for e in trail] == [
        ("approval.request", "success"),
        ("approval.approve", "denied"),
        ("approval.reject", "failure"),
        ("approval.approve", "failure"),
        ("approval.approve", "success"),
        ("approval.reject", "failure"),
    ]
