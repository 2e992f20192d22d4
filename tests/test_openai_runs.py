"""Agents on the OpenAI-compatible provider, end to end against a real local server."""

import asyncio
from collections.abc import Iterator

import pytest

from agentplane.core.config import Settings
from agentplane.models import Step, StepKind, Task, TaskStatus, UsageRecord
from agentplane.resolvers import tasks
from agentplane.resolvers.auth import Actor
from agentplane.runtime.worker import Worker
from tests.support.factories import make_agent, make_tenant
from tests.support.openai_server import API_KEY, ServerState, serve_openai


@pytest.fixture(scope="module")
def openai_server() -> Iterator[tuple[str, ServerState]]:
    state = ServerState()
    with serve_openai(state) as base_url:
        yield base_url, state


async def run_to_end(settings: Settings, agent_id: str, tenant_id: str, query: str) -> Task:
    worker = Worker(settings)
    await worker.start()
    try:
        actor = Actor(kind="token", role="operator", tenant_id=tenant_id)
        task = await tasks.submit_task(actor, agent_id=agent_id, query=query)
        async with asyncio.timeout(10):
            while not (task := await Task.get(id=task.id)).status.is_terminal:
                await asyncio.sleep(0.02)
        return task
    finally:
        await worker.stop()


async def test_tool_round_trip_is_traced_and_priced(
    services: Settings, openai_server: tuple[str, ServerState]
) -> None:
    base_url, _ = openai_server
    settings = Settings(
        **{**services.__dict__, "openai_base_url": base_url, "openai_api_key": API_KEY}
    )
    tenant = await make_tenant("acme")
    agent = await make_agent(tenant, model="openai/gpt-4o-mini", tools=["calculator"])
    task = await run_to_end(settings, agent.id, tenant.id, "what is the weather like?")
    assert task.status == TaskStatus.COMPLETED, task.error
    steps = await Step.filter(task_id=task.id).order_by("seq")
    assert [s.kind for s in steps] == [
        StepKind.STATUS_CHANGE,
        StepKind.STATUS_CHANGE,
        StepKind.PROVIDER_CALL,
        StepKind.TOOL_CALL,
        StepKind.PROVIDER_CALL,
        StepKind.STATUS_CHANGE,
    ]
    first, tool, second = steps[2], steps[3], steps[4]
    assert first.payload["toolCalls"][0]["name"] == "calculator"
    assert tool.payload["arguments"] == {"city": "Paris"}
    assert task.output == f"Tool said: {tool.payload['output']}"
    # token counts are the server's usage figures: words of all prompt messages in
    assert first.input_tokens == 5
    assert second.output_tokens == len(task.output.split())
    usage = await UsageRecord.filter(task_id=task.id).order_by("created_at")
    assert [u.priced for u in usage] == [True, True]
    assert all(u.cost_usd > 0 for u in usage)


async def test_model_missing_from_catalog_runs_unpriced(
    services: Settings, openai_server: tuple[str, ServerState]
) -> None:
    base_url, _ = openai_server
    settings = Settings(
        **{**services.__dict__, "openai_base_url": base_url, "openai_api_key": API_KEY}
    )
    tenant = await make_tenant("acme")
    agent = await make_agent(tenant, model="openai/local-llama-3")
    task = await run_to_end(settings, agent.id, tenant.id, "hello")
    assert task.status == TaskStatus.COMPLETED, task.error
    assert task.output == "You said: hello"
    usage = await UsageRecord.get(task_id=task.id)
    assert usage.priced is False
    assert usage.model == "openai/local-llama-3"
    call = await Step.get(task_id=task.id, kind=StepKind.PROVIDER_CALL)
    assert call.payload["priced"] is False


async def test_provider_error_fails_the_task_with_a_reason(
    services: Settings, openai_server: tuple[str, ServerState]
) -> None:
    base_url, _ = openai_server
    settings = Settings(
        **{**services.__dict__, "openai_base_url": base_url, "openai_api_key": "wrong"}
    )
    tenant = await make_tenant("acme")
    agent = await make_agent(tenant, model="openai/gpt-4o-mini")
    task = await run_to_end(settings, agent.id, tenant.id, "hello")
    assert task.status == TaskStatus.FAILED
    assert task.error is not None and "401" in task.error
    assert "wrong" not in task.error
