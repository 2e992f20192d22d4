"""Durable execution: leases, takeover after a crash, fencing, pause/resume, retry."""

import asyncio
from dataclasses import replace

import pytest

from agentplane.core.config import Settings
from agentplane.core.errors import Conflict
from agentplane.models import Step, StepKind, Task, TaskStatus
from agentplane.resolvers import tasks, traces
from agentplane.resolvers.auth import Actor
from agentplane.runtime.worker import Worker
from tests.support.factories import make_agent, make_tenant

SCRIPT = [
    {"tool": "calculator", "arguments": {"expression": "1+1"}},
    {"tool": "calculator", "arguments": {"expression": "2+2"}},
    {"tool": "calculator", "arguments": {"expression": "3+3"}},
    {"say": "done: {last_tool_result}"},
]


def operator(tenant_id: str) -> Actor:
    return Actor(kind="token", role="operator", tenant_id=tenant_id, token_id="tok_op")


async def wait_for(task_id: str, *statuses: TaskStatus, timeout: float = 15) -> Task:
    async with asyncio.timeout(timeout):
        while (task := await Task.get(id=task_id)).status not in statuses:
            await asyncio.sleep(0.02)
    return task


async def wait_for_steps(task_id: str, count: int, timeout: float = 10) -> None:
    async with asyncio.timeout(timeout):
        while await Step.filter(task_id=task_id).count() < count:
            await asyncio.sleep(0.01)


def crash(worker: Worker) -> None:
    """Stop a worker the way SIGKILL would: no hand-back, no further writes."""
    for loop_task in worker._tasks:
        loop_task.cancel()
    for task_id, runner in worker.running.items():
        worker.lost.add(task_id)
        runner.cancel()


async def statuses(task_id: str) -> list[str]:
    steps = await Step.filter(task_id=task_id, kind=StepKind.STATUS_CHANGE).order_by("seq")
    return [s.payload["to"] for s in steps]


async def assert_clean_trace(task_id: str) -> list[Step]:
    steps = await Step.filter(task_id=task_id).order_by("seq")
    assert [s.seq for s in steps] == list(range(1, len(steps) + 1))
    return steps


@pytest.fixture
def fast_leases(services: Settings) -> Settings:
    return replace(services, lease_ttl_s=0.6, scripted_delay_ms=30)


async def test_a_crashed_workers_task_is_taken_over_and_resumed(fast_leases: Settings) -> None:
    # given a multi-step run in progress on worker A
    tenant = await make_tenant("acme")
    agent = await make_agent(
        tenant, model="scripted/agent", tools=["calculator"], config={"script": SCRIPT}
    )
    first = Worker(fast_leases)
    await first.start()
    task = await tasks.submit_task(operator(tenant.id), agent_id=agent.id, query="go")
    await wait_for_steps(task.id, 4)  # queued, running, first model call, first tool call
    assert (await Task.get(id=task.id)).worker_id == first.id
    # when A dies without a word, and B is around
    crash(first)
    second = Worker(fast_leases)
    await second.start()
    try:
        done = await wait_for(task.id, TaskStatus.COMPLETED, TaskStatus.FAILED)
    finally:
        await second.stop()
    # then B took over within the lease, recorded it, and repeated nothing A had done
    assert done.status == TaskStatus.COMPLETED, done.error
    assert done.output == "done: 6"
    assert await statuses(task.id) == ["queued", "running", "retrying", "running", "completed"]
    steps = await assert_clean_trace(task.id)
    calls = [s for s in steps if s.kind == StepKind.PROVIDER_CALL]
    tools = [s.payload["arguments"]["expression"] for s in steps if s.kind == StepKind.TOOL_CALL]
    assert len(calls) == len(SCRIPT)
    assert tools == ["1+1", "2+2", "3+3"]
    retry = next(s for s in steps if s.payload.get("to") == "retrying")
    assert retry.payload["reason"] == f"lease expired (worker {first.id})"
    assert done.attempt == 2 and done.expiries == 1
    # and each claim names its worker in the trace
    runs = [s.payload["worker"] for s in steps if s.payload.get("to") == "running"]
    assert runs == [first.id, second.id]


async def test_a_worker_that_lost_its_lease_cannot_write(fast_leases: Settings) -> None:
    tenant = await make_tenant("acme")
    agent = await make_agent(tenant)
    await tasks.submit_task(operator(tenant.id), agent_id=agent.id, query="hi")
    zombie = Worker(fast_leases)
    claimed = await zombie.claim()
    assert claimed is not None
    # another worker reaps the lapsed lease and claims the task
    await asyncio.sleep(0.7)
    successor = Worker(fast_leases)
    await successor.reap()
    taken = await successor.claim()
    assert taken is not None and taken.attempt == claimed.attempt + 1
    # the zombie's late write is refused and leaves no trace
    before = await Step.filter(task_id=claimed.id).count()
    with pytest.raises(traces.LeaseLost):
        await traces.append_step(claimed, StepKind.TOOL_CALL, {"late": True}, fence=claimed.attempt)
    assert await Step.filter(task_id=claimed.id).count() == before
    late_end = await traces.transition(
        claimed.id, [TaskStatus.RUNNING], TaskStatus.COMPLETED, fence=claimed.attempt
    )
    assert late_end is None
    assert (await Task.get(id=claimed.id)).status == TaskStatus.RUNNING


async def test_a_task_whose_lease_keeps_lapsing_fails_with_a_reason(fast_leases: Settings) -> None:
    tenant = await make_tenant("acme")
    agent = await make_agent(tenant)
    task = await tasks.submit_task(operator(tenant.id), agent_id=agent.id, query="hi")
    doomed = replace(fast_leases, max_attempts=2)
    for _ in range(2):  # a worker claims it and dies, twice
        assert await Worker(doomed).claim() is not None
        await asyncio.sleep(0.7)
        await Worker(doomed).reap()
    done = await Task.get(id=task.id)
    assert done.status == TaskStatus.FAILED
    assert done.error == "worker lost 2 times"
    assert await statuses(task.id) == ["queued", "running", "retrying", "running", "failed"]
    await assert_clean_trace(task.id)


async def test_pause_between_steps_then_resume_continues(fast_leases: Settings) -> None:
    tenant = await make_tenant("acme")
    agent = await make_agent(
        tenant, model="scripted/agent", tools=["calculator"], config={"script": SCRIPT}
    )
    worker = Worker(fast_leases)
    await worker.start()
    try:
        actor = operator(tenant.id)
        task = await tasks.submit_task(actor, agent_id=agent.id, query="go")
        await wait_for_steps(task.id, 3)
        requested = await tasks.pause_task(actor, task.id)
        assert requested.pause_requested or requested.status == TaskStatus.PAUSED
        paused = await wait_for(task.id, TaskStatus.PAUSED, TaskStatus.COMPLETED)
        assert paused.status == TaskStatus.PAUSED
        calls_while_paused = await Step.filter(task_id=task.id, kind=StepKind.PROVIDER_CALL).count()
        await asyncio.sleep(0.3)
        assert (
            await Step.filter(task_id=task.id, kind=StepKind.PROVIDER_CALL).count()
            == calls_while_paused
        )
        with pytest.raises(Conflict):
            await tasks.pause_task(actor, task.id)
        await tasks.resume_task(actor, task.id)
        done = await wait_for(task.id, TaskStatus.COMPLETED, TaskStatus.FAILED)
    finally:
        await worker.stop()
    assert done.output == "done: 6"
    steps = await assert_clean_trace(task.id)
    assert len([s for s in steps if s.kind == StepKind.PROVIDER_CALL]) == len(SCRIPT)
    flow = await statuses(task.id)
    assert flow[:3] == ["queued", "running", "paused"]
    assert flow[3:] == ["queued", "running", "completed"]


async def test_retry_runs_a_failed_task_again_from_the_start(fast_leases: Settings) -> None:
    tenant = await make_tenant("acme")
    agent = await make_agent(tenant, model="scripted/agent", max_steps=1,
                             tools=["calculator"], config={"script": SCRIPT})  # fmt: skip
    worker = Worker(fast_leases)
    await worker.start()
    try:
        actor = operator(tenant.id)
        task = await tasks.submit_task(actor, agent_id=agent.id, query="go")
        failed = await wait_for(task.id, TaskStatus.FAILED)
        assert failed.error == "no final answer within 1 model calls"
        # a completed or running task cannot be retried; a failed one can
        retried = await tasks.retry_task(actor, task.id)
        assert retried.status == TaskStatus.QUEUED and retried.error is None
        again = await wait_for(task.id, TaskStatus.FAILED)
    finally:
        await worker.stop()
    assert again.error == "no final answer within 1 model calls"
    steps = await assert_clean_trace(task.id)
    restart = [s for s in steps if s.payload.get("restart")]
    assert len(restart) == 1 and restart[0].payload["from"] == "failed"
    # the second run started over: one model call in each run
    assert len([s for s in steps if s.kind == StepKind.PROVIDER_CALL]) == 2
    with pytest.raises(Conflict):
        await tasks.resume_task(operator(tenant.id), task.id)
