"""`taskUpdates` through tenant feeds and GraphQL over SSE through the live feeds
(subscriptions/feeds.py, schema/live.py, http/sse.py), over real sockets to uvicorn
serving in this process, so that the tests can look at the server's feeds and render
cache and publish straight to its broker."""

import asyncio
import contextlib
import json
import socket
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import httpx
import pytest
from websockets.asyncio.client import connect

from agentplane.core.config import Settings
from agentplane.models import Task, TaskStatus, Tenant
from agentplane.resolvers import tasks, traces
from agentplane.resolvers.auth import Actor
from agentplane.resolvers.tokens import mint_token
from agentplane.runtime.worker import Worker
from agentplane.schema import live
from agentplane.subscriptions import events, feeds, live_sockets
from agentplane.subscriptions.broker import QUEUE_SIZE, get_broker
from tests.support.factories import make_agent, make_tenant, make_token
from tests.support.inprocess import serve_in_process
from tests.support.ws import LEGACY_WS, TRANSPORT_WS, open_ws

# Plain columns (shared by every subscriber) and a selection reaching `agent`, whose
# resolver reads the caller (shared by subscribers with the same actor only). A root
# field selected through a fragment keeps an operation off the feeds' renders: the
# stock pipeline renders it.
PLAIN = "taskUpdates { id status statusReason costUsd isTerminal }"
WITH_AGENT = "taskUpdates { id status agent { id name } }"
EVENTS = "taskEvents(taskId: $id) { seq kind payload }"


def _operation(head: str, selection: str, stock: bool) -> str:
    if stock:
        return f"{head} {{ ...Root }} fragment Root on Subscription {{ {selection} }}"
    return f"{head} {{ {selection} }}"


def updates(selection: str, stock: bool = False) -> str:
    return _operation("subscription", selection, stock)


def task_events(stock: bool = False) -> str:
    return _operation("subscription($id: ID!)", EVENTS, stock)


@pytest.fixture
async def ws_url(settings: Settings) -> AsyncIterator[str]:
    async with serve_in_process(settings) as url:
        yield url


def http_url(ws_url: str) -> str:
    return ws_url.replace("ws://", "http://")


@asynccontextmanager
async def sse(
    url: str, token: str, query: str, **variables: Any
) -> AsyncIterator[AsyncIterator[str]]:
    """A GraphQL-over-SSE subscription; yields its events' raw text (heartbeats dropped)."""
    headers = {"Accept": "text/event-stream", "Authorization": f"Bearer {token}"}
    body = {"query": query, "variables": variables}
    async with (
        httpx.AsyncClient(timeout=30) as client,
        client.stream("POST", http_url(url), json=body, headers=headers) as response,
    ):
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")

        async def read() -> AsyncIterator[str]:
            buffer = ""
            async for text in response.aiter_text():
                buffer += text
                while "\r\n\r\n" in buffer:
                    event, buffer = buffer.split("\r\n\r\n", 1)
                    if not event.startswith(":"):
                        yield event + "\r\n\r\n"

        yield read()


def sse_data(event: str) -> Any:
    kind, data = event.split("\r\n")[:2]
    assert kind == "event: next", event
    return json.loads(data.removeprefix("data: "))


async def take(stream: AsyncIterator[str], count: int) -> list[str]:
    return [await anext(stream) for _ in range(count)]


async def members(key: str, count: int, table: Callable[[], dict[str, Any]]) -> None:
    """Wait until the feed of `key` serves `count` subscribers."""
    async with asyncio.timeout(15):
        while key not in table() or len(table()[key].members) != count:
            await asyncio.sleep(0.01)


async def tenant_with_agent(name: str) -> tuple[Tenant, str, str]:
    tenant = await make_tenant(name)
    agent = await make_agent(tenant)
    return tenant, agent.id, await make_token(tenant, "operator")


async def submit(tenant: Tenant, agent_id: str, query: str) -> Task:
    operator = Actor(kind="token", role="operator", tenant_id=tenant.id)
    return await tasks.submit_task(operator, agent_id=agent_id, query=query)


async def test_task_updates_render_once_per_distinct_selection_on_websockets_and_sse(
    ws_url: str,
) -> None:
    tenant, agent_id, token = await tenant_with_agent("acme")
    other_token = await make_token(tenant, "viewer")  # another caller of the same tenant
    count = 4
    async with (
        open_ws(ws_url, token=token) as ws_a,
        open_ws(ws_url, LEGACY_WS, token=other_token) as ws_b,
        open_ws(ws_url, token=token) as ws_stock,
        sse(ws_url, token, updates(PLAIN)) as sse_plain,
        sse(ws_url, token, updates(WITH_AGENT)) as sse_agent,
        sse(ws_url, token, updates(PLAIN, stock=True)) as sse_plain_stock,
        sse(ws_url, token, updates(WITH_AGENT, stock=True)) as sse_agent_stock,
    ):
        # given, for two selections, subscribers on both websocket protocols and SSE
        # through the feed, and the same selections on the stock pipeline
        ops = {}
        for selection in (PLAIN, WITH_AGENT):
            ops[selection] = (
                await ws_a.subscribe(updates(selection)),
                await ws_b.subscribe(updates(selection)),
                await ws_stock.subscribe(updates(selection, stock=True)),
            )
        await members(tenant.id, 10, lambda: feeds._update_feeds)
        live._payloads.clear()
        # when tasks are submitted and one is cancelled
        submitted = [await submit(tenant, agent_id, f"task {n}") for n in range(count - 1)]
        await traces.transition(submitted[0].id, [TaskStatus.QUEUED], TaskStatus.CANCELLED)
        # then every subscriber gets every update, the same as on the stock pipeline
        by_op: dict[tuple[str, str], list[Any]] = {}
        for ws in (ws_a, ws_b, ws_stock):
            for _ in range(2 * count):
                message = await ws.receive()
                assert message.type == "next", message
                by_op.setdefault((str(id(ws)), message.id), []).append(message.payload)
        for a, b, stock in ops.values():
            expected = by_op[(str(id(ws_stock)), stock)]
            assert by_op[(str(id(ws_a)), a)] == by_op[(str(id(ws_b)), b)] == expected
            assert [p["data"]["taskUpdates"]["status"] for p in expected] == [
                "QUEUED",
                "QUEUED",
                "QUEUED",
                "CANCELLED",
            ]
        plain, plain_stock = await take(sse_plain, count), await take(sse_plain_stock, count)
        agent, agent_stock = await take(sse_agent, count), await take(sse_agent_stock, count)
        assert plain == plain_stock  # byte for byte, framing included
        assert agent == agent_stock
        assert [sse_data(e) for e in plain] == by_op[(str(id(ws_stock)), ops[PLAIN][2])]
        assert [sse_data(e) for e in agent] == by_op[(str(id(ws_stock)), ops[WITH_AGENT][2])]
        assert sse_data(agent[1])["data"]["taskUpdates"]["agent"] == {
            "id": agent_id,
            "name": "echo",
        }
        # and each update was executed once per distinct selection, not per subscriber:
        # the plain one once for both callers, the one reaching `agent` once per caller
        rendered: dict[Any, list[bool]] = {}
        for key in live._payloads:
            rendered.setdefault(key[0], []).append(key[3] == live.ANY)
        assert len(rendered) == count
        assert all(sorted(shared) == [False, False, True] for shared in rendered.values())
    await asyncio.sleep(0.2)
    assert feeds.live_feeds() == 0
    assert events.tenant_tasks_channel(tenant.id) not in get_broker()._subscribers


async def test_task_updates_show_only_the_callers_tenant(ws_url: str) -> None:
    acme, acme_agent, acme_token = await tenant_with_agent("acme")
    other, other_agent, other_token = await tenant_with_agent("other")
    _, admin_token = await mint_token(tenant_id=None, role="platform_admin", name="admin")
    async with (
        open_ws(ws_url, token=acme_token) as acme_ws,
        open_ws(ws_url, token=admin_token) as admin_ws,
        sse(ws_url, acme_token, updates(PLAIN)) as acme_sse,
    ):
        # given acme's subscribers, and a platform admin watching one agent of `other`
        acme_op = await acme_ws.subscribe(updates(PLAIN))
        admin_op = await admin_ws.subscribe(
            "subscription($a: ID!) { taskUpdates(agentId: $a) { id status } }", a=other_agent
        )
        await members(acme.id, 2, lambda: feeds._update_feeds)
        await members(other.id, 1, lambda: feeds._update_feeds)
        # when both tenants' tasks change
        other_task = await submit(other, other_agent, "not acme's")
        acme_task = await submit(acme, acme_agent, "acme's")
        # then acme sees only its own
        message = await acme_ws.receive()
        assert (message.id, message.payload["data"]["taskUpdates"]["id"]) == (acme_op, acme_task.id)
        assert sse_data(await anext(acme_sse))["data"]["taskUpdates"]["id"] == acme_task.id
        # and the admin only the agent it named
        message = await admin_ws.receive()
        assert message.id == admin_op
        assert message.payload["data"]["taskUpdates"] == {"id": other_task.id, "status": "QUEUED"}
        # and another tenant's agent cannot be named, nor can the platform watch no agent
        refused = await acme_ws.subscribe(
            "subscription($a: ID!) { taskUpdates(agentId: $a) { id } }", a=other_agent
        )
        payloads, _ = await acme_ws.collect(refused)
        assert payloads[0]["errors"][0]["extensions"]["code"] == "NOT_FOUND"
        refused = await admin_ws.subscribe(updates(PLAIN))
        payloads, _ = await admin_ws.collect(refused)
        assert payloads[0]["errors"][0]["extensions"]["code"] == "VALIDATION"
        async with sse(ws_url, other_token, updates(PLAIN)) as other_sse:
            await members(other.id, 2, lambda: feeds._update_feeds)
            await traces.transition(acme_task.id, [TaskStatus.QUEUED], TaskStatus.CANCELLED)
            await traces.transition(other_task.id, [TaskStatus.QUEUED], TaskStatus.CANCELLED)
            seen = sse_data(await anext(other_sse))["data"]["taskUpdates"]
            assert (seen["id"], seen["status"]) == (other_task.id, "CANCELLED")
        message = await acme_ws.receive()
        assert message.payload["data"]["taskUpdates"]["id"] == acme_task.id


async def test_task_events_over_sse_render_once_and_match_the_stock_stream(
    ws_url: str, settings: Settings
) -> None:
    tenant, agent_id, token = await tenant_with_agent("acme")
    task = await submit(tenant, agent_id, "one two three")
    live._payloads.clear()

    async def read_all(query: str) -> list[str]:
        async with sse(ws_url, token, query, id=task.id) as stream:
            return [event async for event in stream if not event.startswith("event: complete")]

    async def read_ws() -> list[Any]:
        async with open_ws(ws_url, token=token) as ws:
            payloads, end = await ws.collect(await ws.subscribe(task_events(), id=task.id))
        assert end.type == "complete"
        return payloads

    # given SSE subscribers through the feed, one on the stock stream, and a websocket
    readers = [asyncio.create_task(read_all(task_events())) for _ in range(3)]
    stock = asyncio.create_task(read_all(task_events(stock=True)))
    socket_reader = asyncio.create_task(read_ws())
    await members(task.id, 5, lambda: feeds._feeds)  # the stock one takes steps from it too
    # when the task runs
    worker = Worker(settings)
    await worker.start()
    try:
        results = await asyncio.wait_for(asyncio.gather(*readers, stock, socket_reader), 20)
    finally:
        await worker.stop()
    *fed, stocked, over_ws = results
    # then the SSE subscribers got the stock stream's events byte for byte
    assert [sse_data(e)["data"]["taskEvents"]["seq"] for e in stocked] == [1, 2, 3, 4]
    assert fed == [stocked] * 3
    assert [sse_data(e) for e in stocked] == over_ws
    # and each step was executed once for all of them and the websocket
    assert len(live._payloads) == 4


async def send_sse_request(sock: socket.socket, token: str, query: str, **variables: Any) -> None:
    body = json.dumps({"query": query, "variables": variables}).encode()
    head = (
        f"POST /graphql HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: text/event-stream\r\n"
        f"Authorization: Bearer {token}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    )
    await asyncio.get_running_loop().sock_sendall(sock, head.encode() + body)


async def read_chunked_events(sock: socket.socket) -> list[str]:
    """Everything the server sends until its last chunk, as SSE events' raw text."""
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
    return [e for e in text.decode().split("\r\n\r\n") if e and not e.startswith(":")]


# Past the backlog's frame count; or, with fewer frames than that, past its byte bound
# (feeds.MAX_BACKLOG_BYTES) plus some 4 MB of kernel buffers.
@pytest.mark.parametrize(
    ("count", "size"), [(QUEUE_SIZE + 300, 32768), (300, 65536)], ids=["frames", "bytes"]
)
@pytest.mark.parametrize("kind", ["events-sse", "updates-ws"])
async def test_a_slow_sse_reader_or_updates_socket_is_cut_off_and_the_others_get_everything(
    ws_url: str, kind: str, count: int, size: int
) -> None:
    assert count * size > 2 * feeds.MAX_BACKLOG_BYTES + 4 * 1024 * 1024
    tenant, agent_id, token = await tenant_with_agent("acme")
    task = await submit(tenant, agent_id, "never runs")
    port = int(ws_url.split(":")[2].split("/")[0])
    blob = "x" * size
    if kind == "events-sse":  # a slow SSE reader of taskEvents (its first step replayed)
        key, table, query, start = task.id, lambda: feeds._feeds, task_events(), 0
        first = (await traces.steps_after(task.id, 0))[0]
        channel = events.task_channel(task.id)

        def event(n: int) -> dict[str, Any]:
            step = {**events.step_event(first), "id": f"stp_{n}", "seq": n + 1}
            return {**step, "payload": {"blob": blob}}

        def number(data: dict[str, Any]) -> int:
            return int(data["taskEvents"]["seq"]) - 1

    else:  # a slow taskUpdates websocket
        key, table, start = tenant.id, lambda: feeds._update_feeds, 1
        query = updates("taskUpdates { id status output }")
        channel = events.tenant_tasks_channel(tenant.id)

        def event(n: int) -> dict[str, Any]:
            return {**events.task_event(task), "id": f"tsk_{n}", "output": blob}

        def number(data: dict[str, Any]) -> int:
            return int(data["taskUpdates"]["id"].removeprefix("tsk_"))

    async with contextlib.AsyncExitStack() as stack:
        # given a subscriber that stops reading, with a tiny receive buffer
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        sock.connect(("127.0.0.1", port))
        sock.setblocking(False)
        stack.callback(sock.close)
        if kind == "events-sse":
            await send_sse_request(sock, token, query, id=task.id)
        else:
            slow_ws = await stack.enter_async_context(
                connect(ws_url, sock=sock, subprotocols=[TRANSPORT_WS], max_queue=4)  # type: ignore[list-item]
            )
            init = {"type": "connection_init", "payload": {"Authorization": f"Bearer {token}"}}
            await slow_ws.send(json.dumps(init))
            assert json.loads(await slow_ws.recv())["type"] == "connection_ack"
            subscribe = {"id": "1", "type": "subscribe", "payload": {"query": query}}
            await slow_ws.send(json.dumps(subscribe))
        # and two that keep reading, on a websocket and over SSE
        fast_ws = await stack.enter_async_context(open_ws(ws_url, token=token))
        op = await fast_ws.subscribe(query, id=task.id)
        fast_sse = await stack.enter_async_context(sse(ws_url, token, query, id=task.id))
        await members(key, 3, table)
        if kind == "events-sse":
            assert number((await fast_ws.receive()).payload["data"]) == 0
            assert number(sse_data(await anext(fast_sse))["data"]) == 0
        # when far more arrives than the slow one's buffers hold, at the pace the
        # reading subscribers keep up with
        got_ws: list[int] = []
        got_sse: list[int] = []

        async def read_ws() -> None:
            while len(got_ws) < count:
                message = await fast_ws.receive()
                assert message.type == "next", message
                got_ws.append(number(message.payload["data"]))

        async def read_sse() -> None:
            while len(got_sse) < count:
                got_sse.append(number(sse_data(await anext(fast_sse))["data"]))

        readers = asyncio.gather(read_ws(), read_sse())
        async with asyncio.timeout(90):
            for n in range(1, count + 1):
                await get_broker().publish(channel, event(n))
                while min(len(got_ws), len(got_sse)) < n - 50:
                    await asyncio.sleep(0.001)
            await readers
        # then the reading subscribers got everything in order
        assert got_ws == got_sse == list(range(1, count + 1))
        # and the slow one is told, once it reads again, that it fell behind
        async with asyncio.timeout(30):
            if kind == "events-sse":
                received = await read_chunked_events(sock)
                assert received[-1].startswith("event: complete"), received[-1]
                data = [sse_data(e) for e in received[:-1]]
            else:
                data = []
                async for raw in slow_ws:
                    frame = json.loads(raw)
                    if frame["type"] == "complete":
                        break
                    data.append(frame["payload"])
        failure = data[-1]["errors"][0]["extensions"]
        assert failure["code"] == "SLOW_CONSUMER"
        delivered = [number(d["data"]) for d in data[:-1]]
        assert delivered == list(range(start, start + len(delivered)))
        assert len(delivered) < count
        await fast_ws.stop(op)
    await asyncio.sleep(0.2)
    assert feeds.live_feeds() == 0


async def test_a_revoked_token_ends_its_sse_stream(ws_url: str) -> None:
    tenant = await make_tenant("acme")
    token, plaintext = await mint_token(tenant_id=tenant.id, role="operator", name="t")
    async with sse(ws_url, plaintext, updates(PLAIN)) as stream:
        await members(tenant.id, 1, lambda: feeds._update_feeds)
        # when the token is revoked
        await live_sockets.revoked("token", token.id)
        # then the stream says why, and ends
        async with asyncio.timeout(5):
            received = [event async for event in stream]
    assert sse_data(received[0])["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"
    assert received[1].startswith("event: complete")
    await asyncio.sleep(0.1)
    assert feeds.live_feeds() == 0


async def test_a_credential_holds_at_most_ten_event_streams(ws_url: str) -> None:
    # given ten open GraphQL-over-SSE subscriptions with one token
    _, _, token = await tenant_with_agent("acme")
    query = updates(PLAIN)
    headers = {"Accept": "text/event-stream", "Authorization": f"Bearer {token}"}

    async def eleventh() -> httpx.Response:
        async with httpx.AsyncClient(timeout=30) as client:
            async with client.stream(
                "POST", http_url(ws_url), json={"query": query}, headers=headers
            ) as response:
                if response.status_code != 200:
                    await response.aread()
                return response

    async with contextlib.AsyncExitStack() as held:
        for _ in range(10):
            await held.enter_async_context(sse(ws_url, token, query))
        # then an eleventh is refused as websockets are, and holds nothing
        refused = await eleventh()
        assert refused.status_code == 429
        assert refused.json()["errors"][0]["extensions"]["code"] == "RATE_LIMITED"
    # and once they are closed, their slots come back
    async with asyncio.timeout(10):
        while (await eleventh()).status_code != 200:
            await asyncio.sleep(0.05)
