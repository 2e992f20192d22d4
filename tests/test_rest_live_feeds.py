"""Every live subscriber type through the live feeds (subscriptions/feeds.py): the REST
dialects' event streams, `taskOutput` and `approvalUpdates`, over real sockets. One test
runs `agentplane serve` as a process and reads its metrics; the others serve uvicorn in
this process, so that they can look at the server's feeds and publish to its broker."""

import asyncio
import contextlib
import json
import socket
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from tortoise.transactions import in_transaction
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from agentplane.core.config import Settings
from agentplane.http.ws_limits import CLOSE_TOO_MANY_SOCKETS
from agentplane.models import ApprovalRequest, ApprovalStatus, StepKind, Task, TaskStatus, Tenant
from agentplane.resolvers import approvals, tasks, traces
from agentplane.resolvers.auth import Actor
from agentplane.resolvers.tokens import mint_token
from agentplane.rest_compat import koda
from agentplane.runtime.worker import Worker
from agentplane.schema import live
from agentplane.subscriptions import events, feeds, live_sockets
from agentplane.subscriptions.broker import get_broker
from tests.support.factories import make_agent, make_tenant, make_token
from tests.support.inprocess import serve_in_process
from tests.support.rest import parse_sse
from tests.support.server import LiveServer, live_server
from tests.support.ws import LEGACY_WS, TRANSPORT_WS, open_ws

EVENTS = "subscription($id: ID!) { taskEvents(taskId: $id) { seq } }"
OUTPUT = "subscription($id: ID!) { taskOutput(taskId: $id) }"
APPROVALS = "subscription { approvalUpdates { id status tool } }"


@pytest.fixture
async def base(settings: Settings) -> AsyncIterator[str]:
    """uvicorn serving in this process (no worker); its HTTP base URL."""
    async with serve_in_process(settings) as url:
        yield url.replace("ws://", "http://").removesuffix("/graphql")


def events_path(task_id: str) -> str:
    return f"/api/runtime/tasks/{task_id}/events"


@contextlib.asynccontextmanager
async def koda_events(
    base: str, token: str, task_id: str, last_event_id: int | None = None
) -> AsyncIterator[AsyncIterator[dict[str, Any]]]:
    """Koda's event stream of a task: its events as dicts (heartbeat comments dropped)."""
    headers = {"Authorization": f"Bearer {token}"}
    if last_event_id is not None:
        headers["Last-Event-ID"] = str(last_event_id)
    async with (
        httpx.AsyncClient(timeout=60) as client,
        client.stream("GET", base + events_path(task_id), headers=headers) as response,
    ):
        assert response.status_code == 200, await response.aread()
        assert response.headers["content-type"].startswith("text/event-stream")

        async def read() -> AsyncIterator[dict[str, Any]]:
            buffer = ""
            async for text in response.aiter_text():
                buffer += text
                while "\r\n\r\n" in buffer:
                    block, buffer = buffer.split("\r\n\r\n", 1)
                    yield from_block(block)

        yield (event async for event in read() if event)


def from_block(block: str) -> dict[str, Any]:
    parsed = parse_sse(block + "\r\n\r\n")
    return parsed[0] if parsed else {}


async def queued_task(name: str = "acme") -> tuple[Tenant, Task]:
    tenant = await make_tenant(name)
    agent = await make_agent(tenant)
    operator = Actor(kind="token", role="operator", tenant_id=tenant.id)
    return tenant, await tasks.submit_task(operator, agent_id=agent.id, query="one two three")


async def members(table: dict[str, Any], key: str, count: int) -> None:
    async with asyncio.timeout(15):
        while key not in table or len(table[key].members) != count:
            await asyncio.sleep(0.01)


# ---------------------------------------------------------------- one feed per task
def gauge(server: LiveServer, name: str) -> float:
    for line in httpx.get(server.base_url + "/metrics", timeout=10).text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    raise AssertionError(f"{name} not in /metrics")


def admin_call(server: LiveServer, query: str, **variables: Any) -> Any:
    body = httpx.post(
        server.base_url + "/graphql",
        json={"query": query, "variables": variables},
        headers={"Authorization": f"Bearer {server.admin_token}"},
        timeout=30,
    ).json()
    assert not body.get("errors"), body
    return body["data"]


async def test_rest_event_streams_of_a_task_hold_one_broker_subscription_per_process(
    tmp_path: Path,
) -> None:
    with live_server(f"sqlite://{tmp_path / 'feeds.db'}", tmp_path, "--no-worker") as server:
        # given a queued task (no worker: it stays queued) and three tokens of its tenant
        admin_call(server, 'mutation { createTenant(input: {name: "acme"}) { tenant { id } } }')
        tokens = [
            admin_call(
                server,
                'mutation { createAccessToken(input: {name: "t", tenant: "acme", '
                'role: "operator"}) { plainTextToken } }',
            )["createAccessToken"]["plainTextToken"]
            for _ in range(3)
        ]
        agent = admin_call(
            server,
            'mutation { createAgent(input: {name: "echo", tenant: "acme", '
            'model: "scripted/echo"}) { agent { id } } }',
        )["createAgent"]["agent"]["id"]
        task = admin_call(
            server,
            'mutation($a: ID!) { submitTask(input: {agentId: $a, query: "q"}) { task { id } } }',
            a=agent,
        )["submitTask"]["task"]["id"]
        async with contextlib.AsyncExitStack() as stack:
            streams = [
                await stack.enter_async_context(koda_events(server.base_url, tokens[0], task))
            ]
            assert (await anext(streams[0]))["id"] == "1"  # replayed, then following live
            subscriptions = gauge(server, "agentplane_broker_subscriptions")
            assert gauge(server, "agentplane_live_feed_members") == 1
            # when eleven more stream the same task, with other tokens too
            for n in range(1, 12):
                stream = await stack.enter_async_context(
                    koda_events(server.base_url, tokens[n % 3], task)
                )
                assert (await anext(stream))["id"] == "1"
                streams.append(stream)
            # then the process still holds one subscription for them all
            assert gauge(server, "agentplane_live_feed_members") == 12
            assert gauge(server, "agentplane_live_feeds") == 1
            assert gauge(server, "agentplane_broker_subscriptions") == subscriptions
            # and every stream ends after the task's terminal step
            admin_call(
                server, "mutation($t: ID!) { cancelTask(input: {id: $t}) { task { id } } }", t=task
            )
            async with asyncio.timeout(20):
                rest = [[event async for event in stream] for stream in streams]
            assert all([e["id"] for e in r] == ["2"] for r in rest), rest
            assert all(r[0]["data"]["payload"]["to"] == "cancelled" for r in rest)
        async with asyncio.timeout(10):
            while gauge(server, "agentplane_live_feeds"):
                await asyncio.sleep(0.05)
        assert gauge(server, "agentplane_live_feed_members") == 0
        assert gauge(server, "agentplane_broker_subscriptions") == subscriptions - 1


async def test_each_step_is_framed_once_for_every_rest_stream_of_it(
    base: str, settings: Settings
) -> None:
    tenant, task = await queued_task()
    tokens = [await make_token(tenant, "viewer") for _ in range(2)]
    koda._step_frames.clear()

    async def read(token: str, last_event_id: int | None) -> list[dict[str, Any]]:
        async with koda_events(base, token, task.id, last_event_id) as stream:
            return [event async for event in stream]

    # given Koda streams from the start and from a cursor, with two tokens
    readers = [asyncio.create_task(read(tokens[n % 2], 1 if n == 5 else None)) for n in range(6)]
    await members(feeds._feeds, task.id, 6)
    assert get_broker().local_subscriptions(events.task_channel(task.id)) == 1
    # when the task runs
    worker = Worker(settings)
    await worker.start()
    try:
        *whole, resumed = await asyncio.wait_for(asyncio.gather(*readers), 20)
    finally:
        await worker.stop()
    # then each got every step once, in order, and the resumed one those after its cursor
    assert [e["id"] for e in whole[0]] == ["1", "2", "3", "4"]
    assert all(events == whole[0] for events in whole)
    assert resumed == whole[0][1:]
    assert whole[0][-1]["data"]["payload"]["to"] == "completed"
    # and each step was framed once for all of them
    assert len(koda._step_frames) == 4
    await asyncio.sleep(0.1)
    assert feeds.live_feeds() == 0
    assert events.task_channel(task.id) not in get_broker()._subscribers


# ---------------------------------------------------------------- a slow reader
async def send_get(sock: socket.socket, path: str, token: str) -> None:
    head = f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {token}\r\n\r\n"
    await asyncio.get_running_loop().sock_sendall(sock, head.encode())


async def read_chunked(sock: socket.socket) -> list[dict[str, Any]]:
    """Everything the server sends until its last chunk, as SSE events."""
    loop = asyncio.get_running_loop()
    raw = b""
    while not raw.endswith(b"\r\n0\r\n\r\n"):
        data = await loop.sock_recv(sock, 1 << 16)
        if not data:
            break
        raw += data
    _, body = raw.split(b"\r\n\r\n", 1)
    text = b""
    while body:
        size_line, body = body.split(b"\r\n", 1)
        size = int(size_line, 16)
        text, body = text + body[:size], body[size + 2 :]
    return [from_block(b) for b in text.decode().split("\r\n\r\n") if b and not b.startswith(":")]


async def test_a_slow_rest_reader_is_cut_off_by_bytes_and_resumes_from_its_last_event(
    base: str, settings: Settings
) -> None:
    # Fewer events than the backlog's frame bound, far more bytes than its byte bound
    # (feeds.MAX_BACKLOG_BYTES) plus some 4 MB of kernel buffers.
    count, size = 300, 65536
    assert count * size > 2 * feeds.MAX_BACKLOG_BYTES + 4 * 1024 * 1024
    tenant, task = await queued_task()
    token = await make_token(tenant, "viewer")
    port = int(base.rsplit(":", 1)[1])
    async with contextlib.AsyncExitStack() as stack:
        # given a Koda stream that stops reading, with a tiny receive buffer
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        sock.connect(("127.0.0.1", port))
        sock.setblocking(False)
        stack.callback(sock.close)
        await send_get(sock, events_path(task.id), token)
        # and a Koda stream and a websocket that keep reading
        fast = await stack.enter_async_context(koda_events(base, token, task.id))
        ws = await stack.enter_async_context(
            open_ws(base.replace("http", "ws") + "/graphql", token=token)
        )
        op = await ws.subscribe(EVENTS, id=task.id)
        await members(feeds._feeds, task.id, 3)
        assert (await anext(fast))["id"] == "1"
        assert (await ws.receive()).payload["data"]["taskEvents"]["seq"] == 1
        # when the task's next steps are stored, and published with large payloads, at the
        # pace the reading subscribers keep up with
        async with in_transaction():
            stored = [
                await traces._append(task.id, StepKind.TOOL_CALL, {"n": n}, None)
                for n in range(count)
            ]
        got_rest: list[int] = []
        got_ws: list[int] = []

        async def read_rest() -> None:
            while len(got_rest) < count:
                got_rest.append(int((await anext(fast))["id"]))

        async def read_ws() -> None:
            while len(got_ws) < count:
                got_ws.append((await ws.receive()).payload["data"]["taskEvents"]["seq"])

        readers = asyncio.gather(read_rest(), read_ws())
        blob = "x" * size
        async with asyncio.timeout(90):
            for n, step in enumerate(stored, 1):
                event = {**events.step_event(step), "payload": {"blob": blob}}
                await get_broker().publish(events.task_channel(task.id), event)
                while min(len(got_rest), len(got_ws)) < n - 50:
                    await asyncio.sleep(0.001)
            await readers
        # then the reading subscribers got every step in order
        assert got_rest == got_ws == list(range(2, count + 2))
        await traces.transition(task.id, [TaskStatus.QUEUED], TaskStatus.CANCELLED)
        assert [e["id"] async for e in fast] == [str(count + 2)]
        await ws.stop(op)
        # and the slow one, once it reads again, gets its steps in order up to where it was
        # cut off, then an error event saying where to resume, and the stream ends
        async with asyncio.timeout(30):
            received = await read_chunked(sock)
    *steps, error = received
    last = len(steps)
    assert [e["id"] for e in steps] == [str(seq) for seq in range(1, last + 1)]
    assert last < count
    assert error["event"] == "error" and "id" not in error
    assert error["data"]["code"] == "SLOW_CONSUMER" and error["data"]["retryable"] is True
    assert f"Last-Event-ID: {last}" in error["data"]["message"]
    # and resuming from its last event gives the rest: no gap, nothing twice
    async with asyncio.timeout(20), koda_events(base, token, task.id, last) as resumed:
        rest = [e["id"] async for e in resumed]
    assert rest == [str(seq) for seq in range(last + 1, count + 3)]
    await asyncio.sleep(0.1)
    assert feeds.live_feeds() == 0


# ---------------------------------------------------------------- revocation and the cap
async def test_a_revoked_token_ends_its_rest_event_stream(base: str) -> None:
    tenant, task = await queued_task()
    token, plaintext = await mint_token(tenant_id=tenant.id, role="viewer", name="t")
    async with koda_events(base, plaintext, task.id) as stream:
        assert (await anext(stream))["id"] == "1"
        await members(feeds._feeds, task.id, 1)
        # when the token is revoked
        await live_sockets.revoked("token", token.id)
        # then the stream says why, and ends
        async with asyncio.timeout(5):
            received = [event async for event in stream]
    assert [(e["event"], e["data"]["code"]) for e in received] == [("error", "UNAUTHENTICATED")]
    await asyncio.sleep(0.1)
    assert feeds.live_feeds() == 0


async def test_rest_event_streams_count_toward_the_credentials_ten_connections(
    base: str,
) -> None:
    tenant, task = await queued_task()
    token = await make_token(tenant, "viewer")
    headers = {"Authorization": f"Bearer {token}"}
    url = base.replace("http", "ws") + "/graphql"

    async def refused_stream(method: str, path: str, **request: Any) -> httpx.Response:
        async with httpx.AsyncClient(timeout=30, headers=headers) as client:
            response = await client.request(method, base + path, **request)
        assert response.status_code == 429, response.text
        return response

    async with contextlib.AsyncExitStack() as held:
        # given ten open connections with one token: websockets, and REST event streams
        for _ in range(3):
            await held.enter_async_context(open_ws(url, token=token))
        streams = [
            await held.enter_async_context(koda_events(base, token, task.id)) for _ in range(7)
        ]
        for stream in streams:
            assert (await anext(stream))["id"] == "1"
        # then an eleventh is refused, whether an event stream of either API or a websocket
        koda_refused = await refused_stream("GET", events_path(task.id))
        assert koda_refused.json()["code"] == "RATE_LIMITED"
        graphql_refused = await refused_stream(
            "POST",
            "/graphql",
            json={"query": "subscription { taskUpdates { id } }"},
            headers={"Accept": "text/event-stream"},
        )
        assert graphql_refused.json()["errors"][0]["extensions"]["code"] == "RATE_LIMITED"
        async with connect(url, subprotocols=[TRANSPORT_WS]) as extra:  # type: ignore[list-item]
            init = {"type": "connection_init", "payload": {"Authorization": f"Bearer {token}"}}
            await extra.send(json.dumps(init))
            with pytest.raises(ConnectionClosed) as closed:
                await asyncio.wait_for(extra.recv(), 10)
            assert closed.value.rcvd is not None
            assert closed.value.rcvd.code == CLOSE_TOO_MANY_SOCKETS
    # and once they are closed, their slots come back
    async with asyncio.timeout(10):
        while True:
            with contextlib.suppress(AssertionError):
                async with koda_events(base, token, task.id) as stream:
                    assert (await anext(stream))["id"] == "1"
                    break
            await asyncio.sleep(0.05)


# ---------------------------------------------------------------- taskOutput, approvalUpdates
async def test_task_output_subscribers_share_one_feed_and_each_chunk_renders_once(
    base: str,
) -> None:
    tenant, task = await queued_task()
    token = await make_token(tenant, "viewer")
    url = base.replace("http", "ws") + "/graphql"
    channel = events.task_output_channel(task.id)
    async with contextlib.AsyncExitStack() as stack:
        # given six taskOutput subscribers on both protocols
        sockets = [
            await stack.enter_async_context(open_ws(url, protocol, token=token))
            for protocol in (TRANSPORT_WS, LEGACY_WS) * 3
        ]
        ops = [await ws.subscribe(OUTPUT, id=task.id) for ws in sockets]
        await members(feeds._output_feeds, task.id, 6)
        # then the process holds one broker subscription for them
        assert get_broker().local_subscriptions(channel) == 1
        live._payloads.clear()
        # when the run streams text and ends
        for text in ("one ", "two ", "three"):
            await get_broker().publish(channel, {"task_id": task.id, "text": text})
        await get_broker().publish(channel, {"task_id": task.id, "end": True})
        # then every subscriber gets every chunk, then completes
        async with asyncio.timeout(10):
            for ws, op in zip(sockets, ops, strict=True):
                payloads, end = await ws.collect(op)
                assert [p["data"]["taskOutput"] for p in payloads] == ["one ", "two ", "three"]
                assert end.type == "complete"
        # and each chunk was executed once for all six
        assert len(live._payloads) == 3
    await asyncio.sleep(0.1)
    assert feeds.live_feeds() == 0
    assert channel not in get_broker()._subscribers


async def test_approval_updates_subscribers_share_one_feed_and_see_only_their_tenant(
    base: str, settings: Settings
) -> None:
    acme = await make_tenant("acme")
    other = await make_tenant("globex")
    script = [
        {"tool": "calculator", "arguments": {"expression": "6*7"}},
        {"say": "answer: {last_tool_result}"},
    ]
    config = {"script": script, "approvals": {"tools": {"calculator": {"risk": "high"}}}}
    agent = await make_agent(acme, model="scripted/agent", tools=["calculator"], config=config)
    url = base.replace("http", "ws") + "/graphql"
    acme_tokens = [await make_token(acme, role) for role in ("viewer", "operator", "viewer")]
    async with contextlib.AsyncExitStack() as stack:
        # given three subscribers of acme (two callers, both protocols) and one of globex
        acme_sockets = [
            await stack.enter_async_context(open_ws(url, protocol, token=token))
            for token, protocol in zip(
                acme_tokens, (TRANSPORT_WS, LEGACY_WS, TRANSPORT_WS), strict=True
            )
        ]
        other_ws = await stack.enter_async_context(
            open_ws(url, token=await make_token(other, "viewer"))
        )
        acme_ops = [await ws.subscribe(APPROVALS) for ws in acme_sockets]
        await other_ws.subscribe(APPROVALS)
        await members(feeds._channel_feeds, events.APPROVALS_CHANNEL, 4)
        assert get_broker().local_subscriptions(events.APPROVALS_CHANNEL) == 1
        live._payloads.clear()
        # when an acme run asks for an approval, which is then given
        operator = Actor(kind="token", role="operator", tenant_id=acme.id, token_id="tok_op")
        worker = Worker(settings)
        await worker.start()
        try:
            task = await tasks.submit_task(operator, agent_id=agent.id, query="q")
            async with asyncio.timeout(15):
                while (await Task.get(id=task.id)).status != TaskStatus.WAITING_FOR_APPROVAL:
                    await asyncio.sleep(0.02)
            request = await ApprovalRequest.get(task_id=task.id)
            await approvals.decide(operator, request.id, approve=True)
            async with asyncio.timeout(10):
                seen = [
                    [(await ws.receive()).payload["data"]["approvalUpdates"] for _ in range(2)]
                    for ws in acme_sockets
                ]
        finally:
            await worker.stop()
        # then each acme subscriber saw it opened and decided
        expected = [
            {"id": request.id, "status": status.name, "tool": "calculator"}
            for status in (ApprovalStatus.PENDING, ApprovalStatus.APPROVED)
        ]
        assert seen == [expected] * 3
        # and each update was executed once for all of them
        assert len(live._payloads) == 2
        # and globex's subscriber saw nothing of it
        with pytest.raises(TimeoutError):
            async with asyncio.timeout(0.3):
                await other_ws.receive()
        for ws, op in zip(acme_sockets, acme_ops, strict=True):
            await ws.stop(op)
    await asyncio.sleep(0.1)
    assert feeds.live_feeds() == 0
