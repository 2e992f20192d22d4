"""Approvals over Koda's REST conventions: list what waiting tasks ask, approve or reject."""

import asyncio

import httpx

from agentplane.models import ApprovalRequest, ApprovalStatus, Task, TaskStatus
from tests.support.factories import make_agent, make_tenant, make_token
from tests.support.rest import wait_terminal

SCRIPT = [
    {"tool": "calculator", "arguments": {"expression": "6*7"}},
    {"say": "answer: {last_tool_result}"},
]


async def test_a_rest_caller_sees_and_decides_a_held_tool_call(client: httpx.AsyncClient) -> None:
    # given a task held for approval of its calculator call
    tenant, other = await make_tenant("acme"), await make_tenant("other")
    await make_agent(
        tenant,
        "calc",
        model="scripted/agent",
        tools=["calculator"],
        config={"script": SCRIPT, "approvals": {"tools": {"calculator": {"risk": "high"}}}},
    )
    operator = {"Authorization": f"Bearer {await make_token(tenant, 'operator')}"}
    viewer = {"Authorization": f"Bearer {await make_token(tenant, 'viewer')}"}
    stranger = {"Authorization": f"Bearer {await make_token(other, 'operator')}"}
    submitted = await client.post(
        "/api/runtime/tasks", headers=operator, json={"agent_id": "calc", "query": "6*7?"}
    )
    task_id = submitted.json()["id"]
    async with asyncio.timeout(15):
        while (await Task.get(id=task_id)).status != TaskStatus.WAITING_FOR_APPROVAL:
            await asyncio.sleep(0.02)

    # when it lists pending approvals, in the tenant and for the task
    listed = await client.get("/api/control-plane/approvals?status=pending", headers=operator)
    per_task = await client.get(f"/api/runtime/tasks/{task_id}/approvals", headers=viewer)
    # then it sees the one request, with what it asks
    assert listed.status_code == 200 and per_task.status_code == 200
    [request] = listed.json()["approvals"]
    assert per_task.json()["approvals"] == [request]
    assert (request["task_id"], request["tool"], request["arguments"], request["status"]) == (
        task_id,
        "calculator",
        {"expression": "6*7"},
        "pending",
    )
    assert listed.json()["has_more"] is False
    approve_path = f"/api/control-plane/approvals/{request['id']}/approve"

    # and a viewer may not decide, another tenant cannot see it, bad arguments are refused
    denied = await client.post(approve_path, headers=viewer, json={})
    hidden = await client.get(f"/api/control-plane/approvals/{request['id']}", headers=stranger)
    invalid = await client.post(approve_path, headers=operator, json={"arguments": {"x": 1}})
    assert (denied.status_code, denied.json()["code"]) == (403, "FORBIDDEN")
    assert (hidden.status_code, hidden.json()["code"]) == (404, "NOT_FOUND")
    assert (invalid.status_code, invalid.json()["code"]) == (400, "VALIDATION")
    assert (await ApprovalRequest.get(id=request["id"])).status == ApprovalStatus.PENDING

    # when the operator approves with edited arguments
    approved = await client.post(
        approve_path,
        headers=operator,
        json={"arguments": {"expression": "6*8"}, "reason": "checked"},
    )
    again = await client.post(
        f"/api/control-plane/approvals/{request['id']}/reject", headers=operator, json={}
    )
    # then the decision is recorded once and the run completes with the edited call
    assert approved.status_code == 200
    assert approved.json()["status"] == "approved"
    assert approved.json()["edited_arguments"] == {"expression": "6*8"}
    assert (again.status_code, again.json()["code"]) == (409, "CONFLICT")
    done = await wait_terminal(task_id)
    assert done.status == TaskStatus.COMPLETED and done.output == "answer: 48"
