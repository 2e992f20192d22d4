"""The Kubiya control-plane dialect (`/api/v1`), its documented examples end to end."""

import uuid

import httpx
import pytest
from starlette.requests import Request

from agentplane.core.config import Settings
from agentplane.core.errors import DomainError
from agentplane.models import Agent, Task, WorkerQueue
from agentplane.resolvers.auth import Actor
from agentplane.rest_compat import common
from agentplane.runtime import catalog
from agentplane.runtime.providers import build_providers
from tests.support.factories import make_agent, make_tenant, make_token
from tests.support.rest import parse_sse, wait_terminal

V1 = "/api/v1"


def _auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def _queue(client: httpx.AsyncClient, auth: dict[str, str], name: str = "default") -> str:
    response = await client.post(V1 + "/worker-queues", headers=auth, json={"name": name})
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


async def test_documented_examples(client: httpx.AsyncClient) -> None:
    tenant = await make_tenant("acme")
    auth = _auth(await make_token(tenant, "operator"))

    # Example: List Available Models
    models = await client.get(V1 + "/models?enabled_only=true", headers=auth)
    assert models.status_code == 200
    body = models.json()
    assert set(body) == {"items", "total", "limit", "offset"}
    # only what runs here: no built-in provider serves anthropic/* (see the README)
    enabled = [m["value"] for m in body["items"]]
    assert "scripted/agent" in enabled and "openai/gpt-4o-mini" in enabled
    assert not [m for m in enabled if m.startswith("anthropic/")]
    assert all(m["enabled"] for m in body["items"]) and body["total"] == len(body["items"])
    every = (await client.get(V1 + "/models?enabled_only=false", headers=auth)).json()["items"]
    assert {m["value"]: m["enabled"] for m in every}["anthropic/claude-sonnet-4-5"] is False

    # Example: Create an Agent (the documented body, verbatim)
    created = await client.post(
        V1 + "/agents",
        headers={**auth, "Content-Type": "application/json"},
        content=b"""{
    "name": "DevOps Assistant",
    "description": "Helps with infrastructure and deployment tasks",
    "runtime": "claude_code",
    "model_id": "anthropic/claude-sonnet-4-5",
    "system_prompt": "You are a helpful DevOps assistant"
  }""",
    )
    assert created.status_code == 201, created.text
    agent = created.json()
    assert agent["name"] == "DevOps Assistant" and agent["runtime"] == "claude_code"
    assert agent["model_id"] == "anthropic/claude-sonnet-4-5"
    assert agent["organization_id"] == tenant.id
    stored = await Agent.get(id=agent["id"])
    assert stored.system_prompt == "You are a helpful DevOps assistant"

    # Example: Execute an Agent Task, streamed (on an agent whose model runs offline)
    echo = await make_agent(tenant, "echo")
    queue_id = await _queue(client, auth)
    streamed = await client.post(
        f"{V1}/agents/{echo.id}/execute",
        headers=auth,
        json={
            "prompt": "Check the status of pods in the production namespace",
            "worker_queue_id": queue_id,
            "stream": True,
        },
    )
    assert streamed.status_code == 200
    assert streamed.headers["content-type"].startswith("text/event-stream")
    events = parse_sse(streamed.text)
    steps, done = events[:-1], events[-1]
    assert [e["event"] for e in steps] == ["step"] * len(steps)
    assert [int(e["id"]) for e in steps] == list(range(1, len(steps) + 1))
    assert done["event"] == "done"
    assert done["data"]["status"] == "completed"
    assert done["data"]["response"] == "Check the status of pods in the production namespace"
    assert done["data"]["worker_queue_id"] == queue_id
    assert done["data"]["usage"]["total_tokens"] > 0


async def test_execute_then_poll_the_execution(client: httpx.AsyncClient) -> None:
    tenant = await make_tenant("acme")
    auth = _auth(await make_token(tenant, "operator"))
    agent = await make_agent(tenant, "echo")
    queue_id = await _queue(client, auth)
    submitted = await client.post(
        f"{V1}/agents/{agent.id}/execute",
        headers=auth,
        json={"prompt": "hello", "worker_queue_id": queue_id},
    )
    assert submitted.status_code == 200, submitted.text
    body = submitted.json()
    assert set(body) == {"execution_id", "workflow_id", "status", "message"}
    task = await wait_terminal(body["execution_id"])
    execution = (await client.get(f"{V1}/executions/{task.id}", headers=auth)).json()
    assert execution["status"] == "completed" and execution["response"] == "hello"
    assert execution["agent_id"] == agent.id and execution["completed_at"] is not None
    assert execution["usage"]["cost_usd"] == float(task.cost_usd) > 0


async def test_agents_crud_and_pagination(client: httpx.AsyncClient) -> None:
    tenant = await make_tenant("acme")
    auth = _auth(await make_token(tenant, "operator"))
    ids = []
    for name in ("a", "b", "c"):
        response = await client.post(V1 + "/agents", headers=auth, json={"name": name})
        assert response.status_code == 201
        ids.append(response.json()["id"])
    page = (await client.get(V1 + "/agents?limit=2&offset=1", headers=auth)).json()
    assert page["total"] == 3 and page["limit"] == 2 and page["offset"] == 1
    assert [a["id"] for a in page["items"]] == ids[1:]

    patched = await client.patch(
        f"{V1}/agents/{ids[0]}",
        headers=auth,
        json={"description": "first", "status": "paused", "model_id": "scripted/agent"},
    )
    assert patched.status_code == 200, patched.text
    assert (patched.json()["description"], patched.json()["status"]) == ("first", "paused")
    assert patched.json()["model_id"] == "scripted/agent"

    assert (await client.delete(f"{V1}/agents/{ids[0]}", headers=auth)).status_code == 204
    assert (await client.get(f"{V1}/agents/{ids[0]}", headers=auth)).status_code == 404
    assert (await client.get(V1 + "/agents", headers=auth)).json()["total"] == 2


async def test_worker_queues(client: httpx.AsyncClient) -> None:
    tenant = await make_tenant("acme")
    auth = _auth(await make_token(tenant, "operator"))
    queue_id = await _queue(client, auth, "gpu")
    assert uuid.UUID(queue_id)
    listed = (await client.get(V1 + "/worker-queues", headers=auth)).json()
    assert [q["id"] for q in listed["items"]] == [queue_id] and listed["total"] == 1
    one = (await client.get(f"{V1}/worker-queues/{queue_id}", headers=auth)).json()
    assert one["name"] == "gpu" and one["display_name"] == "gpu"
    again = await client.post(V1 + "/worker-queues", headers=auth, json={"name": "gpu"})
    assert again.status_code == 409 and again.json()["error"]["code"] == "CONFLICT"
    assert (await client.delete(f"{V1}/worker-queues/{queue_id}", headers=auth)).status_code == 204
    assert (await client.get(f"{V1}/worker-queues/{queue_id}", headers=auth)).status_code == 404
    assert await WorkerQueue.all().count() == 0


async def test_errors_use_the_kubiya_envelope(client: httpx.AsyncClient) -> None:
    tenant, other = await make_tenant("acme"), await make_tenant("other")
    auth = _auth(await make_token(tenant, "operator"))
    viewer = _auth(await make_token(tenant, "viewer"))
    agent = await make_agent(tenant, "echo")
    queue_id = await _queue(client, auth)
    foreign_queue = str((await WorkerQueue.create(tenant_id=other.id, name="theirs")).id)
    execute = f"{V1}/agents/{agent.id}/execute"
    cases = [
        (await client.post(V1 + "/agents", headers=auth, content=b"{nope"), 400, "BAD_REQUEST"),
        (await client.post(V1 + "/agents", headers=auth, json={}), 422, "VALIDATION_ERROR"),
        (
            await client.post(V1 + "/agents", headers=auth, json={"name": "x", "runtime": "vm"}),
            422,
            "VALIDATION_ERROR",
        ),
        (await client.post(execute, headers=auth, json={"prompt": "x"}), 422, "VALIDATION_ERROR"),
        (
            await client.post(execute, headers=auth, json={"prompt": "x", "worker_queue_id": "q"}),
            422,
            "VALIDATION_ERROR",
        ),
        (
            await client.post(
                execute, headers=auth, json={"prompt": "x", "worker_queue_id": foreign_queue}
            ),
            404,
            "NOT_FOUND",
        ),
        (
            await client.post(
                execute, headers=viewer, json={"prompt": "x", "worker_queue_id": queue_id}
            ),
            403,
            "FORBIDDEN",
        ),
        (
            await client.post(
                execute,
                headers=auth,
                json={"prompt": "x", "worker_queue_id": queue_id, "system_prompt": "Be rude."},
            ),
            422,
            "VALIDATION_ERROR",
        ),
        (await client.get(V1 + "/agents"), 401, "UNAUTHORIZED"),
        (await client.get(f"{V1}/executions/tsk_missing", headers=auth), 404, "NOT_FOUND"),
        (await client.get(f"{V1}/worker-queues/not-a-uuid", headers=auth), 404, "NOT_FOUND"),
        (await client.get(V1 + "/agents?limit=1000", headers=auth), 422, "VALIDATION_ERROR"),
        (await client.get(V1 + "/agents?offset=x", headers=auth), 422, "VALIDATION_ERROR"),
    ]
    for response, status, code in cases:
        assert response.status_code == status, (response.request.url, response.text)
        assert set(response.json()) == {"error"}
        assert set(response.json()["error"]) == {"code", "message", "details"}
        assert response.json()["error"]["code"] == code
    assert await Task.all().count() == 0
    health = await client.get(V1 + "/health")
    assert health.status_code == 200 and health.json()["status"] == "healthy"


async def test_rate_limit_plug_point(
    client: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The limiter itself comes with issue 4; this checks where it plugs in: its headers reach
    every Kubiya response, and its refusal is a 429 with Retry-After in the Kubiya envelope."""

    class Limited(DomainError):
        code = "RATE_LIMITED"

    seen: list[str | None] = []

    async def limiter(request: Request, actor: Actor | None) -> dict[str, str]:
        seen.append(actor.tenant_id if actor else None)
        if len(seen) > 2:
            raise Limited("Too many requests", retry_after=7)
        return {"X-RateLimit-Limit": "2", "X-RateLimit-Remaining": str(2 - len(seen))}

    monkeypatch.setattr(common, "rate_limit_hook", limiter)
    tenant = await make_tenant("acme")
    auth = _auth(await make_token(tenant, "operator"))
    first = await client.get(V1 + "/agents", headers=auth)
    assert first.status_code == 200 and first.headers["X-RateLimit-Remaining"] == "1"
    assert (await client.get(V1 + "/worker-queues", headers=auth)).status_code == 200
    refused = await client.get(V1 + "/agents", headers=auth)
    assert refused.status_code == 429 and refused.headers["Retry-After"] == "7"
    assert refused.json()["error"]["code"] == "RATE_LIMIT_EXCEEDED"
    assert seen == [tenant.id] * 3


def test_the_catalogs_providers_are_the_ones_built() -> None:
    assert set(build_providers(Settings())) == catalog.PROVIDERS
    assert catalog.KEYED_PROVIDERS <= catalog.PROVIDERS


async def test_errors_name_the_callers_own_fields(client: httpx.AsyncClient) -> None:
    auth = _auth(await make_token(await make_tenant("acme"), "operator"))
    unknown = await client.post(V1 + "/agents", headers=auth, json={"name": "x", "model_id": "m/x"})
    assert unknown.status_code == 422, unknown.text
    error = unknown.json()["error"]
    assert error["details"]["field"] == "model_id"
    assert "GraphQL" not in error["message"] and "query" not in error["message"]
    assert error["message"] == "Unknown model 'm/x'; see the model catalog"
