"""Subscriptions over real websockets against a real `agentplane serve` process.

Both protocols (graphql-transport-ws and the legacy graphql-ws), live traces with
replay after `afterSeq` and resume after a disconnect, websocket auth, tenant
isolation, task status updates and live text output.
"""

import asyncio
import os
import secrets
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import httpx
import pytest
from websockets.exceptions import ConnectionClosed

from agentplane.core import db
from tests.support.graphql import GraphQLClient
from tests.support.server import LiveServer, live_server
from tests.support.ws import LEGACY_WS, TRANSPORT_WS, GraphQLWebSocket, Message, open_ws

TIMEOUT_S = 30  # per test: a failure must never hang the suite
DELAY_MS = "25"  # per scripted word / model turn, so a run lasts long enough to watch

STEP_FIELDS = (
    "id taskId seq kind payload model inputTokens outputTokens latencyMs costUsd createdAt"
)
TASK_EVENTS = f"""
subscription($taskId: ID!, $afterSeq: Int) {{
  taskEvents(taskId: $taskId, afterSeq: $afterSeq) {{ {STEP_FIELDS} }}
}}"""
TASK_UPDATES = "subscription { taskUpdates { id status output isTerminal } }"
TASK_OUTPUT = "subscription($taskId: ID!) { taskOutput(taskId: $taskId) }"
TASK = f"""
query($id: ID!) {{
  task(id: $id) {{ id status output isTerminal workerId steps {{ {STEP_FIELDS} }} }}
}}"""

WORDS_12 = "the quick brown fox jumps over the lazy dog and runs away"
WORDS_40 = " ".join(f"word{i}" for i in range(40))


async def _postgres_admin(url: str, statement: str) -> None:
    conn = await asyncpg.connect(url)
    try:
        await conn.execute(statement)
    finally:
        await conn.close()


@pytest.fixture(scope="module")
def server_database(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """SQLite: a fresh file of the server's own, which `serve` migrates. PostgreSQL: a
    migrated database of its own next to AGENTPLANE_DATABASE_URL's, because other test
    sessions truncate that shared one (conftest's `app`) under a running server."""
    shared = os.environ.get("AGENTPLANE_DATABASE_URL")
    if not shared:
        yield f"sqlite://{tmp_path_factory.mktemp('ws-db') / 'agentplane.db'}"
        return
    parts = urlsplit(shared)
    name = f"{parts.path.lstrip('/') or 'postgres'}_ws_{secrets.token_hex(4)}"
    asyncio.run(_postgres_admin(shared, f'CREATE DATABASE "{name}"'))
    try:
        url = urlunsplit(parts._replace(path=f"/{name}"))
        asyncio.run(db.migrate(url))
        yield url
    finally:
        asyncio.run(_postgres_admin(shared, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@pytest.fixture(scope="module")
def server(server_database: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    with ExitStack() as stack:
        with pytest.MonkeyPatch.context() as env:
            env.setenv("AGENTPLANE_SCRIPTED_DELAY_MS", DELAY_MS)
            workdir = tmp_path_factory.mktemp("ws-server")
            live = stack.enter_context(live_server(server_database, workdir))
        yield live


@pytest.fixture
async def http(server: LiveServer) -> AsyncIterator[GraphQLClient]:
    async with httpx.AsyncClient(base_url=server.base_url, timeout=10) as client:
        yield GraphQLClient(client)


@dataclass
class Tenant:
    name: str
    token: str


async def new_tenant(http: GraphQLClient, server: LiveServer) -> Tenant:
    name = f"ws-{uuid.uuid4().hex[:12]}"  # tests share the module's server and database
    await http.ok(
        "mutation($n: String!) { createTenant(input: {name: $n}) { tenant { id } } }",
        server.admin_token,
        n=name,
    )
    minted = await http.ok(
        'mutation($n: String!) { createAccessToken(input: {name: "ws", tenant: $n,'
        ' role: "operator"}) { plainTextToken } }',
        server.admin_token,
        n=name,
    )
    return Tenant(name, minted["createAccessToken"]["plainTextToken"])


async def new_agent(
    http: GraphQLClient,
    token: str,
    model: str = "scripted/echo",
    tools: list[str] | None = None,
    script: list[dict[str, Any]] | None = None,
) -> str:
    created = await http.ok(
        "mutation($n: String!, $m: String!, $t: [String!], $c: JSON) {"
        " createAgent(input: {name: $n, model: $m, tools: $t, config: $c}) { agent { id } } }",
        token,
        n=f"agent-{uuid.uuid4().hex[:8]}",
        m=model,
        t=tools,
        c={"script": script} if script is not None else None,
    )
    return str(created["createAgent"]["agent"]["id"])


async def submit(http: GraphQLClient, token: str, agent_id: str, query: str) -> str:
    submitted = await http.ok(
        "mutation($a: ID!, $q: String!) { submitTask(input: {agentId: $a, query: $q})"
        " { task { id status } } }",
        token,
        a=agent_id,
        q=query,
    )
    task = submitted["submitTask"]["task"]
    assert task["status"] == "QUEUED"
    return str(task["id"])


async def fetch_task(http: GraphQLClient, token: str, task_id: str) -> dict[str, Any]:
    return (await http.ok(TASK, token, id=task_id))["task"]  # type: ignore[no-any-return]


async def wait_terminal(http: GraphQLClient, token: str, task_id: str) -> dict[str, Any]:
    while not (task := await fetch_task(http, token, task_id))["isTerminal"]:
        await asyncio.sleep(0.05)
    return task


def steps_of(payloads: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [p["data"]["taskEvents"] for p in payloads]


def assert_gapless_trace(steps: list[dict[str, Any]]) -> None:
    assert [s["seq"] for s in steps] == list(range(1, len(steps) + 1))
    assert len({s["id"] for s in steps}) == len(steps)
    statuses = [s["payload"]["to"] for s in steps if s["kind"] == "STATUS_CHANGE"]
    assert statuses == ["queued", "running", "completed"]
    assert steps[-1]["kind"] == "STATUS_CHANGE" and steps[-1]["payload"]["to"] == "completed"


def error_of(message: Message) -> dict[str, Any]:
    """The single GraphQL error an operation ended with, in either protocol's shape."""
    if message.type == "error":  # graphql-transport-ws: a list; legacy: one error
        errors = message.payload if isinstance(message.payload, list) else [message.payload]
    else:
        assert message.type == "next" and message.payload["data"] is None, message
        errors = message.payload["errors"]
    assert len(errors) == 1, errors
    return errors[0]  # type: ignore[no-any-return]


async def ended_with_error(ws: GraphQLWebSocket, op_id: str) -> dict[str, Any]:
    """Read an operation that fails before yielding: exactly one error, then nothing else."""
    first = await ws.receive()
    assert first.id == op_id
    error = error_of(first)
    if first.type == "next":  # an error result is followed by `complete`
        assert (await ws.receive()) == Message("complete", op_id)
    return error


async def flush(ws: GraphQLWebSocket) -> list[dict[str, Any]]:
    """graphql-transport-ws: ping, and return whatever the server sent before the pong."""
    await ws.send({"type": "ping"})
    before = []
    while (raw := await ws.receive_raw())["type"] != "pong":
        before.append(raw)
    return before


@pytest.mark.parametrize("protocol", [TRANSPORT_WS, LEGACY_WS])
async def test_task_events_stream_the_whole_trace_live(
    server: LiveServer, http: GraphQLClient, protocol: str
) -> None:
    async with asyncio.timeout(TIMEOUT_S):
        # given a tenant with an echo agent
        tenant = await new_tenant(http, server)
        agent = await new_agent(http, tenant.token)
        async with open_ws(server.ws_url, protocol, token=tenant.token) as ws:
            # when a multi-word task is submitted and its events subscribed to right away
            task_id = await submit(http, tenant.token, agent, WORDS_12)
            op = await ws.subscribe(TASK_EVENTS, taskId=task_id)
            payloads, end = await ws.collect(op)
        # then every step arrives in seq order, ending with the completion, then `complete`
        assert end == Message("complete", op)
        assert all(set(p) == {"data"} for p in payloads), payloads
        streamed = steps_of(payloads)
        assert_gapless_trace(streamed)
        assert [s["kind"] for s in streamed] == [
            "STATUS_CHANGE",
            "STATUS_CHANGE",
            "PROVIDER_CALL",
            "STATUS_CHANGE",
        ]
        assert {s["taskId"] for s in streamed} == {task_id}
        # and the stream is exactly the stored trace
        task = await fetch_task(http, tenant.token, task_id)
        assert task["status"] == "COMPLETED" and task["output"] == WORDS_12
        assert streamed == task["steps"]
        # and the running step names the worker that ran it
        assert streamed[1]["payload"]["worker"] == task["workerId"]


async def test_replay_after_seq_of_a_finished_task(server: LiveServer, http: GraphQLClient) -> None:
    async with asyncio.timeout(TIMEOUT_S):
        # given a completed task
        tenant = await new_tenant(http, server)
        agent = await new_agent(http, tenant.token)
        task_id = await submit(http, tenant.token, agent, "replay me please")
        stored = (await wait_terminal(http, tenant.token, task_id))["steps"]
        assert len(stored) == 4
        async with open_ws(server.ws_url, token=tenant.token) as ws:
            # when subscribing after seq 2
            op = await ws.subscribe(TASK_EVENTS, taskId=task_id, afterSeq=2)
            payloads, end = await ws.collect(op)
            # then exactly the steps after seq 2 arrive, then `complete`
            assert steps_of(payloads) == stored[2:]
            assert end == Message("complete", op)
            # and a cursor at the terminal step replays nothing and completes at once
            op = await ws.subscribe(TASK_EVENTS, taskId=task_id, afterSeq=len(stored))
            assert await ws.collect(op) == ([], Message("complete", op))
            # and no cursor (or a negative one) replays the whole trace
            for after in (None, -5):
                op = await ws.subscribe(TASK_EVENTS, taskId=task_id, afterSeq=after)
                payloads, end = await ws.collect(op)
                assert steps_of(payloads) == stored and end == Message("complete", op)


RESUME_CASES = {
    # an echo of 40 words: the provider call streams for about a second
    "echo": ("scripted/echo", None, None, 2),
    # calculator turns first, so several steps are written while the client is away
    "agent": (
        "scripted/agent",
        ["calculator"],
        [{"tool": "calculator", "arguments": {"expression": f"{i}*{i}"}} for i in range(6)]
        + [{"say": "{query}"}],
        3,
    ),
}


@pytest.mark.parametrize("case", RESUME_CASES)
@pytest.mark.parametrize("protocol", [TRANSPORT_WS, LEGACY_WS])
async def test_resume_after_disconnect_mid_run(
    server: LiveServer, http: GraphQLClient, protocol: str, case: str
) -> None:
    model, tools, script, cut = RESUME_CASES[case]
    async with asyncio.timeout(TIMEOUT_S):
        # given a long-running task watched live
        tenant = await new_tenant(http, server)
        agent = await new_agent(http, tenant.token, model, tools, script)
        task_id = await submit(http, tenant.token, agent, WORDS_40)
        first: list[dict[str, Any]] = []
        async with open_ws(server.ws_url, protocol, token=tenant.token) as ws:
            op = await ws.subscribe(TASK_EVENTS, taskId=task_id)
            while len(first) < cut:
                message = await ws.receive()
                assert message.type == "next", message
                first.append(message.payload["data"]["taskEvents"])
        # when the client drops the connection mid-run
        last = first[-1]["seq"]
        assert [s["seq"] for s in first] == list(range(1, cut + 1))
        await asyncio.sleep(0.1)  # steps keep coming while nobody listens
        during = await fetch_task(http, tenant.token, task_id)
        assert during["status"] == "RUNNING", during
        if case == "agent":  # the tool turns wrote steps nobody received
            assert len(during["steps"]) > cut
        # and resumes with the last seq it saw
        async with open_ws(server.ws_url, protocol, token=tenant.token) as ws:
            op = await ws.subscribe(TASK_EVENTS, taskId=task_id, afterSeq=last)
            payloads, end = await ws.collect(op)
        # then the union is gapless, duplicate-free, and is the stored trace
        assert end == Message("complete", op)
        resumed = steps_of(payloads)
        assert resumed and resumed[0]["seq"] == last + 1
        union = first + resumed
        assert_gapless_trace(union)
        stored = await fetch_task(http, tenant.token, task_id)
        assert stored["status"] == "COMPLETED" and stored["output"] == WORDS_40
        assert union == stored["steps"]
        if case == "agent":  # 6 tool turns: 2 + 6 * 2 + 1 + 1 steps
            assert len(union) == 16


async def _completed_task(http: GraphQLClient, server: LiveServer) -> tuple[Tenant, str, int]:
    tenant = await new_tenant(http, server)
    agent = await new_agent(http, tenant.token)
    task_id = await submit(http, tenant.token, agent, "auth check")
    steps = (await wait_terminal(http, tenant.token, task_id))["steps"]
    return tenant, task_id, len(steps)


@pytest.mark.parametrize("protocol", [TRANSPORT_WS, LEGACY_WS])
@pytest.mark.parametrize("where", ["payload", "header"])
async def test_token_in_init_payload_or_upgrade_header(
    server: LiveServer, http: GraphQLClient, protocol: str, where: str
) -> None:
    async with asyncio.timeout(TIMEOUT_S):
        # given a tenant's completed task
        tenant, task_id, count = await _completed_task(http, server)
        # when its token comes in the connection_init payload, or only in the upgrade request
        in_payload, in_header = (tenant.token, None) if where == "payload" else (None, tenant.token)
        async with open_ws(server.ws_url, protocol, token=in_payload, header_token=in_header) as ws:
            op = await ws.subscribe(TASK_EVENTS, taskId=task_id)
            payloads, end = await ws.collect(op)
        # then the subscription is authorised
        assert [s["seq"] for s in steps_of(payloads)] == list(range(1, count + 1))
        assert end == Message("complete", op)


@pytest.mark.parametrize("where", ["payload", "header"])
async def test_bad_token_is_rejected_graphql_transport_ws(server: LiveServer, where: str) -> None:
    async with asyncio.timeout(TIMEOUT_S):
        bad = "agp_" + secrets.token_urlsafe(32)
        header = bad if where == "header" else None
        async with open_ws(server.ws_url, TRANSPORT_WS, init=False, header_token=header) as ws:
            payload = {"Authorization": f"Bearer {bad}"} if where == "payload" else None
            with pytest.raises(ConnectionClosed) as closed:
                await ws.init(payload)
        assert closed.value.rcvd is not None
        assert (closed.value.rcvd.code, closed.value.rcvd.reason) == (4403, "Forbidden")


@pytest.mark.parametrize("where", ["payload", "header"])
async def test_bad_token_is_rejected_legacy_graphql_ws(server: LiveServer, where: str) -> None:
    async with asyncio.timeout(TIMEOUT_S):
        bad = "agp_" + secrets.token_urlsafe(32)
        header = bad if where == "header" else None
        async with open_ws(server.ws_url, LEGACY_WS, init=False, header_token=header) as ws:
            payload = {"Authorization": f"Bearer {bad}"} if where == "payload" else None
            reply = await ws.init(payload)
            assert reply == {
                "type": "connection_error",
                "payload": {"message": "Invalid access token"},
            }
            with pytest.raises(ConnectionClosed):
                await ws.receive_raw()


@pytest.mark.parametrize("protocol", [TRANSPORT_WS, LEGACY_WS])
async def test_no_token_subscription_is_unauthenticated(
    server: LiveServer, http: GraphQLClient, protocol: str
) -> None:
    async with asyncio.timeout(TIMEOUT_S):
        # given a real task and a connection without any credentials
        _, task_id, _ = await _completed_task(http, server)
        async with open_ws(server.ws_url, protocol) as ws:
            # when subscribing to anything
            for query, variables in ((TASK_EVENTS, {"taskId": task_id}), (TASK_UPDATES, {})):
                op = await ws.subscribe(query, **variables)
                # then the operation fails with UNAUTHENTICATED and streams nothing
                error = await ended_with_error(ws, op)
                assert error["extensions"]["code"] == "UNAUTHENTICATED", error


async def test_foreign_task_events_look_exactly_like_a_missing_task(
    server: LiveServer, http: GraphQLClient
) -> None:
    async with asyncio.timeout(TIMEOUT_S):
        # given tenant A's task running, watched by A, and a token of tenant B
        a, b = await new_tenant(http, server), await new_tenant(http, server)
        agent_a = await new_agent(http, a.token)
        task_a = await submit(http, a.token, agent_a, WORDS_12)
        async with (
            open_ws(server.ws_url, token=a.token) as ws_a,
            open_ws(server.ws_url, token=b.token) as ws_b,
        ):
            op_a = await ws_a.subscribe(TASK_EVENTS, taskId=task_a)
            # when B subscribes to A's task, and to a task id that does not exist
            missing = "tsk_" + secrets.token_hex(14)
            errors = []
            for task_id in (task_a, missing):
                op = await ws_b.subscribe(TASK_EVENTS, taskId=task_id, afterSeq=0)
                error = await ended_with_error(ws_b, op)
                errors.append({**error, "message": error["message"].replace(task_id, "<id>")})
            # then both answer NOT_FOUND, identically
            assert errors[0] == errors[1]
            assert errors[0]["extensions"]["code"] == "NOT_FOUND"
            assert errors[0]["message"] == "Task '<id>' not found"
            # and while A sees its task through to the end, B receives nothing at all
            payloads_a, end_a = await ws_a.collect(op_a)
            assert_gapless_trace(steps_of(payloads_a))
            assert end_a == Message("complete", op_a)
            assert await flush(ws_b) == []


async def _watch_until_completed(
    ws: GraphQLWebSocket, op: str, task_id: str, seen: list[dict[str, Any]]
) -> None:
    """Append taskUpdates events to `seen` until `task_id` has completed."""
    while True:
        message = await ws.receive()
        assert message.type == "next" and message.id == op, message
        task = message.payload["data"]["taskUpdates"]
        seen.append(task)
        if task["id"] == task_id and task["isTerminal"]:
            assert task["status"] == "COMPLETED", task
            return


async def _go_live(
    http: GraphQLClient, ws: GraphQLWebSocket, op: str, tenant: Tenant, agent: str
) -> list[dict[str, Any]]:
    """taskUpdates has no replay: run a warm-up task until its completion is seen, so the
    subscription is known to be live before the task under test is submitted."""
    warm_up = await submit(http, tenant.token, agent, f"warm up: {WORDS_12}")
    seen: list[dict[str, Any]] = []
    await _watch_until_completed(ws, op, warm_up, seen)
    assert {t["id"] for t in seen} == {warm_up}
    return seen


def _statuses(seen: list[dict[str, Any]], task_id: str) -> list[str]:
    return [t["status"] for t in seen if t["id"] == task_id]


@pytest.mark.parametrize("protocol", [TRANSPORT_WS, LEGACY_WS])
async def test_task_updates_stream_status_changes(
    server: LiveServer, http: GraphQLClient, protocol: str
) -> None:
    async with asyncio.timeout(TIMEOUT_S):
        # given a tenant watching its task updates
        tenant = await new_tenant(http, server)
        agent = await new_agent(http, tenant.token)
        async with open_ws(server.ws_url, protocol, token=tenant.token) as ws:
            op = await ws.subscribe(TASK_UPDATES)
            await _go_live(http, ws, op, tenant, agent)
            # when a task runs
            task_id = await submit(http, tenant.token, agent, WORDS_12)
            seen: list[dict[str, Any]] = []
            await _watch_until_completed(ws, op, task_id, seen)
        # then each status change arrives, by its GraphQL enum name
        assert seen == [
            {"id": task_id, "status": "QUEUED", "output": None, "isTerminal": False},
            {"id": task_id, "status": "RUNNING", "output": None, "isTerminal": False},
            {"id": task_id, "status": "COMPLETED", "output": WORDS_12, "isTerminal": True},
        ]


async def test_task_updates_are_tenant_scoped(server: LiveServer, http: GraphQLClient) -> None:
    async with asyncio.timeout(TIMEOUT_S):
        # given tenants A and B, each watching task updates
        a, b = await new_tenant(http, server), await new_tenant(http, server)
        agent_a, agent_b = await new_agent(http, a.token), await new_agent(http, b.token)
        async with (
            open_ws(server.ws_url, token=a.token) as ws_a,
            open_ws(server.ws_url, token=b.token) as ws_b,
        ):
            op_a, op_b = await ws_a.subscribe(TASK_UPDATES), await ws_b.subscribe(TASK_UPDATES)
            seen_b = await _go_live(http, ws_b, op_b, b, agent_b)
            seen_a = await _go_live(http, ws_a, op_a, a, agent_a)
            # when each tenant runs a task (A's first)
            task_a = await submit(http, a.token, agent_a, WORDS_12)
            task_b = await submit(http, b.token, agent_b, "tenant b task")
            await _watch_until_completed(ws_a, op_a, task_a, seen_a)
            await _watch_until_completed(ws_b, op_b, task_b, seen_b)
            # then each stream holds only its own tenant's tasks
            assert _statuses(seen_a, task_a) == ["QUEUED", "RUNNING", "COMPLETED"]
            assert _statuses(seen_b, task_b) == ["QUEUED", "RUNNING", "COMPLETED"]
            assert not [t for t in seen_a if t["id"] == task_b]
            assert not [t for t in seen_b if t["id"] == task_a]
            assert len({t["id"] for t in seen_a}) == len({t["id"] for t in seen_b}) == 2
            # and nothing of A's is left in flight to B (nor of B's to A)
            assert await flush(ws_b) == []
            assert await flush(ws_a) == []


@pytest.mark.parametrize("protocol", [TRANSPORT_WS, LEGACY_WS])
async def test_task_output_chunks_concatenate_to_the_output(
    server: LiveServer, http: GraphQLClient, protocol: str
) -> None:
    async with asyncio.timeout(TIMEOUT_S):
        # given an agent that calls tools for a few turns before it answers, word by word
        tenant = await new_tenant(http, server)
        script = [{"tool": "calculator", "arguments": {"expression": "6*7"}}] * 6
        agent = await new_agent(
            http, tenant.token, "scripted/agent", ["calculator"], [*script, {"say": "{query}"}]
        )
        async with open_ws(server.ws_url, protocol, token=tenant.token) as ws:
            # when its live output is subscribed to as soon as the task is submitted
            task_id = await submit(http, tenant.token, agent, WORDS_12)
            op = await ws.subscribe(TASK_OUTPUT, taskId=task_id)
            payloads, end = await ws.collect(op)
        # then the chunks (one per word) concatenate to the final output, then `complete`
        assert end == Message("complete", op)
        chunks = [p["data"]["taskOutput"] for p in payloads]
        assert len(chunks) == len(WORDS_12.split(" "))
        task = await fetch_task(http, tenant.token, task_id)
        assert task["status"] == "COMPLETED"
        assert "".join(chunks) == task["output"] == WORDS_12


async def test_task_output_of_a_finished_task_completes_at_once(
    server: LiveServer, http: GraphQLClient
) -> None:
    async with asyncio.timeout(TIMEOUT_S):
        tenant, task_id, _ = await _completed_task(http, server)
        async with open_ws(server.ws_url, token=tenant.token) as ws:
            op = await ws.subscribe(TASK_OUTPUT, taskId=task_id)
            assert await ws.collect(op) == ([], Message("complete", op))


async def test_errors_over_websockets_carry_codes_and_validation_errors_stay_errors(
    server: LiveServer, http: GraphQLClient
) -> None:
    async with asyncio.timeout(TIMEOUT_S):
        tenant = await new_tenant(http, server)
        async with open_ws(server.ws_url, token=tenant.token) as ws:
            # a query over the websocket gets the same error codes as over HTTP
            op = await ws.subscribe("query($id: ID!) { task(id: $id) { id } }", id="tsk_nope")
            error = await ended_with_error(ws, op)
            assert error["extensions"]["code"] == "NOT_FOUND"
            assert error["message"] == "Task 'tsk_nope' not found"
            # and an invalid document is answered with the protocol's `error` message
            op = await ws.subscribe("subscription { nope }")
            message = await ws.receive()
            assert (message.type, message.id) == ("error", op)
            assert [e["message"] for e in message.payload] == [
                "Cannot query field 'nope' on type 'Subscription'."
            ]
            assert message.payload[0]["extensions"]["code"] == "GRAPHQL_VALIDATION_FAILED"
            # and the connection stays usable
            assert await flush(ws) == []


@pytest.mark.parametrize("protocol", [TRANSPORT_WS, LEGACY_WS])
async def test_a_syntax_error_fails_its_operation_not_the_connection(
    server: LiveServer, http: GraphQLClient, protocol: str
) -> None:
    async with asyncio.timeout(TIMEOUT_S):
        tenant = await new_tenant(http, server)
        agent = await new_agent(http, tenant.token)
        task_id = await submit(http, tenant.token, agent, "still here")
        await wait_terminal(http, tenant.token, task_id)
        async with open_ws(server.ws_url, protocol, token=tenant.token) as ws:
            # an unparsable document is answered with an `error` for that operation
            op = await ws.subscribe("subscription { taskEvents(taskId: ")
            message = await ws.receive()
            assert (message.type, message.id) == ("error", op)
            errors = message.payload if isinstance(message.payload, list) else [message.payload]
            assert errors[0]["message"].startswith("Syntax Error")
            assert errors[0]["extensions"]["code"] == "GRAPHQL_PARSE_FAILED"
            # and the same connection goes on serving other operations
            op = await ws.subscribe(TASK_EVENTS, taskId=task_id)
            payloads, end = await ws.collect(op)
            assert len(steps_of(payloads)) == 4 and end == Message("complete", op)
