"""Subscription fan-out: N websocket subscribers watch one live task.

Prints publish-to-client latency p50/p99 (a step's createdAt on the server to its
arrival at a client), next to a bare Starlette websocket broadcast of frames of the
same size to the same number of clients measured in the same run; the server's RSS
per idle subscription; and whether the server's subscriptions, asyncio tasks and
Redis channels return to their baseline after connect/disconnect cycles.

    python bench/fanout.py [--subscribers 1000] [--events 20]

With AGENTPLANE_REDIS_URL and a PostgreSQL AGENTPLANE_DATABASE_URL set it also runs
the two-API-process profile (subscribers split across both, a separate worker).
"""

import argparse
import asyncio
import json
import os
import statistics
import sys
import time
from contextlib import ExitStack
from datetime import datetime
from pathlib import Path

import httpx
from websockets.asyncio.client import ClientConnection, connect

sys.path.insert(0, str(Path(__file__).resolve().parent))
from procs import Server, rss_kb, start_server, start_worker

EVENTS = """subscription($id: ID!, $after: Int) {
  taskEvents(taskId: $id, afterSeq: $after) { seq kind createdAt payload } }"""


async def gql(server: Server, query: str, **variables: object) -> dict:
    async with httpx.AsyncClient(timeout=60) as client:
        response = await client.post(
            server.url + "/graphql",
            json={"query": query, "variables": variables},
            headers={"Authorization": f"Bearer {server.token}"},
        )
    body = response.json()
    assert not body.get("errors"), body
    return body["data"]


async def prepare_paused_task(server: Server, steps: int) -> str:
    """A task of `steps` tool calls, paused before it starts so all can subscribe first."""
    name = f"fan{time.monotonic_ns()}"
    await gql(
        server,
        "mutation($n: String!) { createTenant(input: {name: $n}) { tenant { id } } }",
        n=name,
    )
    script = [{"tool": "calculator", "arguments": {"expression": "6*7"}}] * (steps // 2)
    created = await gql(
        server,
        'mutation($t: String!, $c: JSON) { createAgent(input: {name: "fan", tenant: $t,'
        ' model: "scripted/agent", tools: ["calculator"], config: $c, maxSteps: 50})'
        " { agent { id } } }",
        t=name,
        c={"script": script},
    )
    agent = created["createAgent"]["agent"]["id"]
    submitted = await gql(
        server,
        'mutation($a: ID!) { submitTask(input: {agentId: $a, query: "fan out"}) { task { id } } }',
        a=agent,
    )
    task = submitted["submitTask"]["task"]["id"]
    await gql(server, "mutation($t: ID!) { pauseTask(input: {id: $t}) { task { id } } }", t=task)
    return str(task)


async def open_subscriber(url: str, token: str, task_id: str) -> ClientConnection:
    ws = await connect(url, subprotocols=["graphql-transport-ws"], max_queue=None)  # type: ignore[list-item]
    await ws.send(
        json.dumps({"type": "connection_init", "payload": {"Authorization": f"Bearer {token}"}})
    )
    assert json.loads(await ws.recv())["type"] == "connection_ack"
    payload = {"query": EVENTS, "variables": {"id": task_id, "after": 1}}
    await ws.send(json.dumps({"id": "1", "type": "subscribe", "payload": payload}))
    return ws


async def collect(ws: ClientConnection, since: float, latencies: list[float]) -> None:
    async for raw in ws:
        arrived = time.time()
        message = json.loads(raw)
        if message["type"] != "next":
            return
        created = message["payload"]["data"]["taskEvents"]["createdAt"]
        sent = datetime.fromisoformat(created).timestamp()
        if sent >= since:
            latencies.append(arrived - sent)


def summary(latencies: list[float]) -> tuple[float, float]:
    ordered = sorted(latencies)
    p99 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]
    return statistics.median(ordered) * 1000, p99 * 1000


async def agentplane_fanout(servers: list[Server], subscribers: int, steps: int) -> list[float]:
    task_id = await prepare_paused_task(servers[0], steps)
    sockets = await asyncio.gather(
        *(
            open_subscriber(servers[i % len(servers)].ws_url, servers[0].token, task_id)
            for i in range(subscribers)
        )
    )
    await asyncio.sleep(1)  # every subscription is past its replay and tailing
    latencies: list[float] = []
    since = time.time()
    readers = [asyncio.create_task(collect(ws, since, latencies)) for ws in sockets]
    await gql(
        servers[0], "mutation($t: ID!) { resumeTask(input: {id: $t}) { task { id } } }", t=task_id
    )
    await asyncio.wait_for(asyncio.gather(*readers), 120)
    for ws in sockets:
        await ws.close()
    return latencies


async def raw_fanout(url: str, subscribers: int, steps: int) -> list[float]:
    sockets = await asyncio.gather(*(connect(url, max_queue=None) for _ in range(subscribers)))
    await asyncio.sleep(1)
    latencies: list[float] = []
    since = time.time()
    readers = [asyncio.create_task(collect(ws, since, latencies)) for ws in sockets]
    async with httpx.AsyncClient() as client:
        await client.post(url.replace("ws://", "http://").removesuffix("/ws") + "/start",
                          json={"events": steps})  # fmt: skip
    await asyncio.wait_for(asyncio.gather(*readers), 120)
    for ws in sockets:
        await ws.close()
    return latencies


async def idle_cost(
    server: Server, subscribers: int
) -> tuple[float, dict[str, float], dict[str, float]]:
    """RSS per idle subscription, and server gauges before/after connect-disconnect cycles."""
    task_id = await prepare_paused_task(server, 4)
    # Warm up: the first socket starts per-process listeners (revocations) that stay.
    await (await open_subscriber(server.ws_url, server.token, task_id)).close()
    await asyncio.sleep(0.5)
    baseline = server.gauges()
    before = rss_kb(server.pid)
    sockets = await asyncio.gather(
        *(open_subscriber(server.ws_url, server.token, task_id) for _ in range(subscribers))
    )
    await asyncio.sleep(1)
    per_subscription = (rss_kb(server.pid) - before) / subscribers
    for ws in sockets:
        await ws.close()
    for _ in range(3):
        sockets = await asyncio.gather(
            *(
                open_subscriber(server.ws_url, server.token, task_id)
                for _ in range(subscribers // 4)
            )
        )
        for ws in sockets:
            await ws.close()
    await asyncio.sleep(2)
    return per_subscription, baseline, server.gauges()


def report(label: str, ours: list[float], raw: list[float], target_p99: float) -> None:
    p50, p99 = summary(ours)
    r50, r99 = summary(raw)
    print(f"  {label}: p50 {p50:7.1f} ms  p99 {p99:7.1f} ms   (target p99 <= {target_p99:.0f} ms)")
    print(f"  {'raw websocket broadcast':>{len(label)}}: p50 {r50:7.1f} ms  p99 {r99:7.1f} ms")
    print(f"  {'ratio to raw':>{len(label)}}: p50 {p50 / r50:7.2f}x    p99 {p99 / r99:7.2f}x")


async def main(args: argparse.Namespace, workdir: Path) -> None:
    database_url = os.environ.get("AGENTPLANE_DATABASE_URL", "")
    redis_url = os.environ.get("AGENTPLANE_REDIS_URL")
    env = {"AGENTPLANE_SCRIPTED_DELAY_MS": "150"}

    print(f"subscription fan-out, {args.subscribers} subscribers, {args.events} live events")
    with ExitStack() as stack:
        raw = stack.enter_context(start_server(workdir, "raw", env))
        raw_latencies = await raw_fanout(raw.ws_url, args.subscribers, args.events)
        single_url = f"sqlite://{workdir / f'fanout-{time.monotonic_ns()}.db'}"
        one = stack.enter_context(
            start_server(workdir, single_url, {**env, "AGENTPLANE_REDIS_URL": ""})
        )
        # Idle cost first, on a fresh process: RSS never shrinks back after a burst.
        per_sub, before, after = await idle_cost(one, args.subscribers)
        ours = await agentplane_fanout([one], args.subscribers, args.events)
        report("1 API process, memory broker", ours, raw_latencies, 100)
        print(f"  RSS per idle subscription: {per_sub:.1f} KB (target <= 50 KB)")
        print(f"  after connect/disconnect cycles: {describe(before, after)}")

    if database_url.startswith("postgres") and redis_url:
        with ExitStack() as stack:
            shared = {**env, "AGENTPLANE_REDIS_URL": redis_url}
            a = stack.enter_context(start_server(workdir, database_url, shared, "--no-worker"))
            b = stack.enter_context(
                start_server(workdir, database_url, shared, "--no-worker", token=a.token)
            )
            stack.enter_context(start_worker(workdir, database_url, shared))
            raw = stack.enter_context(start_server(workdir, "raw", env))
            raw_latencies = await raw_fanout(raw.ws_url, args.subscribers, args.events)
            ours = await agentplane_fanout([a, b], args.subscribers, args.events)
            report("2 API processes, Redis", ours, raw_latencies, 250)
            print(f"  Redis channels of the API processes after: {a.redis_channels(redis_url)}")
    else:
        print(
            "  (two-process run: set AGENTPLANE_DATABASE_URL=postgres://… and AGENTPLANE_REDIS_URL)"
        )


def describe(before: dict[str, float], after: dict[str, float]) -> str:
    return ", ".join(f"{k} {before.get(k, 0):.0f} -> {v:.0f}" for k, v in sorted(after.items()))


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--subscribers", type=int, default=1000)
    parser.add_argument("--events", type=int, default=20)
    workdir = Path(os.environ.get("BENCH_WORKDIR", "/tmp/agentplane-bench"))
    workdir.mkdir(parents=True, exist_ok=True)
    asyncio.run(main(parser.parse_args(), workdir))
