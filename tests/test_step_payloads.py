"""Large step payloads: stored and served whole, kept out of ordinary trace reads."""

from collections.abc import AsyncIterator

import httpx
import orjson
import pytest

from agentplane.core.config import Settings
from agentplane.http.app import create_app
from agentplane.models import StepKind, StepPayload, Task
from agentplane.resolvers import traces
from agentplane.resolvers.step_payloads import PREVIEW_CHARS, STEP_INLINE_BYTES
from tests.support.database import truncate_all
from tests.support.factories import make_agent, make_tenant, make_token
from tests.support.graphql import GraphQLClient

TRACE = "query($id: ID!) { task(id: $id) { steps { seq payload payloadTruncated } } }"
FULL = "query($id: ID!) { task(id: $id) { steps { seq fullPayload } } }"


@pytest.fixture
async def quiet_gql(settings: Settings) -> AsyncIterator[GraphQLClient]:
    """No worker: the tests write the trace themselves."""
    await truncate_all(settings.database_url)
    application = create_app(settings, run_worker=False)
    async with application.router.lifespan_context(application):
        transport = httpx.ASGITransport(app=application)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            yield GraphQLClient(client)


async def test_large_payloads_are_previewed_in_traces_and_served_whole(
    quiet_gql: GraphQLClient,
) -> None:
    gql = quiet_gql
    # given a task with one large provider call (a 50 KB output) and one small step
    tenant = await make_tenant("acme")
    agent = await make_agent(tenant)
    token = await make_token(tenant, "viewer")
    task = await traces.create_task(
        tenant_id=tenant.id, agent_id=agent.id, query="q", metadata={}, created_by="test"
    )
    big = {"prompt": "p" * 20_000, "output": "o" * 50_000, "finish": "stop", "n": 3}
    await traces.append_step(task, StepKind.PROVIDER_CALL, big)
    await traces.append_step(task, StepKind.TOOL_CALL, {"tool": "calculator", "result": "42"})

    # when the trace is read
    response = await gql.client.post(
        "/graphql",
        json={"query": TRACE, "variables": {"id": task.id}},
        headers={"Authorization": f"Bearer {token}"},
    )
    steps = response.json()["data"]["task"]["steps"]

    # then the large step is a marked, bounded preview, and the response stays small
    size = len(orjson.dumps(big))
    preview = steps[1]["payload"]
    assert steps[1]["payloadTruncated"] is True
    assert preview["_truncated"] == {"sizeBytes": size, "previewChars": PREVIEW_CHARS}
    assert preview["output"] == "o" * PREVIEW_CHARS and preview["finish"] == "stop"
    assert preview["n"] == 3
    assert len(orjson.dumps(preview)) <= STEP_INLINE_BYTES
    assert len(response.content) < 10_000
    # and small steps are untouched
    assert steps[2] == {
        "seq": 3,
        "payload": {"tool": "calculator", "result": "42"},
        "payloadTruncated": False,
    }

    # when the full payload is asked for, all of it comes back
    full = (await gql.ok(FULL, token, id=task.id))["task"]["steps"]
    assert full[1]["fullPayload"] == big
    assert full[2]["fullPayload"] == {"tool": "calculator", "result": "42"}
    assert await StepPayload.all().count() == 1


async def test_full_payloads_stay_in_their_tenant(services: object) -> None:
    from agentplane.resolvers.auth import Actor
    from agentplane.resolvers.step_payloads import load_full_payloads

    tenant, other = await make_tenant("acme"), await make_tenant("other")
    agent = await make_agent(tenant)
    task = await traces.create_task(
        tenant_id=tenant.id, agent_id=agent.id, query="q", metadata={}, created_by="test"
    )
    step = await traces.append_step(task, StepKind.PROVIDER_CALL, {"output": "x" * 20_000})
    mine = Actor(kind="token", role="viewer", tenant_id=tenant.id)
    theirs = Actor(kind="token", role="viewer", tenant_id=other.id)
    assert await load_full_payloads(mine, [step.id]) == [{"output": "x" * 20_000}]
    assert await load_full_payloads(theirs, [step.id]) == [None]
    await Task.filter(id=task.id).delete()  # none left queued for the next test's worker
