"""Compiled plans answer exactly what graphql-core answers, with the same authorisation."""

from typing import Any

import orjson
import strawberry
from prometheus_client import REGISTRY
from tortoise.connection import get_connection

from agentplane.models import Step, StepKind, Task, TaskStatus
from agentplane.resolvers import json_pages
from agentplane.resolvers.auth import Actor
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
from tests.support.factories import make_agent, make_tenant

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
    assert per_query == ([1, 1, 1, 1, 0, 0] if postgres else [0] * 6)


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
