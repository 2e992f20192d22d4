"""The OpsClaw dialect (`/v1`), including OpenAI-compatible chat completions driven by
the official `openai` client."""

from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import openai
import pytest
from starlette.applications import Starlette

from agentplane.models import Agent, Task, UsageRecord
from tests.support.factories import make_agent, make_tenant, make_token
from tests.support.rest import graphql, operator_token, settle_live_tasks, wait_terminal
from tests.support.server import live_server


def _auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture
async def http(app: Starlette) -> AsyncIterator[httpx.AsyncClient]:
    """The OpenAI client's own HTTP client, speaking to the app in-process."""
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app)) as c:
        yield c


def _openai(http: httpx.AsyncClient, token: str, agent_id: str) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(
        api_key=token,
        base_url=f"http://agentplane.test/v1/agents/{agent_id}",
        http_client=http,
        max_retries=0,
    )


async def test_openai_client_non_streaming(http: httpx.AsyncClient) -> None:
    tenant = await make_tenant("acme")
    agent = await make_agent(tenant, "echo", system_prompt="Be brief.")
    client = _openai(http, await make_token(tenant, "operator"), agent.id)
    completion = await client.chat.completions.create(
        model="gpt-4o-mini",
        messages=[
            {"role": "system", "content": "ignored: the agent has its own prompt"},
            {"role": "user", "content": "hello there"},
        ],
    )
    assert completion.object == "chat.completion"
    assert completion.choices[0].message.role == "assistant"
    assert completion.choices[0].message.content == "hello there"
    assert completion.choices[0].finish_reason == "stop"
    task = await Task.get(id=completion.id.removeprefix("chatcmpl-"))
    records = await UsageRecord.filter(task_id=task.id)
    assert completion.usage is not None
    assert completion.usage.prompt_tokens == sum(r.input_tokens for r in records) > 0
    assert completion.usage.completion_tokens == sum(r.output_tokens for r in records) > 0
    assert completion.usage.total_tokens == (
        completion.usage.prompt_tokens + completion.usage.completion_tokens
    )


async def test_openai_client_streaming_with_usage(http: httpx.AsyncClient) -> None:
    tenant = await make_tenant("acme")
    agent = await make_agent(tenant, "echo")
    client = _openai(http, await make_token(tenant, "operator"), agent.id)
    stream = await client.chat.completions.create(
        model="gpt-4o-mini",
        messages=[{"role": "user", "content": "one two three four"}],
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = [chunk async for chunk in stream]
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "one two three four"
    assert len([c for c in chunks if c.choices and c.choices[0].delta.content]) == 4
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "stop"
    usage = chunks[-1].usage
    assert usage is not None and chunks[-1].choices == []
    task = await Task.get(id=chunks[0].id.removeprefix("chatcmpl-"))
    records = await UsageRecord.filter(task_id=task.id)
    assert usage.prompt_tokens == sum(r.input_tokens for r in records)
    assert usage.completion_tokens == sum(r.output_tokens for r in records)


async def test_openai_client_errors(http: httpx.AsyncClient) -> None:
    tenant = await make_tenant("acme")
    agent = await make_agent(tenant, "echo")
    token = await make_token(tenant, "operator")
    with pytest.raises(openai.AuthenticationError):
        await _openai(http, "agp_not_a_token", agent.id).chat.completions.create(
            model="m", messages=[{"role": "user", "content": "x"}]
        )
    with pytest.raises(openai.NotFoundError):
        await _openai(http, token, "agt_missing").chat.completions.create(
            model="m", messages=[{"role": "user", "content": "x"}]
        )
    with pytest.raises(openai.BadRequestError) as raised:
        await _openai(http, token, agent.id).chat.completions.create(
            model="m", messages=[{"role": "assistant", "content": "no user turn"}]
        )
    assert raised.value.code == "validation_failed"
    assert await Task.all().count() == 0


async def test_agents_run_chat_runs_and_billing(client: httpx.AsyncClient) -> None:
    tenant = await make_tenant("acme")
    auth = _auth(await make_token(tenant, "operator"))
    assert (await client.get("/healthz")).json()["status"] == "ok"

    created = await client.post(
        "/v1/agents",
        headers=auth,
        json={"name": "helper", "displayName": "Helper", "systemPrompt": "Be brief."},
    )
    assert created.status_code == 201, created.text
    agent = created.json()
    assert (agent["displayName"], agent["systemPrompt"], agent["status"]) == (
        "Helper",
        "Be brief.",
        "active",
    )
    updated = await client.put(f"/v1/agents/{agent['id']}", headers=auth, json={"maxSteps": 4})
    assert updated.status_code == 200 and updated.json()["maxSteps"] == 4
    assert (await client.get(f"/v1/agents/{agent['id']}", headers=auth)).json()["maxSteps"] == 4

    run = await client.post(f"/v1/agents/{agent['id']}/run", headers=auth, json={"input": "ping"})
    assert run.status_code == 200, run.text
    assert (run.json()["status"], run.json()["output"]) == ("completed", "ping")
    assert run.json()["usage"]["totalTokens"] > 0

    chat = await client.post(
        f"/v1/agents/{agent['id']}/chat",
        headers=auth,
        json={"message": "how are you", "conversationId": "c1"},
    )
    assert chat.status_code == 200, chat.text
    assert (chat.json()["reply"], chat.json()["conversationId"]) == ("how are you", "c1")

    first = (await client.get("/v1/agent-runs?limit=1", headers=auth)).json()
    assert first["hasMore"] is True and first["data"][0]["id"] == chat.json()["runId"]
    second = (
        await client.get(f"/v1/agent-runs?limit=1&cursor={first['nextCursor']}", headers=auth)
    ).json()
    assert [r["id"] for r in second["data"]] == [run.json()["id"]] and second["hasMore"] is False

    usage = (await client.get("/v1/billing/usage", headers=auth)).json()
    records = await UsageRecord.filter(tenant_id=tenant.id)
    assert usage["calls"] == len(records) == 2
    assert usage["inputTokens"] == sum(r.input_tokens for r in records)
    assert usage["totalCostUsd"] == pytest.approx(float(sum(r.cost_usd for r in records)))
    assert [m["model"] for m in usage["byModel"]] == ["scripted/echo"]

    deleted = await client.delete(f"/v1/agents/{agent['id']}", headers=auth)
    assert deleted.status_code == 200 and deleted.json()["deleted"] is True
    assert (await client.get(f"/v1/agents/{agent['id']}", headers=auth)).status_code == 404
    assert (await Agent.get(id=agent["id"])).state.value == "archived"  # soft: the row stays
    runs = (await client.get("/v1/agent-runs", headers=auth)).json()["data"]
    assert len(runs) == 2  # the runs stay readable


async def test_failed_run_and_errors(client: httpx.AsyncClient) -> None:
    tenant = await make_tenant("acme")
    auth = _auth(await make_token(tenant, "operator"))
    viewer = _auth(await make_token(tenant, "viewer"))
    # A model no built-in provider serves: the run fails, the sync call says so.
    broken = await make_agent(tenant, "broken", model="anthropic/claude-haiku-4-5")
    run = await client.post(f"/v1/agents/{broken.id}/run", headers=auth, json={"input": "x"})
    assert run.status_code == 200 and run.json()["status"] == "failed"
    assert "No provider" in run.json()["error"]
    chat = await client.post(f"/v1/agents/{broken.id}/chat", headers=auth, json={"message": "x"})
    assert chat.status_code == 502 and chat.json()["error"]["type"] == "server_error"
    await wait_terminal((await Task.filter(agent_id=broken.id).order_by("-id").first()).id)  # type: ignore[union-attr]

    cases = [
        (await client.post("/v1/agents", headers=auth, content=b"[1"), 400, "invalid_json"),
        (await client.post("/v1/agents", headers=auth, json={"name": ""}), 400, None),
        (await client.post("/v1/agents", json={"name": "x"}), 401, "invalid_api_key"),
        (await client.post("/v1/agents", headers=viewer, json={"name": "x"}), 403, "forbidden"),
        (await client.get("/v1/agents/agt_nope", headers=auth), 404, "not_found"),
        (await client.post(f"/v1/agents/{broken.id}/run", headers=auth, json={}), 400, None),
        (await client.get("/v1/agent-runs?cursor=%%%", headers=auth), 400, None),
    ]
    for response, status, code in cases:
        assert response.status_code == status, (response.request.url, response.text)
        assert set(response.json()["error"]) == {"code", "message", "type", "param"}
        assert code is None or response.json()["error"]["code"] == code


def test_streaming_is_live_over_real_http(database_url: str, workdir: Path) -> None:
    """Chunks reach the client while the run is still going, not all at its end."""
    with live_server(database_url, workdir) as server:
        token = operator_token(server)
        agent = graphql(
            server, token, 'mutation { createAgent(input: {name: "e"}) { agent { id } } }'
        )["createAgent"]["agent"]
        client = openai.OpenAI(
            api_key=token, base_url=f"{server.base_url}/v1/agents/{agent['id']}", max_retries=0
        )
        words = [f"w{i}" for i in range(80)]  # 5 ms a word on the live server's scripted model
        stream = client.chat.completions.create(
            model="any",
            messages=[{"role": "user", "content": " ".join(words)}],
            stream=True,
            stream_options={"include_usage": True},
        )
        status_at_first_word = None
        text = ""
        last = None
        for chunk in stream:
            last = chunk
            if chunk.choices and chunk.choices[0].delta.content:
                if status_at_first_word is None:
                    task_id = chunk.id.removeprefix("chatcmpl-")
                    status_at_first_word = graphql(
                        server, token, "query($id: ID!) { task(id: $id) { status } }", id=task_id
                    )["task"]["status"]
                text += chunk.choices[0].delta.content
        assert status_at_first_word == "RUNNING"
        assert text == " ".join(words)
        assert last is not None and last.usage is not None and last.usage.completion_tokens == 80
        settle_live_tasks(server.base_url, server.admin_token)
