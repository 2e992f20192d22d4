"""A tenant's own provider key is what its runs use (and is redacted from errors)."""

import asyncio
from collections.abc import Iterator

import pytest

from agentplane.core.config import Settings
from agentplane.models import Task, TaskStatus
from agentplane.resolvers import provider_keys, tasks
from agentplane.resolvers.auth import Actor
from agentplane.runtime.worker import Worker
from tests.support.factories import make_agent, make_tenant
from tests.support.openai_server import API_KEY, ServerState, serve_openai


@pytest.fixture(scope="module")
def openai_server() -> Iterator[str]:
    with serve_openai(ServerState()) as base_url:
        yield base_url


async def run(settings: Settings, tenant_id: str, agent_id: str) -> Task:
    worker = Worker(settings)
    await worker.start()
    try:
        actor = Actor(kind="token", role="operator", tenant_id=tenant_id)
        task = await tasks.submit_task(actor, agent_id=agent_id, query="hello there")
        async with asyncio.timeout(10):
            while not (task := await Task.get(id=task.id)).status.is_terminal:
                await asyncio.sleep(0.02)
        return task
    finally:
        await worker.stop()


async def test_runs_use_the_tenants_own_key(services: Settings, openai_server: str) -> None:
    # given an installation whose own key the server rejects
    settings = Settings(
        **{**services.__dict__, "openai_base_url": openai_server, "openai_api_key": "sk-wrong"}
    )
    acme, beta = await make_tenant("acme"), await make_tenant("beta")
    admin = Actor(kind="token", role="tenant_admin", tenant_id=acme.id)
    await provider_keys.set_provider_key(admin, "openai", api_key=API_KEY)
    acme_agent = await make_agent(acme, model="openai/gpt-4o-mini")
    beta_agent = await make_agent(beta, model="openai/gpt-4o-mini")

    # when both tenants run an agent
    acme_task = await run(settings, acme.id, acme_agent.id)
    beta_task = await run(settings, beta.id, beta_agent.id)

    # then acme's run used acme's key; beta's fell back to the rejected installation key
    assert acme_task.status == TaskStatus.COMPLETED, acme_task.error
    assert acme_task.output == "You said: hello there"
    assert beta_task.status == TaskStatus.FAILED
    assert "HTTP 401" in (beta_task.error or "") and "sk-wrong" not in (beta_task.error or "")
