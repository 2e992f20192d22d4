"""Many processes on PostgreSQL + Redis: two API processes, workers that die.

Runs in the PostgreSQL + Redis profile of `.ci/run`: processes can only share
work and events through a server database and Redis, so the embedded profile
(SQLite file, in-memory broker) has nothing to test here.
"""

import asyncio
import os
import secrets
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support.server import LiveServer, live_server, live_worker
from tests.support.ws import open_ws

pytestmark = pytest.mark.skipif(
    not (
        os.environ.get("AGENTPLANE_DATABASE_URL", "").startswith("postgres")
        and os.environ.get("AGENTPLANE_REDIS_URL")
    ),
    reason="multi-process runs need PostgreSQL and Redis (the second .ci/run profile)",
)

ENV = {"AGENTPLANE_LEASE_TTL_S": "1.5", "AGENTPLANE_SCRIPTED_DELAY_MS": "250"}
EVENTS = """subscription($id: ID!, $after: Int) {
  taskEvents(taskId: $id, afterSeq: $after) { id seq kind payload } }"""
TRACE = "query($id: ID!) { task(id: $id) { status output steps { id seq kind payload } } }"


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[LiveServer, LiveServer]]:
    """Two API processes without workers, sharing one admin token."""
    url = os.environ["AGENTPLANE_DATABASE_URL"]
    workdir = tmp_path_factory.mktemp("cluster")
    token = "agp_admin_" + secrets.token_urlsafe(24)
    no_worker = "--no-worker"
    with (
        live_server(url, workdir, no_worker, admin_token=token, env=ENV) as a,
        live_server(url, workdir, no_worker, admin_token=token, env=ENV) as b,
    ):
        yield a, b


def gql(server: LiveServer, query: str, **variables: Any) -> Any:
    body = httpx.post(
        server.base_url + "/graphql",
        json={"query": query, "variables": variables},
        headers={"Authorization": f"Bearer {server.admin_token}"},
        timeout=10,
    ).json()
    assert not body.get("errors"), body
    return body["data"]


def submit_long_task(server: LiveServer, tenant: str) -> str:
    gql(
        server,
        "mutation($n: String!) { createTenant(input: {name: $n}) { tenant { id } } }",
        n=tenant,
    )
    script = [{"tool": "calculator", "arguments": {"expression": f"{i}*{i}"}} for i in range(1, 9)]
    agent = gql(
        server,
        """mutation($t: String!, $c: JSON) { createAgent(input: {name: "sq", tenant: $t,
        model: "scripted/agent", tools: ["calculator"], config: $c, maxSteps: 12}) {
        agent { id } } }""",
        t=tenant,
        c={"script": [*script, {"say": "last was {last_tool_result}"}]},
    )["createAgent"]["agent"]["id"]
    return str(
        gql(
            server,
            'mutation($a: ID!) { submitTask(input: {agentId: $a, query: "squares"})'
            " { task { id } } }",
            a=agent,
        )["submitTask"]["task"]["id"]
    )


async def test_a_task_survives_its_worker_being_killed(
    cluster: tuple[LiveServer, LiveServer], tmp_path: Path
) -> None:
    api_a, api_b = cluster
    url = os.environ["AGENTPLANE_DATABASE_URL"]
    # given a long task submitted on API process A and run by worker 1
    with live_worker(url, tmp_path, ENV) as worker_1:
        task_id = submit_long_task(api_a, "kill-" + secrets.token_hex(3))
        streamed: list[dict[str, Any]] = []
        # when a subscriber on API process B watches it, and worker 1 is killed mid-run
        async with asyncio.timeout(60), open_ws(api_b.ws_url, token=api_b.admin_token) as ws:
            op = await ws.subscribe(EVENTS, id=task_id, after=0)
            while len(streamed) < 6:
                message = await ws.receive()
                assert message.type == "next", message
                streamed.append(message.payload["data"]["taskEvents"])
            worker_1.send_signal(signal.SIGKILL)
            worker_1.wait(5)
            with live_worker(url, tmp_path, ENV):
                rest, end = await ws.collect(op)
        streamed += [p["data"]["taskEvents"] for p in rest]
    # then worker 2 took over and finished it, and the stream is the trace
    assert end.type == "complete"
    trace = gql(api_a, TRACE, id=task_id)["task"]
    assert trace["status"] == "COMPLETED"
    assert trace["output"] == "last was 64"
    assert [s["seq"] for s in streamed] == list(range(1, len(streamed) + 1))
    assert streamed == trace["steps"]
    flow = [s["payload"]["to"] for s in streamed if s["kind"] == "STATUS_CHANGE"]
    assert flow == ["queued", "running", "retrying", "running", "completed"]
    tools = [s["payload"]["arguments"]["expression"] for s in streamed if s["kind"] == "TOOL_CALL"]
    assert tools == [f"{i}*{i}" for i in range(1, 9)]


async def test_resume_on_the_other_api_process_misses_nothing(
    cluster: tuple[LiveServer, LiveServer], tmp_path: Path
) -> None:
    api_a, api_b = cluster
    url = os.environ["AGENTPLANE_DATABASE_URL"]
    with live_worker(url, tmp_path, ENV):
        task_id = submit_long_task(api_a, "resume-" + secrets.token_hex(3))
        async with asyncio.timeout(60):
            # watch on A, drop the connection mid-run, resume on B with the last seq
            async with open_ws(api_a.ws_url, token=api_a.admin_token) as ws:
                await ws.subscribe(EVENTS, id=task_id, after=0)
                first = [(await ws.receive()).payload["data"]["taskEvents"] for _ in range(5)]
            async with open_ws(api_b.ws_url, token=api_b.admin_token) as ws:
                op = await ws.subscribe(EVENTS, id=task_id, after=first[-1]["seq"])
                rest, end = await ws.collect(op)
    assert end.type == "complete"
    streamed = first + [p["data"]["taskEvents"] for p in rest]
    assert streamed == gql(api_a, TRACE, id=task_id)["task"]["steps"]


async def test_cancel_reaches_the_worker_process_within_a_second(
    cluster: tuple[LiveServer, LiveServer], tmp_path: Path
) -> None:
    api_a, api_b = cluster
    url = os.environ["AGENTPLANE_DATABASE_URL"]
    slow = {**ENV, "AGENTPLANE_SCRIPTED_DELAY_MS": "2000"}  # each model call takes 2 s
    with live_worker(url, tmp_path, slow):
        task_id = submit_long_task(api_a, "cancel-" + secrets.token_hex(3))
        async with asyncio.timeout(30):
            while gql(api_a, TRACE, id=task_id)["task"]["status"] != "RUNNING":
                await asyncio.sleep(0.05)
        started = time.monotonic()
        cancelled = gql(
            api_b,
            "mutation($id: ID!) { cancelTask(input: {id: $id}) { task { status } } }",
            id=task_id,
        )
        elapsed = time.monotonic() - started
    assert cancelled["cancelTask"]["task"]["status"] == "CANCELLED"
    assert elapsed < 1.0
    steps = gql(api_a, TRACE, id=task_id)["task"]["steps"]
    assert steps[-1]["payload"] == {"from": "running", "to": "cancelled", "reason": "cancelled"}
    assert not [s for s in steps if s["kind"] == "PROVIDER_CALL"]
