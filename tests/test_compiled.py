"""Compiled plans answer exactly what graphql-core answers, with the same authorisation."""

import itertools
from typing import Any

import httpx
import orjson
import pytest
import strawberry
from prometheus_client import REGISTRY
from starlette.applications import Starlette
from tortoise.connection import get_connection

from agentplane.models import AccessToken as AccessTokenModel
from agentplane.models import Step, StepKind, Task, TaskStatus, Tenant
from agentplane.resolvers import json_pages
from agentplane.resolvers.auth import SESSION_COOKIE, Actor, hash_token
from agentplane.schema import compiled
from agentplane.schema import schema as compiled_schema
from agentplane.schema.context import Context
from agentplane.schema.errors import ErrorCodes
from agentplane.schema.execution import ExecutionContext
from agentplane.schema.hardening import Hardening
from agentplane.schema.mutation import Mutation
from agentplane.schema.query import Query
from agentplane.schema.subscription import Subscription
from agentplane.schema.types import AccessToken, Agent
from agentplane.schema.types import Step as StepType
from agentplane.schema.types import Task as TaskType
from agentplane.schema.types import Tenant as TenantType
from tests.support.factories import make_agent, make_tenant, make_token
from tests.support.fast_path import NEW, Answer, graphql_view, sample, send

general_schema = strawberry.Schema(
    query=Query,
    mutation=Mutation,
    subscription=Subscription,
    types=[TenantType, AccessToken, Agent, TaskType, StepType],
    extensions=[ErrorCodes, Hardening],  # everything but the compiled plans
    execution_context_class=ExecutionContext,
)

TASK_FIELDS = (
    "__typename id status query output error metadata attempt createdAt updatedAt startedAt"
    " finishedAt isTerminal costUsd"
)
AGENT_FIELDS = (
    "__typename id name description model systemPrompt tools config maxSteps state createdAt"
    " updatedAt"
)
QUERIES: list[tuple[str, dict[str, Any]]] = [
    (
        f"{{ tasks(first: 50) {{ edges {{ cursor node {{ {TASK_FIELDS}"
        f" agent {{ {AGENT_FIELDS} }} }} }}"
        " pageInfo { hasNextPage hasPreviousPage startCursor endCursor } } }",
        {},
    ),
    (
        "query Q($n: Int!, $s: TaskStatus) { page: tasks(first: $n, status: $s) {"
        " edges { node { id mine: status agent { name } } } } }",
        {"n": 3, "s": "COMPLETED"},
    ),
    ("{ agents(first: 10) { edges { node { id name tools config state } } } }", {}),
    (
        "query F { tasks(first: 5) { edges { node { ...T ... on Task { isTerminal } } } } }"
        " fragment T on Task { id agent { ...A } } fragment A on Agent { name model }",
        {},
    ),
]

# A root list of plain objects (no database): the model catalog.
MODEL_QUERIES: list[tuple[str, dict[str, Any]]] = [
    (
        "{ models { __typename id label provider inputUsdPerMillionTokens"
        " outputUsdPerMillionTokens } }",
        {},
    ),
    ("query M($e: Boolean!) { catalog: models(enabledOnly: $e) { id } }", {"e": True}),
]


def hits(outcome: str) -> float:
    return REGISTRY.get_sample_value("agentplane_graphql_compiled_total", {"outcome": outcome}) or 0


async def run(schema: strawberry.Schema, query: str, actor: Actor, **variables: Any) -> Any:
    context = Context(request=None)
    context.set_actor(actor)
    result = await schema.execute(query, variable_values=variables, context_value=context)
    # As the HTTP view serialises it: pages PostgreSQL rendered are JSON text fragments.
    data = orjson.loads(orjson.dumps(result.data))
    return data, [e.formatted for e in result.errors or []]


async def seed() -> tuple[Actor, list[Task]]:
    tenant = await make_tenant("acme")
    agents = [
        await make_agent(tenant, "a1", tools=["calculator"], config={"x": [1, 2]}),
        await make_agent(tenant, "a2"),
    ]
    tasks = []
    for i in range(7):
        task = await Task.create(
            tenant_id=tenant.id,
            agent_id=agents[i % 2].id,
            query=f"q{i}",
            output=None if i % 3 else f"out {i}",
            status=TaskStatus.COMPLETED if i % 2 else TaskStatus.FAILED,
            metadata={"i": i, "nested": {"ok": True}},
            cost_usd="0.0001230000",
        )
        await Step.create(task_id=task.id, seq=1, kind=StepKind.STATUS_CHANGE, payload={})
        tasks.append(task)
    return Actor(kind="token", role="viewer", tenant_id=tenant.id), tasks


async def test_compiled_answers_equal_graphql_core(services: object) -> None:
    actor, tasks = await seed()
    queries = [
        *QUERIES,
        (f'{{ task(id: "{tasks[0].id}") {{ {TASK_FIELDS} agent {{ id }} }} }}', {}),
        (f'{{ agent(id: "{tasks[1].agent_id}") {{ {AGENT_FIELDS} }} }}', {}),
        *MODEL_QUERIES,
    ]
    per_query = []
    for query, variables in queries:
        before, statements = hits("hit"), sql_renders()
        compiled = await run(compiled_schema, query, actor, **variables)
        general = await run(general_schema, query, actor, **variables)
        assert hits("hit") == before + 1, f"not compiled: {query}"
        assert compiled == general
        assert compiled[1] == [] and compiled[0]
        per_query.append(sql_renders() - statements)
    # on PostgreSQL the connections were rendered by the database; single objects not
    postgres = get_connection("default").capabilities.dialect == "postgres"
    assert per_query == ([1, 1, 1, 1, 0, 0, 0, 0] if postgres else [0] * 8)


def sql_renders() -> int:
    info = json_pages._sql.cache_info()
    return info.hits + info.misses


async def test_same_authorisation_on_the_compiled_path(services: object) -> None:
    _, tasks = await seed()
    other = await make_tenant("other")
    outsider = Actor(kind="token", role="viewer", tenant_id=other.id)
    # a foreign task answers like a missing one, on both paths
    query = f'{{ task(id: "{tasks[0].id}") {{ id }} }}'
    compiled = await run(compiled_schema, query, outsider)
    assert compiled == await run(general_schema, query, outsider)
    assert compiled[1][0]["extensions"]["code"] == "NOT_FOUND"
    # a foreign tenant's list is empty, not theirs
    listed = await run(compiled_schema, QUERIES[2][0], outsider)
    assert listed == ({"agents": {"edges": []}}, [])
    # no actor at all
    anonymous = await run(compiled_schema, QUERIES[0][0], None)  # type: ignore[arg-type]
    assert anonymous[1][0]["extensions"]["code"] == "UNAUTHENTICATED"
    assert anonymous == await run(general_schema, QUERIES[0][0], None)  # type: ignore[arg-type]
    models = await run(compiled_schema, MODEL_QUERIES[0][0], None)  # type: ignore[arg-type]
    assert models[1][0]["extensions"]["code"] == "UNAUTHENTICATED"
    assert models == await run(general_schema, MODEL_QUERIES[0][0], None)  # type: ignore[arg-type]


async def test_uncovered_operations_take_the_general_path(services: object) -> None:
    actor, _ = await seed()
    before = hits("hit"), hits("fallback")
    data, errors = await run(
        compiled_schema,
        "{ tasks(first: 2) { edges { node { ...T } } } } fragment T on Task { id steps { seq } }",
        actor,
    )
    assert not errors and len(data["tasks"]["edges"]) == 2
    assert data["tasks"]["edges"][0]["node"]["steps"] == [{"seq": 1}]
    assert (hits("hit"), hits("fallback")) == before


async def test_pages_cursors_and_argument_errors_agree(services: object) -> None:
    # given seven tasks, and a platform caller who sees every tenant
    actor, tasks = await seed()
    platform = Actor(kind="token", role="platform_admin", tenant_id=None)
    first_page = await run(compiled_schema, "{ tasks(first: 3) { pageInfo { endCursor } } }", actor)
    cursor = first_page[0]["tasks"]["pageInfo"]["endCursor"]
    page = (
        "query($n: Int, $after: String, $a: ID) { tasks(first: $n, after: $after, agentId: $a) {"
        " __typename edges { __typename cursor node { id createdAt agent { __typename id } } }"
        " pageInfo { __typename hasNextPage hasPreviousPage startCursor endCursor } } }"
    )
    cases: list[tuple[Actor, dict[str, Any]]] = [
        (actor, {"n": 3, "after": cursor}),  # the next page
        (actor, {"n": 0}),  # no edges, but a next page
        (actor, {"n": 3, "a": tasks[1].agent_id}),  # one agent's
        (actor, {"n": 500}),  # capped
        (platform, {"n": 5}),  # every tenant's
        (actor, {"n": -1}),  # errors: a negative size, a malformed cursor, a bad agent ID
        (actor, {"n": 2, "after": "bm90IGEgY3Vyc29y"}),
        (actor, {"n": 2, "a": "x" * 500}),
    ]
    for caller, variables in cases:
        # when both paths answer, then they answer the same, errors included
        compiled = await run(compiled_schema, page, caller, **variables)
        assert compiled == await run(general_schema, page, caller, **variables), variables
    errors = [(await run(compiled_schema, page, actor, **v))[1] for _, v in cases[-3:]]
    assert [e[0]["extensions"]["code"] for e in errors] == ["VALIDATION"] * 3


# ------------------------------------------------ over HTTP: the fast path and the general path

REVOKE = "mutation($id: ID!) { revokeAccessToken(input: {id: $id}) { token { revokedAt } } }"


async def compare(
    client: httpx.AsyncClient,
    app: Starlette,
    body: object,
    token: str | None,
    accept: str | None = None,
    **kwargs: Any,
) -> Answer:
    """The same request on both paths: the same status, headers and body bytes."""
    view = graphql_view(app)
    fast = await send(client, view, body, token, accept, fast=True, **kwargs)
    general = await send(client, view, body, token, accept, fast=False, **kwargs)
    assert not general.fast
    fast.same_as(general)
    return fast


async def test_the_http_fast_path_answers_as_the_general_path(
    app: Starlette, client: httpx.AsyncClient
) -> None:
    _, tasks = await seed()
    tenant_id = (await Task.get(id=tasks[0].id)).tenant_id
    token = await make_token(await Tenant.get(id=tenant_id), "viewer")
    queries = [
        *QUERIES,
        (f'{{ task(id: "{tasks[0].id}") {{ {TASK_FIELDS} agent {{ id }} }} }}', {}),
        (f'{{ agent(id: "{tasks[1].agent_id}") {{ {AGENT_FIELDS} }} }}', {}),
        *MODEL_QUERIES,
    ]
    for accept in (None, "application/json", NEW, f"{NEW}, application/json"):
        for query, variables in queries:
            # given a compiled query, when it is sent over HTTP
            body = {"query": query, "variables": variables or None}
            answer = await compare(client, app, body, token, accept)
            # then the fast path answered it, exactly as Strawberry's view does
            assert answer.fast, query
            assert answer.status == 200 and b'"errors"' not in answer.body
    # operationName naming the one operation, variables given as null
    named = {"query": QUERIES[3][0], "operationName": "F", "variables": None}
    assert (await compare(client, app, named, token)).fast


async def test_operation_metrics_are_the_same_on_both_paths(
    app: Starlette, client: httpx.AsyncClient
) -> None:
    acme = await make_tenant("acme")
    token = await make_token(acme, "viewer")
    view = graphql_view(app)
    body = {"query": "query Metered { tasks(first: 2) { edges { node { id } } } }"}
    for fast in (True, False):
        ops = sample(
            "agentplane_graphql_operations_total", type="query", operation="Metered", outcome="ok"
        )
        latency = sample(
            "agentplane_graphql_operation_duration_seconds_count", type="query", operation="Metered"
        )
        http = sample(
            "agentplane_http_requests_total", route="/graphql", method="POST", status="200"
        )
        answer = await send(client, view, body, token, fast=fast)
        assert answer.fast is fast
        assert (
            sample(
                "agentplane_graphql_operations_total",
                type="query",
                operation="Metered",
                outcome="ok",
            )
            == ops + 1
        )
        assert (
            sample(
                "agentplane_graphql_operation_duration_seconds_count",
                type="query",
                operation="Metered",
            )
            == latency + 1
        )
        assert (
            sample("agentplane_http_requests_total", route="/graphql", method="POST", status="200")
            == http + 1
        )
    # and each path counts the request once against the caller's bucket
    left = [
        int((await send(client, view, body, token, fast=fast)).headers["x-ratelimit-remaining"])
        for fast in (False, True, False, True)
    ]
    assert [a - b for a, b in itertools.pairwise(left)] == [1, 1, 1]


async def test_every_error_is_the_same_on_both_paths(
    app: Starlette, client: httpx.AsyncClient
) -> None:
    _, tasks = await seed()
    acme = await Tenant.get(id=(await Task.get(id=tasks[0].id)).tenant_id)
    viewer = await make_token(acme, "viewer")
    admin = await make_token(acme, "tenant_admin")
    outsider = await make_token(await make_tenant("other"), "viewer")
    revoked = await make_token(acme, "viewer")
    page = "query P($n: Int!) { tasks(first: $n) { edges { node { id status } } } }"
    assert (await compare(client, app, {"query": page, "variables": {"n": 2}}, revoked)).fast
    revoked_row = await AccessTokenModel.get(token_hash=hash_token(revoked))
    await send(
        client,
        graphql_view(app),
        {"query": REVOKE, "variables": {"id": revoked_row.id}},
        admin,
        fast=True,
    )
    task_query = f'{{ task(id: "{tasks[0].id}") {{ id status }} }}'
    cases: list[tuple[str, object, str | None, dict[str, Any], str | None, bool]] = [
        # (what, body, token, send kwargs, expected code, answered by the fast path)
        (
            "bad token",
            {"query": page, "variables": {"n": 2}},
            "apt_nope",
            {},
            "UNAUTHENTICATED",
            False,
        ),
        (
            "not a bearer",
            {"query": page, "variables": {"n": 2}},
            None,
            {"authorization": "Basic eDp5"},
            "UNAUTHENTICATED",
            False,
        ),
        (
            "no credential",
            {"query": page, "variables": {"n": 2}},
            None,
            {},
            "UNAUTHENTICATED",
            False,
        ),
        (
            "a session cookie, no CSRF token",
            {"query": page, "variables": {"n": 2}},
            None,
            {"cookie": f"{SESSION_COOKIE}=nope"},
            None,
            False,
        ),
        (
            "revoked token",
            {"query": page, "variables": {"n": 2}},
            revoked,
            {},
            "UNAUTHENTICATED",
            False,
        ),
        ("other tenant", {"query": task_query}, outsider, {}, "NOT_FOUND", True),
        (
            "bad variables",
            {"query": page, "variables": {"n": "two"}},
            viewer,
            {},
            "GRAPHQL_VALIDATION_FAILED",
            False,
        ),
        ("missing variable", {"query": page}, viewer, {}, "MISSING_PAGINATION_BOUNDARIES", False),
        ("negative first", {"query": page, "variables": {"n": -1}}, viewer, {}, "VALIDATION", True),
        (
            "over-limit first",
            {"query": page, "variables": {"n": 500}},
            viewer,
            {},
            "EXCESSIVE_PAGINATION",
            False,
        ),
        (
            "no first",
            {"query": "{ tasks { edges { node { id } } } }"},
            viewer,
            {},
            "MISSING_PAGINATION_BOUNDARIES",
            False,
        ),
        (
            "wrong operationName",
            {"query": page, "operationName": "Nope", "variables": {"n": 2}},
            viewer,
            {},
            None,
            False,
        ),
        (
            "persisted query",
            {"extensions": {"persistedQuery": {"version": 1, "sha256Hash": "ab"}}},
            viewer,
            {},
            "BAD_REQUEST",
            False,
        ),
        (
            "persisted query with its text",
            {
                "query": page,
                "variables": {"n": 1},
                "extensions": {"persistedQuery": {"version": 1, "sha256Hash": "ab"}},
            },
            viewer,
            {},
            None,
            False,
        ),
        (
            "unknown field",
            {"query": "{ tasks(first: 1) { edges { node { nope } } } }"},
            viewer,
            {},
            "GRAPHQL_VALIDATION_FAILED",
            False,
        ),
        (
            "syntax error",
            {"query": "{ tasks(first: 1) {"},
            viewer,
            {},
            "GRAPHQL_PARSE_FAILED",
            False,
        ),
        ("not JSON", b"{nope", viewer, {}, "BAD_REQUEST", False),
        ("a batch", [{"query": page, "variables": {"n": 1}}], viewer, {}, None, False),
        (
            "variables not an object",
            {"query": page, "variables": [1]},
            viewer,
            {},
            "BAD_REQUEST",
            False,
        ),
    ]
    for accept in ("application/json", NEW):
        for what, body, token, kwargs, code, fast in cases:
            answer = await compare(client, app, body, token, accept, **kwargs)
            assert answer.fast is fast, what
            if code is not None:
                errors = orjson.loads(answer.body)["errors"]
                assert errors[0]["extensions"]["code"] == code, (what, errors)
                assert errors[0]["extensions"]["requestId"] == "req_compare", what


async def test_a_plan_that_fails_on_the_fast_path_is_answered_by_the_general_path(
    app: Starlette, client: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    # given a compiled query whose plan fails once, unexpectedly, after the cost was charged
    _, tasks = await seed()
    token = await make_token(
        await Tenant.get(id=(await Task.get(id=tasks[0].id)).tenant_id), "viewer"
    )
    body = {"query": QUERIES[0][0]}
    view = graphql_view(app)
    expected = await send(client, view, body, token, fast=False)
    original = compiled.execute_plan
    calls: list[int] = []

    async def fails_once(*args: Any) -> Any:
        calls.append(1)
        if len(calls) == 1:
            raise RuntimeError("lost the connection")
        return await original(*args)

    monkeypatch.setattr(compiled, "execute_plan", fails_once)
    fallbacks = hits("fallback")
    # when it is sent
    answer = await send(client, view, body, token, fast=True)
    # then Strawberry's view answered it, from the plan (run once more), as it always does
    assert not answer.fast and len(calls) == 2
    answer.same_as(expected)
    assert hits("fallback") == fallbacks  # counted where the general path falls back only
