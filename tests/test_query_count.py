"""SQL statements per request are constant in N: counted on the real connection."""

import asyncio
from collections.abc import AsyncIterator, Iterator

import httpx
import pytest
from starlette.applications import Starlette
from tortoise.connection import get_connection

from agentplane.core.config import Settings
from agentplane.http.app import create_app
from agentplane.models import Agent, Step, StepKind, Task, TaskStatus, Tenant
from tests.support.database import truncate_all
from tests.support.factories import make_agent, make_tenant, make_token
from tests.support.graphql import GraphQLClient

EXECUTE_METHODS = ("execute_query", "execute_query_dict", "execute_insert", "execute_many")
PAGE = """{ tasks(first: 100) { edges { node { id status
  agent { id name }
  steps { seq kind payload } } } } }"""


class StatementLog:
    def __init__(self) -> None:
        self.statements: list[str] = []

    def __len__(self) -> int:
        return len(self.statements)


def _housekeeping() -> bool:
    """A statement of the app's periodic maintenance job, which runs at startup too."""
    task = asyncio.current_task()
    return task is not None and task.get_coro().__qualname__ == "run_forever"  # type: ignore[union-attr]


@pytest.fixture
def statements(monkeypatch: pytest.MonkeyPatch, quiet_app: Starlette) -> Iterator[StatementLog]:
    """Every statement the database client sends (the real client, wrapped to count)."""
    log = StatementLog()
    client_class = type(get_connection("default"))
    for name in EXECUTE_METHODS:
        original = getattr(client_class, name)

        def counting(self, query, *args, __original=original, **kwargs):  # type: ignore[no-untyped-def]
            if not _housekeeping():
                log.statements.append(query)
            return __original(self, query, *args, **kwargs)

        monkeypatch.setattr(client_class, name, counting)
    yield log


@pytest.fixture
async def quiet_app(settings: Settings) -> AsyncIterator[Starlette]:
    """No worker: its polling would add statements of its own."""
    await truncate_all(settings.database_url)
    application = create_app(settings, run_worker=False)
    async with application.router.lifespan_context(application):
        yield application


@pytest.fixture
async def quiet_gql(quiet_app: Starlette) -> AsyncIterator[GraphQLClient]:
    transport = httpx.ASGITransport(app=quiet_app)
    async with httpx.AsyncClient(transport=transport, base_url="http://agentplane.test") as c:
        yield GraphQLClient(c)


async def seed(tenant: Tenant, agents: list[Agent], tasks: int) -> None:
    await Task.bulk_create(
        [
            Task(
                tenant_id=tenant.id,
                agent_id=agents[i % len(agents)].id,
                query=f"q{i}",
                status=TaskStatus.COMPLETED,
                last_seq=3,
            )
            for i in range(tasks)
        ]
    )
    created = await Task.filter(tenant_id=tenant.id)
    await Step.bulk_create(
        [
            Step(task_id=task.id, seq=seq, kind=StepKind.STATUS_CHANGE, payload={"n": seq})
            for task in created
            for seq in (1, 2, 3)
        ]
    )


async def test_statements_per_request_do_not_grow_with_n(
    quiet_gql: GraphQLClient, statements: StatementLog
) -> None:
    # given 10 tasks over 2 agents, each task with 3 steps
    tenant = await make_tenant("acme")
    agents = [await make_agent(tenant, f"agent-{i}") for i in range(2)]
    token = await make_token(tenant, "viewer")
    await seed(tenant, agents, 10)
    await quiet_gql.ok("{ viewer { kind } }", token)  # token's last-use stamp written once
    # (and its Actor cached: resolvers/actor_cache.py)

    # when the page is read with agents and steps
    statements.statements.clear()
    small = await quiet_gql.ok(PAGE, token)
    at_10 = list(statements.statements)

    # and again with 100 tasks over 20 agents
    agents += [await make_agent(tenant, f"agent-{i}") for i in range(2, 20)]
    await Task.all().delete()
    await seed(tenant, agents, 100)
    statements.statements.clear()
    large = await quiet_gql.ok(PAGE, token)
    at_100 = list(statements.statements)

    # then both answers are complete...
    assert len(small["tasks"]["edges"]) == 10 and len(large["tasks"]["edges"]) == 100
    assert all(len(e["node"]["steps"]) == 3 for e in large["tasks"]["edges"])
    assert all(e["node"]["agent"]["name"].startswith("agent-") for e in large["tasks"]["edges"])
    # ...and took the same statements: the page, its agents, their steps
    assert len(at_10) == len(at_100) == 3, (at_10, at_100)


NESTED = """query($n: Int!) { agents(first: 100) { edges { node { name
  tasks(first: $n) { edges { cursor node { id } } pageInfo { hasNextPage endCursor } } } } } }"""


async def test_nested_connections_are_one_query_for_all_parents(
    quiet_gql: GraphQLClient, statements: StatementLog
) -> None:
    from agentplane.resolvers.auth import Actor
    from agentplane.resolvers.tasks import list_tasks

    # given 3 agents with 0, 2 and 5 tasks, and a second tenant's agent with tasks
    tenant, other = await make_tenant("acme"), await make_tenant("other")
    agents = [await make_agent(tenant, f"agent-{i}") for i in range(3)]
    theirs = await make_agent(other, "theirs")
    for agent, count in zip([*agents, theirs], [0, 2, 5, 4], strict=True):
        for i in range(count):
            await Task.create(
                tenant_id=agent.tenant_id,
                agent_id=agent.id,
                query=f"q{i}",
                status=TaskStatus.COMPLETED,  # none left queued for the next test's worker
            )
    token = await make_token(tenant, "viewer")
    await quiet_gql.ok("{ viewer { kind } }", token)

    # when every agent's first 3 tasks are read
    statements.statements.clear()
    data = await quiet_gql.ok(NESTED, token, n=3)
    few = len(statements.statements)

    # then each page is what list_tasks gives for that agent alone
    actor = Actor(kind="token", role="viewer", tenant_id=tenant.id)
    nodes = {e["node"]["name"]: e["node"]["tasks"] for e in data["agents"]["edges"]}
    assert set(nodes) == {"agent-0", "agent-1", "agent-2"}
    for agent in agents:
        expected = await list_tasks(actor, 3, None, agent_id=agent.id)
        page = nodes[agent.name]
        assert [e["node"]["id"] for e in page["edges"]] == [t.id for t in expected.items]
        assert page["pageInfo"]["hasNextPage"] == expected.has_next
    # and the next page of the agent with 5 continues where the first ended
    cursor = nodes["agent-2"]["pageInfo"]["endCursor"]
    query = (
        "query($a: String) { agents(first: 100) { edges { node { name tasks(first: 3, after: $a)"
        " { edges { node { id } } pageInfo { hasNextPage hasPreviousPage } } } } } }"
    )
    rest = {
        e["node"]["name"]: e["node"]["tasks"]
        for e in (await quiet_gql.ok(query, token, a=cursor))["agents"]["edges"]
    }
    expected = await list_tasks(actor, 3, cursor, agent_id=agents[2].id)
    assert [e["node"]["id"] for e in rest["agent-2"]["edges"]] == [t.id for t in expected.items]
    assert rest["agent-2"]["pageInfo"] == {"hasNextPage": False, "hasPreviousPage": True}

    # and with 20 more agents the statement count is the same
    for i in range(3, 23):
        agent = await make_agent(tenant, f"agent-{i}")
        await Task.create(
            tenant_id=tenant.id, agent_id=agent.id, query="q", status=TaskStatus.COMPLETED
        )
    statements.statements.clear()
    many = await quiet_gql.ok(NESTED, token, n=3)
    assert len(many["agents"]["edges"]) == 23
    assert len(statements.statements) == few == 2, statements.statements
