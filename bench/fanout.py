"""Subscription fan-out: N websocket (or, with --sse, GraphQL-over-SSE; with --rest,
Koda REST event stream) subscribers watch one live task.

Prints publish-to-client latency p50/p99 (a step's createdAt on the server to the
moment its frame's bytes are read by a client, see ws_probe.py) and the API
processes' CPU time per delivered frame, next to a bare Starlette websocket broadcast
of frames of the same size to the same number of clients measured in the same run;
the server's RSS per idle subscription; and whether the server's subscriptions,
asyncio tasks and Redis channels return to their baseline after connect/disconnect
cycles. The CPU figure includes running the task (one process runs its worker too)
and holds steady on a busy machine, where the latencies do not.

    python bench/fanout.py [--subscribers 1000] [--events 20] [--sse | --rest]

With --sse the subscribers are GraphQL-over-SSE responses (sse_probe.py) instead of
websockets; with --rest, Koda's `GET /api/runtime/tasks/{id}/events` streams. Either way
the raw baseline stays the websocket broadcast, and the idle-cost figures are skipped.
Each figure is printed with the machine's load average when it was taken.

With AGENTPLANE_REDIS_URL and a PostgreSQL AGENTPLANE_DATABASE_URL set it also runs
the two-API-process profile (subscribers split across both, a separate worker).
"""

import argparse
import asyncio
import os
import statistics
import sys
import time
from contextlib import ExitStack
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))
import sse_probe
import ws_probe
from procs import Server, cpu_seconds, migrate, rss_kb, start_server, start_worker
from ws_probe import Probe

SSE = False  # --sse: subscribe over GraphQL over SSE
REST = False  # --rest: subscribe to Koda's REST event stream

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


# The server lets a credential hold at most this many sockets (http/ws_limits.py).
SOCKETS_PER_TOKEN = 10


async def prepare_paused_task(
    server: Server, steps: int, subscribers: int
) -> tuple[str, list[str]]:
    """A task of `steps` tool calls, paused before it starts so all can subscribe first,
    and viewer tokens of its tenant for `subscribers` subscribers."""
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
    tokens = []
    for _ in range(-(-subscribers // SOCKETS_PER_TOKEN)):
        minted = await gql(
            server,
            'mutation($t: String!) { createAccessToken(input: {name: "fan", tenant: $t,'
            ' role: "viewer"}) { plainTextToken } }',
            t=name,
        )
        tokens.append(minted["createAccessToken"]["plainTextToken"])
    return str(task), tokens


async def open_subscriber(url: str, token: str, task_id: str) -> Probe | sse_probe.SseProbe:
    if REST:
        base = url.replace("ws://", "http://").removesuffix("/graphql")
        rest = await sse_probe.get(f"{base}/api/runtime/tasks/{task_id}/events", token, 1)
        await rest.until(1)  # the replayed step 2: tailing live from here
        assert rest.messages()[0][1]["type"] == "step", rest.messages()
        return rest
    if SSE:
        variables = {"id": task_id, "after": 1}
        sse = await sse_probe.subscribe(url.replace("ws://", "http://"), token, EVENTS, variables)
        await sse.until(1)  # the replayed step 2: tailing live from here
        assert sse.messages()[0][1]["type"] == "next", sse.messages()
        return sse
    probe = await ws_probe.connect(url, "graphql-transport-ws")
    probe.send_json({"type": "connection_init", "payload": {"Authorization": f"Bearer {token}"}})
    await probe.until(1)
    assert probe.messages()[0][1]["type"] == "connection_ack", probe.messages()
    payload = {"query": EVENTS, "variables": {"id": task_id, "after": 1}}
    probe.send_json({"id": "1", "type": "subscribe", "payload": payload})
    # The replayed step 2 (the pause) arrives once the subscription is past its replay and
    # tailing live: only then does the subscriber count as ready.
    await probe.until(2)
    assert probe.messages(1)[0][1]["type"] == "next", probe.messages()
    return probe


def latencies_of(
    probes: list[Probe] | list[sse_probe.SseProbe], start: int, since: float
) -> list[float]:
    """Arrival minus the step's createdAt, for every step created after `since`."""
    latencies = []
    for probe in probes:
        for arrived, message in probe.messages(start):
            if message["type"] == "step":  # a REST event
                created = message["payload"]["created_at"]
            elif message["type"] == "next":
                created = message["payload"]["data"]["taskEvents"]["createdAt"]
            else:
                continue
            sent = datetime.fromisoformat(created).timestamp()
            if sent >= since:
                latencies.append(arrived - sent)
    return latencies


def summary(latencies: list[float]) -> tuple[float, float]:
    ordered = sorted(latencies)
    p99 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]
    return statistics.median(ordered) * 1000, p99 * 1000


@dataclass
class Run:
    latencies: list[float]
    cpu_per_frame_us: float  # the API processes' CPU time per frame delivered


async def agentplane_fanout(servers: list[Server], subscribers: int, steps: int) -> Run:
    task_id, tokens = await prepare_paused_task(servers[0], steps, subscribers)
    probes = await asyncio.gather(
        *(
            open_subscriber(
                servers[i % len(servers)].ws_url, tokens[i // SOCKETS_PER_TOKEN], task_id
            )
            for i in range(subscribers)
        )
    )
    since = time.time()
    cpu = sum(cpu_seconds(s.pid) for s in servers)
    await gql(
        servers[0], "mutation($t: ID!) { resumeTask(input: {id: $t}) { task { id } } }", t=task_id
    )
    await asyncio.wait_for(asyncio.gather(*(p.finished for p in probes)), 120)
    cpu = sum(cpu_seconds(s.pid) for s in servers) - cpu
    before = 1 if SSE or REST else 2  # (the ack and) the replayed step
    frames = sum(len(p.received) - before for p in probes)
    await asyncio.gather(*(p.close() for p in probes))
    return Run(latencies_of(probes, before, since), cpu / frames * 1e6)


async def raw_fanout(server: Server, subscribers: int, steps: int) -> Run:
    url = server.ws_url
    probes = await asyncio.gather(*(ws_probe.connect(url) for _ in range(subscribers)))
    await asyncio.sleep(1)
    since = time.time()
    cpu = cpu_seconds(server.pid)
    async with httpx.AsyncClient() as client:
        await client.post(url.replace("ws://", "http://").removesuffix("/ws") + "/start",
                          json={"events": steps})  # fmt: skip
    await asyncio.wait_for(asyncio.gather(*(p.finished for p in probes)), 120)
    cpu = cpu_seconds(server.pid) - cpu
    frames = sum(len(p.received) for p in probes)
    await asyncio.gather(*(p.close() for p in probes))
    return Run(latencies_of(probes, 0, since), cpu / frames * 1e6)


async def idle_cost(
    server: Server, subscribers: int
) -> tuple[float, dict[str, float], dict[str, float]]:
    """RSS per idle subscription, and server gauges before/after connect-disconnect cycles."""
    task_id, tokens = await prepare_paused_task(server, 4, subscribers)
    # Warm up: the first socket starts per-process listeners (revocations) that stay.
    await (await open_subscriber(server.ws_url, tokens[0], task_id)).close()
    await asyncio.sleep(0.5)
    baseline = server.gauges()
    before = rss_kb(server.pid)
    sockets = await asyncio.gather(
        *(
            open_subscriber(server.ws_url, tokens[i // SOCKETS_PER_TOKEN], task_id)
            for i in range(subscribers)
        )
    )
    await asyncio.sleep(1)
    per_subscription = (rss_kb(server.pid) - before) / subscribers
    await asyncio.gather(*(ws.close() for ws in sockets))
    for _ in range(3):
        sockets = await asyncio.gather(
            *(
                open_subscriber(server.ws_url, tokens[i // SOCKETS_PER_TOKEN], task_id)
                for i in range(subscribers // 4)
            )
        )
        await asyncio.gather(*(ws.close() for ws in sockets))
    await asyncio.sleep(2)
    return per_subscription, baseline, server.gauges()


def report(label: str, ours: Run, raw: Run, target_p99: float) -> None:
    p50, p99 = summary(ours.latencies)
    r50, r99 = summary(raw.latencies)
    c, rc = ours.cpu_per_frame_us, raw.cpu_per_frame_us
    w = len(label)
    load = " ".join(f"{n:.2f}" for n in os.getloadavg())
    print(f"  {label}: p50 {p50:7.1f} ms  p99 {p99:7.1f} ms   (target p99 <= {target_p99:.0f} ms)")
    print(f"  {'load average (1, 5, 15 min)':>{w}}: {load}")
    print(f"  {'raw websocket broadcast':>{w}}: p50 {r50:7.1f} ms  p99 {r99:7.1f} ms")
    print(f"  {'ratio to raw':>{w}}: p50 {p50 / r50:7.2f}x    p99 {p99 / r99:7.2f}x")
    print(f"  {'server CPU per frame':>{w}}: {c:5.1f} us, raw {rc:5.1f} us ({c / rc:.2f}x)")


async def main(args: argparse.Namespace, workdir: Path) -> None:
    database_url = os.environ.get("AGENTPLANE_DATABASE_URL", "")
    redis_url = os.environ.get("AGENTPLANE_REDIS_URL")
    # The rate limit runs, with a limit the bench cannot reach (minting tokens, connecting).
    env = {"AGENTPLANE_SCRIPTED_DELAY_MS": "150", "AGENTPLANE_RATE_LIMIT_PER_MIN": str(10**9)}

    over = "Koda REST event streams" if REST else "GraphQL over SSE" if SSE else "websockets"
    print(
        f"subscription fan-out, {args.subscribers} subscribers ({over}), {args.events} live events"
    )
    with ExitStack() as stack:
        raw = stack.enter_context(start_server(workdir, "raw", env))
        raw_run = await raw_fanout(raw, args.subscribers, args.events)
        single_url = f"sqlite://{workdir / f'fanout-{time.monotonic_ns()}.db'}"
        one = stack.enter_context(
            start_server(workdir, single_url, {**env, "AGENTPLANE_REDIS_URL": ""})
        )
        # Idle cost first, on a fresh process: RSS never shrinks back after a burst.
        if not (SSE or REST):
            per_sub, before, after = await idle_cost(one, args.subscribers)
        ours = await agentplane_fanout([one], args.subscribers, args.events)
        report("1 API process, memory broker", ours, raw_run, 100)
        if not (SSE or REST):
            print(f"  RSS per idle subscription: {per_sub:.1f} KB (target <= 50 KB)")
            print(f"  after connect/disconnect cycles: {describe(before, after)}")

    if database_url.startswith("postgres") and redis_url:
        migrate(database_url)
        with ExitStack() as stack:
            shared = {**env, "AGENTPLANE_REDIS_URL": redis_url}
            a = stack.enter_context(start_server(workdir, database_url, shared, "--no-worker"))
            b = stack.enter_context(
                start_server(workdir, database_url, shared, "--no-worker", token=a.token)
            )
            stack.enter_context(start_worker(workdir, database_url, shared))
            raw = stack.enter_context(start_server(workdir, "raw", env))
            raw_run = await raw_fanout(raw, args.subscribers, args.events)
            ours = await agentplane_fanout([a, b], args.subscribers, args.events)
            report("2 API processes, Redis", ours, raw_run, 250)
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
    over = parser.add_mutually_exclusive_group()
    over.add_argument("--sse", action="store_true", help="subscribe over GraphQL over SSE")
    over.add_argument("--rest", action="store_true", help="subscribe to Koda's REST event stream")
    workdir = Path(os.environ.get("BENCH_WORKDIR", "/tmp/agentplane-bench"))
    workdir.mkdir(parents=True, exist_ok=True)
    arguments = parser.parse_args()
    SSE, REST = arguments.sse, arguments.rest
    asyncio.run(main(arguments, workdir))
