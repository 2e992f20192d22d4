"""A registry tool marked `requiresApproval` is held for a decision with no agent policy, and
the request carries the registry tool's risk and JSON Schema."""

import asyncio
from collections.abc import Iterator

import pytest

from agentplane.core.config import Settings
from agentplane.core.errors import ValidationFailed
from agentplane.models import ApprovalRequest, ApprovalStatus, Step, StepKind, Task, TaskStatus
from agentplane.resolvers import approvals, tasks, tools
from agentplane.resolvers.auth import Actor
from agentplane.runtime.worker import Worker
from tests.support.factories import make_agent, make_tenant
from tests.support.http_tool_server import Recorded, serve_tools

SCHEMA = {
    "type": "object",
    "properties": {"city": {"type": "string"}},
    "required": ["city"],
    "additionalProperties": False,
}


@pytest.fixture
def tool_server() -> Iterator[tuple[str, Recorded]]:
    with serve_tools() as served:
        yield served


async def wait_for(task_id: str, *statuses: TaskStatus) -> Task:
    async with asyncio.timeout(30):
        while (task := await Task.get(id=task_id)).status not in statuses:
            await asyncio.sleep(0.02)
    return task


async def test_a_registry_tool_that_requires_approval_waits_then_runs_the_edited_call(
    services: Settings, tool_server: tuple[str, Recorded]
) -> None:
    # given an HTTP tool marked requiresApproval, and an agent with no approval policy of its own
    base_url, recorded = tool_server
    tenant = await make_tenant("acme")
    admin = Actor(kind="token", role="tenant_admin", tenant_id=tenant.id, token_id="tok_admin")
    operator = Actor(kind="token", role="operator", tenant_id=tenant.id, token_id="tok_op")
    await tools.create_http_tool(
        admin,
        name="weather",
        url=f"{base_url}/weather",
        method="GET",
        input_schema=SCHEMA,
        requires_approval=True,
        risk="medium",
    )
    agent = await make_agent(
        tenant,
        model="scripted/agent",
        tools=["weather"],
        config={
            "script": [
                {"tool": "weather", "arguments": {"city": "Paris"}},
                {"say": "forecast: {last_tool_result}"},
            ]
        },
    )
    worker = Worker(services)
    await worker.start()
    try:
        # when its task reaches the call
        task = await tasks.submit_task(operator, agent_id=agent.id, query="weather?")
        parked = await wait_for(task.id, TaskStatus.WAITING_FOR_APPROVAL, TaskStatus.COMPLETED)
        # then it waits, asking with the registry's risk and schema, and nothing was called
        assert parked.status == TaskStatus.WAITING_FOR_APPROVAL
        request = await ApprovalRequest.get(task_id=task.id)
        assert (request.tool, request.risk, request.arguments) == (
            "weather",
            "medium",
            {"city": "Paris"},
        )
        assert recorded.requests == []
        # and edited arguments are checked against the registry tool's schema
        with pytest.raises(ValidationFailed):
            await approvals.decide(operator, request.id, approve=True, arguments={"city": 7})
        assert (await ApprovalRequest.get(id=request.id)).status == ApprovalStatus.PENDING
        # when approved with other arguments
        await approvals.decide(operator, request.id, approve=True, arguments={"city": "Oslo"})
        done = await wait_for(task.id, TaskStatus.COMPLETED, TaskStatus.FAILED)
    finally:
        await worker.stop()
    # then the tool ran once, with the edited arguments, recorded as an HTTP call
    assert done.status == TaskStatus.COMPLETED
    assert [r["query"] for r in recorded.requests] == [{"city": "Oslo"}]
    calls = await Step.filter(task_id=task.id, kind=StepKind.TOOL_CALL)
    assert [(c.payload["source"], c.payload["arguments"]) for c in calls] == [
        ("http", {"city": "Oslo"})
    ]
