"""Live events are executed once per operation, and never shared across different results."""

import asyncio
from typing import Any

from agentplane.auth import Actor
from agentplane.config import Settings
from agentplane.resolvers import tasks
from agentplane.runtime.worker import Worker
from agentplane.schema import executor, schema
from agentplane.schema.context import Context
from tests.support.factories import make_agent, make_tenant

EVENTS = """subscription($id: ID!, $after: Int, $withPayload: Boolean!) {
  taskEvents(taskId: $id, afterSeq: $after) { seq kind payload @include(if: $withPayload) } }"""


async def watch(actor: Actor, task_id: str, after: int, with_payload: bool) -> list[dict[str, Any]]:
    stream = await schema.subscribe(
        EVENTS,
        variable_values={"id": task_id, "after": after, "withPayload": with_payload},
        context_value=Context(request=None, _actor=actor),
    )
    results = []
    async for result in stream:  # type: ignore[union-attr]
        assert not result.errors, result.errors
        results.append(result.data["taskEvents"])
    return results


async def test_subscribers_share_live_results_only_when_their_selections_match(
    services: Settings,
) -> None:
    tenant = await make_tenant("acme")
    agent = await make_agent(tenant)
    actor = Actor(kind="token", role="operator", tenant_id=tenant.id)
    task = await tasks.submit_task(actor, agent_id=agent.id, query="one two three")
    executor._results.clear()
    # given four live subscribers: two selections (with and without payload), two cursors
    watchers = [
        asyncio.create_task(watch(actor, task.id, after, with_payload))
        for with_payload in (True, False)
        for after in (0, 1)
    ]
    await asyncio.sleep(0.2)
    worker = Worker(services)
    await worker.start()
    try:
        full_0, full_1, bare_0, bare_1 = await asyncio.wait_for(asyncio.gather(*watchers), 10)
    finally:
        await worker.stop()
    # then every subscriber got its own selection, in full, from its cursor
    assert [e["seq"] for e in full_0] == [1, 2, 3, 4]
    assert full_1 == full_0[1:]
    assert all("payload" in e for e in full_0)
    assert bare_0 == [{"seq": e["seq"], "kind": e["kind"]} for e in full_0]
    assert bare_1 == bare_0[1:]
    # and each live step was executed once per distinct selection, not once per subscriber
    executions = [key for key in executor._results if key[0] is not None]
    live_steps = {key[0] for key in executions}
    assert len(live_steps) == 4
    assert len(executions) == 2 * len(live_steps)
