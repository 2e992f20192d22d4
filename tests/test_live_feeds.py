"""Live task feeds (subscriptions/feeds.py) and shared rendering (schema/live.py), over
real sockets to uvicorn serving in this process, so that the tests can look at the
server's caches and feeds and publish straight to its broker."""

import asyncio
import json
import socket
from collections.abc import AsyncIterator
from typing import Any

import pytest
from tortoise.transactions import in_transaction
from websockets.asyncio.client import connect

from agentplane.core.config import Settings
from agentplane.models import StepKind, Task, TaskStatus
from agentplane.resolvers import tasks, traces
from agentplane.resolvers.auth import Actor
from agentplane.runtime.worker import Worker
from agentplane.schema import live
from agentplane.subscriptions import events, feeds
from agentplane.subscriptions.broker import QUEUE_SIZE, get_broker
from tests.support.factories import make_agent, make_tenant, make_token
from tests.support.inprocess import serve_in_process
from tests.support.ws import LEGACY_WS, TRANSPORT_WS, GraphQLWebSocket, Message, open_ws

EVENTS = """subscription($id: ID!, $after: Int, $withPayload: Boolean!) {
  taskEvents(taskId: $id, afterSeq: $after) { seq kind payload @include(if: $withPayload) } }"""


@pytest.fixture
async def ws_url(settings: Settings) -> AsyncIterator[str]:
    async with serve_in_process(settings) as url:
        yield url


async def queued_task(query: str = "one two three") -> tuple[Task, str]:
    tenant = await make_tenant("acme")
    agent = await make_agent(tenant)
    operator = Actor(kind="token", role="operator", tenant_id=tenant.id)
    task = await tasks.submit_task(operator, agent_id=agent.id, query=query)
    return task, await make_token(tenant, "operator")


async def watch(
    url: str, token: str, protocol: str, task_id: str, after: int, with_payload: bool
) -> list[dict[str, Any]]:
    async with open_ws(url, protocol, token=token) as ws:
        op = await ws.subscribe(EVENTS, id=task_id, after=after, withPayload=with_payload)
        payloads, end = await ws.collect(op)
    assert end.type == "complete", end
    assert all(set(p) == {"data"} for p in payloads), payloads
    return [p["data"]["taskEvents"] for p in payloads]


async def next_seq(ws: GraphQLWebSocket) -> int:
    message = await ws.receive()
    assert message.type == "next", message
    return int(message.payload["data"]["taskEvents"]["seq"])


async def test_each_step_is_rendered_once_per_distinct_selection(
    ws_url: str, settings: Settings
) -> None:
    task, token = await queued_task()
    live._payloads.clear()
    # given eight subscribers: two selections (with and without payload), two cursors,
    # on both protocols
    watchers = [
        asyncio.create_task(watch(ws_url, token, protocol, task.id, after, with_payload))
        for with_payload in (True, False)
        for after in (0, 1)
        for protocol in (TRANSPORT_WS, LEGACY_WS)
    ]
    await asyncio.sleep(0.3)
    # when the task runs
    worker = Worker(settings)
    await worker.start()
    try:
        results = await asyncio.wait_for(asyncio.gather(*watchers), 15)
    finally:
        await worker.stop()
    full_0, full_0b, full_1, full_1b, bare_0, bare_0b, bare_1, bare_1b = results
    # then every subscriber got its own selection, in full, from its cursor
    assert [e["seq"] for e in full_0] == [1, 2, 3, 4]
    assert full_0b == full_0
    assert full_1 == full_1b == full_0[1:]
    assert all("payload" in e for e in full_0)
    assert bare_0 == bare_0b == [{"seq": e["seq"], "kind": e["kind"]} for e in full_0]
    assert bare_1 == bare_1b == bare_0[1:]
    # and each step was executed once per distinct selection, not once per subscriber
    steps = {key[0] for key in live._payloads}
    assert len(steps) == 4
    assert len(live._payloads) == 2 * len(steps)
    # and once everyone has gone, the feed and its broker channel are released
    await asyncio.sleep(0.1)
    assert feeds.live_feeds() == 0
    assert events.task_channel(task.id) not in get_broker()._subscribers


# Past the backlog's frame count; or, with fewer frames than that, past its byte bound
# (feeds.MAX_BACKLOG_BYTES) plus some 4 MB of kernel buffers.
@pytest.mark.parametrize(
    ("count", "size"), [(QUEUE_SIZE + 300, 32768), (300, 65536)], ids=["frames", "bytes"]
)
async def test_a_socket_that_stops_reading_is_cut_off_and_the_others_get_everything(
    ws_url: str, count: int, size: int
) -> None:
    assert count * size > 2 * feeds.MAX_BACKLOG_BYTES + 4 * 1024 * 1024
    task, token = await queued_task()
    first = (await traces.steps_after(task.id, 0))[0]
    init = json.dumps({"type": "connection_init", "payload": {"Authorization": f"Bearer {token}"}})
    subscribe = json.dumps(
        {
            "id": "1",
            "type": "subscribe",
            "payload": {"query": EVENTS, "variables": {"id": task.id, "withPayload": True}},
        }
    )
    # given a subscriber with a tiny receive buffer that stops reading after its first step
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect(("127.0.0.1", int(ws_url.split(":")[2].split("/")[0])))
    sock.setblocking(False)
    async with (
        connect(ws_url, sock=sock, subprotocols=[TRANSPORT_WS], max_queue=4) as slow,  # type: ignore[list-item]
        open_ws(ws_url, token=token) as fast,
    ):
        await slow.send(init)
        assert json.loads(await slow.recv())["type"] == "connection_ack"
        await slow.send(subscribe)
        assert json.loads(await slow.recv())["payload"]["data"]["taskEvents"]["seq"] == 1
        # and a subscriber that keeps reading
        op = await fast.subscribe(EVENTS, id=task.id, withPayload=True)
        assert await next_seq(fast) == 1
        while feeds._feeds[task.id].users != 2 or len(feeds._feeds[task.id].members) != 2:
            await asyncio.sleep(0.01)
        # when far more arrives than the slow socket's buffers hold, at the pace the
        # reading subscriber keeps up with
        blob = "x" * size
        received: list[int] = []

        async def read_fast() -> None:
            while len(received) < count:
                received.append(await next_seq(fast))

        reader = asyncio.create_task(read_fast())
        async with asyncio.timeout(60):
            for seq in range(2, count + 2):
                event = {**events.step_event(first), "id": f"stp_{seq}", "seq": seq}
                await get_broker().publish(
                    events.task_channel(task.id), {**event, "payload": {"blob": blob}}
                )
                while len(received) < seq - 50:
                    await asyncio.sleep(0.001)
            await reader
        # then the reading subscriber got every step in order
        assert received == list(range(2, count + 2))
        # and the other is told, once it reads again, where to resume from
        frames = []
        async with asyncio.timeout(20):
            async for raw in slow:
                frames.append(json.loads(raw))
                if frames[-1]["type"] == "complete":
                    break
        data = [f["payload"] for f in frames if f["type"] == "next"]
        failure = data[-1]["errors"][0]["extensions"]
        assert failure["code"] == "SLOW_CONSUMER"
        delivered = [d["data"]["taskEvents"]["seq"] for d in data[:-1]]
        assert delivered == list(range(2, failure["lastSeq"] + 1))
        assert failure["lastSeq"] < count + 1
        await fast.stop(op)
    await asyncio.sleep(0.1)
    assert feeds.live_feeds() == 0


async def test_steps_whose_publish_was_lost_are_read_back(
    ws_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(feeds, "IDLE_RECHECK_S", 0.2)
    task, token = await queued_task()

    async def append_unpublished(seq_payload: dict[str, Any]) -> None:
        async with in_transaction():
            await traces._append(task.id, StepKind.TOOL_CALL, seq_payload, None)

    async with open_ws(ws_url, token=token) as ws:
        await ws.subscribe(EVENTS, id=task.id, withPayload=True)
        assert await next_seq(ws) == 1
        while not feeds._feeds[task.id].members:
            await asyncio.sleep(0.01)
        # given a step stored but never published, then one published
        await append_unpublished({"n": 2})
        await traces.append_step(task, StepKind.TOOL_CALL, {"n": 3})
        # then the subscriber gets both, in order
        assert [await next_seq(ws), await next_seq(ws)] == [2, 3]
        # and a lost publish with nothing after it arrives by the idle re-check
        await append_unpublished({"n": 4})
        async with asyncio.timeout(3):
            assert await next_seq(ws) == 4
        # and the stream ends after the terminal step
        await traces.transition(task.id, [TaskStatus.QUEUED], TaskStatus.CANCELLED)
        assert await next_seq(ws) == 5
        assert (await ws.receive()).type == "complete"


async def test_a_cursor_beyond_the_trace_completes_when_the_task_ends(ws_url: str) -> None:
    task, token = await queued_task()
    async with open_ws(ws_url, token=token) as ws:
        # given a subscriber whose cursor is past anything the task has written
        op = await ws.subscribe(EVENTS, id=task.id, after=100, withPayload=False)
        while task.id not in feeds._feeds or not feeds._feeds[task.id].members:
            await asyncio.sleep(0.01)
        # when the task ends
        await traces.transition(task.id, [TaskStatus.QUEUED], TaskStatus.CANCELLED)
        # then its stream completes, having sent nothing
        async with asyncio.timeout(5):
            assert await ws.collect(op) == ([], Message("complete", op))
