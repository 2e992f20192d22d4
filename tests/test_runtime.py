"""The worker and the agent loop: atomic claims, multi-step runs, cancel, timeouts."""

import asyncio
from decimal import Decimal

from agentplane.core.config import Settings
from agentplane.models import Step, StepKind, Task, TaskStatus, UsageRecord
from agentplane.resolvers import agents, knowledge, tasks
from agentplane.resolvers.auth import Actor
from agentplane.retrieval import memory
from agentplane.runtime.worker import Worker
from tests.support.factories import make_agent, make_tenant
from tests.support.knowledge import add_ready


def operator_of(tenant_id: str) -> Actor:
    return Actor(kind="token", role="operator", tenant_id=tenant_id, token_id="tok_test")


async def wait_for_status(task_id: str, *statuses: TaskStatus, timeout: float = 10) -> Task:
    async with asyncio.timeout(timeout):
        while True:
            task = await Task.get(id=task_id)
            if task.status in statuses:
                return task
            await asyncio.sleep(0.02)


async def assert_gapless(task_id: str) -> list[Step]:
    steps = await Step.filter(task_id=task_id).order_by("seq")
    assert [s.seq for s in steps] == list(range(1, len(steps) + 1))
    assert (await Task.get(id=task_id)).last_seq == len(steps)
    return steps


async def test_concurrent_claims_never_double_execute(services: Settings) -> None:
    # given 30 queued tasks and 6 workers racing for them
    tenant = await make_tenant("acme")
    agent = await make_agent(tenant)
    actor = operator_of(tenant.id)
    submitted = [
        await tasks.submit_task(actor, agent_id=agent.id, query=f"q{i}") for i in range(30)
    ]
    workers = [Worker(services) for _ in range(6)]
    # when each worker claims 10 times concurrently
    claims = await asyncio.gather(*(w.claim() for w in workers for _ in range(10)))
    # then every task was claimed exactly once, by one worker
    claimed = [t for t in claims if t is not None]
    assert sorted(t.id for t in claimed) == sorted(t.id for t in submitted)
    rows = await Task.filter(tenant_id=tenant.id)
    assert {r.status for r in rows} == {TaskStatus.RUNNING}
    assert {r.attempt for r in rows} == {1}
    for task in claimed:
        steps = await assert_gapless(task.id)
        running = [s for s in steps if s.payload.get("to") == "running"]
        assert len(running) == 1


async def test_scripted_agent_runs_tools_memory_and_retrieval(services: Settings) -> None:
    tenant = await make_tenant("acme")
    script = [
        {"tool": "calculator", "arguments": {"expression": "6*7"}},
        {"tool": "retrieve", "arguments": {"query": "refund policy"}},
        {"tool": "memory_search", "arguments": {"query": "refund"}},
        {"say": "Answer: {last_tool_result}"},
    ]
    agent = await make_agent(
        tenant,
        "support",
        model="scripted/agent",
        tools=["calculator", "retrieve", "memory_search"],
        config={"script": script, "retrievalTopK": 0},  # the tool only, no pre-call retrieval
    )
    actor = operator_of(tenant.id)
    kb = await knowledge.create_knowledge_base(actor, name="help")
    for title, text in [
        ("Refunds", "Our refund policy allows 30 days"),
        ("Shipping", "Shipping takes a week"),
    ]:
        await add_ready(actor, knowledge_base_id=kb.id, title=title, content_type="text", text=text)
    agent.config = {**agent.config, "knowledgeBases": [kb.id]}
    await agent.save()
    remembered, _, _ = await memory.write(
        tenant_id=tenant.id, agent_id=agent.id, text="refund for order 7 was refunded"
    )
    worker = Worker(services)
    await worker.start()
    try:
        task = await tasks.submit_task(operator_of(tenant.id), agent_id=agent.id, query="refund?")
        done = await wait_for_status(task.id, TaskStatus.COMPLETED, TaskStatus.FAILED)
    finally:
        await worker.stop()
    assert done.status == TaskStatus.COMPLETED, done.error
    steps = await assert_gapless(task.id)
    kinds = [s.kind for s in steps]
    assert kinds == [
        StepKind.STATUS_CHANGE,
        StepKind.STATUS_CHANGE,
        StepKind.PROVIDER_CALL,
        StepKind.TOOL_CALL,
        StepKind.PROVIDER_CALL,
        StepKind.RETRIEVAL_HIT,
        StepKind.PROVIDER_CALL,
        StepKind.MEMORY_HIT,
        StepKind.PROVIDER_CALL,
        StepKind.STATUS_CHANGE,
    ]
    assert steps[3].payload["output"] == "42"
    assert steps[5].payload["hits"][0]["title"] == "Refunds"
    assert steps[5].payload["hits"][0]["retrievers"]["lexical"]["rank"] == 1
    assert [h["memoryId"] for h in steps[7].payload["hits"]] == [remembered.id]
    assert done.output == "Answer: - (fact) refund for order 7 was refunded"
    # every provider call was metered, and the task's cost is their sum
    usage = await UsageRecord.filter(task_id=task.id)
    calls = [s for s in steps if s.kind == StepKind.PROVIDER_CALL]
    assert len(usage) == len(calls) == 4
    assert sorted(u.step_id for u in usage) == sorted(s.id for s in calls)
    assert all(u.priced and u.cost_usd > 0 for u in usage)
    assert done.cost_usd == sum((s.cost_usd or Decimal(0) for s in calls), Decimal(0))


async def test_tool_not_enabled_is_reported_to_the_model(services: Settings) -> None:
    tenant = await make_tenant("acme")
    agent = await make_agent(
        tenant,
        model="scripted/agent",
        config={"script": [{"tool": "calculator", "arguments": {"expression": "1+1"}}]},
    )
    worker = Worker(services)
    await worker.start()
    try:
        task = await tasks.submit_task(operator_of(tenant.id), agent_id=agent.id, query="sum")
        done = await wait_for_status(task.id, TaskStatus.COMPLETED, TaskStatus.FAILED)
    finally:
        await worker.stop()
    steps = await assert_gapless(task.id)
    tool_step = next(s for s in steps if s.kind == StepKind.TOOL_CALL)
    refused = "error: tool 'calculator' is not allowed for this agent (it may call [])"
    assert tool_step.payload["output"] == refused
    assert tool_step.payload["errorCode"] == "TOOL_NOT_ALLOWED"
    assert done.output == refused


async def test_a_run_uses_its_agent_as_edited_before_the_claim(services: Settings) -> None:
    # given a queued task whose agent is edited before any worker claims it
    tenant = await make_tenant("acme")
    agent = await make_agent(tenant, model="scripted/agent", config={"script": [{"say": "old"}]})
    actor = operator_of(tenant.id)
    task = await tasks.submit_task(actor, agent_id=agent.id, query="q")
    await agents.update_agent(actor, agent.id, config={"script": [{"say": "new"}]})
    # when a worker claims and runs it (the agent comes with the claim, not read again)
    worker = Worker(services)
    [(claimed, with_agent)] = await worker.claim_up_to(1)
    assert claimed.id == task.id and with_agent.config == {"script": [{"say": "new"}]}
    await worker._execute(claimed, with_agent)
    # then the run followed the edit
    assert (await Task.get(id=task.id)).output == "new"


async def test_cancel_running_task_stops_it_quickly(services: Settings) -> None:
    # given a long-running echo task (200 words at 50 ms each = 10 s)
    slow = Settings(**{**services.__dict__, "scripted_delay_ms": 50})
    tenant = await make_tenant("acme")
    agent = await make_agent(tenant)
    worker = Worker(slow)
    await worker.start()
    try:
        actor = operator_of(tenant.id)
        task = await tasks.submit_task(actor, agent_id=agent.id, query=" ".join(["w"] * 200))
        await wait_for_status(task.id, TaskStatus.RUNNING)
        # when it is cancelled mid-call
        started = asyncio.get_running_loop().time()
        result = await tasks.cancel_task(actor, task.id)
        elapsed = asyncio.get_running_loop().time() - started
    finally:
        await worker.stop()
    # then it ends cancelled within a second, with the change in its trace
    assert (result.status, result.status_reason) == (TaskStatus.CANCELLED, "cancelled")
    assert elapsed < 1.0
    steps = await assert_gapless(task.id)
    assert steps[-1].kind == StepKind.STATUS_CHANGE
    assert steps[-1].payload == {"from": "running", "to": "cancelled", "reason": "cancelled"}
    assert not any(s.kind == StepKind.PROVIDER_CALL for s in steps)


async def test_cancel_queued_task_needs_no_worker(services: Settings) -> None:
    tenant = await make_tenant("acme")
    agent = await make_agent(tenant)
    actor = operator_of(tenant.id)
    task = await tasks.submit_task(actor, agent_id=agent.id, query="never runs")
    result = await tasks.cancel_task(actor, task.id)
    assert (result.status, result.status_reason) == (TaskStatus.CANCELLED, "cancelled")
    assert result.finished_at is not None
    # a second cancel is a no-op on a terminal task
    again = await tasks.cancel_task(actor, task.id)
    assert again.status == TaskStatus.CANCELLED
    assert len(await assert_gapless(task.id)) == 2


async def test_task_timeout_fails_the_run(services: Settings) -> None:
    quick = Settings(**{**services.__dict__, "scripted_delay_ms": 200, "task_timeout_s": 1})
    tenant = await make_tenant("acme")
    agent = await make_agent(tenant)
    worker = Worker(quick)
    await worker.start()
    try:
        actor = operator_of(tenant.id)
        task = await tasks.submit_task(actor, agent_id=agent.id, query=" ".join(["w"] * 50))
        done = await wait_for_status(task.id, TaskStatus.FAILED, TaskStatus.COMPLETED)
    finally:
        await worker.stop()
    assert done.status == TaskStatus.FAILED
    assert done.error == "timed out after 1s"
    steps = await assert_gapless(task.id)
    assert steps[-1].payload["to"] == "failed"


async def test_stopping_worker_hands_task_back(services: Settings) -> None:
    slow = Settings(**{**services.__dict__, "scripted_delay_ms": 50})
    tenant = await make_tenant("acme")
    agent = await make_agent(tenant)
    first = Worker(slow)
    await first.start()
    actor = operator_of(tenant.id)
    task = await tasks.submit_task(actor, agent_id=agent.id, query="one two three four five")
    await wait_for_status(task.id, TaskStatus.RUNNING)
    await first.stop()
    assert (await Task.get(id=task.id)).status == TaskStatus.QUEUED
    second = Worker(services)
    await second.start()
    try:
        done = await wait_for_status(task.id, TaskStatus.COMPLETED)
    finally:
        await second.stop()
    assert done.attempt == 2
    steps = await assert_gapless(task.id)
    transitions = [s.payload["to"] for s in steps if s.kind == StepKind.STATUS_CHANGE]
    assert transitions == ["queued", "running", "queued", "running", "completed"]
