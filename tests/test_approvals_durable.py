"""An approval survives anything: the API process and the worker process are SIGKILLed
while a task waits, and the run completes after a decision made through another API
process, on real uvicorn and worker processes.

Runs in both profiles: on PostgreSQL + Redis (AGENTPLANE_* set) and on the SQLite file
shared by the processes (each with its own in-memory broker: the worker's poll finds the
requeued task).
"""

import asyncio
import secrets
import signal
import time
from pathlib import Path
from typing import Any

import httpx

from tests.support.server import LiveServer, live_server, live_worker
from tests.support.ws import open_ws

ENV = {"AGENTPLANE_LEASE_TTL_S": "1.5", "AGENTPLANE_SCRIPTED_DELAY_MS": "20"}
SCRIPT = [
    {"tool": "calculator", "arguments": {"expression": "6*7"}},
    {"say": "answer: {last_tool_result}"},
]
TASK = """query($id: ID!) { task(id: $id) { status isTerminal output
  pendingApproval { id tool arguments risk status }
  steps { seq kind payload } } }"""
DECIDE = """mutation($id: ID!, $args: JSON) {
  decideApproval(input: {id: $id, decision: APPROVE, arguments: $args, reason: "smaller"}) {
    approvalRequest { id status decidedBy editedArguments } task { status } } }"""
UPDATES = "subscription { approvalUpdates { id status editedArguments } }"


def post(server: LiveServer, token: str, query: str, **variables: Any) -> Any:
    return httpx.post(
        server.base_url + "/graphql",
        json={"query": query, "variables": variables},
        headers={"Authorization": f"Bearer {token}"},
        timeout=10,
    ).json()


def call(server: LiveServer, token: str, query: str, **variables: Any) -> Any:
    body = post(server, token, query, **variables)
    assert not body.get("errors"), body
    return body["data"]


def until(server: LiveServer, token: str, task_id: str, status: str, timeout: float = 60) -> Any:
    deadline = time.monotonic() + timeout
    while (task := call(server, token, TASK, id=task_id)["task"])["status"] != status:
        assert time.monotonic() < deadline, task
        time.sleep(0.1)
    return task


def setup(server: LiveServer) -> tuple[str, str]:
    """A tenant with an agent whose calculator needs approval; an operator token and a
    task that will wait for it."""
    admin = server.admin_token
    tenant = "appr-" + secrets.token_hex(3)
    call(server, admin, "mutation($n: String!) { createTenant(input: {name: $n}) { tenant { id } } }", n=tenant)  # fmt: skip  # noqa: E501
    token = call(
        server,
        admin,
        """mutation($t: String!) { createAccessToken(input: {name: "op", tenant: $t,
        role: "operator"}) { plainTextToken } }""",
        t=tenant,
    )["createAccessToken"]["plainTextToken"]
    config = {"script": SCRIPT, "approvals": {"tools": {"calculator": {"risk": "high"}}}}
    agent = call(
        server,
        token,
        """mutation($c: JSON) { createAgent(input: {name: "calc", model: "scripted/agent",
        tools: ["calculator"], config: $c}) { agent { id } } }""",
        c=config,
    )["createAgent"]["agent"]["id"]
    task = call(
        server,
        token,
        'mutation($a: ID!) { submitTask(input: {agentId: $a, query: "6*7?"}) { task { id } } }',
        a=agent,
    )["submitTask"]["task"]["id"]
    return token, task


async def test_an_approval_survives_sigkill_of_the_api_and_the_worker(
    database_url: str, tmp_path: Path
) -> None:
    url = database_url  # migrated; the session's SQLite file or PostgreSQL database
    admin = "agp_admin_" + secrets.token_urlsafe(24)
    # given a task waiting for approval, asked through API process A and run by worker 1
    with (
        live_server(url, tmp_path, "--no-worker", admin_token=admin, env=ENV) as api_a,
        live_worker(url, tmp_path, ENV) as worker_1,
    ):
        token, task_id = setup(api_a)
        waiting = until(api_a, token, task_id, "WAITING_FOR_APPROVAL")
        assert waiting["isTerminal"] is False
        pending = waiting["pendingApproval"]
        assert pending["tool"] == "calculator" and pending["status"] == "PENDING"
        assert pending["arguments"] == {"expression": "6*7"}
        # when both processes are killed without a word
        for process in (api_a.process, worker_1):
            process.send_signal(signal.SIGKILL)
            process.wait(5)
    # and new ones start: the decision goes through another API process
    with (
        live_server(url, tmp_path, "--no-worker", admin_token=admin, env=ENV) as api_b,
        live_worker(url, tmp_path, ENV),
    ):
        listed = call(
            api_b,
            token,
            "query($t: ID) { approvalRequests(first: 10, status: PENDING, taskId: $t) "
            "{ edges { node { id tool task { id status } } } } }",
            t=task_id,
        )["approvalRequests"]["edges"]
        assert [e["node"]["id"] for e in listed] == [pending["id"]]
        assert listed[0]["node"]["task"] == {"id": task_id, "status": "WAITING_FOR_APPROVAL"}
        async with asyncio.timeout(30), open_ws(api_b.ws_url, token=token) as ws:
            op = await ws.subscribe(UPDATES)
            await asyncio.sleep(0.3)  # the subscription is live before the decision
            decided = call(api_b, token, DECIDE, id=pending["id"], args={"expression": "7*7"})
            update = await ws.receive()
            await ws.stop(op)
        done = until(api_b, token, task_id, "COMPLETED")
        # a second decision, on any process, is a conflict
        again = post(api_b, token, DECIDE, id=pending["id"], args=None)
    decision = decided["decideApproval"]
    assert decision["approvalRequest"]["status"] == "APPROVED"
    assert decision["approvalRequest"]["editedArguments"] == {"expression": "7*7"}
    assert decision["task"]["status"] == "QUEUED"
    assert update.payload["data"]["approvalUpdates"] == {
        "id": pending["id"],
        "status": "APPROVED",
        "editedArguments": {"expression": "7*7"},
    }
    assert [e["extensions"]["code"] for e in again["errors"]] == ["CONFLICT"]
    # then the run completed with the edited arguments, the tool run exactly once
    assert done["output"] == "answer: 49"
    assert done["pendingApproval"] is None
    steps = done["steps"]
    assert [s["seq"] for s in steps] == list(range(1, len(steps) + 1))
    flow = [s["payload"]["to"] for s in steps if s["kind"] == "STATUS_CHANGE"]
    assert flow == ["queued", "running", "waiting_for_approval", "queued", "running", "completed"]
    tools = [s["payload"] for s in steps if s["kind"] == "TOOL_CALL"]
    assert [(t["arguments"], t["output"]) for t in tools] == [({"expression": "7*7"}, "49")]
    audits = [s["payload"]["action"] for s in steps if s["kind"] == "AUDIT"]
    assert audits == ["approval.request", "approval.approve"]
