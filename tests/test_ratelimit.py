"""Rate limits: one bucket per caller shared by GraphQL and REST (and by processes, with
Redis), headers on every response, 429 + Retry-After; the per-agent concurrency limit."""

import asyncio
import dataclasses
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette

from agentplane.core.config import Settings
from agentplane.http.app import create_app
from agentplane.models import Task, TaskStatus
from tests.support.database import truncate_all
from tests.support.factories import make_agent, make_tenant, make_token
from tests.support.server import live_server

VIEWER = {"query": "{ viewer { role } }"}


@pytest.fixture
async def limited(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    application: Starlette = create_app(
        dataclasses.replace(settings, rate_limit_per_min=3, redis_url=None), run_worker=False
    )
    await truncate_all(settings.database_url)
    async with application.router.lifespan_context(application):
        transport = httpx.ASGITransport(app=application)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            yield client


async def test_headers_on_every_response_and_429_shared_by_graphql_and_rest(
    limited: httpx.AsyncClient,
) -> None:
    acme = await make_tenant("acme")
    token = await make_token(acme, "viewer")
    auth = {"Authorization": f"Bearer {token}"}
    # given three requests a minute: GraphQL twice, then REST, from the same caller
    first = await limited.post("/graphql", json=VIEWER, headers=auth)
    second = await limited.post("/graphql", json=VIEWER, headers=auth)
    third = await limited.get("/api/runtime/tasks/tsk_missing", headers=auth)
    assert (first.status_code, second.status_code, third.status_code) == (200, 200, 404)
    assert [r.headers["x-ratelimit-remaining"] for r in (first, second, third)] == ["2", "1", "0"]
    assert {r.headers["x-ratelimit-limit"] for r in (first, second, third)} == {"3"}
    reset = int(first.headers["x-ratelimit-reset"])
    assert time.time() < reset <= time.time() + 61

    # when a fourth comes, on either API, it is refused with Retry-After
    refused = await limited.post("/graphql", json=VIEWER, headers=auth)
    assert refused.status_code == 429
    assert 1 <= int(refused.headers["retry-after"]) <= 60
    assert refused.headers["x-ratelimit-remaining"] == "0"
    assert refused.json()["errors"][0]["extensions"]["code"] == "RATE_LIMITED"
    rest = await limited.get("/api/runtime/tasks/tsk_missing", headers=auth)
    assert rest.status_code == 429 and rest.json()["code"] == "RATE_LIMITED"

    # and another caller has a bucket of its own; health checks are not limited
    other = await make_token(acme, "viewer")
    ok = await limited.post("/graphql", json=VIEWER, headers={"Authorization": f"Bearer {other}"})
    assert ok.status_code == 200 and ok.headers["x-ratelimit-remaining"] == "2"
    health = await limited.get("/healthz")
    assert health.status_code == 200 and "x-ratelimit-limit" not in health.headers
    assert ok.headers["x-request-id"]


async def test_one_bucket_across_processes(
    services: Settings, database_url: str, workdir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    if not services.redis_url:
        pytest.skip("a bucket shared across processes needs Redis")
    monkeypatch.setenv("AGENTPLANE_RATE_LIMIT_PER_MIN", "5")
    acme = await make_tenant("acme")
    token = await make_token(acme, "viewer")
    auth = {"Authorization": f"Bearer {token}"}
    with (
        live_server(database_url, workdir, "--no-worker") as one,
        live_server(database_url, workdir, "--no-worker") as two,
    ):
        async with httpx.AsyncClient(timeout=10) as client:
            statuses = []
            for i in range(7):
                base = (one, two)[i % 2].base_url
                response = await client.post(base + "/graphql", json=VIEWER, headers=auth)
                statuses.append(response.status_code)
    assert statuses == [200] * 5 + [429] * 2


async def test_per_agent_concurrency_limit(settings: Settings) -> None:
    # given an agent that may run one task at a time, and a worker with room for eight
    application: Starlette = create_app(
        dataclasses.replace(settings, scripted_delay_ms=40, worker_concurrency=8)
    )
    await truncate_all(settings.database_url)
    async with application.router.lifespan_context(application):
        acme = await make_tenant("acme")
        agent = await make_agent(acme, max_concurrent_tasks=1)
        free = await make_agent(acme, name="free")
        token = await make_token(acme, "operator")
        transport = httpx.ASGITransport(app=application)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:

            async def submit(agent_id: str) -> Any:
                response = await client.post(
                    "/graphql",
                    json={
                        "query": "mutation($a: ID!) { submitTask(input: {agentId: $a,"
                        ' query: "one two three four"}) { task { id } } }',
                        "variables": {"a": agent_id},
                    },
                    headers={"Authorization": f"Bearer {token}"},
                )
                return response.json()["data"]["submitTask"]["task"]["id"]

            # when four of its tasks (and three of another agent's) are queued at once
            await asyncio.gather(*(submit(agent.id) for _ in range(4)))
            await asyncio.gather(*(submit(free.id) for _ in range(3)))
            # then at no moment do two of its tasks run, while the other agent's run together
            most, most_free = 0, 0
            deadline = time.monotonic() + 30
            while await Task.exclude(status=TaskStatus.COMPLETED).exists():
                assert time.monotonic() < deadline, "tasks did not finish"
                most = max(
                    most, await Task.filter(agent_id=agent.id, status=TaskStatus.RUNNING).count()
                )
                most_free = max(
                    most_free,
                    await Task.filter(agent_id=free.id, status=TaskStatus.RUNNING).count(),
                )
                await asyncio.sleep(0.01)
        assert await Task.filter(status=TaskStatus.COMPLETED).count() == 7
    assert most == 1
    assert most_free > 1


async def test_graphql_rate_limit_field_shows_the_request_bucket(
    limited: httpx.AsyncClient,
) -> None:
    acme = await make_tenant("acme")
    token = await make_token(acme, "viewer")
    query = {"query": "{ rateLimit { cost limit used remaining resetAt } viewer { role } }"}
    auth = {"Authorization": f"Bearer {token}"}
    first = (await limited.post("/graphql", json=query, headers=auth)).json()["data"]
    second = await limited.post("/graphql", json=query, headers=auth)
    assert first["rateLimit"]["limit"] == 3
    assert (first["rateLimit"]["used"], first["rateLimit"]["remaining"]) == (1, 2)
    assert second.json()["data"]["rateLimit"]["remaining"] == 1
    assert second.headers["x-ratelimit-remaining"] == "1"
    assert first["rateLimit"]["resetAt"] is not None and first["rateLimit"]["cost"] >= 1


async def test_a_query_pays_its_cost_from_the_bucket(settings: Settings) -> None:
    # given a bucket of 15 requests a minute
    application = create_app(
        dataclasses.replace(settings, rate_limit_per_min=15, redis_url=None), run_worker=False
    )
    await truncate_all(settings.database_url)
    async with application.router.lifespan_context(application):
        acme = await make_tenant("acme")
        auth = {"Authorization": f"Bearer {await make_token(acme, 'viewer')}"}
        # ten aliased lists of 100 agents, each with its tasks: 10 * (1 + 100) connection
        # requests, so cost 10 by GitHub's formula
        page = (
            "agents(first: 100) { edges { node { tasks(first: 100) { edges { node { id } } } } } }"
        )
        aliases = " ".join(f"a{i}: {page}" for i in range(10))
        wide = {"query": "{ rateLimit { cost remaining } " + aliases + " }"}
        transport = httpx.ASGITransport(app=application)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            first = await client.post("/graphql", json=wide, headers=auth)
            second = await client.post("/graphql", json=wide, headers=auth)
            small = await client.post("/graphql", json=VIEWER, headers=auth)
    # then the first costs 10 of 15, the second (10 > 5 left) is refused before it runs
    assert first.json()["data"]["rateLimit"] == {"cost": 10, "remaining": 5}
    assert first.headers["x-ratelimit-remaining"] == "5"
    body = second.json()
    assert "data" not in body  # a request error: execution never started
    assert [e["extensions"]["code"] for e in body["errors"]] == ["RATE_LIMITED"]
    # and a cheap query still fits in what is left of the window
    assert small.status_code == 200 and small.json()["data"] == {"viewer": {"role": "viewer"}}
