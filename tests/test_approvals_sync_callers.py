"""Synchronous callers (OpsClaw's run, chat and OpenAI-compatible chat completions, an MCP
client calling an agent) hear at once that their run waits for a human, with the approval to
decide, instead of holding the request until the task timeout; the run keeps waiting and
completes once decided."""

import json
from pathlib import Path
from typing import Any

import httpx
import openai

from agentplane.models import AgentState, ApprovalRequest, ApprovalStatus, Task, TaskStatus
from tests.support.factories import make_agent, make_tenant, make_token
from tests.support.rest import wait_terminal
from tests.support.server import live_server
from tests.test_mcp_server import mcp_session

SCRIPT = [
    {"tool": "calculator", "arguments": {"expression": "6*7"}},
    {"say": "answer: {last_tool_result}"},
]
GATED = {"script": SCRIPT, "approvals": {"tools": {"calculator": {"risk": "high"}}}}


def _auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def _approve(client: httpx.AsyncClient, token: str, approval_id: str) -> None:
    decided = await client.post(
        f"/api/control-plane/approvals/{approval_id}/approve", headers=_auth(token), json={}
    )
    assert decided.status_code == 200, decided.text


async def test_chat_calls_answer_409_naming_the_approval_and_the_run_goes_on(
    client: httpx.AsyncClient,
) -> None:
    # given an agent whose calculator calls need a human's yes
    tenant = await make_tenant("acme")
    agent = await make_agent(
        tenant, "calc", model="scripted/agent", tools=["calculator"], config=GATED
    )
    token = await make_token(tenant, "operator")

    # when a synchronous chat reaches the held call
    chat = await client.post(
        f"/v1/agents/{agent.id}/chat", headers=_auth(token), json={"message": "6*7?"}
    )
    # then it answers at once with 409 approval_required, naming the approval
    assert chat.status_code == 409, chat.text
    error = chat.json()["error"]
    assert error["code"] == "approval_required"
    [request] = await ApprovalRequest.filter(status=ApprovalStatus.PENDING)
    assert request.task_id in error["message"]
    assert f"/api/control-plane/approvals/{request.id}/approve" in error["message"]
    # and the run is not cancelled: it waits, and completes once approved
    task = await Task.get(id=request.task_id)
    assert task.status == TaskStatus.WAITING_FOR_APPROVAL
    await _approve(client, token, request.id)
    done = await wait_terminal(task.id)
    assert (done.status, done.output) == (TaskStatus.COMPLETED, "answer: 42")

    # and OpsClaw's run answers 202 with the run waiting
    run = await client.post(f"/v1/agents/{agent.id}/run", headers=_auth(token), json={"input": "x"})
    assert run.status_code == 202, run.text
    assert run.json()["status"] == "waiting_for_approval"


async def test_openai_clients_get_approval_required_streamed_or_not(
    client: httpx.AsyncClient,
) -> None:
    tenant = await make_tenant("acme")
    agent = await make_agent(
        tenant, "calc", model="scripted/agent", tools=["calculator"], config=GATED
    )
    token = await make_token(tenant, "operator")
    sdk = openai.AsyncOpenAI(
        api_key=token,
        base_url=f"http://agentplane.test/v1/agents/{agent.id}",
        http_client=client,
        max_retries=0,
    )
    messages: list[Any] = [{"role": "user", "content": "6*7?"}]
    # unstreamed: the SDK raises its ConflictError with our code
    try:
        await sdk.chat.completions.create(model="any", messages=messages)
        raise AssertionError("expected approval_required")
    except openai.ConflictError as exc:
        assert exc.code == "approval_required"
    # streamed: the stream ends with the same error object as its last event
    streamed = await client.post(
        f"/v1/agents/{agent.id}/chat/completions",
        headers=_auth(token),
        json={"messages": messages, "stream": True},
    )
    last = [line for line in streamed.text.splitlines() if line.startswith("data:")][-1]
    error = json.loads(last.removeprefix("data:"))["error"]
    assert error["code"] == "approval_required"
    waiting = await Task.filter(status=TaskStatus.WAITING_FOR_APPROVAL).count()
    assert waiting == 2  # neither call cancelled its run


async def test_an_mcp_client_hears_which_approval_to_decide(
    services: Any, database_url: str, workdir: Path
) -> None:
    tenant = await make_tenant("acme")
    await make_agent(
        tenant,
        "calc",
        model="scripted/agent",
        tools=["calculator"],
        config=GATED,
        state=AgentState.ACTIVE,
    )
    token = await make_token(tenant, "operator")
    with live_server(database_url, workdir) as server:
        async with mcp_session(server.base_url, token) as session:
            result = await session.call_tool("calc", {"query": "6*7?"})
    assert result.is_error
    meta = result.structured_content or {}
    request = await ApprovalRequest.get(id=meta["approvalId"])
    assert (meta["taskId"], meta["status"]) == (request.task_id, "waiting_for_approval")
    text = result.content[0].text  # type: ignore[union-attr]
    assert text.startswith("APPROVAL_REQUIRED: ") and request.id in text
    assert (await Task.get(id=request.task_id)).status == TaskStatus.WAITING_FOR_APPROVAL
