"""Metrics, request ids in responses and logs, and one span per GraphQL operation."""

import asyncio
import json
import time
from pathlib import Path

import httpx
import pytest
from prometheus_client import REGISTRY

from agentplane.core.config import Settings
from agentplane.http.app import create_app
from agentplane.models import Task, TaskStatus
from tests.support.database import truncate_all
from tests.support.factories import make_agent, make_tenant, make_token
from tests.support.graphql import GraphQLClient
from tests.support.server import live_server


def sample(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


async def test_metrics_count_operations_requests_queue_tasks_and_spend(
    gql: GraphQLClient, client: httpx.AsyncClient
) -> None:
    tenant = await make_tenant("acme")
    agent = await make_agent(tenant)
    token = await make_token(tenant, "operator")
    ok = {"type": "query", "operation": "ViewerForMetrics", "outcome": "ok"}
    failed = {"type": "query", "operation": "BrokenForMetrics", "outcome": "error"}
    graphql_200 = {"route": "/graphql", "method": "POST", "status": "200"}
    before = {
        "ok": sample("agentplane_graphql_operations_total", **ok),
        "failed": sample("agentplane_graphql_operations_total", **failed),
        "http": sample("agentplane_http_requests_total", **graphql_200),
        "completed": sample("agentplane_tasks_finished_total", outcome="completed"),
        "spend": sample("agentplane_spend_usd_total", model="scripted/echo"),
    }

    # when: two named operations, one failing, and a task run to completion
    await gql.ok("query ViewerForMetrics { viewer { kind } }", token)
    await gql('query BrokenForMetrics { task(id: "tsk_missing") { id } }', token)
    submitted = await gql.ok(
        'mutation($a: ID!) { submitTask(input: {agentId: $a, query: "count me"}) { task { id } } }',
        token,
        a=agent.id,
    )
    task_id = submitted["submitTask"]["task"]["id"]
    for _ in range(200):
        if (await Task.get(id=task_id)).status == TaskStatus.COMPLETED:
            break
        await asyncio.sleep(0.05)

    # then /metrics has moved by exactly those
    text = (await client.get("/metrics")).text
    assert sample("agentplane_graphql_operations_total", **ok) == before["ok"] + 1
    assert sample("agentplane_graphql_operations_total", **failed) == before["failed"] + 1
    assert sample("agentplane_http_requests_total", **graphql_200) == before["http"] + 3
    assert sample("agentplane_tasks_finished_total", outcome="completed") >= before["completed"] + 1
    assert sample("agentplane_spend_usd_total", model="scripted/echo") > before["spend"]
    assert (
        sample(
            "agentplane_graphql_operation_duration_seconds_count",
            type="query",
            operation="ViewerForMetrics",
        )
        >= 1
    )
    assert (
        'agentplane_http_request_duration_seconds_bucket{le="0.005",method="POST",route="/graphql"}'
        in text
    )
    assert "agentplane_task_duration_seconds_bucket" in text
    assert "agentplane_websockets_active" in text and "agentplane_subscriptions_active" in text


async def test_queue_depth_is_read_at_scrape_time(settings: Settings) -> None:
    # given an app with no worker and two queued tasks
    await truncate_all(settings.database_url)
    application = create_app(settings, run_worker=False)
    async with application.router.lifespan_context(application):
        tenant = await make_tenant("queue")
        agent = await make_agent(tenant)
        for query in ("one", "two"):
            await Task.create(tenant_id=tenant.id, agent_id=agent.id, query=query)
        transport = httpx.ASGITransport(app=application)
        async with httpx.AsyncClient(transport=transport, base_url="http://m") as c:
            text = (await c.get("/metrics")).text
    assert "agentplane_queue_depth 2.0" in text.splitlines()


async def test_request_id_in_header_and_graphql_errors(client: httpx.AsyncClient) -> None:
    response = await client.post(
        "/graphql", json={"query": "{ agents(first: 1) { edges { node { id } } } }"}
    )
    request_id = response.headers["x-request-id"]
    assert request_id.startswith("req_") and len(request_id) == 20
    error = response.json()["errors"][0]
    assert error["extensions"] == {"code": "UNAUTHENTICATED", "requestId": request_id}

    # a caller's own id is kept
    mine = await client.post(
        "/graphql", json={"query": "{ nope }"}, headers={"X-Request-ID": "trace-abc-123"}
    )
    assert mine.headers["x-request-id"] == "trace-abc-123"
    assert mine.json()["errors"][0]["extensions"]["requestId"] == "trace-abc-123"
    # refusals before GraphQL runs carry it too
    batch = await client.post("/graphql", json=[{"query": "{ viewer { kind } }"}] * 2)
    assert batch.json()["errors"][0]["extensions"]["requestId"] == batch.headers["x-request-id"]


def test_served_logs_are_json_lines_with_the_request_id(tmp_path: Path) -> None:
    with live_server(f"sqlite://{tmp_path / 'logs.db'}", tmp_path) as server:
        httpx.post(
            server.base_url + "/graphql",
            json={"query": "{ viewer { kind } }"},
            headers={"X-Request-ID": "log-me-42"},
        )
        # the access line is written as the response completes: give it a moment to land
        deadline = time.monotonic() + 5
        while True:
            lines = [json.loads(x) for x in server.log().splitlines() if x.startswith("{")]
            access = [line for line in lines if line.get("request_id") == "log-me-42"]
            if access or time.monotonic() > deadline:
                break
            time.sleep(0.05)
    assert len(access) == 1, lines
    assert access[0]["logger"] == "agentplane.access"
    assert access[0]["route"] == "/graphql" and access[0]["status"] == 200
    assert {"time", "level", "message"} <= set(access[0])


async def test_one_span_per_operation_and_none_per_field(gql: GraphQLClient) -> None:
    sdk = pytest.importorskip("opentelemetry.sdk.trace")
    from opentelemetry import trace
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    exporter = InMemorySpanExporter()
    provider = sdk.TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    trace.set_tracer_provider(provider)
    tenant = await make_tenant("acme")
    token = await make_token(tenant, "viewer")

    await gql.ok("query Spanned { viewer { kind role tokenId tenant { id name team } } }", token)

    spans = [s for s in exporter.get_finished_spans() if s.name.startswith("graphql.")]
    assert [s.name for s in spans] == ["graphql.query Spanned"]
    assert spans[0].attributes["graphql.operation.name"] == "Spanned"
