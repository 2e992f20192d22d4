"""Abusive requests get a clear GraphQL error, never a 5xx, and nothing runs."""

from collections.abc import AsyncIterator
from dataclasses import replace

import httpx
import pytest
from starlette.applications import Starlette

from agentplane.core.config import Settings
from agentplane.http.app import create_app
from agentplane.models import Task
from agentplane.schema.hardening import (
    MAX_ALIASES,
    MAX_DEPTH,
    MAX_DIRECTIVES,
    MAX_TOKENS,
    validate_cached,
)
from tests.support.factories import make_agent, make_tenant, make_token
from tests.support.graphql import GraphQLClient, error_codes


@pytest.fixture
async def operator(gql: GraphQLClient) -> str:
    tenant = await make_tenant("acme")
    await make_agent(tenant)
    return await make_token(tenant, "operator")


def only_error(body: dict) -> dict:
    assert body.get("data") is None, body
    assert len(body["errors"]) == 1, body["errors"]
    return body["errors"][0]


async def test_depth_limit(gql: GraphQLClient, operator: str) -> None:
    # given a query nested deeper than the limit (agent -> tasks -> agent -> ...)
    inner = "id"
    depth = 1
    while depth <= MAX_DEPTH:
        inner = f"tasks(first: 1) {{ edges {{ node {{ agent {{ {inner} }} }} }} }}"
        depth += 4
    body = await gql("{ " + inner + " }", operator)
    # then it is refused at validation, naming the limit
    error = only_error(body)
    assert error["extensions"]["code"] == "GRAPHQL_VALIDATION_FAILED"
    assert error["extensions"]["limit"] == "depth"
    assert error["extensions"]["max"] == MAX_DEPTH
    assert "nested too deeply" in error["message"]


async def test_depth_at_the_limit_passes(gql: GraphQLClient, operator: str) -> None:
    # depth 9: tasks, edges, node, agent, tasks, edges, node, agent, id
    body = await gql(
        "{ tasks(first: 1) { edges { node { agent { tasks(first: 1) { edges { node"
        " { agent { id } } } } } } } } }",
        operator,
    )
    assert not body.get("errors"), body


async def test_alias_limit(gql: GraphQLClient, operator: str) -> None:
    aliases = " ".join(f"a{i}: viewer {{ kind }}" for i in range(MAX_ALIASES + 1))
    error = only_error(await gql("{ " + aliases + " }", operator))
    assert error["extensions"]["code"] == "GRAPHQL_VALIDATION_FAILED"
    assert error["extensions"]["limit"] == "aliases"
    assert error["extensions"]["actual"] == MAX_ALIASES + 1


async def test_directive_limit(gql: GraphQLClient, operator: str) -> None:
    fields = " ".join("kind @include(if: true)" for _ in range(MAX_DIRECTIVES + 1))
    error = only_error(await gql("{ viewer { " + fields + " } }", operator))
    assert error["extensions"]["limit"] == "directives"
    assert error["extensions"]["code"] == "GRAPHQL_VALIDATION_FAILED"


async def test_token_limit(gql: GraphQLClient, operator: str) -> None:
    query = "{ viewer { " + "kind " * MAX_TOKENS + "} }"
    error = only_error(await gql(query, operator))
    assert error["extensions"]["code"] == "GRAPHQL_PARSE_FAILED"
    assert f"more than {MAX_TOKENS} tokens" in error["message"]


async def test_circular_fragments_are_refused(gql: GraphQLClient, operator: str) -> None:
    body = await gql(
        "query { tasks(first: 1) { edges { node { ...A } } } }"
        " fragment A on Task { agent { ...B } }"
        " fragment B on Agent { tasks(first: 1) { edges { node { ...A } } } }",
        operator,
    )
    assert body.get("data") is None
    assert "GRAPHQL_VALIDATION_FAILED" in error_codes(body)
    assert any("Cannot spread fragment" in e["message"] for e in body["errors"])


async def test_connections_require_first(gql: GraphQLClient, operator: str) -> None:
    error = only_error(await gql("{ tasks { edges { node { id } } } }", operator))
    assert error["extensions"]["code"] == "MISSING_PAGINATION_BOUNDARIES"
    assert error["message"] == (
        "You must provide a `first` value to properly paginate the `tasks` connection."
    )


async def test_first_over_100_is_refused_literal_and_variable(
    gql: GraphQLClient, operator: str
) -> None:
    error = only_error(await gql("{ agents(first: 101) { edges { node { id } } } }", operator))
    assert error["extensions"]["code"] == "EXCESSIVE_PAGINATION"
    assert error["message"] == (
        "Requesting 101 records on the `agents` connection exceeds the `first` limit of 100 "
        "records."
    )
    body = await gql(
        "query($n: Int) { tasks(first: $n) { edges { node { id } } } }", operator, n=500
    )
    assert only_error(body)["extensions"]["code"] == "EXCESSIVE_PAGINATION"


async def test_first_from_a_variable_default_counts(gql: GraphQLClient, operator: str) -> None:
    query = (
        "query($n: Int = 7) { rateLimit { nodeCount } tasks(first: $n) { edges { node { id } } } }"
    )
    assert (await gql.ok(query, operator))["rateLimit"] == {"nodeCount": 7}
    body = await gql(
        "query($n: Int = 700) { tasks(first: $n) { edges { node { id } } } }", operator
    )
    assert only_error(body)["extensions"]["code"] == "EXCESSIVE_PAGINATION"


async def test_node_limit(gql: GraphQLClient, operator: str) -> None:
    # 100 agents x 100 tasks x 1000 steps (the steps list's default size)
    body = await gql(
        "{ agents(first: 100) { edges { node { tasks(first: 100) { edges { node"
        " { steps { seq } } } } } } } }",
        operator,
    )
    error = only_error(body)
    assert error["extensions"]["code"] == "MAX_NODE_LIMIT_EXCEEDED"
    assert error["extensions"]["nodeCount"] == 100 + 100 * 100 + 100 * 100 * 1000


async def test_rate_limit_reports_cost_by_githubs_formula(
    gql: GraphQLClient, operator: str
) -> None:
    # requests: 1 (agents) + 100 (tasks per agent) + 100*100 (steps per task) = 10,101
    data = await gql.ok(
        "{ rateLimit { cost nodeCount remaining resetAt } agents(first: 100) { edges { node"
        " { tasks(first: 100) { edges { node { steps(first: 5) { seq } } } } } } } }",
        operator,
    )
    assert data["rateLimit"]["cost"] == 101
    assert data["rateLimit"]["nodeCount"] == 100 + 100 * 100 + 100 * 100 * 5
    small = await gql.ok("{ rateLimit { cost nodeCount } viewer { kind } }", operator)
    assert small["rateLimit"] == {"cost": 1, "nodeCount": 0}


async def test_validation_cache_hits_with_the_limit_rules(
    gql: GraphQLClient, operator: str
) -> None:
    query = "{ viewer { kind role } }"
    await gql.ok(query, operator)
    before = validate_cached.cache_info()
    await gql.ok(query, operator)
    after = validate_cached.cache_info()
    assert after.hits == before.hits + 1 and after.misses == before.misses


async def test_refused_transports(client: httpx.AsyncClient, operator: str) -> None:
    auth = {"Authorization": f"Bearer {operator}"}
    submit = 'mutation { submitTask(input: {agentId: "agt_x", query: "hi"}) { task { id } } }'
    cases = [
        # a batch
        client.post("/graphql", json=[{"query": "{ viewer { kind } }"}] * 2, headers=auth),
        # a mutation over GET
        client.get("/graphql", params={"query": submit}, headers=auth),
        # forms a browser could send cross-site (CSRF)
        client.post("/graphql", data={"query": submit}, headers=auth),
        client.post("/graphql", files={"query": (None, submit)}, headers=auth),
        client.post("/graphql", content=submit, headers={**auth, "Content-Type": "text/plain"}),
    ]
    for pending in cases:
        response = await pending
        assert 400 <= response.status_code < 500, (response.status_code, response.text)
        body = response.json()
        assert body["errors"][0]["message"], body
        assert body["errors"][0]["extensions"]["code"] == "BAD_REQUEST"
    assert await Task.all().count() == 0


async def test_a_subscription_over_http_is_told_to_use_a_websocket(
    client: httpx.AsyncClient, operator: str
) -> None:
    response = await client.post(
        "/graphql",
        json={"query": 'subscription { taskEvents(taskId: "tsk_x") { seq } }'},
        headers={"Authorization": f"Bearer {operator}"},
    )
    error = response.json()["errors"][0]
    assert error["extensions"]["code"] == "VALIDATION"
    assert "websocket" in error["message"]


async def test_request_body_limit(client: httpx.AsyncClient, operator: str) -> None:
    big = "x" * (1024 * 1024 + 1)
    response = await client.post(
        "/graphql",
        json={"query": "{ viewer { kind } }", "variables": {"pad": big}},
        headers={"Authorization": f"Bearer {operator}"},
    )
    assert response.status_code == 413
    assert response.json()["errors"][0]["extensions"]["code"] == "PAYLOAD_TOO_LARGE"


async def chunks(data: bytes, size: int) -> AsyncIterator[bytes]:
    for start in range(0, len(data), size):
        yield data[start : start + size]


async def test_chunked_body_limit(client: httpx.AsyncClient) -> None:
    response = await client.post(
        "/graphql",
        content=chunks(b"[" + b" " * (1024 * 1024 + 10) + b"]", 64 * 1024),
        headers={"Content-Type": "application/json"},
    )
    assert response.status_code == 413


@pytest.fixture
async def production(settings: Settings) -> AsyncIterator[GraphQLClient]:
    application: Starlette = create_app(replace(settings, env="production"), run_worker=False)
    async with application.router.lifespan_context(application):
        transport = httpx.ASGITransport(app=application)
        async with httpx.AsyncClient(transport=transport, base_url="http://prod.test") as c:
            yield GraphQLClient(c)


async def test_production_turns_off_introspection_ide_and_suggestions(
    production: GraphQLClient, gql: GraphQLClient, operator: str
) -> None:
    # introspection
    body = await production("{ __schema { types { name } } }", operator)
    assert body.get("data") is None
    assert "introspection" in body["errors"][0]["message"].lower()
    # field suggestions ("Did you mean 'viewer'?")
    typo = "{ viewr { kind } }"
    assert "Did you mean" in (await gql(typo, operator))["errors"][0]["message"]
    message = (await production(typo, operator))["errors"][0]["message"]
    assert message == "Cannot query field 'viewr' on type 'Query'."
    # and enum values in variables
    bad_enum = "query($s: TaskStatus) { tasks(first: 1, status: $s) { edges { node { id } } } }"
    message = (await production(bad_enum, operator, s="COMPLETE"))["errors"][0]["message"]
    assert "COMPLETE" in message and "Did you mean" not in message
    # GraphiQL
    page = await production.client.get("/graphql", headers={"Accept": "text/html"})
    assert page.status_code == 404
    # while development keeps both
    assert (await gql("{ __schema { queryType { name } } }", operator))["data"]


async def test_graphiqls_introspection_query_fits_the_limits(
    gql: GraphQLClient, operator: str
) -> None:
    from graphql import get_introspection_query

    query = get_introspection_query(
        descriptions=True, specified_by_url=True, directive_is_repeatable=True
    )
    data = await gql.ok(query, operator)
    names = {t["name"] for t in data["__schema"]["types"]}
    assert {"Task", "Agent", "RateLimit", "TaskConnection"} <= names
