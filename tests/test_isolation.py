"""Tenant isolation: nothing of tenant A is visible to, or changeable by, tenant B.

A foreign object must answer exactly like a missing one (same code, same message
shape), so a caller cannot even learn that it exists.
"""

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import pytest
from starlette.applications import Starlette

from agentplane.core import ids
from agentplane.core.config import Settings
from agentplane.http.app import create_app
from agentplane.models import AccessToken, Agent, Step, Task, TaskStatus, Tenant
from agentplane.resolvers import traces
from tests.support.database import truncate_all
from tests.support.factories import make_agent, make_tenant, make_token
from tests.support.graphql import GraphQLClient, error_codes


@pytest.fixture
async def app(settings: Settings) -> AsyncIterator[Starlette]:
    """The app without its in-process worker, so queued tasks stay queued and every
    "status unchanged" assertion below is deterministic."""
    await truncate_all(settings.database_url)
    application = create_app(settings, run_worker=False)
    async with application.router.lifespan_context(application):
        yield application


@dataclass
class Side:
    tenant: Tenant
    agent: Agent
    task: Task
    step: Step
    admin: str  # tenant_admin token
    operator: str
    viewer: str


@dataclass
class World:
    a: Side
    b: Side
    platform: str


async def make_side(name: str) -> Side:
    tenant = await make_tenant(name)
    agent = await make_agent(tenant, f"{name}-agent")
    task = await traces.create_task(
        tenant_id=tenant.id,
        agent_id=agent.id,
        query=f"question of {name}",
        metadata={},
        created_by="test",
    )
    step = await Step.get(task_id=task.id, seq=1)
    return Side(
        tenant=tenant,
        agent=agent,
        task=task,
        step=step,
        admin=await make_token(tenant, "tenant_admin"),
        operator=await make_token(tenant, "operator"),
        viewer=await make_token(tenant, "viewer"),
    )


@pytest.fixture
async def world(app: Starlette) -> World:
    return World(
        a=await make_side("a"),
        b=await make_side("b"),
        platform=await make_token(None, "platform_admin"),
    )


async def counts() -> dict[str, int]:
    return {
        "tenant": await Tenant.all().count(),
        "access_token": await AccessToken.all().count(),
        "agent": await Agent.all().count(),
        "task": await Task.all().count(),
        "step": await Step.all().count(),
    }


def not_found(body: dict[str, Any], secret: str) -> tuple[Any, ...]:
    """The one error of a NOT_FOUND answer, with the looked-up key masked out, so two
    answers can be compared for shape."""
    assert body["data"] is None, body
    assert error_codes(body) == ["NOT_FOUND"], body
    [error] = body["errors"]
    # The request id differs per request by design; everything else must be identical.
    extensions = {k: v for k, v in error["extensions"].items() if k != "requestId"}
    return extensions, error["message"].replace(secret, "<key>"), error["path"]


def ids_of(connection: dict[str, Any]) -> list[str]:
    return [edge["node"]["id"] for edge in connection["edges"]]


AGENT = "query($id: ID!) { agent(id: $id) { id name } }"
TASK = "query($id: ID!) { task(id: $id) { id status } }"
NODE = "query($id: ID!) { node(id: $id) { id } }"
TENANT = "query($name: String!) { tenant(name: $name) { id name } }"


@pytest.mark.parametrize(
    ("query", "field", "prefix"),
    [(AGENT, "agent", "agt"), (TASK, "task", "tsk")],
)
async def test_foreign_agent_and_task_answer_like_missing_ones(
    gql: GraphQLClient, world: World, query: str, field: str, prefix: str
) -> None:
    foreign = getattr(world.a, field).id
    missing = ids.new_id(prefix)
    for token in (world.b.admin, world.b.operator, world.b.viewer):
        # when B asks for A's object and for an ID that does not exist
        foreign_body = await gql(query, token, id=foreign)
        missing_body = await gql(query, token, id=missing)
        # then both answers are the same NOT_FOUND, and A's ID is only echoed back
        assert not_found(foreign_body, foreign) == not_found(missing_body, missing)
        assert foreign_body["errors"][0]["message"] == f"{field.title()} {foreign!r} not found"
    # and the owner still sees it
    own = await gql.ok(query, world.a.viewer, id=foreign)
    assert own[field]["id"] == foreign


@pytest.mark.parametrize("kind", ["tenant", "agent", "task", "step"])
async def test_node_never_resolves_a_foreign_object(
    gql: GraphQLClient, world: World, kind: str
) -> None:
    foreign = getattr(world.a, kind).id
    missing = ids.new_id(foreign.split("_")[0])
    for token in (world.b.admin, world.b.operator, world.b.viewer):
        foreign_body = await gql(NODE, token, id=foreign)
        missing_body = await gql(NODE, token, id=missing)
        assert not_found(foreign_body, foreign) == not_found(missing_body, missing)
    # while B's own object of the same kind resolves, and A sees its own
    own = getattr(world.b, kind).id
    assert (await gql.ok(NODE, world.b.viewer, id=own))["node"] == {"id": own}
    assert (await gql.ok(NODE, world.a.viewer, id=foreign))["node"] == {"id": foreign}


async def test_foreign_tenant_by_name_answers_like_a_missing_one(
    gql: GraphQLClient, world: World
) -> None:
    for token in (world.b.admin, world.b.operator, world.b.viewer):
        foreign_body = await gql(TENANT, token, name="a")
        missing_body = await gql(TENANT, token, name="zz-missing")
        assert not_found(foreign_body, "'a'") == not_found(missing_body, "'zz-missing'")
        assert foreign_body["errors"][0]["message"] == "Tenant 'a' not found"
    assert (await gql.ok(TENANT, world.b.viewer, name="b"))["tenant"]["id"] == world.b.tenant.id


async def test_lists_hold_only_the_callers_tenant(gql: GraphQLClient, world: World) -> None:
    # when B's tenant admin lists everything
    data = await gql.ok(
        "{ tenants(first: 100) { edges { node { id } } }"
        " agents(first: 100) { edges { node { id } } }"
        " tasks(first: 100) { edges { node { id } } }"
        " accessTokens(first: 100) { edges { node { id tenant { id } } } } }",
        world.b.admin,
    )
    # then every list holds B's objects only
    assert ids_of(data["tenants"]) == [world.b.tenant.id]
    assert ids_of(data["agents"]) == [world.b.agent.id]
    assert ids_of(data["tasks"]) == [world.b.task.id]
    b_tokens = await AccessToken.filter(tenant_id=world.b.tenant.id).order_by("id")
    assert len(b_tokens) == 3
    assert ids_of(data["accessTokens"]) == [t.id for t in b_tokens]
    assert {e["node"]["tenant"]["id"] for e in data["accessTokens"]["edges"]} == {world.b.tenant.id}


async def test_tasks_filtered_by_a_foreign_agent_is_empty(gql: GraphQLClient, world: World) -> None:
    data = await gql.ok(
        "query($a: ID!) { tasks(first: 100, agentId: $a) { edges { node { id } }"
        " pageInfo { hasNextPage endCursor } } }",
        world.b.viewer,
        a=world.a.agent.id,
    )
    assert data["tasks"] == {"edges": [], "pageInfo": {"hasNextPage": False, "endCursor": None}}


SUBMIT = 'mutation($a: ID!) { submitTask(input: {agentId: $a, query: "steal"}) { task { id } } }'


async def test_submit_task_on_a_foreign_agent_creates_nothing(
    gql: GraphQLClient, world: World
) -> None:
    before = await counts()
    missing = ids.new_id("agt")
    for token in (world.b.admin, world.b.operator):
        foreign_body = await gql(SUBMIT, token, a=world.a.agent.id)
        missing_body = await gql(SUBMIT, token, a=missing)
        assert not_found(foreign_body, world.a.agent.id) == not_found(missing_body, missing)
    assert await counts() == before
    assert await Task.filter(agent_id=world.a.agent.id).count() == 1


CANCEL = "mutation($t: ID!) { cancelTask(input: {id: $t}) { task { id status } } }"


async def test_cancel_task_on_a_foreign_task_changes_nothing(
    gql: GraphQLClient, world: World
) -> None:
    before = await counts()
    missing = ids.new_id("tsk")
    for token in (world.b.admin, world.b.operator):
        foreign_body = await gql(CANCEL, token, t=world.a.task.id)
        missing_body = await gql(CANCEL, token, t=missing)
        assert not_found(foreign_body, world.a.task.id) == not_found(missing_body, missing)
    task = await Task.get(id=world.a.task.id)
    assert (task.status, task.last_seq, task.cancel_requested) == (TaskStatus.QUEUED, 1, False)
    assert await counts() == before
    # and the owner can still cancel it
    done = await gql.ok(CANCEL, world.a.operator, t=world.a.task.id)
    assert done["cancelTask"]["task"] == {"id": world.a.task.id, "status": "CANCELLED"}


CREATE_AGENT = (
    'mutation($t: String) { createAgent(input: {name: "intruder", tenant: $t}) { agent { id } } }'
)


async def test_create_agent_in_a_foreign_tenant_creates_nothing(
    gql: GraphQLClient, world: World
) -> None:
    before = await counts()
    for token in (world.b.admin, world.b.operator):
        foreign_body = await gql(CREATE_AGENT, token, t="a")
        missing_body = await gql(CREATE_AGENT, token, t="zz-missing")
        assert not_found(foreign_body, "'a'") == not_found(missing_body, "'zz-missing'")
    assert await counts() == before
    assert await Agent.filter(name="intruder").count() == 0


CREATE_TOKEN = (
    'mutation($t: String, $r: String!) { createAccessToken(input: {name: "x", tenant: $t,'
    " role: $r}) { plainTextToken } }"
)


@pytest.mark.parametrize("role", ["tenant_admin", "operator", "viewer"])
async def test_create_access_token_in_a_foreign_tenant_creates_nothing(
    gql: GraphQLClient, world: World, role: str
) -> None:
    before = await counts()
    foreign_body = await gql(CREATE_TOKEN, world.b.admin, t="a", r=role)
    missing_body = await gql(CREATE_TOKEN, world.b.admin, t="zz-missing", r=role)
    assert not_found(foreign_body, "'a'") == not_found(missing_body, "'zz-missing'")
    assert await counts() == before
    assert await AccessToken.filter(tenant_id=world.a.tenant.id).count() == 3


AGENT_TASKS = (
    "query($id: ID!) { agent(id: $id) { id tasks(first: 100) {"
    " edges { node { id agent { id } } } } } }"
)
TASK_AGENT = "query($id: ID!) { task(id: $id) { id agent { id } } }"


async def test_agent_tasks_and_task_agent_stay_in_the_tenant(
    gql: GraphQLClient, world: World
) -> None:
    data = await gql.ok(AGENT_TASKS, world.b.viewer, id=world.b.agent.id)
    assert data["agent"] == {
        "id": world.b.agent.id,
        "tasks": {"edges": [{"node": {"id": world.b.task.id, "agent": {"id": world.b.agent.id}}}]},
    }
    data = await gql.ok(TASK_AGENT, world.b.viewer, id=world.b.task.id)
    assert data["task"] == {"id": world.b.task.id, "agent": {"id": world.b.agent.id}}


async def test_relations_do_not_cross_tenants_even_over_inconsistent_rows(
    gql: GraphQLClient, world: World
) -> None:
    # given rows that point across tenants (defence in depth: the relation resolvers
    # apply the caller's tenant filter themselves rather than trusting the foreign keys)
    b_task_on_a_agent = await Task.create(
        tenant_id=world.b.tenant.id, agent_id=world.a.agent.id, query="x"
    )
    a_task_on_b_agent = await Task.create(
        tenant_id=world.a.tenant.id, agent_id=world.b.agent.id, query="y"
    )
    # when B reads its own task, its Task.agent does not reveal A's agent
    data = await gql.ok(TASK_AGENT, world.b.viewer, id=b_task_on_a_agent.id)
    assert data["task"] == {"id": b_task_on_a_agent.id, "agent": None}
    # and B's Agent.tasks does not list A's task
    data = await gql.ok(AGENT_TASKS, world.b.viewer, id=world.b.agent.id)
    assert ids_of(data["agent"]["tasks"]) == [world.b.task.id]
    assert a_task_on_b_agent.id not in str(data)


async def test_platform_admin_sees_both_tenants(gql: GraphQLClient, world: World) -> None:
    data = await gql.ok(
        "{ tenants(first: 100) { edges { node { id } } }"
        " agents(first: 100) { edges { node { id } } }"
        " tasks(first: 100) { edges { node { id } } }"
        " accessTokens(first: 100) { edges { node { id } } } }",
        world.platform,
    )
    assert ids_of(data["tenants"]) == [world.a.tenant.id, world.b.tenant.id]
    assert ids_of(data["agents"]) == [world.a.agent.id, world.b.agent.id]
    assert ids_of(data["tasks"]) == [world.b.task.id, world.a.task.id]  # newest first
    assert ids_of(data["accessTokens"]) == [t.id for t in await AccessToken.all().order_by("id")]
    assert len(data["accessTokens"]["edges"]) == 7
    for side in (world.a, world.b):
        assert (await gql.ok(AGENT, world.platform, id=side.agent.id))["agent"]["id"] == (
            side.agent.id
        )
        assert (await gql.ok(TASK, world.platform, id=side.task.id))["task"]["id"] == side.task.id
        assert (await gql.ok(TENANT, world.platform, name=side.tenant.name))["tenant"]["id"] == (
            side.tenant.id
        )
        for kind in ("tenant", "agent", "task", "step"):
            node_id = getattr(side, kind).id
            assert (await gql.ok(NODE, world.platform, id=node_id))["node"] == {"id": node_id}
