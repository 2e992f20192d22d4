"""The OpsClaw dialect (`/v1`), including OpenAI-compatible chat completions driven by
the official `openai` client."""

import dataclasses
import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
from starlette.applications import Starlette

from agentplane.core.config import Settings
from agentplane.http.app import create_app
from agentplane.models import (
    AccessToken,
    Agent,
    BudgetScope,
    RoleAssignment,
    Step,
    StepKind,
    Task,
    Tenant,
    UsageRecord,
    User,
)
from agentplane.resolvers import budgets
from agentplane.resolvers import roles as roles_resolver
from tests.support.database import truncate_all
from tests.support.factories import PLATFORM, make_agent, make_tenant, make_token, make_user
from tests.support.openai_server import API_KEY, ServerState, serve_openai
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
        f"/v1/agents/{agent['id']}/chat", headers=auth, json={"message": "how are you"}
    )
    assert chat.status_code == 200, chat.text
    assert (chat.json()["reply"], chat.json()["conversationId"]) == (
        "how are you",
        chat.json()["runId"],
    )

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
    # streamed, the failure is the same error object as unstreamed
    body = {"messages": [{"role": "user", "content": "x"}], "stream": True}
    streamed = await client.post(
        f"/v1/agents/{broken.id}/chat/completions", headers=auth, json=body
    )
    last = [line for line in streamed.text.splitlines() if line.startswith("data:")][-1]
    error = json.loads(last.removeprefix("data:"))["error"]
    assert (error["code"], error["type"], error["param"]) == ("run_failed", "server_error", None)
    assert "No provider" in error["message"]

    # a conversation the agent never had is not found, and starts no run
    echo = await make_agent(tenant, "echo")
    made_up = await client.post(
        f"/v1/agents/{echo.id}/chat",
        headers=auth,
        json={"message": "x", "conversationId": "tsk_nope"},
    )
    assert made_up.status_code == 404 and made_up.json()["error"]["code"] == "not_found"
    assert made_up.json()["error"]["param"] == "conversationId"
    assert await Task.filter(agent_id=echo.id).count() == 0

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


# ---------------------------------------------------------------- identity
async def test_principals_role_assignments_and_definitions(client: httpx.AsyncClient) -> None:
    acme, other = await make_tenant("acme"), await make_tenant("other")
    admin = _auth(await make_token(acme, "tenant_admin"))
    created = await client.post(
        "/v1/principals",
        headers=admin,
        json={"subjectId": "bot@acme.test", "displayName": "Bot", "role": "operator"},
    )
    assert created.status_code == 201, created.text
    principal, pat = created.json()["principal"], created.json()["pat"]
    assert (principal["subjectId"], principal["status"], principal["type"]) == (
        "bot@acme.test",
        "active",
        "user",
    )
    grant = principal["roleAssignments"][0]
    assert (grant["roleDefinitionId"], grant["scope"], grant["tenantId"]) == (
        "operator",
        "/tenants/acme",
        acme.id,
    )
    assert (await client.get("/v1/agent-runs", headers=_auth(pat["token"]))).status_code == 200
    listed = (await client.get("/v1/principals", headers=admin)).json()
    assert [p["id"] for p in listed["data"]] == [principal["id"]] and not listed["hasMore"]
    fetched = await client.get(f"/v1/principals/{principal['id']}", headers=admin)
    assert fetched.json() == principal

    # rename and expire: the principal's tokens expire no later
    not_after = datetime.now(UTC) + timedelta(days=1)
    patched = await client.patch(
        f"/v1/principals/{principal['id']}",
        headers=admin,
        json={"subjectId": "robot@acme.test", "notAfter": not_after.isoformat()},
    )
    assert patched.status_code == 200, patched.text
    assert patched.json()["subjectId"] == "robot@acme.test"
    token_row = await AccessToken.get(id=pat["id"])
    assert token_row.expires_at is not None and token_row.expires_at <= not_after
    naive = await client.patch(
        f"/v1/principals/{principal['id']}", headers=admin, json={"notAfter": "2030-01-01T00:00"}
    )
    assert naive.status_code == 400 and naive.json()["error"]["param"] == "notAfter"

    # role definitions: the five predefined roles
    roles = (await client.get("/v1/role-definitions", headers=admin)).json()["data"]
    assert sorted(r["id"] for r in roles) == [
        "billing",
        "operator",
        "platform_admin",
        "tenant_admin",
        "viewer",
    ]
    operator = (await client.get("/v1/role-definitions/operator", headers=admin)).json()
    assert "agent:write" in operator["permissions"] and operator["assignableScopes"] == [
        "/tenants/*"
    ]
    missing = await client.get("/v1/role-definitions/root", headers=admin)
    assert missing.status_code == 404

    # role assignments: granting at a scope replaces the role held there
    body = {"principalId": principal["id"], "roleDefinitionId": "viewer", "scope": "/tenants/acme"}
    granted = await client.post("/v1/role-assignments", headers=admin, json=body)
    assert granted.status_code == 201, granted.text
    assert granted.json()["roleDefinitionId"] == "viewer"
    mine = (
        await client.get(f"/v1/role-assignments?principalId={principal['id']}", headers=admin)
    ).json()["data"]
    assert [(a["id"], a["roleDefinitionId"]) for a in mine] == [(granted.json()["id"], "viewer")]
    platform = await client.post("/v1/role-assignments", headers=admin, json={**body, "scope": "/"})
    assert platform.status_code == 403
    foreign = await client.post(
        "/v1/role-assignments", headers=admin, json={**body, "scope": "/tenants/other"}
    )
    assert foreign.status_code == 404
    assert await RoleAssignment.filter(user_id=principal["id"]).count() == 1
    one = await client.get(f"/v1/role-assignments/{granted.json()['id']}", headers=admin)
    assert one.json() == granted.json()

    # another tenant sees none of it; an operator may not manage principals
    outsider = _auth(await make_token(other, "tenant_admin"))
    assert (
        await client.get(f"/v1/principals/{principal['id']}", headers=outsider)
    ).status_code == 404
    assert (
        await client.get(f"/v1/role-assignments/{granted.json()['id']}", headers=outsider)
    ).status_code == 404
    operator_token = _auth(await make_token(acme, "operator"))
    assert (await client.get("/v1/principals", headers=operator_token)).status_code == 403

    # a tenant admin cannot touch a user who also holds a role elsewhere
    wide = await make_user("wide@example.com", "viewer", other)
    await roles_resolver.assign_role(PLATFORM, wide.id, role="viewer", tenant="acme")
    assert (await client.delete(f"/v1/principals/{wide.id}", headers=admin)).status_code == 404
    assert not (await User.get(id=wide.id)).disabled

    # revoking an assignment; revoking the principal ends the rest and stops its PAT
    extra = await roles_resolver.assign_role(PLATFORM, principal["id"], role="billing")
    ungranted = await client.delete(
        f"/v1/role-assignments/{extra.id}", headers=_auth(await make_token(None, "platform_admin"))
    )
    assert ungranted.json() == {"id": extra.id, "deleted": True}
    revoked = await client.delete(f"/v1/principals/{principal['id']}", headers=admin)
    assert revoked.status_code == 200 and revoked.json()["status"] == "disabled"
    assert revoked.json()["roleAssignments"] == []
    assert (await client.get("/v1/agent-runs", headers=_auth(pat["token"]))).status_code == 401
    assert (
        await client.get(f"/v1/role-assignments/{granted.json()['id']}", headers=admin)
    ).status_code == 404


async def test_personal_access_tokens(client: httpx.AsyncClient) -> None:
    acme = await make_tenant("acme")
    platform = _auth(await make_token(None, "platform_admin"))
    created = await client.post(
        "/v1/principals",
        headers=platform,
        json={"subjectId": "dev@acme.test", "role": "operator", "tenant": "acme"},
    )
    principal, pat = created.json()["principal"], created.json()["pat"]

    # a principal mints its own PAT, acting for it with its role
    own = await client.post("/v1/auth/tokens", headers=_auth(pat["token"]), json={"name": "ci"})
    assert own.status_code == 201, own.text
    assert (own.json()["principalId"], own.json()["role"], own.json()["tenantId"]) == (
        principal["id"],
        "operator",
        acme.id,
    )
    agent = await client.post(
        "/v1/agents", headers=_auth(own.json()["token"]), json={"name": "mine"}
    )
    assert agent.status_code == 201

    # an admin mints one for a principal, with an expiry
    expires = (datetime.now(UTC) + timedelta(days=2)).replace(microsecond=0)
    minted = await client.post(
        "/v1/auth/tokens",
        headers=platform,
        json={"principalId": principal["id"], "expiresAt": expires.isoformat()},
    )
    assert minted.status_code == 201, minted.text
    assert datetime.fromisoformat(minted.json()["expiresAt"]) == expires
    service = _auth(await make_token(acme, "tenant_admin"))
    assert (await client.post("/v1/auth/tokens", headers=service)).status_code == 403
    for bad in ("tomorrow", "2030-01-01T00:00:00"):
        body = {"principalId": principal["id"], "expiresAt": bad}
        response = await client.post("/v1/auth/tokens", headers=platform, json=body)
        assert response.status_code == 400 and response.json()["error"]["param"] == "expiresAt"
    unknown = await client.post("/v1/auth/tokens", headers=platform, json={"principalId": "usr_x"})
    assert unknown.status_code == 404


async def test_tenant_delete_and_restore_within_30_days(client: httpx.AsyncClient) -> None:
    acme = await make_tenant("acme")
    platform = _auth(await make_token(None, "platform_admin"))
    operator = _auth(await make_token(acme, "operator"))
    denied = await client.delete(f"/v1/tenants/{acme.id}", headers=operator)
    assert denied.status_code == 403
    assert (await Tenant.get(id=acme.id)).phase.value == "active"

    deleted = await client.delete(f"/v1/tenants/{acme.id}", headers=platform)
    assert deleted.status_code == 200, deleted.text
    body = deleted.json()
    assert (body["id"], body["name"], body["status"]) == (acme.id, "acme", "deleted")
    until = datetime.fromisoformat(body["restorableUntil"])
    assert until - datetime.fromisoformat(body["deletedAt"]) == timedelta(days=30)
    assert (await client.get("/v1/agent-runs", headers=operator)).status_code == 401
    assert (await client.delete("/v1/tenants/ten_missing", headers=platform)).status_code == 404

    restored = await client.post("/v1/tenants/acme/restore", headers=platform)
    assert restored.status_code == 200 and restored.json()["status"] == "active"
    assert (await client.get("/v1/agent-runs", headers=operator)).status_code == 200
    again = await client.post(f"/v1/tenants/{acme.id}/restore", headers=platform)
    assert again.status_code == 409 and again.json()["error"]["code"] == "conflict"

    await client.delete(f"/v1/tenants/{acme.id}", headers=platform)
    await Tenant.filter(id=acme.id).update(deleted_at=datetime.now(UTC) - timedelta(days=31))
    late = await client.post(f"/v1/tenants/{acme.id}/restore", headers=platform)
    assert late.status_code == 409
    assert (await Tenant.get(id=acme.id)).phase.value == "deleted"


async def test_billing_plan(client: httpx.AsyncClient) -> None:
    acme = await make_tenant("acme")
    viewer = _auth(await make_token(acme, "viewer"))
    plan = (await client.get("/v1/billing/plan", headers=viewer)).json()
    assert plan == {
        "tenantId": acme.id,
        "tier": "self_hosted",
        "status": "active",
        "trial": {"active": False, "endsAt": None},
        "currency": "USD",
        "period": datetime.now(UTC).strftime("%Y-%m"),
        "monthlyBudgetUsd": None,
        "currentSpendUsd": 0.0,
        "alertState": "ok",
    }
    await budgets.set_budget(
        PLATFORM, scope=BudgetScope.TENANT, tenant="acme", monthly_limit_usd="25"
    )
    assert (await client.get("/v1/billing/plan", headers=viewer)).json()["monthlyBudgetUsd"] == 25
    platform = _auth(await make_token(None, "platform_admin"))
    assert (await client.get("/v1/billing/plan", headers=platform)).status_code == 400
    named = await client.get("/v1/billing/plan?tenant=acme", headers=platform)
    assert named.json()["tenantId"] == acme.id
    other = _auth(await make_token(await make_tenant("other"), "viewer"))
    assert (await client.get("/v1/billing/plan?tenant=acme", headers=other)).status_code == 404


# ---------------------------------------------------------------- chat history
@pytest.fixture
async def openai_app(
    settings: Settings,
) -> AsyncIterator[tuple[httpx.AsyncClient, ServerState]]:
    """The app with a worker whose `openai/…` models are the local test server."""
    state = ServerState()
    with serve_openai(state) as base_url:
        configured = dataclasses.replace(settings, openai_base_url=base_url, openai_api_key=API_KEY)
        await truncate_all(settings.database_url)
        application = create_app(configured, run_worker=True)
        async with application.router.lifespan_context(application):
            transport = httpx.ASGITransport(app=application)
            async with httpx.AsyncClient(transport=transport, base_url="http://t") as c:
                yield c, state


async def test_chat_history_reaches_the_model(
    openai_app: tuple[httpx.AsyncClient, ServerState],
) -> None:
    client, state = openai_app
    tenant = await make_tenant("acme")
    agent = await make_agent(tenant, "chat", model="openai/gpt-4o-mini", system_prompt="Be brief.")
    twin = await make_agent(tenant, "twin", model="openai/gpt-4o-mini")
    auth = _auth(await make_token(tenant, "operator"))

    first = await client.post(
        f"/v1/agents/{agent.id}/chat", headers=auth, json={"message": "my name is Ada"}
    )
    assert first.status_code == 200, first.text
    conversation = first.json()["conversationId"]
    assert first.json()["reply"] == "You said: my name is Ada"
    second = await client.post(
        f"/v1/agents/{agent.id}/chat",
        headers=auth,
        json={"message": "what is my name?", "conversationId": conversation},
    )
    assert second.status_code == 200, second.text
    assert second.json()["conversationId"] == conversation
    turns = [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "my name is Ada"},
        {"role": "assistant", "content": "You said: my name is Ada"},
        {"role": "user", "content": "what is my name?"},
    ]
    assert state.last_request is not None
    assert _turns(state.last_request["messages"]) == turns
    # the trace records what the model was sent
    call = await Step.get(task_id=second.json()["runId"], kind=StepKind.PROVIDER_CALL)
    assert _turns(call.payload["prompt"]) == turns

    # a conversation belongs to its agent: another agent does not know it
    other = await client.post(
        f"/v1/agents/{twin.id}/chat",
        headers=auth,
        json={"message": "who am I?", "conversationId": conversation},
    )
    assert other.status_code == 404 and await Task.filter(agent_id=twin.id).count() == 0

    # OpenAI clients send the whole conversation: its user and assistant turns are replayed
    completion = await client.post(
        f"/v1/agents/{agent.id}/chat/completions",
        headers=auth,
        json={
            "model": "any",
            "messages": [
                {"role": "system", "content": "ignored: the agent has its own prompt"},
                {"role": "user", "content": "I live in Paris"},
                {"role": "assistant", "content": "Noted."},
                {"role": "user", "content": [{"type": "text", "text": "where do I live?"}]},
            ],
        },
    )
    assert completion.status_code == 200, completion.text
    assert _turns(state.last_request["messages"]) == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "I live in Paris"},
        {"role": "assistant", "content": "Noted."},
        {"role": "user", "content": "where do I live?"},
    ]


def _turns(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{"role": m["role"], "content": m["content"]} for m in messages]


async def test_role_changes_reach_existing_tokens_at_once(client: httpx.AsyncClient) -> None:
    acme = await make_tenant("acme")
    admin = _auth(await make_token(acme, "tenant_admin"))
    created = await client.post(
        "/v1/principals", headers=admin, json={"subjectId": "bob@acme.test", "role": "operator"}
    )
    principal, pat = created.json()["principal"], _auth(created.json()["pat"]["token"])
    assert (await client.post("/v1/agents", headers=pat, json={"name": "one"})).status_code == 201

    # lowered to viewer: the PAT reads but no longer writes, over REST and GraphQL alike
    body = {"principalId": principal["id"], "roleDefinitionId": "viewer", "scope": "/tenants/acme"}
    granted = await client.post("/v1/role-assignments", headers=admin, json=body)
    assert granted.status_code == 201, granted.text
    denied = await client.post("/v1/agents", headers=pat, json={"name": "two"})
    assert denied.status_code == 403, denied.text
    assert (await client.get("/v1/agent-runs", headers=pat)).status_code == 200
    mutation = 'mutation { createAgent(input: {name: "three"}) { agent { id } } }'
    answer = await client.post("/graphql", headers=pat, json={"query": mutation})
    assert answer.json()["errors"][0]["extensions"]["code"] == "FORBIDDEN"
    assert await Agent.filter(tenant_id=acme.id).count() == 1

    # no role left: the PAT is refused, and the tenant admin still sees and deletes the principal
    removed = await client.delete(f"/v1/role-assignments/{granted.json()['id']}", headers=admin)
    assert removed.status_code == 200, removed.text
    assert (await client.get("/v1/agent-runs", headers=pat)).status_code == 403
    assert (await client.post("/v1/agents", headers=pat, json={"name": "four"})).status_code == 403
    seen = await client.get(f"/v1/principals/{principal['id']}", headers=admin)
    assert seen.status_code == 200 and seen.json()["roleAssignments"] == []
    listed = (await client.get("/v1/principals", headers=admin)).json()["data"]
    assert [p["id"] for p in listed] == [principal["id"]]
    deleted = await client.delete(f"/v1/principals/{principal['id']}", headers=admin)
    assert deleted.status_code == 200 and deleted.json()["status"] == "disabled"
    assert (await client.get("/v1/agent-runs", headers=pat)).status_code == 401

    # another tenant's admin never sees it
    outsider = _auth(await make_token(await make_tenant("other"), "tenant_admin"))
    hidden = await client.get(f"/v1/principals/{principal['id']}", headers=outsider)
    assert hidden.status_code == 404


async def test_errors_name_the_callers_own_fields(client: httpx.AsyncClient) -> None:
    acme = await make_tenant("acme")
    admin = _auth(await make_token(acme, "tenant_admin"))
    cursor = await client.get("/v1/agent-runs?cursor=%%%", headers=admin)
    assert cursor.status_code == 400 and cursor.json()["error"]["param"] == "cursor"
    principals = await client.get("/v1/principals?cursor=nope", headers=admin)
    assert principals.status_code == 400 and principals.json()["error"]["param"] == "cursor"
    bad = await client.post("/v1/principals", headers=admin, json={"subjectId": "not-an-email"})
    assert bad.status_code == 400 and bad.json()["error"]["param"] == "subjectId"
    agent = await make_agent(acme, "echo")
    empty = await client.post(f"/v1/agents/{agent.id}/run", headers=admin, json={"input": " "})
    assert empty.status_code == 400 and empty.json()["error"]["param"] == "input"
    assert "`input`" in empty.json()["error"]["message"]
